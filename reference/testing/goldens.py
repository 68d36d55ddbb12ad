"""mmdetection's own outputs on seeded inputs, installed with the package.

The files in ``reference/testing/golden/`` (``golden/README.md`` says how they were
made and from which versions) travel with the package, so a user of a wheel, without
this repository, checks a candidate against them too: :func:`~reference.testing.check`
adds the property "matches mmdetection's golden outputs" for every piece listed in
:data:`GOLDEN_CASES`. The project's tests load the same files (``tests/conftest.py``).
"""

from __future__ import annotations

from importlib import resources
from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st

from .compare import assert_close, assert_equal
from .engine import Candidate, Property
from .pair_pieces import PAIR_SPECS
from .pairs import candidate_forward, candidate_gradient

__all__ = ["GOLDEN_CASES", "golden_names", "load", "golden_property"]


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


class GoldenCase(NamedTuple):
    """Where a piece's golden case lies in its file: the inputs (SPEC's order) and outputs."""

    file: str
    inputs: tuple[str, ...]  # keys of the arguments, in the order the candidate takes them
    out: str  # key of the forward's (or the function's) output
    d_out: str = ""  # pairs: key of the upstream gradient …
    d_in: str = ""  # … and of the gradient it must give


GOLDEN_CASES: dict[str, GoldenCase] = {
    "integral": GoldenCase("integral", ("pred", "reg_max"), "out", "d_out", "d_pred"),
    "qfl": GoldenCase("quality_focal_loss", ("pred", "label", "score", "beta"), "loss", "d_out",
                      "d_pred"),
    "dfl": GoldenCase("distribution_focal_loss", ("pred", "label"), "loss", "d_out", "d_pred"),
    "giou_loss": GoldenCase("giou_loss", ("pred", "target"), "loss", "d_out", "d_pred"),
    "nms": GoldenCase("nms", ("boxes", "scores", "iou_threshold"), "keep"),
}  # fmt: skip


def _args(case: GoldenCase) -> dict[str, Any]:
    data = load(case.file)
    args = {}
    for key in case.inputs:
        value = data[key]
        args[key] = value.item() if value.ndim == 0 else value  # scalars as Python numbers
    return args


def golden_property(piece: str) -> Property | None:
    """The property "matches mmdetection's golden outputs" of ``piece`` (None without goldens)."""
    case = GOLDEN_CASES.get(piece)
    if case is None:
        return None
    data = load(case.file)

    def run(cand: Candidate, args: dict[str, Any]) -> None:
        if piece not in PAIR_SPECS:
            got = cand.call("function", cand.fn, *args.values())
            assert_equal(data[case.out], got, "the output on mmdetection's golden input")
            return
        spec = PAIR_SPECS[piece]
        out, _ = candidate_forward(spec, cand, args)
        assert_close(data[case.out], out, "the forward on mmdetection's golden input", 1e-6, 1e-9)
        d_out = data[case.d_out].reshape(-1)
        grad = candidate_gradient(spec, cand, args, d_out)[0]
        assert_close(data[case.d_in], grad, "the gradient on mmdetection's golden input",
                     1e-5, 1e-9)  # fmt: skip

    return Property("matches mmdetection's golden outputs", st.just(_args(case)), run, 1)
