"""Hypothesis strategies shared by every test module.

Arrays are built with ``fill=st.nothing()`` so that every element is drawn
(dense arrays, no repeated fill value).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

F64 = np.float64


def finite_floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=64)


def logits(shape, lo: float = -20.0, hi: float = 20.0) -> st.SearchStrategy[np.ndarray]:
    """Dense float64 logits of a fixed or drawn shape."""
    return hnp.arrays(F64, shape, elements=finite_floats(lo, hi), fill=st.nothing())


@st.composite
def boxes(draw, n=None, lo: float = 0.0, hi: float = 200.0, min_size: float = 0.5,
          max_size: float = 100.0) -> np.ndarray:
    """``(n, 4)`` float64 boxes ``(x1, y1, x2, y2)`` with positive width and height."""
    if n is None:
        n = draw(st.integers(0, 8))
    xy = draw(hnp.arrays(F64, (n, 2), elements=finite_floats(lo, hi), fill=st.nothing()))
    wh = draw(hnp.arrays(F64, (n, 2), elements=finite_floats(min_size, max_size), fill=st.nothing()))
    return np.concatenate([xy, xy + wh], axis=1)


@st.composite
def points_in_boxes(draw, n=None, margin: float = 0.05):
    """``(points (n, 2), boxes (n, 4))`` with each point strictly inside its box."""
    b = draw(boxes(n=n, min_size=1.0))
    n = b.shape[0]
    u = draw(hnp.arrays(F64, (n, 2), elements=finite_floats(margin, 1.0 - margin), fill=st.nothing()))
    pts = b[:, :2] + u * (b[:, 2:] - b[:, :2])
    return pts, b


def dfl_targets(n, reg_max: int = 16) -> st.SearchStrategy[np.ndarray]:
    """``(n,)`` DFL targets in ``[0, reg_max - 0.1]``, the range the head produces."""
    return hnp.arrays(F64, (n,), elements=finite_floats(0.0, reg_max - 0.1), fill=st.nothing())


def qfl_inputs(max_n: int = 12, max_c: int = 6, logit_range: float = 20.0):
    """``(pred (N, C), label (N,), score (N,))``: labels in ``[-1, C+1]``, scores in [0, 1]."""

    @st.composite
    def build(draw):
        n = draw(st.integers(0, max_n))
        c = draw(st.integers(1, max_c))
        pred = draw(logits((n, c), -logit_range, logit_range))
        label = draw(hnp.arrays(np.int64, (n,), elements=st.integers(-1, c + 1), fill=st.nothing()))
        score = draw(hnp.arrays(F64, (n,), elements=finite_floats(0.0, 1.0), fill=st.nothing()))
        return pred, label, score

    return build()
