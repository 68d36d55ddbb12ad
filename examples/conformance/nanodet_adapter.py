"""nanodet's GFL (``GFLHead`` of ``RangiLyu/nanodet``) as a conformance-kit adapter.

Each function re-implements, from reading the public source, what nanodet
computes, under this project's public torch names and argument order, called in
nanodet's conventions (the ``"nanodet"`` dialect of ``reference.dialects``). The
code is ours; the behaviour is theirs, quirks included. Sources (repository
``RangiLyu/nanodet``, file, function, and the commit the search index holds):

- ``nanodet/model/head/gfl_head.py`` @ ``daf2bdad75c8ffc1a7c628157a92304422c3812f``
  (``Integral``, ``GFLHead.get_single_level_center_point``, ``get_grid_cells``,
  ``loss``, ``loss_single``);
- ``nanodet/model/loss/gfocal_loss.py`` @ ``605926d6bb78697ab17759b6d2636488cd13ac93``
  (``quality_focal_loss``, ``distribution_focal_loss``);
- ``nanodet/model/loss/iou_loss.py`` @ ``763c8f193f0acdbafd609b50e528bc02e0503e9e``
  (``bbox_overlaps``, ``giou_loss``, ``GIoULoss``);
- ``nanodet/model/loss/utils.py`` @ ``4646282fe67d60177d72a48b81947c5694338faf``
  (``weight_reduce_loss``);
- ``nanodet/util/box_transform.py`` @ ``dcc7e798adbb9e64c406173a0792b934dbd76497``
  (``distance2bbox``, ``bbox2distance``);
- ``nanodet/model/head/assigner/atss_assigner.py`` @
  ``128955d7b7157a8fae5bffa59ac8d78e887da947`` (``ATSSAssigner.assign``).

Conventions: objects are labels ``0..C-1`` and the background ``C``; ``reg_max``
is the largest bin. Tensors in, tensors out; float64 works.

``atss_assign`` is nanodet's assigner as written: ``max_overlaps`` is ``-1e8``
(its ``-INF``) at every anchor that is not positive, and with ``ignore_iof_thr >
0`` an ignored anchor only has its distance set to ``1e8``, so it can still be a
candidate (and a positive) on a level with fewer than ``topk`` other anchors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

DIALECT = "nanodet"

__all__ = [
    "DIALECT",
    "AssignResult",
    "integral",
    "quality_focal_loss",
    "distribution_focal_loss",
    "giou_loss",
    "weight_reduce_loss",
    "bbox_overlaps",
    "bbox2distance",
    "distance2bbox",
    "grid_anchors",
    "atss_assign",
]

INF = 100000000


# Source: nanodet/model/head/gfl_head.py, Integral.forward (daf2bdad). The softmax of
# each side's reg_max + 1 bins against linspace(0, reg_max, reg_max + 1), kept in the
# input's type (project.type_as(x)); leading dimensions are kept.
def integral(pred: torch.Tensor, reg_max: int = 16) -> torch.Tensor:
    lead = pred.shape[:-1]
    project = torch.linspace(0, reg_max, reg_max + 1).type_as(pred)
    prob = F.softmax(pred.reshape(*lead, 4, reg_max + 1), dim=-1)
    return F.linear(prob, project).reshape(*lead, 4)


# Source: nanodet/model/loss/gfocal_loss.py, quality_focal_loss (605926d). Objects
# 0..C-1, background C; the factor of a positive is |score - sigmoid| ** beta; the
# loss is summed over classes, (N,). (The head calls it with weight=label_weights.)
def quality_focal_loss(
    pred: torch.Tensor, label: torch.Tensor, score: torch.Tensor, beta: float = 2.0
) -> torch.Tensor:
    sig = pred.sigmoid()
    per_entry = F.binary_cross_entropy_with_logits(
        pred, sig.new_zeros(pred.shape), reduction="none"
    ) * sig.pow(beta)
    num_classes = pred.size(1)
    rows = torch.nonzero((label >= 0) & (label < num_classes), as_tuple=False).squeeze(1)
    cols = label[rows].long()
    factor = (score[rows] - sig[rows, cols]).abs().pow(beta)
    per_entry[rows, cols] = (
        F.binary_cross_entropy_with_logits(pred[rows, cols], score[rows], reduction="none") * factor
    )
    return weight_reduce_loss(per_entry.sum(dim=1, keepdim=False), None, "none")


# Source: nanodet/model/loss/gfocal_loss.py, distribution_focal_loss (605926d).
# Cross-entropy on the bins floor(y) and floor(y) + 1, weighted by the distances.
def distribution_focal_loss(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    lo = label.long()
    hi = lo + 1
    loss = F.cross_entropy(pred, lo, reduction="none") * (hi.to(label.dtype) - label)
    loss = loss + F.cross_entropy(pred, hi, reduction="none") * (label - lo.to(label.dtype))
    return weight_reduce_loss(loss, None, "none")


# Source: nanodet/model/loss/iou_loss.py, giou_loss and GIoULoss (763c8f1): the head
# builds GIoULoss(loss_weight=...), whose default eps=1e-6 reaches bbox_overlaps,
# which bounds the union and the enclosing area below by eps (torch.max).
def giou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return weight_reduce_loss(
        1 - bbox_overlaps(pred, target, mode="giou", is_aligned=True, eps=eps), None, "none"
    )


# Source: nanodet/model/loss/utils.py, weight_reduce_loss (4646282). No eps is added
# to avg_factor; 'mean' without avg_factor is loss.mean() (NaN for an empty loss).
def weight_reduce_loss(
    loss: torch.Tensor,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | torch.Tensor | None = None,
) -> torch.Tensor:
    if weight is not None:
        loss = loss * weight
    if avg_factor is None:
        kind = F._Reduction.get_enum(reduction)  # 0 none, 1 mean, 2 sum
        if kind == 1:
            return loss.mean()
        return loss.sum() if kind == 2 else loss
    if reduction == "mean":
        return loss.sum() / avg_factor
    if reduction != "none":
        raise ValueError('avg_factor can not be used with reduction="sum"')
    return loss


# Source: nanodet/model/loss/iou_loss.py, bbox_overlaps (763c8f1; mmdetection 2.x's
# with batch dimensions). No "+1"; union and enclosing area bounded below by eps.
def bbox_overlaps(
    bboxes1: torch.Tensor,
    bboxes2: torch.Tensor,
    mode: str = "iou",
    is_aligned: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    assert mode in ["iou", "iof", "giou"], f"Unsupported mode {mode}"
    assert bboxes1.size(-1) == 4 or bboxes1.size(0) == 0
    assert bboxes2.size(-1) == 4 or bboxes2.size(0) == 0
    assert bboxes1.shape[:-2] == bboxes2.shape[:-2]
    batch = bboxes1.shape[:-2]
    rows, cols = bboxes1.size(-2), bboxes2.size(-2)
    if is_aligned:
        assert rows == cols
    if rows * cols == 0:
        return bboxes1.new_empty(batch + ((rows,) if is_aligned else (rows, cols)))

    area1 = (bboxes1[..., 2] - bboxes1[..., 0]) * (bboxes1[..., 3] - bboxes1[..., 1])
    area2 = (bboxes2[..., 2] - bboxes2[..., 0]) * (bboxes2[..., 3] - bboxes2[..., 1])
    if is_aligned:
        b1, b2, a1, a2 = bboxes1, bboxes2, area1, area2
    else:  # pairs (..., rows, cols)
        b1, b2 = bboxes1[..., :, None, :], bboxes2[..., None, :, :]
        a1, a2 = area1[..., :, None], area2[..., None, :]
    wh = (torch.min(b1[..., 2:], b2[..., 2:]) - torch.max(b1[..., :2], b2[..., :2])).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    union = a1 + a2 - overlap if mode in ["iou", "giou"] else a1.expand_as(overlap)
    floor = union.new_tensor([eps])
    union = torch.max(union, floor)
    ious = overlap / union
    if mode != "giou":
        return ious
    enc_wh = (torch.max(b1[..., 2:], b2[..., 2:]) - torch.min(b1[..., :2], b2[..., :2])).clamp(
        min=0
    )
    enclose = torch.max(enc_wh[..., 0] * enc_wh[..., 1], floor)
    return ious - (enclose - union) / enclose


# Source: nanodet/util/box_transform.py, bbox2distance (dcc7e79). DFL targets clamped
# to [0, max_dis - eps], eps = 0.1.
def bbox2distance(
    points: torch.Tensor,
    bbox: torch.Tensor,
    max_dis: float | None = None,
    eps: float = 0.1,
) -> torch.Tensor:
    ltrb = torch.stack(
        [
            points[:, 0] - bbox[:, 0],
            points[:, 1] - bbox[:, 1],
            bbox[:, 2] - points[:, 0],
            bbox[:, 3] - points[:, 1],
        ],
        -1,
    )
    if max_dis is not None:
        ltrb = ltrb.clamp(min=0, max=max_dis - eps)
    return ltrb


# Source: nanodet/util/box_transform.py, distance2bbox (dcc7e79). With max_shape =
# (h, w), x is clamped to [0, w] and y to [0, h] (no "- 1").
def distance2bbox(
    points: torch.Tensor,
    distance: torch.Tensor,
    max_shape: tuple[int, int] | None = None,
) -> torch.Tensor:
    x1 = points[..., 0] - distance[..., 0]
    y1 = points[..., 1] - distance[..., 1]
    x2 = points[..., 0] + distance[..., 2]
    y2 = points[..., 1] + distance[..., 3]
    if max_shape is not None:
        h, w = max_shape[0], max_shape[1]
        x1, x2 = x1.clamp(min=0, max=w), x2.clamp(min=0, max=w)
        y1, y2 = y1.clamp(min=0, max=h), y2.clamp(min=0, max=h)
    return torch.stack([x1, y1, x2, y2], -1)


# Source: nanodet/model/head/gfl_head.py, GFLHead.get_single_level_center_point and
# get_grid_cells (daf2bdad). The point of cell (i, j) is ((j + 0.5) s, (i + 0.5) s); its
# "grid cell" is the square of side octave_base_scale * s centred there; row-major
# (torch.meshgrid(y, x), i outer). nanodet builds them in float32 (dtype=None here).
def grid_anchors(
    featmap_sizes: Sequence[tuple[int, int]],
    strides: Sequence[int] = (8, 16, 32),
    octave_base_scale: int = 4,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    dtype = torch.float32 if dtype is None else dtype
    cells = []
    for (h, w), stride in zip(featmap_sizes, strides):
        cell_size = stride * octave_base_scale
        xs = (torch.arange(w, dtype=dtype, device=device) + 0.5) * stride
        ys = (torch.arange(h, dtype=dtype, device=device) + 0.5) * stride
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        y, x = y.flatten(), x.flatten()
        half = 0.5 * cell_size
        cells.append(torch.stack([x - half, y - half, x + half, y + half], dim=-1))
    return cells


class AssignResult(NamedTuple):
    """nanodet's ``AssignResult`` fields (``num_gts, gt_inds, max_overlaps, labels``)."""

    num_gts: int
    gt_inds: torch.Tensor
    max_overlaps: torch.Tensor
    labels: torch.Tensor | None


# Source: nanodet/model/head/assigner/atss_assigner.py, ATSSAssigner.assign (128955d).
# Per level the min(topk, n) anchors whose centres are nearest (Euclidean) to each gt's
# centre; threshold mean + std (torch's default, unbiased) of their IoUs; positive if
# IoU >= threshold and the centre is more than 0.01 inside the gt; an anchor claimed by
# several gts goes to the highest IoU. max_overlaps is -INF where not positive.
def atss_assign(
    anchors: torch.Tensor,
    num_level_anchors: Sequence[int],
    gt_bboxes: torch.Tensor,
    gt_labels: torch.Tensor | None = None,
    gt_bboxes_ignore: torch.Tensor | None = None,
    topk: int = 9,
    ignore_iof_thr: float = -1,
) -> AssignResult:
    boxes = anchors[:, :4]
    num_gt, num_boxes = gt_bboxes.size(0), boxes.size(0)
    overlaps = bbox_overlaps(boxes, gt_bboxes)  # (A, G)
    gt_inds = overlaps.new_full((num_boxes,), 0, dtype=torch.long)

    if num_gt == 0 or num_boxes == 0:
        labels = None if gt_labels is None else overlaps.new_full((num_boxes,), -1).long()
        return AssignResult(num_gt, gt_inds, overlaps.new_zeros((num_boxes,)), labels)

    def centre(b: torch.Tensor) -> torch.Tensor:
        return torch.stack(((b[:, 0] + b[:, 2]) / 2.0, (b[:, 1] + b[:, 3]) / 2.0), dim=1)

    box_c, gt_c = centre(boxes), centre(gt_bboxes)
    dist = (box_c[:, None, :] - gt_c[None, :, :]).pow(2).sum(-1).sqrt()  # (A, G)

    if (
        ignore_iof_thr > 0
        and gt_bboxes_ignore is not None
        and gt_bboxes_ignore.numel() > 0
        and boxes.numel() > 0
    ):
        iof = bbox_overlaps(boxes, gt_bboxes_ignore, mode="iof")
        ignored = iof.max(dim=1)[0] > ignore_iof_thr
        dist[ignored, :] = INF
        gt_inds[ignored] = -1

    # candidates: per level, the nearest anchors to each gt, as (K, G) global indices
    per_level = []
    start = 0
    for n in num_level_anchors:
        k = min(topk, n)
        _, idx = dist[start : start + n, :].topk(k, dim=0, largest=False)
        per_level.append(idx + start)
        start += n
    cand = torch.cat(per_level, dim=0)  # (K, G)

    cand_iou = overlaps[cand, torch.arange(num_gt)]  # (K, G)
    thr = cand_iou.mean(0) + cand_iou.std(0)
    is_pos = cand_iou >= thr[None, :]

    # centre of the candidate strictly (by 0.01) inside its gt
    cx, cy = box_c[cand, 0], box_c[cand, 1]  # (K, G)
    inside = torch.stack(
        [cx - gt_bboxes[:, 0], cy - gt_bboxes[:, 1], gt_bboxes[:, 2] - cx, gt_bboxes[:, 3] - cy],
        dim=1,
    ).min(dim=1)[0]
    is_pos = is_pos & (inside > 0.01)

    # (G, A) table of the positives' IoUs, -INF elsewhere; each anchor takes its best gt
    table = torch.full_like(overlaps, -INF).t().contiguous()
    gt_of = torch.arange(num_gt, device=cand.device).expand_as(cand)
    table[gt_of[is_pos], cand[is_pos]] = overlaps.t()[gt_of[is_pos], cand[is_pos]]
    max_overlaps, best = table.t().max(dim=1)
    hit = max_overlaps != -INF
    gt_inds[hit] = best[hit] + 1

    labels = None
    if gt_labels is not None:
        labels = gt_inds.new_full((num_boxes,), -1)
        pos = torch.nonzero(gt_inds > 0, as_tuple=False).squeeze()
        if pos.numel() > 0:
            labels[pos] = gt_labels[gt_inds[pos] - 1]
    return AssignResult(num_gt, gt_inds, max_overlaps, labels)
