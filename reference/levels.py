r"""Per-level head outputs: checking them and flattening them into one anchor axis.

The head predicts one map per FPN level; the loss and inference work on all
anchors at once, levels concatenated (level 0 first), each level flattened
row-major over (y, x), y outer: ``permute(0, 2, 3, 1)`` in NCHW terms.
The twin of :mod:`torch_impl.levels`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import GFLConfig
from .validation import as_real, check_finite, check_shape

__all__ = ["check_level_maps", "flatten_levels", "unflatten_levels"]


def check_level_maps(
    cls_scores: Sequence[np.ndarray], bbox_preds: Sequence[np.ndarray], cfg: GFLConfig
) -> int:
    """Check the per-level head outputs against ``cfg``; return the batch size B.

    ``cls_scores[l]`` must be ``(B, C, H_l, W_l)`` and ``bbox_preds[l]``
    ``(B, 4(n+1), H_l, W_l)``, one pair per stride of ``cfg``. Values are
    checked where they are read (:func:`flatten_levels`).

    See Also
    --------
    torch_impl.check_level_maps : the PyTorch twin (also checks dtypes).
    """
    return check_level_shapes(cls_scores, bbox_preds, cfg, "arrays")


def check_level_shapes(
    cls_scores: Sequence, bbox_preds: Sequence, cfg: GFLConfig, noun: str
) -> int:
    """The shape rules of :func:`check_level_maps`, for anything with a ``shape``.

    Shared by both packages (``noun`` is "arrays" or "tensors", for the message).
    """
    if not isinstance(cfg, GFLConfig):
        raise ValueError(f"cfg must be a GFLConfig, got {type(cfg).__name__}")
    n_levels = len(cfg.strides)
    for name, maps in (("cls_scores", cls_scores), ("bbox_preds", bbox_preds)):
        if hasattr(maps, "shape") or len(maps) != n_levels:
            raise ValueError(
                f"{name} must be a list of {n_levels} {noun} (one per stride in cfg.strides), "
                f"got {type(maps).__name__} of length {len(maps)}"
            )
    c, k = cfg.num_classes, cfg.reg_max + 1
    dims: dict[str, int] = {}
    for lvl in range(n_levels):
        check_shape(
            tuple(np.shape(cls_scores[lvl])),
            f"cls_scores[{lvl}]",
            ("B", c, f"H{lvl}", f"W{lvl}"),
            dims,
        )
        check_shape(
            tuple(np.shape(bbox_preds[lvl])),
            f"bbox_preds[{lvl}]",
            ("B", 4 * k, f"H{lvl}", f"W{lvl}"),
            dims,
            note=f"(4*(reg_max+1) = {4 * k} channels)",
        )
    return dims["B"]


def flatten_levels(maps: Sequence[np.ndarray], name: str, channels: int) -> np.ndarray:
    """Concatenate per-level NCHW maps into ``(B, A, channels)`` (y outer, x inner).

    The result is a view of a channels-first ``(channels, B, A)`` array: each
    level goes in as contiguous blocks of ``H*W`` values (no transposing copy),
    ``reshape(B * A, channels)`` of the result is a view too, and
    :func:`unflatten_levels` copies the blocks back.

    See Also
    --------
    torch_impl.flatten_levels : the PyTorch twin.
    """
    checked = [
        as_real(m, f"{name}[{lvl}]", ("B", channels, None, None), note=f"(channels {channels})")
        for lvl, m in enumerate(maps)
    ]
    b = checked[0].shape[0]
    sizes = [m.shape[2] * m.shape[3] for m in checked]
    # channels first: (ch, B, A), written level after level; the copy converts to float64
    flat = np.empty((channels, b, sum(sizes)))
    parts = [m.transpose(1, 0, 2, 3).reshape(channels, b, n) for m, n in zip(checked, sizes)]
    np.concatenate(parts, axis=2, out=flat)
    if not np.all(np.isfinite(flat)):  # name the first level with a non-finite value
        for lvl, part in enumerate(np.split(flat, np.cumsum(sizes)[:-1], axis=2)):
            check_finite(part, f"{name}[{lvl}]")
    return flat.transpose(1, 2, 0)  # (ch, B, A) → (B, A, ch)


def unflatten_levels(flat: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Inverse of :func:`flatten_levels`: ``(B, A, ch)`` → per-level ``(B, ch, H, W)``."""
    out, start = [], 0
    for b, ch, h, w in shapes:
        part = flat[:, start : start + h * w].reshape(b, h, w, ch)  # (B, H, W, ch)
        out.append(np.ascontiguousarray(part.transpose(0, 3, 1, 2)))  # (B, ch, H, W)
        start += h * w
    return out


# --- rows of the flattened maps, without flattening (for the head's box branch) ------------


def _level_index(rows: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[tuple]:
    """Where rows of the flattened ``(B*A, ch)`` maps lie: per level, which of ``rows`` fall
    on it, and their image, y and x there."""
    sizes = [h * w for _, _, h, w in shapes]
    starts = np.cumsum([0] + sizes)  # (L+1,)
    b, a = np.divmod(rows, starts[-1])  # image and anchor of each row
    level = np.searchsorted(starts, a, side="right") - 1  # (P,)
    out = []
    for lvl, (_, _, _, w) in enumerate(shapes):
        sel = np.flatnonzero(level == lvl)
        y, x = np.divmod(a[sel] - starts[lvl], w)
        out.append((sel, b[sel], y, x))
    return out


def take_level_rows(
    maps: Sequence[np.ndarray], name: str, channels: int, rows: np.ndarray
) -> np.ndarray:
    """``flatten_levels(maps, name, channels).reshape(-1, channels)[rows]``, read from the
    maps themselves (the same checks, the same float64 values): ``(len(rows), channels)``."""
    checked = [
        as_real(m, f"{name}[{lvl}]", ("B", channels, None, None), note=f"(channels {channels})")
        for lvl, m in enumerate(maps)
    ]
    for lvl, m in enumerate(checked):  # float64 first where the conversion could overflow
        check_finite(m if m.dtype.itemsize <= 8 else m.astype(np.float64), f"{name}[{lvl}]")
    out = np.empty((rows.size, channels))
    for m, (sel, b, y, x) in zip(checked, _level_index(rows, [m.shape for m in checked])):
        out[sel] = m[b, :, y, x]  # (P_l, ch)
    return out


def put_level_rows(
    values: np.ndarray, rows: np.ndarray, shapes: Sequence[tuple[int, ...]]
) -> list[np.ndarray]:
    """``unflatten_levels`` of a zero ``(B*A, ch)`` array whose ``rows`` hold ``values``
    (``rows`` without repeats): per-level ``(B, ch, H, W)``, zero elsewhere."""
    out = [np.zeros(s) for s in shapes]
    for o, (sel, b, y, x) in zip(out, _level_index(rows, shapes)):
        o[b, :, y, x] = values[sel]
    return out
