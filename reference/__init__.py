"""GFL from Scratch — the NumPy reference (float64, hand-derived gradients).

Every differentiable piece comes as a pair ``out, cache = f_forward(...)``
and ``d_input = f_backward(d_out, cache)``.
"""

from .anchors import grid_anchors, valid_flags
from .atss import AssignResult, atss_assign
from .boxes import bbox2distance, bbox_overlaps, distance2bbox_backward, distance2bbox_forward
from .config import GFLConfig
from .dfl import dfl_backward, dfl_forward
from .giou import giou_loss_backward, giou_loss_forward
from .head import GFLTargets, gfl_loss_backward, gfl_loss_forward, gfl_targets
from .img_meta import parse_img_metas
from .integral import integral_backward, integral_forward
from .nms import batched_nms, multiclass_nms, nms
from .predict import gfl_predict
from .qfl import qfl_backward, qfl_forward
from .reduce import weight_reduce_backward, weight_reduce_forward

__all__ = [
    "AssignResult",
    "atss_assign",
    "batched_nms",
    "grid_anchors",
    "multiclass_nms",
    "nms",
    "valid_flags",
    "GFLConfig",
    "GFLTargets",
    "gfl_loss_backward",
    "gfl_loss_forward",
    "gfl_predict",
    "gfl_targets",
    "parse_img_metas",
    "bbox2distance",
    "bbox_overlaps",
    "dfl_backward",
    "dfl_forward",
    "distance2bbox_backward",
    "distance2bbox_forward",
    "giou_loss_backward",
    "giou_loss_forward",
    "integral_backward",
    "integral_forward",
    "qfl_backward",
    "qfl_forward",
    "weight_reduce_backward",
    "weight_reduce_forward",
]
