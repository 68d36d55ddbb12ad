"""Run every benchmark module, print one table, write ``bench_results/bench.json``.

Usage: ``python -m benchmarks.run [--repeat N] [--out PATH] [--threads N] [--cpu-only]
[--only SUBSTRING]``.
Each module in :data:`MODULES` has ``run(devices, repeat) -> list[Result]``;
adding a benchmark is one line here.
"""

from __future__ import annotations

import argparse
import importlib

import torch

from .timing import devices, print_table, write_json

MODULES = [
    "benchmarks.bench_assign_nms",
    "benchmarks.bench_head",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per workload")
    parser.add_argument("--out", default="bench_results/bench.json", help="JSON output path")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--cpu-only", action="store_true", help="skip CUDA even if available")
    parser.add_argument("--only", default="", help="run only the modules whose name contains this")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devs = ["cpu"] if args.cpu_only else devices()
    results = []
    for name in (m for m in MODULES if args.only in m):
        results += importlib.import_module(name).run(devs, args.repeat)
    print_table(results)
    path = write_json(results, args.out, {"repeat": args.repeat, "devices": devs})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
