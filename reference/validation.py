"""Input checks of every public function of :mod:`reference`; the scalar, size and
shape checks are shared with :mod:`torch_impl.validation`, its twin for tensors.

Each check raises a :class:`ValueError` that names the argument, what was
expected and what was given, e.g.
``pred must have shape (N, 4*(reg_max+1)) = (N, 68), got (10, 64)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "check_shape",
    "as_float",
    "as_real",
    "check_finite",
    "as_int",
    "check_broadcastable",
    "check_scalar",
    "check_hw",
    "check_choice",
]

Dim = int | str | None


def _fmt_shape(spec: Sequence[Dim], dims: dict[str, int]) -> str:
    parts = []
    for d in spec:
        if d is None:
            parts.append("*")
        elif isinstance(d, str) and d in dims:
            parts.append(f"{d}={dims[d]}")
        else:
            parts.append(str(d))
    return "(" + ", ".join(parts) + (",)" if len(parts) == 1 else ")")


def check_shape(
    shape: tuple[int, ...],
    name: str,
    spec: Sequence[Dim],
    dims: dict[str, int] | None = None,
    note: str = "",
) -> None:
    """Check ``shape`` against ``spec`` and bind symbolic sizes into ``dims``.

    ``spec`` holds ints (must match), strings (symbolic sizes that must agree
    with earlier arguments through ``dims``) and None (any size).
    """
    dims = {} if dims is None else dims
    ok = len(shape) == len(spec)
    if ok:
        for size, d in zip(shape, spec):
            if isinstance(d, int) and size != d:
                ok = False
            elif isinstance(d, str):
                if d in dims and dims[d] != size:
                    ok = False
    if not ok:
        extra = f" {note}" if note else ""
        raise ValueError(
            f"{name} must have shape {_fmt_shape(spec, dims)}{extra}, got {tuple(shape)}"
        )
    for size, d in zip(shape, spec):
        if isinstance(d, str):
            dims[d] = size


def as_float(
    x: object,
    name: str,
    spec: Sequence[Dim] | None = None,
    dims: dict[str, int] | None = None,
    *,
    finite: bool = False,
    note: str = "",
) -> np.ndarray:
    """Return ``x`` as a float64 array (never a view that we write into).

    Rejects booleans, complex numbers, strings and objects; optionally checks
    the shape against ``spec`` and that every value is finite.
    """
    arr = as_real(x, name, spec, dims, note=note).astype(np.float64, copy=False)
    if finite:
        check_finite(arr, name)
    return arr


def as_real(
    x: object,
    name: str,
    spec: Sequence[Dim] | None = None,
    dims: dict[str, int] | None = None,
    *,
    note: str = "",
) -> np.ndarray:
    """:func:`as_float`'s dtype and shape checks, without converting: ``x`` as an array
    of its own real dtype (for a caller that converts while it copies)."""
    arr = np.asarray(x)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(
            f"{name} must be a real (integer or floating) array, got dtype {arr.dtype}"
        )
    if spec is not None:
        check_shape(arr.shape, name, spec, dims, note)
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    """Every value of the float64 array ``arr`` must be finite."""
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(f"{name} must be finite, got {bad} non-finite value(s)")


def as_int(
    x: object,
    name: str,
    spec: Sequence[Dim] | None = None,
    dims: dict[str, int] | None = None,
) -> np.ndarray:
    """Return ``x`` as an int64 array; rejects floating, bool and other dtypes."""
    arr = np.asarray(x)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if spec is not None:
        check_shape(arr.shape, name, spec, dims)
    return arr.astype(np.int64, copy=False)


def check_broadcastable(shape: tuple[int, ...], target: tuple[int, ...], name: str) -> None:
    """``shape`` must broadcast to exactly ``target`` (``weight`` against ``loss``)."""
    try:
        ok = np.broadcast_shapes(tuple(shape), tuple(target)) == tuple(target)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name} must be broadcastable to loss's shape {tuple(target)}, got {tuple(shape)}"
        )


def check_scalar(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> float:
    """Check a Python/NumPy scalar against a range and return it as float (or int)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if integer and not float(value).is_integer():
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        op = ">" if low_open else ">="
        raise ValueError(f"{name} must be {op} {low:g}, got {value!r}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high:g}, got {value!r}")
    return int(v) if integer else v


def check_hw(
    value: object,
    name: str,
    *,
    positive_int: bool = False,
    extra_ok: bool = False,
    finite: bool = True,
) -> tuple[float, float]:
    """Check a size ``(h, w)`` and return it: the one (h, w) parser of both packages.

    By default ``h`` and ``w`` are finite numbers ``>= 0`` (``max_shape``,
    ``pad_shape``). ``positive_int`` requires positive integers and returns ints
    (``img_metas``' shapes); ``extra_ok`` ignores entries after the first two
    (``(h, w, channels)`` as mmdetection stores them); ``finite=False`` lets
    ``inf`` through (``max_shape``, where it means no clamp).
    """
    what = "(h, w) (extra entries such as channels are ignored)" if extra_ok else "(h, w)"
    try:
        seq = list(value)  # type: ignore[call-overload]
        if len(seq) < 2 or (len(seq) > 2 and not extra_ok):
            raise TypeError
        h, w = float(seq[0]), float(seq[1])
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {what}, got {value!r}") from None
    if positive_int:
        if not (h > 0 and w > 0 and h.is_integer() and w.is_integer()):
            raise ValueError(f"{name} must hold positive integer (h, w), got {value!r}")
        return int(h), int(w)
    if not (h >= 0 and w >= 0 and (not finite or (np.isfinite(h) and np.isfinite(w)))):
        cond = "finite h, w >= 0" if finite else "h, w >= 0"
        raise ValueError(f"{name} must be (h, w) with {cond}, got {value!r}")
    return h, w


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value  # type: ignore[return-value]
