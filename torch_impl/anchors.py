r"""GFL anchors in PyTorch (the twin of :mod:`reference.anchors`, which has the geometry)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import torch

from reference.anchors import DEFAULT_STRIDES, check_levels, valid_size

from .validation import check_hw, check_scalar, check_tensor

__all__ = ["grid_anchors", "valid_flags", "anchor_centers"]


def grid_anchors(
    featmap_sizes: Sequence[tuple[int, int]],
    strides: Sequence[int] = DEFAULT_STRIDES,
    octave_base_scale: int = 8,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    r"""The GFL anchors of every level (see :func:`reference.grid_anchors`).

    Parameters
    ----------
    featmap_sizes : sequence of (H, W), length L
    strides : sequence of int, length L
    octave_base_scale : int
    dtype : torch.dtype, optional
        Default: ``torch.get_default_dtype()``.
    device : torch.device or str, optional

    Returns
    -------
    list of Tensor, each shape (H_l W_l, 4)
        Anchor of cell :math:`(i, j)`: :math:`(js - h, is - h, js + h, is + h)`,
        :math:`h = \tfrac{1}{2}\,\mathrm{octave\_base\_scale}\cdot s`, row-major (i outer).
    """
    sizes, strides_l = check_levels(featmap_sizes, strides)
    scale = check_scalar(octave_base_scale, "octave_base_scale", low=0, low_open=True)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    out = []
    for (h, w), s in zip(sizes, strides_l):
        half = 0.5 * scale * s
        ys = torch.arange(h, device=device, dtype=dtype) * s  # (H,)
        xs = torch.arange(w, device=device, dtype=dtype) * s  # (W,)
        cy = ys[:, None].expand(h, w).reshape(-1)  # (H, W) -> (H*W,) row-major
        cx = xs[None, :].expand(h, w).reshape(-1)  # (H, W) -> (H*W,)
        out.append(torch.stack([cx - half, cy - half, cx + half, cy + half], dim=1))  # (H*W, 4)
    return out


def valid_flags(
    featmap_sizes: Sequence[tuple[int, int]],
    pad_shape: tuple[int, int],
    strides: Sequence[int] = DEFAULT_STRIDES,
    *,
    device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    r"""Which anchors lie on the image's padded area (see :func:`reference.valid_flags`).

    Parameters
    ----------
    featmap_sizes : sequence of (H, W), length L
    pad_shape : (h, w)
    strides : sequence of int, length L
    device : torch.device or str, optional

    Returns
    -------
    list of Tensor, each shape (H_l W_l,), bool
        Cell :math:`(i, j)` is valid iff :math:`i < \min(\lceil h/s \rceil, H)` and
        :math:`j < \min(\lceil w/s \rceil, W)`.
    """
    sizes, strides_l = check_levels(featmap_sizes, strides)
    pad_h, pad_w = check_hw(pad_shape, "pad_shape")
    out = []
    for (h, w), s in zip(sizes, strides_l):
        rows = torch.arange(h, device=device) < valid_size(pad_h, s, h)  # (H,)
        cols = torch.arange(w, device=device) < valid_size(pad_w, s, w)  # (W,)
        out.append((rows[:, None] & cols[None, :]).reshape(-1))  # (H, W) -> (H*W,)
    return out


def anchor_centers(anchors: torch.Tensor) -> torch.Tensor:
    r"""Box centres :math:`((x_1 + x_2)/2, (y_1 + y_2)/2)`.

    Parameters
    ----------
    anchors : Tensor, shape (..., 4)

    Returns
    -------
    Tensor, shape (..., 2)

    See Also
    --------
    reference.anchors.anchor_centers : the NumPy twin.

    See Also
    --------
    reference.anchor_centers : the NumPy twin.
    """
    check_tensor(anchors, "anchors")
    if anchors.ndim < 1 or anchors.shape[-1] != 4:
        raise ValueError(f"anchors must have shape (..., 4), got {tuple(anchors.shape)}")
    return torch.stack(
        [(anchors[..., 0] + anchors[..., 2]) / 2.0, (anchors[..., 1] + anchors[..., 3]) / 2.0],
        dim=-1,
    )  # (..., 2)


# --- the head's anchors, built once per shape (head_targets, head_loss, head_predict) ---


class _Geometry(NamedTuple):
    """The anchors of one list of feature-map sizes, levels concatenated (level 0 first)."""

    anchors: torch.Tensor  # (A, 4)
    centres: torch.Tensor  # (A, 2)
    strides: torch.Tensor  # (A,) the stride of each anchor's level
    num_level: tuple[int, ...]  # anchors per level, (L,)


@functools.lru_cache(maxsize=16)
def _geometry(
    featmap_sizes: tuple[tuple[int, int], ...],
    strides: tuple[int, ...],
    octave_base_scale: float,
    dtype: torch.dtype,
    device: torch.device,
) -> _Geometry:
    """The anchors of ``featmap_sizes``, built once per key (shared: never mutate them);
    the sizes and strides as :func:`reference.anchors.check_levels` returns them.

    Built as ordinary tensors even when first called under ``torch.inference_mode``,
    so that a later training step can use them.
    """
    with torch.inference_mode(False), torch.no_grad():
        levels = grid_anchors(featmap_sizes, strides, octave_base_scale, device=device, dtype=dtype)
        num_level = tuple(int(a.shape[0]) for a in levels)
        anchors = torch.cat(levels)  # (A, 4)
        per_anchor = [
            torch.full((n,), float(st), dtype=dtype, device=device)
            for n, st in zip(num_level, strides)
        ]
        return _Geometry(anchors, anchor_centers(anchors), torch.cat(per_anchor), num_level)


@functools.lru_cache(maxsize=16)
def _valid_flags_batch(
    featmap_sizes: tuple[tuple[int, int], ...],
    strides: tuple[int, ...],
    pad_shapes: tuple[tuple[int, int], ...],
    device: torch.device,
) -> torch.Tensor | None:
    """``(B, A)`` valid flags of a batch (shared: never mutate them), or None when
    every anchor of every image is valid (known from the shapes alone)."""
    if all(
        valid_size(ph, s, h) >= h and valid_size(pw, s, w) >= w
        for ph, pw in pad_shapes
        for (h, w), s in zip(featmap_sizes, strides)
    ):
        return None
    with torch.inference_mode(False):
        return torch.stack(
            [
                torch.cat(valid_flags(featmap_sizes, pad, strides, device=device))
                for pad in pad_shapes
            ]
        )  # (B, A)
