"""Timing helpers shared by every benchmark module.

:func:`measure` times a callable (warm-up, then the median of several runs,
with a CUDA synchronize around each run when the work is on a GPU);
:func:`print_table` and :func:`write_json` report a list of :class:`Result`.
"""

from __future__ import annotations

import json
import os
import platform
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
    median_ms, min_ms : float
        Median and minimum over ``repeat`` runs, in milliseconds.
    repeat : int
    target_ms : float, optional
        The speed target, when there is one.
    note : str
    """

    group: str
    impl: str
    device: str
    median_ms: float
    min_ms: float
    repeat: int
    target_ms: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
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


def environment() -> dict:
    """Versions and hardware, stored with the results."""
    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        env["loadavg_1min"] = os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on every platform
        pass
    return env


def print_table(results: Sequence[Result]) -> None:
    """One row per result: group, implementation, device, median, min, target, status."""
    header = ("workload", "implementation", "device", "median ms", "min ms", "target ms", "")
    rows = [
        (
            r.group,
            r.impl,
            r.device,
            f"{r.median_ms:.2f}",
            f"{r.min_ms:.2f}",
            "" if r.target_ms is None else f"<= {r.target_ms:g}",
            r.status,
        )
        for r in results
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))


def write_json(results: Sequence[Result], path: str | Path, meta: dict | None = None) -> Path:
    """Write ``{"environment": ..., "results": [...]}`` to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "environment": {**environment(), **(meta or {})},
        "results": [{**asdict(r), "status": r.status} for r in results],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
