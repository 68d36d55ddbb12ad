"""A feature pyramid: P3–P5 from the backbone's C3–C5, then P6, P7, … by strided convs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reference.validation import check_scalar

__all__ = ["FPN"]


class FPN(nn.Module):
    """Top-down feature pyramid with extra levels on its own output.

    Parameters
    ----------
    in_channels : sequence of int
        Channels of the inputs, finest first (C3, C4, C5).
    out_channels : int
        Channels of every output level.
    num_outs : int
        Output levels (≥ ``len(in_channels)``); the extra ones are 3×3
        stride-2 convs, the first on the coarsest output and each next on
        the ReLU of the one before (so 5 levels give P3–P7).
    """

    def __init__(
        self, in_channels: Sequence[int], out_channels: int = 64, num_outs: int = 5
    ) -> None:
        super().__init__()
        out_channels = check_scalar(out_channels, "out_channels", low=1, integer=True)
        self.num_outs = check_scalar(num_outs, "num_outs", low=len(in_channels), integer=True)
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels
        )
        self.extra = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1)
            for _ in range(self.num_outs - len(in_channels))
        )
        self.out_channels = out_channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``[C3, C4, C5]`` → ``num_outs`` maps ``(B, out_channels, H/s, W/s)``, s = 8, 16, …"""
        if len(feats) != len(self.lateral):
            raise ValueError(f"feats must have {len(self.lateral)} levels, got {len(feats)}")
        lat = [conv(f) for conv, f in zip(self.lateral, feats)]
        for k in range(len(lat) - 1, 0, -1):
            lat[k - 1] = lat[k - 1] + F.interpolate(
                lat[k], size=lat[k - 1].shape[-2:], mode="nearest"
            )
        outs = [conv(x) for conv, x in zip(self.output, lat)]
        for k, conv in enumerate(self.extra):
            outs.append(conv(outs[-1] if k == 0 else F.relu(outs[-1])))
        return outs
