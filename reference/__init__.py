"""GFL from Scratch — the NumPy reference (float64, hand-derived gradients).

Every differentiable piece comes as a pair ``out, cache = f_forward(...)``
and ``d_input = f_backward(d_out, cache)``. Each module has a twin of the same
name in :mod:`torch_impl` (``reference/qfl.py`` ↔ ``torch_impl/qfl.py``); the
names map as ``X_forward`` / ``X_backward`` → ``X``, except ``qfl`` →
``quality_focal_loss``, ``dfl`` → ``distribution_focal_loss`` and
``weight_reduce`` → ``weight_reduce_loss`` (mmdetection's loss names).
``docs/architecture.md`` draws the whole map.
"""

from .anchors import grid_anchors, valid_flags
from .atss import AssignResult, atss_assign
from .boxes import bbox2distance, bbox_overlaps, distance2bbox_backward, distance2bbox_forward
from .config import GFLConfig
from .dfl import dfl_backward, dfl_forward
from .giou import giou_loss_backward, giou_loss_forward
from .head_loss import gfl_loss_backward, gfl_loss_forward
from .head_predict import gfl_predict
from .head_targets import GFLTargets, gfl_targets
from .img_meta import parse_img_metas
from .integral import integral_backward, integral_forward
from .levels import check_level_maps, flatten_levels, unflatten_levels
from .nms import batched_nms, multiclass_nms, nms
from .qfl import qfl_backward, qfl_forward
from .reduce import weight_reduce_backward, weight_reduce_forward

# In the order of the modules that define them (the order of torch_impl's list).
__all__ = [
    "GFLConfig",
    "parse_img_metas",
    "integral_forward",
    "integral_backward",
    "qfl_forward",
    "qfl_backward",
    "dfl_forward",
    "dfl_backward",
    "giou_loss_forward",
    "giou_loss_backward",
    "weight_reduce_forward",
    "weight_reduce_backward",
    "bbox_overlaps",
    "bbox2distance",
    "distance2bbox_forward",
    "distance2bbox_backward",
    "grid_anchors",
    "valid_flags",
    "AssignResult",
    "atss_assign",
    "nms",
    "batched_nms",
    "multiclass_nms",
    "check_level_maps",
    "flatten_levels",
    "unflatten_levels",
    "GFLTargets",
    "gfl_targets",
    "gfl_loss_forward",
    "gfl_loss_backward",
    "gfl_predict",
]
