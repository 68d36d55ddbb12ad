"""mmdetection's own outputs on seeded inputs, installed with the package.

The files in ``reference/testing/golden/`` (``golden/README.md`` says how they were
made and from which versions) travel with the package as package data, so a user of
a wheel, without this repository, has them: ``load("integral")``. The project's tests
load the same files (``tests/conftest.py``).
"""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["golden_names", "load"]


def golden_names() -> list[str]:
    """The stems of the installed golden files (``"integral"``, ``"nms"``, …)."""
    folder = resources.files("reference.testing") / "golden"
    return sorted(p.name[: -len(".npz")] for p in folder.iterdir() if p.name.endswith(".npz"))


def load(name: str) -> dict[str, np.ndarray]:
    """The arrays of ``golden/NAME.npz`` (a fresh copy each call)."""
    if name not in golden_names():
        raise ValueError(f"name must be one of {golden_names()}, got {name!r}")
    with resources.as_file(resources.files("reference.testing") / "golden" / f"{name}.npz") as p:
        with np.load(p) as data:
            return {k: data[k] for k in data.files}
