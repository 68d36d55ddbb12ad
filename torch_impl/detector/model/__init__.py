"""The detector: a compact ResNet-style backbone, an FPN (P3–P7) and the GFL head."""

from .backbone import BasicBlock, ResNetBackbone
from .detector import PRESETS, GFLDetector, ModelConfig, config_from_dict
from .fpn import FPN

__all__ = [
    "FPN",
    "PRESETS",
    "BasicBlock",
    "GFLDetector",
    "ModelConfig",
    "ResNetBackbone",
    "config_from_dict",
]
