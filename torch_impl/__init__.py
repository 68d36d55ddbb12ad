"""GFL from Scratch — the PyTorch implementation (autograd, GPU, AMP, DDP)."""

from reference.config import GFLConfig

from .anchors import grid_anchors, valid_flags
from .atss import AssignResult, atss_assign, atss_assign_batched
from .boxes import bbox2distance, bbox_overlaps, distance2bbox
from .head import GFLHead, gfl_loss, gfl_predict
from .integral import Integral, Scale, integral
from .losses import distribution_focal_loss, giou_loss, quality_focal_loss, weight_reduce_loss
from .nms import batched_nms, multiclass_nms, nms

__all__ = [
    "AssignResult",
    "atss_assign",
    "atss_assign_batched",
    "batched_nms",
    "grid_anchors",
    "multiclass_nms",
    "nms",
    "valid_flags",
    "GFLConfig",
    "GFLHead",
    "gfl_loss",
    "gfl_predict",
    "Integral",
    "Scale",
    "bbox2distance",
    "bbox_overlaps",
    "distance2bbox",
    "distribution_focal_loss",
    "giou_loss",
    "integral",
    "quality_focal_loss",
    "weight_reduce_loss",
]
