"""Run every benchmark, print one table, write ``bench_results/bench.json``.

Usage: ``python -m benchmarks.run [--repeat N] [--out PATH] [--threads N] [--cpu-only]
[--only SUBSTRING] [--steps N] [--profile-quick] [--against REV] [--against-select SUBSTRING]
[--against-rounds N] [--against-cleanup]``.

Sections (``--only`` keeps those whose name contains its argument):

* ``benchmarks.bench_assign_nms``, ``benchmarks.bench_head``: each module in
  :data:`MODULES` has ``run(devices, repeat) -> list[Result]``; adding a
  benchmark is one line here;
* ``benchmarks.profile_step``: where one ``gfl demo`` training step goes
  (:mod:`benchmarks.profile_step`), ``--steps`` profiled steps;
* ``benchmarks.against``: with ``--against REV`` only, the working tree and
  ``REV`` timed side by side (:mod:`benchmarks.against`).

The table's header and the JSON's ``environment`` name the machine: CPU model
and cores, torch build, thread settings, the load average at start and end.
"""

from __future__ import annotations

import argparse
import importlib

import torch

from . import against as against_mod
from . import profile_step
from .timing import (
    cuda_skip_reason,
    describe_environment,
    devices,
    environment,
    loadavg,
    print_table,
    write_json,
)

MODULES = [
    "benchmarks.bench_assign_nms",
    "benchmarks.bench_head",
]
PROFILE = "benchmarks.profile_step"
AGAINST = "benchmarks.against"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per workload")
    parser.add_argument("--out", default="bench_results/bench.json", help="JSON output path")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--cpu-only", action="store_true", help="skip CUDA even if available")
    parser.add_argument("--only", default="", help="run only the sections whose name contains this")
    parser.add_argument("--steps", type=int, default=None,
                        help="profiled (and plain) demo steps (default: --repeat)")
    parser.add_argument("--profile-quick", action="store_true",
                        help="profile QUICK_TRAIN's tiny step instead of the demo's")
    parser.add_argument("--against", metavar="REV", default=None,
                        help="also time the working tree and REV side by side")
    parser.add_argument("--against-select", default="",
                        help="with --against: only the workloads whose name contains this")
    parser.add_argument("--against-rounds", type=int, default=3,
                        help="with --against: fresh worker pairs the --repeat pairs are split over")
    parser.add_argument("--against-cleanup", action="store_true",
                        help="with --against: remove REV's worktree afterwards")
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run the selected sections; print them; write and return the JSON's payload."""
    args = _parser().parse_args(argv)
    load_start = loadavg()
    if args.threads:
        torch.set_num_threads(args.threads)
    devs = ["cpu"] if args.cpu_only else devices()
    env = environment()  # before the sections: the profile sets (and restores) threads
    results, profile, against = [], None, None
    for name in (m for m in MODULES if args.only in m):
        results += importlib.import_module(name).run(devs, args.repeat)
    if args.only in PROFILE:
        profile = profile_step.run(args.steps or args.repeat, quick=args.profile_quick)
    if args.against and args.only in AGAINST:
        against = against_mod.compare(
            args.against, repeat=args.repeat, rounds=args.against_rounds,
            select=args.against_select,
            cuda="cuda" in devs, cleanup=args.against_cleanup,
        )
    env.update(loadavg_start=load_start, loadavg_end=loadavg(), repeat=args.repeat, devices=devs)
    why = cuda_skip_reason(devs)
    env["gpu_rows"] = "run" if why is None else f"skipped: {why}"
    print()
    print(describe_environment(env))
    print()
    if results:
        print_table(results)
    if profile:
        profile_step.print_profile(profile)
    if against:
        against_mod.print_against(against)
    path = write_json(results, args.out, env=env, profile=profile, against=against)
    print(f"\nwrote {path}")
    return {"path": str(path), "environment": env}


if __name__ == "__main__":
    main()
