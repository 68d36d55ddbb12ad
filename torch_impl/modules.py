r"""torch only: the ``nn.Module`` s of the GFL head — :class:`Integral`,
:class:`Scale` and :class:`GFLHead`.

NumPy has no modules: :mod:`reference` is functions only, and its head is the
three functions that :class:`GFLHead` calls (:func:`~reference.gfl_targets`
inside :func:`~reference.gfl_loss_forward`, and :func:`~reference.gfl_predict`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from reference.config import GFLConfig

from .head_loss import gfl_loss
from .head_predict import gfl_predict
from .integral import integral
from .validation import check_scalar, check_tensor

__all__ = ["Integral", "Scale", "GFLHead"]


class Integral(nn.Module):
    """Module form of :func:`integral` (mmdetection's ``Integral``), for one ``reg_max``."""

    def __init__(self, reg_max: int = 16) -> None:
        super().__init__()
        self.reg_max = check_scalar(reg_max, "reg_max", low=1, integer=True)

    def forward(self, pred: torch.Tensor) -> torch.Tensor:
        """``pred (N, 4*(reg_max+1))`` → ``(N, 4)``."""
        return integral(pred, self.reg_max)

    def extra_repr(self) -> str:
        return f"reg_max={self.reg_max}"


class Scale(nn.Module):
    """A learnable scalar that multiplies its input (one per FPN level in the head)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(check_scalar(scale, "scale"))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x * scale`` (the scale cast to ``x``'s dtype)."""
        return x * self.scale.to(x.dtype)


class GFLHead(nn.Module):
    r"""The GFL head: two conv towers, a classifier and a distribution regressor per level.

    Parameters
    ----------
    num_classes : int
        C, the number of foreground classes.
    in_channels : int
        Channels of every input feature map.
    feat_channels : int
        Channels inside the towers.
    stacked_convs : int
        Number of (3×3 conv, GroupNorm, ReLU) blocks in each tower.
    cfg : GFLConfig, optional
        Defaults to ``GFLConfig(num_classes=num_classes)``; ``reg_max`` and
        ``strides`` come from it.
    norm_groups : int
        GroupNorm groups (32 as in mmdetection); must divide ``feat_channels``.

    Notes
    -----
    Initialisation as mmdetection: every conv weight :math:`\mathcal N(0, 0.01^2)`,
    biases 0, except the classifier's bias :math:`-\log((1-\pi)/\pi)` with
    prior :math:`\pi = 0.01`, so that every class starts at probability 0.01.
    The towers' convs have no bias (GroupNorm follows them).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        stacked_convs: int = 4,
        cfg: GFLConfig | None = None,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        cfg = GFLConfig(num_classes=num_classes) if cfg is None else cfg
        if not isinstance(cfg, GFLConfig):
            raise ValueError(f"cfg must be a GFLConfig or None, got {type(cfg).__name__}")
        if cfg.num_classes != num_classes:
            raise ValueError(
                f"num_classes must equal cfg.num_classes ({cfg.num_classes}), got {num_classes}"
            )
        for name, v in (("in_channels", in_channels), ("feat_channels", feat_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if (
            isinstance(stacked_convs, bool)
            or not isinstance(stacked_convs, int)
            or stacked_convs < 0
        ):
            raise ValueError(f"stacked_convs must be an int >= 0, got {stacked_convs!r}")
        if stacked_convs and feat_channels % norm_groups:
            raise ValueError(
                f"feat_channels must be divisible by norm_groups ({norm_groups}), "
                f"got {feat_channels}"
            )
        self.cfg = cfg
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.reg_max = cfg.reg_max
        self.cls_convs = self._tower(in_channels, feat_channels, stacked_convs, norm_groups)
        self.reg_convs = self._tower(in_channels, feat_channels, stacked_convs, norm_groups)
        chn = feat_channels if stacked_convs else in_channels
        self.gfl_cls = nn.Conv2d(chn, num_classes, 3, padding=1)
        self.gfl_reg = nn.Conv2d(chn, 4 * (cfg.reg_max + 1), 3, padding=1)
        self.scales = nn.ModuleList(Scale(1.0) for _ in cfg.strides)
        self.reset_parameters()

    @staticmethod
    def _tower(in_ch: int, feat_ch: int, depth: int, groups: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [
                nn.Conv2d(in_ch if i == 0 else feat_ch, feat_ch, 3, padding=1, bias=False),
                nn.GroupNorm(groups, feat_ch),
                nn.ReLU(inplace=True),
            ]
        return nn.Sequential(*layers)

    def reset_parameters(self, prior_prob: float = 0.01) -> None:
        """Normal(0, 0.01) conv weights; the classifier bias set for ``prior_prob``."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.gfl_cls.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(
        self, feats: Sequence[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-level outputs.

        Parameters
        ----------
        feats : list of Tensor, shape (B, in_channels, H_l, W_l), one per stride

        Returns
        -------
        cls_scores : list of Tensor, shape (B, C, H_l, W_l)
            Logits (apply a sigmoid for scores).
        bbox_preds : list of Tensor, shape (B, 4(n+1), H_l, W_l)
            Distribution logits of left, top, right, bottom, in stride units
            after the level's learnable ``Scale``.
        """
        if isinstance(feats, torch.Tensor) or len(feats) != len(self.scales):
            raise ValueError(
                f"feats must be a list of {len(self.scales)} tensors (one per stride), "
                f"got {type(feats).__name__} of length {len(feats)}"
            )
        dims: dict[str, int] = {}
        cls_scores, bbox_preds = [], []
        for lvl, (x, scale) in enumerate(zip(feats, self.scales)):
            check_tensor(x, f"feats[{lvl}]", ("B", self.in_channels, None, None), dims)
            cls_scores.append(self.gfl_cls(self.cls_convs(x)))
            bbox_preds.append(scale(self.gfl_reg(self.reg_convs(x))))
        return cls_scores, bbox_preds

    def loss(
        self,
        cls_scores: Sequence[torch.Tensor],
        bbox_preds: Sequence[torch.Tensor],
        gt_bboxes: Sequence[torch.Tensor],
        gt_labels: Sequence[torch.Tensor],
        img_metas: Sequence[dict],
        gt_bboxes_ignore: Sequence[torch.Tensor | None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The three losses (see :func:`gfl_loss`); optimise their sum."""
        return gfl_loss(
            cls_scores, bbox_preds, gt_bboxes, gt_labels, img_metas, self.cfg, gt_bboxes_ignore
        )

    def predict(
        self,
        cls_scores: Sequence[torch.Tensor],
        bbox_preds: Sequence[torch.Tensor],
        img_metas: Sequence[dict],
        rescale: bool = False,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Detections per image (see :func:`gfl_predict`)."""
        return gfl_predict(cls_scores, bbox_preds, img_metas, self.cfg, rescale)
