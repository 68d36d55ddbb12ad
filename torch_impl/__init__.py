"""GFL from Scratch — the PyTorch implementation (autograd, GPU, AMP, DDP).

Each module is the twin of the :mod:`reference` module of the same name
(``torch_impl/qfl.py`` ↔ ``reference/qfl.py``), differentiated by autograd;
``modules`` (the ``nn.Module`` s) and ``distributed`` exist on this side only.
The detector application built on this library lives in
:mod:`torch_impl.detector`, which the library never imports.
"""

from reference.config import GFLConfig
from reference.img_meta import parse_img_metas

from .anchors import grid_anchors, valid_flags
from .atss import AssignResult, atss_assign, atss_assign_batched
from .boxes import bbox2distance, bbox_overlaps, distance2bbox
from .dfl import distribution_focal_loss
from .giou import giou_loss
from .head_loss import gfl_loss
from .head_predict import gfl_predict
from .head_targets import GFLTargets, gfl_targets
from .integral import integral
from .levels import check_level_maps, flatten_levels
from .modules import GFLHead, Integral, Scale
from .nms import batched_nms, multiclass_nms, nms
from .qfl import quality_focal_loss
from .reduce import weight_reduce_loss

# In the order of reference's list (its twins), then the torch-only modules.
__all__ = [
    "GFLConfig",
    "parse_img_metas",
    "integral",
    "quality_focal_loss",
    "distribution_focal_loss",
    "giou_loss",
    "weight_reduce_loss",
    "bbox_overlaps",
    "bbox2distance",
    "distance2bbox",
    "grid_anchors",
    "valid_flags",
    "AssignResult",
    "atss_assign",
    "atss_assign_batched",
    "nms",
    "batched_nms",
    "multiclass_nms",
    "check_level_maps",
    "flatten_levels",
    "GFLTargets",
    "gfl_targets",
    "gfl_loss",
    "gfl_predict",
    "Integral",
    "Scale",
    "GFLHead",
]
