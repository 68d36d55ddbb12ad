"""GFocal (the authors' original GFL code, on mmdetection 1.x) as a conformance-kit adapter.

Each function re-implements, from reading the public source, what the original
GFocal code computes, under this project's public torch names and argument
order, called in GFocal's conventions (the ``"gfocal"`` dialect of
``reference.dialects``). The code is ours; the behaviour is theirs, quirks
included. Sources (repository, file, function, the commit the search index holds):

- ``implus/GFocal`` @ ``adb8eca9c10bbe033d805c5afc5e2fce30a008ed``:
  ``mmdet/models/losses/gfocal_loss.py`` (``quality_focal_loss``,
  ``distribution_focal_loss``), ``mmdet/ops/project.py`` (``Project``),
  ``mmdet/models/anchor_heads/gfl_head.py`` (``GFLHead.iou_target``,
  ``loss_single``, ``loss``), ``configs/gfl_r50_1x.py`` (``GIoULoss``, default eps);
- ``implus/GFocal`` @ ``82c1394c07545d3224678fda8ebb7c217706babd``:
  ``mmdet/core/bbox/transforms.py`` (``distance2bbox``, ``bbox2distance``);
- mmdetection 1.x, which GFocal does not change and imports:
  ``open-mmlab/mmdetection`` @ ``fdf0a6432af1fda24515c3027e9a2eb4d1f208c3``
  ``mmdet/core/bbox/geometry.py`` (``bbox_overlaps``, legacy "+1");
  ``mmdet/models/losses/utils.py`` (``weight_reduce_loss``; read at
  ``030b5682a4fc5bfe7fda1b0c6fb6e896f33b61dc``, the same body as 1.x without the
  later ``mmcv.jit`` decorator); and ``mmdet/models/losses/iou_loss.py``
  (``giou_loss``, ``GIoULoss``), whose 1.x version (GIoU was added late in 1.x)
  the index holds only in mmdetection-1.x forks: ``Sense-X/TSD`` @
  ``bd30247bcc1e7c27f4016c2d83892207aa5fd362`` and ``csuhan/s2anet`` @
  ``7d96d11b6ae96e91f2435862c04ceff6bbbbbc9d`` (identical).

Conventions: QFL labels are ``0`` for the background and ``1..C`` for the
objects (``background_first``); every box is in the legacy "+1" pixel
convention (a box of ``x1 == x2`` is one pixel wide). Tensors in, tensors out;
float64 works (the ``Project`` buffer is made in the input's dtype, as a model
moved with ``.double()`` would have it).

Not exposed: ``grid_anchors`` and ``atss_assign`` (GFocal takes both from
mmdetection 1.x unchanged: ``AnchorGenerator`` puts the centre of cell (i, j) at
``(j*s + (s-1)/2, i*s + (s-1)/2)``, which no ``center_offset`` expresses, and
its ``ATSSAssigner`` measures IoU with the "+1"); nor the head pieces.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DIALECT = "gfocal"

__all__ = [
    "DIALECT",
    "integral",
    "quality_focal_loss",
    "distribution_focal_loss",
    "giou_loss",
    "weight_reduce_loss",
    "bbox_overlaps",
    "bbox2distance",
    "distance2bbox",
    "iou_target",
]


# Source: implus/GFocal mmdet/ops/project.py, Project.forward (adb8eca).
# A softmax over each side's reg_max + 1 bins, then the dot product with the
# fixed buffer linspace(0, reg_max, reg_max + 1).
def integral(pred: torch.Tensor, reg_max: int = 16) -> torch.Tensor:
    bins = torch.linspace(0, reg_max, reg_max + 1, dtype=pred.dtype, device=pred.device)
    prob = F.softmax(pred.reshape(-1, reg_max + 1), dim=1)
    return F.linear(prob, bins).reshape(-1, 4)


# Source: implus/GFocal mmdet/models/losses/gfocal_loss.py, quality_focal_loss (adb8eca).
# Labels: 0 is the background, 1..C the objects (GFocal subtracts 1 first).
# The factor of a positive is (score - sigmoid) ** beta, *without* abs. GFocal's
# loss is per element, (n, C); the adapter sums over classes (reduction 'none').
def quality_focal_loss(
    pred: torch.Tensor, label: torch.Tensor, score: torch.Tensor, beta: float = 2.0
) -> torch.Tensor:
    sig = pred.sigmoid()
    # every entry first trained towards 0
    elem = F.binary_cross_entropy_with_logits(
        pred, torch.zeros_like(pred), reduction="none"
    ) * sig.pow(beta)
    obj = label - 1
    rows = torch.nonzero(obj >= 0).squeeze(1)
    cols = obj[rows].long()
    # positives towards their IoU score; the base is signed
    gap = score[rows] - sig[rows, cols]
    elem[rows, cols] = F.binary_cross_entropy_with_logits(
        pred[rows, cols], score[rows], reduction="none"
    ) * gap.pow(beta)
    return weight_reduce_loss(elem, None, "none").sum(dim=1)


# Source: implus/GFocal mmdet/models/losses/gfocal_loss.py, distribution_focal_loss
# (adb8eca). Cross-entropy on the two bins around the target, weighted linearly;
# the target is not checked or clamped (a target of reg_max indexes a missing bin).
def distribution_focal_loss(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    left = label.long()
    right = left + 1
    w_left = right.to(label.dtype) - label
    w_right = label - left.to(label.dtype)
    per_row = (
        F.cross_entropy(pred, left, reduction="none") * w_left
        + F.cross_entropy(pred, right, reduction="none") * w_right
    )
    return weight_reduce_loss(per_row, None, "none")


# Source: mmdetection 1.x mmdet/models/losses/iou_loss.py, giou_loss (read in the
# forks Sense-X/TSD bd30247 and csuhan/s2anet 7d96d11), as GFocal's config builds it:
# GIoULoss(loss_weight=2.0) keeps its default eps=1e-6 and passes it on. Legacy "+1"
# in every width and height; eps is *added* to the union and the enclosing area.
def giou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    inter_wh = (
        torch.min(pred[:, 2:], target[:, 2:]) - torch.max(pred[:, :2], target[:, :2]) + 1
    ).clamp(min=0)
    inter = inter_wh[:, 0] * inter_wh[:, 1]
    area_p = (pred[:, 2] - pred[:, 0] + 1) * (pred[:, 3] - pred[:, 1] + 1)
    area_t = (target[:, 2] - target[:, 0] + 1) * (target[:, 3] - target[:, 1] + 1)
    union = area_p + area_t - inter + eps
    enc_wh = (
        torch.max(pred[:, 2:], target[:, 2:]) - torch.min(pred[:, :2], target[:, :2]) + 1
    ).clamp(min=0)
    enclose = enc_wh[:, 0] * enc_wh[:, 1] + eps
    gious = inter / union - (enclose - union) / enclose
    return weight_reduce_loss(1 - gious, None, "none")


# Source: mmdetection 1.x mmdet/models/losses/utils.py, weight_reduce_loss (GFocal's
# gfocal_loss.py imports it). No eps: 'mean' divides by avg_factor exactly, or takes
# loss.mean() (NaN for an empty loss).
def weight_reduce_loss(
    loss: torch.Tensor,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | torch.Tensor | None = None,
) -> torch.Tensor:
    if weight is not None:
        loss = loss * weight
    if avg_factor is not None:
        if reduction == "mean":
            return loss.sum() / avg_factor
        if reduction != "none":
            raise ValueError('avg_factor can not be used with reduction="sum"')
        return loss
    enum = F._Reduction.get_enum(reduction)  # 0 none, 1 mean, 2 sum
    return loss if enum == 0 else (loss.mean() if enum == 1 else loss.sum())


# Source: open-mmlab/mmdetection (1.x) mmdet/core/bbox/geometry.py, bbox_overlaps
# (fdf0a64). Legacy "+1" in areas and overlaps; no eps; only 'iou' and 'iof' (no
# 'giou'); aligned results have shape (m,), but an empty aligned input gives (m, 1).
def bbox_overlaps(
    bboxes1: torch.Tensor, bboxes2: torch.Tensor, mode: str = "iou", is_aligned: bool = False
) -> torch.Tensor:
    assert mode in ["iou", "iof"]
    rows, cols = bboxes1.size(0), bboxes2.size(0)
    if is_aligned:
        assert rows == cols
    if rows * cols == 0:
        return bboxes1.new_empty((rows, 1) if is_aligned else (rows, cols))
    a = bboxes1 if is_aligned else bboxes1[:, None, :]  # (m, 4) or (m, 1, 4)
    wh = torch.min(a[..., 2:], bboxes2[..., 2:]) - torch.max(a[..., :2], bboxes2[..., :2]) + 1
    wh = wh.clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    area1 = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    if mode == "iof":
        return overlap / area1
    area2 = (bboxes2[..., 2] - bboxes2[..., 0] + 1) * (bboxes2[..., 3] - bboxes2[..., 1] + 1)
    return overlap / (area1 + area2 - overlap)


# Source: implus/GFocal mmdet/core/bbox/transforms.py, bbox2distance (82c1394).
# The DFL target: distances clamped to [0, max_dis - dt], dt = 0.1.
def bbox2distance(
    points: torch.Tensor,
    bbox: torch.Tensor,
    max_dis: float | None = None,
    dt: float = 0.1,
) -> torch.Tensor:
    sides = [
        points[:, 0] - bbox[:, 0],
        points[:, 1] - bbox[:, 1],
        bbox[:, 2] - points[:, 0],
        bbox[:, 3] - points[:, 1],
    ]
    if max_dis is not None:
        sides = [d.clamp(min=0, max=max_dis - dt) for d in sides]
    return torch.stack(sides, -1)


# Source: implus/GFocal mmdet/core/bbox/transforms.py, distance2bbox (82c1394).
# With max_shape = (h, w), x is clamped to [0, w - 1] and y to [0, h - 1].
def distance2bbox(
    points: torch.Tensor,
    distance: torch.Tensor,
    max_shape: tuple[int, int] | None = None,
) -> torch.Tensor:
    coords = [
        points[:, 0] - distance[:, 0],
        points[:, 1] - distance[:, 1],
        points[:, 0] + distance[:, 2],
        points[:, 1] + distance[:, 3],
    ]
    if max_shape is not None:
        upper = (max_shape[1] - 1, max_shape[0] - 1, max_shape[1] - 1, max_shape[0] - 1)
        coords = [c.clamp(min=0, max=u) for c, u in zip(coords, upper)]
    return torch.stack(coords, -1)


# Source: implus/GFocal mmdet/models/anchor_heads/gfl_head.py, GFLHead.iou_target
# (adb8eca): QFL's quality target, the IoU of the detached decoded box with its gt,
# with the "+1" and eps=1e-7 *added* to the union. Not a torch_impl name: GFocal's
# head uses this, not bbox_overlaps. Note that GFocal calls it on boxes divided by
# the stride, so its "+1" is one cell, not one pixel.
def iou_target(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    wh = torch.min(pred[:, 2:], target[:, 2:]) - torch.max(pred[:, :2], target[:, :2]) + 1
    overlap = wh.clamp(min=0).prod(dim=1)
    area_p = (pred[:, 2] - pred[:, 0] + 1) * (pred[:, 3] - pred[:, 1] + 1)
    area_t = (target[:, 2] - target[:, 0] + 1) * (target[:, 3] - target[:, 1] + 1)
    return overlap / (area_p + area_t - overlap + eps)
