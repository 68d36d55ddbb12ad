r"""Per-level head outputs in PyTorch: checking them and flattening them into one
anchor axis (levels concatenated, level 0 first; y outer, x inner).

The twin of :mod:`reference.levels`. Autograd needs no inverse of the
flattening (:func:`reference.unflatten_levels` exists for the hand backward).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reference.config import GFLConfig
from reference.levels import check_level_shapes

from .validation import check_tensor

__all__ = ["check_level_maps", "flatten_levels"]


def check_level_maps(
    cls_scores: Sequence[torch.Tensor], bbox_preds: Sequence[torch.Tensor], cfg: GFLConfig
) -> int:
    """Check the per-level head outputs against ``cfg``; return the batch size B.

    ``cls_scores[l]`` must be a floating ``(B, C, H_l, W_l)`` tensor and
    ``bbox_preds[l]`` a floating ``(B, 4(n+1), H_l, W_l)`` one, one pair per
    stride of ``cfg`` (metadata only: no value is read).

    See Also
    --------
    reference.check_level_maps : the NumPy twin (the same shape rules).
    """
    batch = check_level_shapes(cls_scores, bbox_preds, cfg, "tensors")
    for lvl in range(len(cfg.strides)):
        check_tensor(cls_scores[lvl], f"cls_scores[{lvl}]")
        check_tensor(bbox_preds[lvl], f"bbox_preds[{lvl}]")
    return batch


def flatten_levels(maps: Sequence[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """Per-level ``(B, ch, H_l, W_l)`` → ``(B, A, ch)`` in ``dtype``, levels concatenated,
    y outer (the twin of :func:`reference.flatten_levels`; shapes are checked by
    :func:`check_level_maps`)."""
    b, ch = maps[0].shape[:2]
    return torch.cat([m.permute(0, 2, 3, 1).reshape(b, -1, ch) for m in maps], dim=1).to(dtype)
