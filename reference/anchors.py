r"""Anchors of the GFL head: one square anchor per feature-map cell and level.

GFL's anchor generator (``octave_base_scale=8, scales_per_octave=1,
ratios=[1.0], center_offset=0``) puts, on a level of stride :math:`s`, the
square of side :math:`8s` centred at the cell's corner :math:`(j s, i s)`.
Levels are flattened row-major over ``(y, x)`` (y outer), as
``permute(0, 2, 3, 1)`` flattens an NCHW map.

Its PyTorch twin is :mod:`torch_impl.anchors`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .validation import as_float, check_hw, check_scalar

__all__ = ["grid_anchors", "valid_flags", "anchor_centers"]

DEFAULT_STRIDES = (8, 16, 32, 64, 128)


def check_levels(
    featmap_sizes: object, strides: object
) -> tuple[list[tuple[int, int]], list[int]]:
    """Validate ``featmap_sizes`` (one ``(H, W)`` per level) and ``strides``.

    Returns them as lists of Python ints. Shared with :mod:`torch_impl`.
    """
    try:
        sizes = [tuple(int(v) for v in hw) for hw in featmap_sizes]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(
            f"featmap_sizes must be a sequence of (H, W) pairs, got {featmap_sizes!r}"
        ) from None
    for hw, raw in zip(sizes, featmap_sizes):  # type: ignore[call-overload]
        if len(hw) != 2 or min(hw) < 0 or any(float(v) != int(v) for v in raw):
            raise ValueError(
                f"featmap_sizes must hold (H, W) pairs of integers >= 0, got {featmap_sizes!r}"
            )
    try:
        strides_l = [
            check_scalar(s, "strides", low=0, low_open=True, integer=True)
            for s in strides  # type: ignore[union-attr]
        ]
    except TypeError:
        raise ValueError(f"strides must be a sequence of integers > 0, got {strides!r}") from None
    if len(strides_l) != len(sizes):
        raise ValueError(
            f"featmap_sizes must have one (H, W) per stride ({len(strides_l)} levels), "
            f"got {len(sizes)}"
        )
    return sizes, strides_l  # type: ignore[return-value]


def valid_size(pad: float, stride: int, size: int) -> int:
    r"""Number of valid rows (or columns): :math:`\min(\lceil pad / s \rceil, H)`."""
    return min(math.ceil(pad / stride), size)


def grid_anchors(
    featmap_sizes: Sequence[tuple[int, int]],
    strides: Sequence[int] = DEFAULT_STRIDES,
    octave_base_scale: int = 8,
    *,
    center_offset: float = 0.0,
) -> list[np.ndarray]:
    r"""The GFL anchors of every level.

    Parameters
    ----------
    featmap_sizes : sequence of (H, W), length L
        Feature-map size of each level.
    strides : sequence of int, length L
        Stride of each level.
    octave_base_scale : int
        Anchor side in units of the stride.
    center_offset : float
        A dialect switch (:mod:`reference.dialects`, mmdetection's name): the
        cell's point is :math:`((j + o) s, (i + o) s)`; 0 here, 0.5 in nanodet.

    Returns
    -------
    list of ndarray, each shape (H_l W_l, 4)
        Level ``l``'s anchors ``(x1, y1, x2, y2)``, float64, row-major over
        ``(i, j)`` (i = row, outer).

    See Also
    --------
    torch_impl.grid_anchors : the PyTorch twin.

    Notes
    -----
    With :math:`s` the stride and :math:`h = \tfrac{1}{2}\,\mathrm{octave\_base\_scale}\cdot s`,
    the anchor of cell :math:`(i, j)` is

    .. math::
        (j s - h,\; i s - h,\; j s + h,\; i s + h),

    centred at the cell's corner :math:`(js, is)` (``center_offset = 0``; with
    an offset :math:`o` every anchor moves by :math:`o s` along both axes).
    All values are exact in float64.
    """
    sizes, strides_l = check_levels(featmap_sizes, strides)
    scale = check_scalar(octave_base_scale, "octave_base_scale", low=0, low_open=True)
    o = check_scalar(center_offset, "center_offset", low=0.0, high=1.0)
    out = []
    for (h, w), s in zip(sizes, strides_l):
        half = 0.5 * scale * s
        ys, xs = np.meshgrid((np.arange(h) + o) * s, (np.arange(w) + o) * s, indexing="ij")
        cx = xs.reshape(-1)  # (H*W,) row-major, y outer
        cy = ys.reshape(-1)  # (H*W,)
        out.append(np.stack([cx - half, cy - half, cx + half, cy + half], axis=1))  # (H*W, 4)
    return out


def valid_flags(
    featmap_sizes: Sequence[tuple[int, int]],
    pad_shape: tuple[int, int],
    strides: Sequence[int] = DEFAULT_STRIDES,
) -> list[np.ndarray]:
    r"""Which anchors of each level lie on the image's (padded) area.

    Parameters
    ----------
    featmap_sizes : sequence of (H, W), length L
        Feature-map size of each level (of the batch, padded).
    pad_shape : (h, w)
        The image's own padded shape.
    strides : sequence of int, length L

    Returns
    -------
    list of ndarray, each shape (H_l W_l,), bool
        True for the anchors of the first :math:`\min(\lceil h/s \rceil, H)`
        rows and :math:`\min(\lceil w/s \rceil, W)` columns.

    See Also
    --------
    torch_impl.valid_flags : the PyTorch twin.

    Notes
    -----
    A cell :math:`(i, j)` of a level of stride :math:`s` is valid iff
    :math:`i < \min(\lceil h/s \rceil, H)` and :math:`j < \min(\lceil w/s \rceil, W)`.
    """
    sizes, strides_l = check_levels(featmap_sizes, strides)
    pad_h, pad_w = check_hw(pad_shape, "pad_shape")
    out = []
    for (h, w), s in zip(sizes, strides_l):
        rows = np.arange(h) < valid_size(pad_h, s, h)  # (H,)
        cols = np.arange(w) < valid_size(pad_w, s, w)  # (W,)
        out.append((rows[:, None] & cols[None, :]).reshape(-1))  # (H, W) -> (H*W,)
    return out


def anchor_centers(anchors: np.ndarray) -> np.ndarray:
    r"""Centres of boxes.

    Parameters
    ----------
    anchors : ndarray, shape (A, 4)

    Returns
    -------
    ndarray, shape (A, 2)
        :math:`((x_1 + x_2)/2, (y_1 + y_2)/2)`, float64.

    See Also
    --------
    torch_impl.anchors.anchor_centers : the PyTorch twin.

    See Also
    --------
    torch_impl.anchor_centers : the PyTorch twin, differentiated by autograd.
    """
    a = as_float(anchors, "anchors", (None, 4))
    return np.stack([(a[:, 0] + a[:, 2]) / 2.0, (a[:, 1] + a[:, 3]) / 2.0], axis=1)  # (A, 2)
