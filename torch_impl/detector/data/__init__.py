"""Detection data: the synthetic set, the COCO loader/exporter, transforms and collate."""

from .coco import (
    CocoDetection,
    DataWarning,
    export_coco,
    load_image,
    sample_annotations,
    sample_image,
)
from .synthetic import CLASS_NAMES, SPLITS, Sample, SyntheticDetection, render_image
from .transforms import Batch, collate, hflip, letterbox

__all__ = [
    "CLASS_NAMES",
    "SPLITS",
    "Batch",
    "CocoDetection",
    "DataWarning",
    "Sample",
    "SyntheticDetection",
    "collate",
    "export_coco",
    "hflip",
    "letterbox",
    "load_image",
    "render_image",
    "sample_annotations",
    "sample_image",
]
