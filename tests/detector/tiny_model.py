"""The tiny detector the model, training and evaluation tests share (fast on 2 CPU cores)."""

from torch_impl.detector.model import ModelConfig

TINY = ModelConfig(
    stem_channels=8,
    stage_channels=(8, 16, 16, 32),
    stage_blocks=(1, 1, 1, 1),
    fpn_channels=32,
    feat_channels=32,
    stacked_convs=1,
    head_norm_groups=16,
)
