"""Run the reading notebooks top to bottom and store their outputs in place (``make notebooks``).

The notebooks are committed with their outputs, so that a reader sees the plots on a
code host without running anything. ``make test`` re-runs them under nbval and fails
when a stored text output no longer matches what the code prints (images are not
compared; ``notebooks/nbval_sanitize.cfg`` masks what legitimately varies: timings,
addresses, float noise below 1e-6). After changing a notebook or the code it shows,
run ``make notebooks`` and commit the refreshed outputs.

Usage: ``.venv/bin/python tools/execute_notebooks.py [NOTEBOOK ...]`` (default: all of
``notebooks/*.ipynb``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def execute(path: Path, timeout: int = 600) -> float:
    """Execute ``path`` in its own folder with a fresh kernel; write the outputs; seconds taken."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    where = {"metadata": {"path": str(path.parent)}}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=where)
    client.execute()
    for cell in nb.cells:  # keep the files stable: no per-run metadata
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    paths = [Path(a).resolve() for a in argv] or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in paths:
        print(f"{path.name}: {execute(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
