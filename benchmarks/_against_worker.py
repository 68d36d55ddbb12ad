"""One side of ``--against``: times workloads with the library code of one tree.

Usage (by :class:`benchmarks.against.Worker`, not by hand)::

    python _against_worker.py ROOT WORKLOADS_PY THREADS

``reference`` and ``torch_impl`` are imported from ``ROOT`` (checked);
the workloads from the file ``WORKLOADS_PY`` (the working tree's
``benchmarks/workloads.py``, loaded by path so that both sides run the same
workload code). Requests come as JSON lines on stdin, replies go as JSON lines
on the original stdout; anything else printed goes to stderr.

Requests: ``{"op": "setup", "name", "cuda", "settings"}`` builds a workload;
``{"op": "time"}`` runs it once and replies ``{"ms"}``; ``{"op": "drop"}``
forgets it; ``{"op": "quit"}``. A failure replies ``{"error"}`` and the worker
carries on.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _import_tree(root: Path) -> dict:
    """Import ``reference`` and ``torch_impl`` from ``root``; where they came from."""
    sys.path[0] = str(root)  # in place of this script's folder
    import reference
    import torch_impl

    where = {"reference": reference.__file__, "torch_impl": torch_impl.__file__}
    for name, path in where.items():
        if not Path(path).resolve().is_relative_to(root):
            raise ImportError(f"{name} was imported from {path}, not from {root}")
    return where


class _Session:
    def __init__(self, workloads, threads: int) -> None:
        self.workloads, self.threads = workloads, threads
        self.fn, self.workload = None, None

    def _threads(self) -> None:
        import torch

        torch.set_num_threads(self.workload.threads or self.threads)

    def setup(self, name: str, cuda: bool, settings: dict) -> dict:
        found = [w for w in self.workloads.against_workloads(cuda, settings) if w.name == name]
        if not found:
            return {"error": f"no workload called {name!r}"}
        self.workload = found[0]
        self._threads()
        self.fn = self.workload.make(**self.workload.params)
        return {"ok": True}

    def time(self) -> dict:
        self._threads()
        sync = self.workloads.synchronize
        sync(self.workload.device)
        start = time.perf_counter()
        self.fn()
        sync(self.workload.device)
        return {"ms": (time.perf_counter() - start) * 1e3}

    def drop(self) -> dict:
        self.fn = self.workload = None
        gc.collect()
        return {"ok": True}


def main() -> None:
    root, workloads_path, threads = Path(sys.argv[1]).resolve(), sys.argv[2], int(sys.argv[3])
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # prints (ours, the library's) go to stderr, not into the protocol

    def send(obj: dict) -> None:
        proto.write(json.dumps(obj) + "\n")

    try:
        import torch

        torch.set_num_threads(threads)
        where = _import_tree(root)
        session = _Session(_load(workloads_path, "gfl_bench_workloads"), threads)
    except Exception as e:  # noqa: BLE001 - reported to the parent
        send({"error": f"{type(e).__name__}: {e}"})
        return
    send({"root": str(root), **where, "torch": torch.__version__, "pid": os.getpid()})
    for line in sys.stdin:
        msg = json.loads(line)
        op = msg.pop("op")
        if op == "quit":
            send({"ok": True})
            break
        try:
            if op not in ("setup", "time", "drop"):
                raise ValueError(f"unknown op {op!r}")
            send(getattr(session, op)(**msg))
        except Exception as e:  # noqa: BLE001 - reported to the parent, the worker goes on
            traceback.print_exc()
            send({"error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    main()
