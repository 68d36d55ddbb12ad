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
from .validation import as_float, check_shape

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

    See Also
    --------
    torch_impl.flatten_levels : the PyTorch twin.
    """
    checked = [
        as_float(
            m,
            f"{name}[{lvl}]",
            ("B", channels, None, None),
            finite=True,
            note=f"(channels {channels})",
        )
        for lvl, m in enumerate(maps)
    ]
    b = checked[0].shape[0]
    # NCHW → (B, H, W, ch) → (B, H*W, ch) per level, levels one after the other
    return np.concatenate([m.transpose(0, 2, 3, 1).reshape(b, -1, channels) for m in checked], 1)


def unflatten_levels(flat: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Inverse of :func:`flatten_levels`: ``(B, A, ch)`` → per-level ``(B, ch, H, W)``."""
    out, start = [], 0
    for b, ch, h, w in shapes:
        part = flat[:, start : start + h * w].reshape(b, h, w, ch)  # (B, H, W, ch)
        out.append(np.ascontiguousarray(part.transpose(0, 3, 1, 2)))  # (B, ch, H, W)
        start += h * w
    return out
