"""A small port of GFL's pieces into "my detector", with one planted bug.

This is the worked example of ``docs/conformance.md``: an engineer ported
mmdetection 2.x's GFL losses and box helpers into their own code base, in their
own words (written for this example, not copied from anywhere). It exposes
the pieces under this project's torch names, called like ``torch_impl``'s
functions, so ``gfl-conformance examples/conformance/ported_head.py`` checks it.

The planted bug is in :func:`quality_focal_loss`: the positives are taken as
``label > 0`` — a habit from mmdetection 1.x and the original GFocal code, where
0 is the background — while this port's labels follow mmdetection 2.x (objects
``0..C-1``, background ``C``). Class 0 is then never trained towards its IoU
target, and the background label ``C`` indexes past the last column. The
fixed version is :func:`quality_focal_loss_fixed`.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F


def integral(pred: torch.Tensor, reg_max: int = 16) -> torch.Tensor:
    """Expected distance of each side: ``(N, 4(n+1))`` logits → ``(N, 4)``."""
    prob = F.softmax(pred.reshape(-1, 4, reg_max + 1), dim=-1)  # (N, 4, n+1)
    project = torch.linspace(0, reg_max, reg_max + 1, dtype=pred.dtype)  # (n+1,)
    return (prob * project).sum(-1)  # (N, 4)


def _reduce(loss: torch.Tensor, weight, reduction: str, avg_factor) -> torch.Tensor:
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / avg_factor if avg_factor is not None else loss.mean()


def weight_reduce_loss(loss, weight=None, reduction="mean", avg_factor=None) -> torch.Tensor:
    """Weight an element-wise loss, then reduce it (mmdetection's rule)."""
    if avg_factor is not None and reduction == "sum":
        raise ValueError('avg_factor can not be used with reduction="sum"')
    if reduction == "mean" and avg_factor is not None and loss.numel() == 0:
        return loss.sum()
    return _reduce(loss, weight, reduction, avg_factor)


def _qfl(pred, label, score, weight, beta, reduction, avg_factor, positive) -> torch.Tensor:
    """QFL per anchor, summed over the classes; ``positive`` marks the positive rows."""
    sigma = pred.sigmoid()
    loss = F.binary_cross_entropy_with_logits(pred, torch.zeros_like(pred), reduction="none")
    loss = loss * sigma.pow(beta)  # every entry as a negative
    pos = torch.nonzero(positive).squeeze(1)
    pos_label = label[pos].long()
    factor = score[pos] - sigma[pos, pos_label]
    loss[pos, pos_label] = F.binary_cross_entropy_with_logits(
        pred[pos, pos_label], score[pos], reduction="none"
    ) * factor.abs().pow(beta)
    return _reduce(loss.sum(dim=1), weight, reduction, avg_factor)


def quality_focal_loss(
    pred, label, score, weight=None, beta=2.0, reduction="mean", avg_factor=None
) -> torch.Tensor:
    """QFL. THE PLANTED BUG: the positives are ``label > 0`` (class 0 is an object here)."""
    return _qfl(pred, label, score, weight, beta, reduction, avg_factor, label > 0)


def quality_focal_loss_fixed(
    pred, label, score, weight=None, beta=2.0, reduction="mean", avg_factor=None
) -> torch.Tensor:
    """The same, with the positives of mmdetection 2.x: ``0 <= label < C``."""
    positive = (label >= 0) & (label < pred.shape[1])
    return _qfl(pred, label, score, weight, beta, reduction, avg_factor, positive)


def distribution_focal_loss(
    pred, label, weight=None, reduction="mean", avg_factor=None
) -> torch.Tensor:
    """DFL: cross-entropy with the two bins around each continuous target."""
    left = label.long()
    right = left + 1
    w_left = right.to(label.dtype) - label
    w_right = label - left.to(label.dtype)
    loss = (
        F.cross_entropy(pred, left, reduction="none") * w_left
        + F.cross_entropy(pred, right, reduction="none") * w_right
    )
    return _reduce(loss, weight, reduction, avg_factor)


def distance2bbox(points, distance, max_shape=None) -> torch.Tensor:
    """``(x - l, y - t, x + r, y + b)``, clamped to the image when ``max_shape`` is given."""
    x1 = points[:, 0] - distance[:, 0]
    y1 = points[:, 1] - distance[:, 1]
    x2 = points[:, 0] + distance[:, 2]
    y2 = points[:, 1] + distance[:, 3]
    if max_shape is not None:
        x1 = x1.clamp(min=0, max=max_shape[1])
        y1 = y1.clamp(min=0, max=max_shape[0])
        x2 = x2.clamp(min=0, max=max_shape[1])
        y2 = y2.clamp(min=0, max=max_shape[0])
    return torch.stack([x1, y1, x2, y2], -1)


def bbox2distance(points, bbox, max_dis=None, eps=0.1) -> torch.Tensor:
    """Distances from each point to the sides of its box, optionally clamped to
    ``[0, max_dis - eps]``."""
    left = points[:, 0] - bbox[:, 0]
    top = points[:, 1] - bbox[:, 1]
    right = bbox[:, 2] - points[:, 0]
    bottom = bbox[:, 3] - points[:, 1]
    if max_dis is not None:
        left = left.clamp(min=0, max=max_dis - eps)
        top = top.clamp(min=0, max=max_dis - eps)
        right = right.clamp(min=0, max=max_dis - eps)
        bottom = bottom.clamp(min=0, max=max_dis - eps)
    return torch.stack([left, top, right, bottom], -1)


#: The same port with the bug fixed: ``gfl-conformance examples/conformance/ported_head.py:fixed``.
fixed = SimpleNamespace(
    integral=integral,
    weight_reduce_loss=weight_reduce_loss,
    quality_focal_loss=quality_focal_loss_fixed,
    distribution_focal_loss=distribution_focal_loss,
    distance2bbox=distance2bbox,
    bbox2distance=bbox2distance,
)
