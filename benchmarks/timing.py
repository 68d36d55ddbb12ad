"""Timing helpers shared by every benchmark module.

:func:`measure` times a callable (warm-up, then the median of several runs,
with a CUDA synchronize around each run when the work is on a GPU);
:func:`print_table` and :func:`write_json` report a list of :class:`Result`;
:func:`environment` names the machine (CPU model, cores, torch build, threads,
load) and :func:`check_schema` is the JSON's layout, checked.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class Result:
    """One timed workload.

    Attributes
    ----------
    group : str
        What is measured (e.g. ``"ATSS 800x1333, 8 gts"``).
    impl : str
        Which implementation (e.g. ``"reference atss_assign"``).
    device : str
        ``"cpu"`` or ``"cuda"``.
    median_ms, min_ms : float or None
        Median and minimum over ``repeat`` runs, in milliseconds (None: skipped).
    repeat : int
    target_ms : float, optional
        The speed target, when there is one.
    note : str
        For a skipped row, why it was skipped.
    """

    group: str
    impl: str
    device: str
    median_ms: float | None
    min_ms: float | None
    repeat: int
    target_ms: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @classmethod
    def skipped(cls, group: str, impl: str, device: str, why: str) -> Result:
        """A row that was not run here (e.g. a GPU row without CUDA), and why."""
        return cls(group, impl, device, None, None, 0, note=f"skipped: {why}")

    @property
    def status(self) -> str:
        if self.median_ms is None:
            return "skipped"
        if self.target_ms is None:
            return ""
        return "ok" if self.median_ms <= self.target_ms else "MISSED"


def synchronize(device: str) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(
    fn: Callable[[], object], *, device: str = "cpu", repeat: int = 15, warmup: int = 3
) -> tuple[float, float]:
    """Median and minimum wall time of ``fn()`` in milliseconds.

    Runs ``fn`` ``warmup`` times untimed, then ``repeat`` times; each timed run
    is bracketed by :func:`synchronize`, so GPU work is counted in full.
    """
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeat):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def timed(
    group: str,
    impl: str,
    fn: Callable[[], object],
    *,
    device: str = "cpu",
    repeat: int = 15,
    warmup: int = 3,
    target_ms: float | None = None,
    note: str = "",
) -> Result:
    """:func:`measure` ``fn`` and wrap the numbers in a :class:`Result`."""
    median, best = measure(fn, device=device, repeat=repeat, warmup=warmup)
    return Result(group, impl, device, median, best, repeat, target_ms, note)


def devices() -> list[str]:
    """``["cpu"]``, plus ``"cuda"`` when a GPU is available."""
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def cuda_skip_reason(devs: Sequence[str]) -> str | None:
    """Why the GPU rows are not run with ``devs`` (None: they are)."""
    if "cuda" in devs:
        return None
    if torch.cuda.is_available():
        return "--cpu-only"
    return "no CUDA device (torch.cuda.is_available() is False)"


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):  # pragma: no cover - not on every platform
        return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.processor() or platform.machine()


def _torch_build() -> dict:
    info = torch.__config__.parallel_info()
    backend = re.search(r"ATen parallel backend: (.*)", info)
    return {
        "torch": torch.__version__,
        "torch_git": torch.version.git_version,
        "torch_cuda_build": torch.version.cuda,
        "torch_parallel_backend": backend.group(1).strip() if backend else None,
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
        "torch_mkl": torch.backends.mkl.is_available(),
    }


def environment() -> dict:
    """The machine, the software and the thread settings, stored with the results.

    The load average is the caller's to add (``loadavg_start`` and ``loadavg_end``, see
    :mod:`benchmarks.run`): it is read once before and once after the run.
    """
    try:
        cores_usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores_usable = os.cpu_count()
    cuda = torch.cuda.is_available()
    return {
        "host": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": cores_usable,
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        **_torch_build(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        **{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")},
        "cuda": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_rows": "run" if cuda else "skipped: no CUDA device",
    }


def describe_environment(env: dict) -> str:
    """The table's header: which machine, which torch, which threads, what load."""
    def load(key: str) -> str:
        v = env.get(key)
        return " ".join(f"{x:.2f}" for x in v) if v else "n/a"

    return "\n".join([
        f"machine: {env.get('cpu_model')}, {env.get('cpu_count')} cores "
        f"({env.get('cpu_usable')} usable), {env.get('host')}; GPU: {env.get('cuda') or 'none'}"
        f" (GPU rows: {env.get('gpu_rows')})",
        f"torch {env.get('torch')} ({env.get('torch_parallel_backend')}, CUDA build "
        f"{env.get('torch_cuda_build')}), numpy {env.get('numpy')}, python {env.get('python')}; "
        f"threads: torch {env.get('torch_threads')} (interop {env.get('torch_interop_threads')}),"
        f" OMP_NUM_THREADS={env.get('OMP_NUM_THREADS')},"
        f" OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY')}",
        f"load average (1, 5, 15 min): {load('loadavg_start')} at start, "
        f"{load('loadavg_end')} at end",
    ])


def print_table(results: Sequence[Result]) -> None:
    """One row per result: group, implementation, device, median, min, target, status."""
    header = ("workload", "implementation", "device", "median ms", "min ms", "target ms", "")
    rows = [
        (
            r.group,
            r.impl,
            r.device,
            "-" if r.median_ms is None else f"{r.median_ms:.2f}",
            "-" if r.min_ms is None else f"{r.min_ms:.2f}",
            "" if r.target_ms is None else f"<= {r.target_ms:g}",
            r.status + (f" ({r.note[len('skipped: '):]})" if r.median_ms is None else ""),
        )
        for r in results
    ]
    print_rows(header, rows)


def print_rows(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain text table, columns padded to their widest cell."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header).rstrip())
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row).rstrip())


def write_json(
    results: Sequence[Result],
    path: str | Path,
    meta: dict | None = None,
    *,
    profile: dict | None = None,
    against: dict | None = None,
    env: dict | None = None,
) -> Path:
    """Write ``{"environment", "results", "profile", "against"}`` to ``path`` (parents made).

    ``env`` defaults to :func:`environment`; ``meta`` is merged into it. ``profile`` and
    ``against`` are None when not run. The layout is :func:`check_schema`'s.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "schema": SCHEMA_VERSION,
        "environment": {**(env or environment()), **(meta or {})},
        "results": [{**asdict(r), "status": r.status} for r in results],
        "profile": profile,
        "against": against,
    }
    check_schema(payload)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


#: ``bench.json``'s layout version (2: ``schema``, ``profile`` and ``against`` added).
SCHEMA_VERSION = 2

_ENV_KEYS = ("cpu_model", "cpu_count", "torch", "torch_threads", "cuda", "gpu_rows",
             "loadavg_start", "loadavg_end")
_RESULT_KEYS = {"group": str, "impl": str, "device": str, "repeat": int, "status": str,
                "note": str}
_PROFILE_KEYS = ("workload", "settings", "device", "threads", "steps", "warmup", "phases",
                 "sum_of_phases_ms", "profiled_step_ms", "step_ms", "train_step_ms",
                 "sum_over_step")
_AGAINST_KEYS = ("rev", "sha", "worktree", "reused", "current", "repeat", "warmup", "rounds",
                 "rows")
_AGAINST_ROW_KEYS = ("workload", "device", "threads", "pairs", "current_median_ms",
                     "rev_median_ms", "ratio_median", "ratio_q1", "ratio_q3", "ratio_rounds",
                     "error")


def _need(obj: dict, keys: Sequence[str], where: str) -> None:
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ValueError(f"{where} lacks {missing}")


def check_schema(payload: dict) -> None:
    """Raise ValueError unless ``payload`` has ``bench.json``'s layout (docs/benchmarks.md)."""
    _need(payload, ("schema", "environment", "results", "profile", "against"), "bench.json")
    _need(payload["environment"], _ENV_KEYS, "environment")
    for r in payload["results"]:
        _need(r, ("median_ms", "min_ms", "target_ms", *_RESULT_KEYS), "a result")
        if any(not isinstance(r[k], t) for k, t in _RESULT_KEYS.items()):
            raise ValueError(f"a result has a field of the wrong type: {r}")
        if (r["median_ms"] is None) != (r["status"] == "skipped"):
            raise ValueError(f"only a skipped result has no median: {r}")
    if payload["profile"] is not None:
        prof = payload["profile"]
        _need(prof, _PROFILE_KEYS, "profile")
        for p in prof["phases"]:
            _need(p, ("phase", "median_ms", "share"), "a profile phase")
    if payload["against"] is not None:
        _need(payload["against"], _AGAINST_KEYS, "against")
        for row in payload["against"]["rows"]:
            _need(row, _AGAINST_ROW_KEYS, "an against row")
