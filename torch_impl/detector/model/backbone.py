"""A compact ResNet-style backbone (basic blocks), written for small inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from reference.validation import check_scalar

__all__ = ["BasicBlock", "ResNetBackbone"]


def _conv_bn(cin: int, cout: int, k: int, stride: int, act: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """``relu(x' + conv-bn-relu-conv-bn(x))`` with a strided 1×1 projection when the shape changes.

    The last BatchNorm starts at zero, so every block starts as (close to) the
    identity, which makes a fresh network easy to train fast.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, 3, stride, act=True)
        self.conv2 = _conv_bn(cout, cout, 3, 1, act=False)
        nn.init.zeros_(self.conv2[1].weight)
        self.shortcut = (
            _conv_bn(cin, cout, 1, stride, act=False)
            if stride != 1 or cin != cout
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, cin, H, W)`` → ``(B, cout, H/stride, W/stride)``."""
        return self.relu(self.shortcut(x) + self.conv2(self.conv1(x)))


class ResNetBackbone(nn.Module):
    """Stem (3×3, stride 2) and four stages of basic blocks, each halving the resolution.

    Parameters
    ----------
    stem_channels : int
    stage_channels : sequence of 4 int
        Widths of the stages at strides 4, 8, 16 and 32.
    stage_blocks : sequence of 4 int
        Blocks per stage (≥ 1).

    Notes
    -----
    ``forward`` returns the stride 8, 16 and 32 maps (C3, C4, C5); their
    channel counts are ``out_channels``.
    """

    def __init__(
        self,
        stem_channels: int = 16,
        stage_channels: Sequence[int] = (24, 48, 96, 160),
        stage_blocks: Sequence[int] = (1, 2, 2, 1),
    ) -> None:
        super().__init__()
        stem_channels = check_scalar(stem_channels, "stem_channels", low=1, integer=True)
        if len(stage_channels) != 4 or len(stage_blocks) != 4:
            raise ValueError(
                "stage_channels and stage_blocks must have 4 entries (strides 4, 8, 16, 32), "
                f"got {tuple(stage_channels)} and {tuple(stage_blocks)}"
            )
        for k, (c, b) in enumerate(zip(stage_channels, stage_blocks)):
            check_scalar(c, f"stage_channels[{k}]", low=1, integer=True)
            check_scalar(b, f"stage_blocks[{k}]", low=1, integer=True)
        self.stem = _conv_bn(3, stem_channels, 3, 2, act=True)
        stages = []
        cin = stem_channels
        for c, b in zip(stage_channels, stage_blocks):
            blocks = [BasicBlock(cin, c, 2)] + [BasicBlock(c, c, 1) for _ in range(b - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = c
        self.stages = nn.ModuleList(stages)
        self.out_channels = tuple(int(c) for c in stage_channels[1:])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 3, H, W)`` → ``[C3 (B, c1, H/8, W/8), C4 (…, H/16, …), C5 (…, H/32, …)]``."""
        x = self.stem(x)
        outs = []
        for k, stage in enumerate(self.stages):
            x = stage(x)
            if k >= 1:
                outs.append(x)
        return outs
