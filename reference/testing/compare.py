"""How the engine compares a candidate's output with the reference's, and how it
walks nested outputs (lists of per-level maps, dicts of losses) as one vector."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .engine import PropertyFailed, to_numpy

#: Relative and absolute tolerances of a float64 comparison with the reference.
RTOL, ATOL = 1e-7, 1e-9


def as_array(value: object, what: str) -> np.ndarray:
    """``value`` (array, tensor or number) as a NumPy array, or a clear failure."""
    value = to_numpy(value)
    try:
        return np.asarray(value)
    except Exception:  # noqa: BLE001 - anything not array-like is the finding
        raise PropertyFailed(f"{what} is not an array: got {type(value).__name__}") from None


def assert_close(
    expected: object,
    got: object,
    what: str,
    rtol: float = RTOL,
    atol: float = ATOL,
    float64: bool = True,
) -> None:
    """Same shape and kind of dtype, and equal within ``rtol`` / ``atol`` (NaN equals NaN).

    ``float64``: a floating output must be float64, as the reference's (the pairs' inputs
    are float64); off where the input's own precision may be kept (torch's NMS on
    float32 boxes returns float32 detections).
    """
    e, g = as_array(expected, what), as_array(got, what)
    if e.shape != g.shape:
        raise PropertyFailed(
            f"{what} has shape {g.shape}, expected {e.shape}", e.shape, g.shape
        )
    check_dtype(e, g, what, float64)
    e64, g64 = e.astype(np.float64), g.astype(np.float64)
    ok = np.isclose(g64, e64, rtol=rtol, atol=atol, equal_nan=True)
    if not ok.all():
        worst = int(np.argmax(~ok.reshape(-1)))
        where = np.unravel_index(worst, e.shape) if e.shape else ()
        raise PropertyFailed(
            f"{what}: differs from the reference"
            + (f" (first at index {tuple(int(i) for i in where)})" if e.shape else ""),
            e,
            g,
        )


def assert_equal(expected: object, got: object, what: str) -> None:
    """Exactly equal arrays (indices, labels, flags): same shape, kind of dtype and values."""
    e, g = as_array(expected, what), as_array(got, what)
    if e.shape == g.shape:
        check_dtype(e, g, what, float64=False)
    if e.shape != g.shape or not np.array_equal(e, g):
        raise PropertyFailed(f"{what}: differs from the reference", e, g)


KINDS = {"b": "bool", "i": "integers", "u": "integers", "f": "floating point"}


def check_dtype(e: np.ndarray, g: np.ndarray, what: str, float64: bool = True) -> None:
    """The candidate's dtype must be of the reference's kind (bool, integers, floating
    point), and with ``float64`` float64 where the reference's is (comparisons are to 1e-7)."""
    if g.dtype == object or g.dtype.kind not in KINDS:
        raise PropertyFailed(f"{what} has dtype {g.dtype}, expected a real number type")
    same_kind = KINDS[e.dtype.kind] == KINDS[g.dtype.kind]
    if not same_kind or (float64 and e.dtype == np.float64 and g.dtype != np.float64):
        expected = "float64" if e.dtype == np.float64 else KINDS[e.dtype.kind]
        raise PropertyFailed(f"{what} has dtype {g.dtype}, expected {expected}", expected,
                             str(g.dtype))  # fmt: skip


def flat(value: object) -> np.ndarray:
    """A nested output (array, list of arrays, dict of numbers) as one float64 vector."""
    value = to_numpy(value)
    if isinstance(value, dict):
        return np.concatenate([flat(value[k]) for k in sorted(value)]) if value else np.zeros(0)
    if isinstance(value, list | tuple):
        parts = [flat(v) for v in value]
        return np.concatenate(parts) if parts else np.zeros(0)
    return np.asarray(value, dtype=np.float64).reshape(-1)


def unflat(vector: np.ndarray, like: object) -> object:
    """The inverse of :func:`flat` for arrays and lists of arrays shaped like ``like``."""
    if isinstance(like, list | tuple):
        out, start = [], 0
        for part in like:
            n = int(np.size(part))
            out.append(unflat(vector[start : start + n], part))
            start += n
        return out
    return vector.reshape(np.shape(like))


def shapes_of(value: object) -> object:
    if isinstance(value, list | tuple):
        return [shapes_of(v) for v in value]
    return tuple(np.shape(to_numpy(value)))


def assert_same_structure(expected: object, got: object, what: str) -> None:
    """Lists of the same length whose arrays have the same shapes."""
    es, gs = shapes_of(expected), shapes_of(got)
    if es != gs:
        raise PropertyFailed(f"{what} has shapes {gs}, expected {es}", es, gs)


def directional_check(
    g: object, analytic: float, step: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-7
) -> None:
    """``analytic`` must equal the central difference of the scalar function ``g(t)`` at 0.

    Where ``g`` has a kink at 0 (its one-sided slopes differ), nothing can be
    judged: the input is skipped (``hypothesis.assume``).
    """
    from hypothesis import assume

    g0, gp, gm = g(0.0), g(step), g(-step)
    right, left = (gp - g0) / step, (g0 - gm) / step
    assume(np.isfinite([g0, gp, gm]).all())
    assume(abs(right - left) <= 1e-4 * (abs(right) + abs(left)) + 1e-6)  # no kink here
    numeric = (gp - gm) / (2 * step)
    # rounding of g itself: a large value (logits in the thousands) leaves only
    # about |g| * 1e-16 / step of the difference quotient exact
    atol = atol + 8 * np.finfo(float).eps * (abs(g0) + abs(gp) + abs(gm)) / step
    if not abs(analytic - numeric) <= rtol * max(abs(analytic), abs(numeric)) + atol:
        raise PropertyFailed(
            "along a random direction v, <gradient, v> differs from the finite difference "
            "(f(x + h v) - f(x - h v)) / 2h of your own forward",
            numeric,
            analytic,
        )


def check_lengths(expected: Sequence, got: object, what: str) -> None:
    if not isinstance(got, list | tuple) or len(got) != len(expected):
        n = len(got) if isinstance(got, list | tuple) else type(got).__name__
        raise PropertyFailed(f"{what} must be a list of {len(expected)} entries, got {n}")
