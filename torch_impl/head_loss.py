r"""The GFL head's loss in PyTorch, for a whole batch, differentiated by autograd.

The second of the head's three steps (:mod:`torch_impl.head_targets` → here →
:mod:`torch_impl.head_predict`); the twin of :mod:`reference.head_loss`, whose
docstrings carry the math and whose backward is derived by hand. This version
never reads a tensor's value on the host, so a training step on a GPU does
not wait for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch

from reference.config import GFLConfig

from .boxes import _decode, _overlaps, bbox2distance
from .dfl import distribution_focal_loss
from .distributed import reduce_mean
from .giou import giou_loss
from .head_targets import _slot_targets, _SlotTargets
from .integral import _integral
from .levels import check_level_maps
from .qfl import _DenseNegatives, _positive_term
from .validation import work_dtype

__all__ = ["gfl_loss"]


def gfl_loss(
    cls_scores: Sequence[torch.Tensor],
    bbox_preds: Sequence[torch.Tensor],
    gt_bboxes: Sequence[torch.Tensor],
    gt_labels: Sequence[torch.Tensor],
    img_metas: Sequence[dict],
    cfg: GFLConfig,
    gt_bboxes_ignore: Sequence[torch.Tensor | None] | None = None,
) -> dict[str, torch.Tensor]:
    r"""The GFL head's loss for a whole batch (the twin of :func:`reference.gfl_loss_forward`).

    Parameters
    ----------
    cls_scores : list of Tensor, shape (B, C, H_l, W_l)
    bbox_preds : list of Tensor, shape (B, 4(n+1), H_l, W_l)
    gt_bboxes : list of Tensor, shape (G_i, 4)
    gt_labels : list of Tensor of int, shape (G_i,)
    img_metas : list of dict
    cfg : GFLConfig
    gt_bboxes_ignore : list of Tensor (K_i, 4) or None, optional
        Used only when ``cfg.ignore_iof_thr > 0``.

    Returns
    -------
    dict of 0-d Tensor
        ``loss_cls``, ``loss_bbox``, ``loss_dfl``: summed over levels, loss
        weights applied, float32 (float64 for float64 inputs).

    Notes
    -----
    * Targets come from the batched ATSS of :func:`~torch_impl.head_targets.gfl_targets`
      (gts padded to the largest count), kept in candidate space: every positive is
      one of its gt's ``K`` candidates, so the ``S = B * G * K`` candidate slots hold
      them all, with a static shape (no ``nonzero()``, no host sync); slots that are
      not positives weigh 0. The anchors and valid flags are cached per shape.
    * Nothing is flattened or concatenated: a gt's candidates are sorted by anchor, so
      its slots on level l are a fixed range of its K, and the box branch gathers them
      from each level's ``(B, ch, H_l, W_l)`` map as it is. QFL's negative terms are one
      fused pass over each level's logits (``torch_impl.qfl._DenseNegatives``);
      the positives' label entries take the positive term, computed on their S logits.
    * Under ``torch.distributed`` both normalisers are averaged over ranks
      (``reduce_mean``), so DDP's gradient averaging reproduces the
      single-process gradient of the whole batch — as long as neither
      normaliser's rank mean falls below 1, where mmdetection's clamp
      ``max(·, 1)`` (applied after the mean) takes over.
    * The loss runs with autocast disabled, in float32 at least.
    """
    batch = check_level_maps(cls_scores, bbox_preds, cfg)
    if len(gt_bboxes) != batch or len(gt_labels) != batch:
        raise ValueError(
            f"gt_bboxes and gt_labels must have one entry per image ({batch}), "
            f"got {len(gt_bboxes)} and {len(gt_labels)}"
        )
    device = cls_scores[0].device
    work = work_dtype(cls_scores[0].dtype)
    with torch.autocast(device_type=device.type, enabled=False):
        featmap_sizes = [tuple(m.shape[-2:]) for m in cls_scores]
        t = _slot_targets(
            featmap_sizes, gt_bboxes, gt_labels, img_metas, cfg, gt_bboxes_ignore, device, work
        )
        box = _box_branch(cls_scores, bbox_preds, t, cfg, work)
        loss_cls = _cls_branch(cls_scores, t, box.iou, cfg, work)
    return {
        "loss_cls": cfg.loss_cls_weight * loss_cls,
        "loss_bbox": cfg.loss_bbox_weight * box.loss_bbox,
        "loss_dfl": cfg.loss_dfl_weight * box.loss_dfl,
    }


def _levels(t: _SlotTargets) -> Iterator[tuple[int, int, slice]]:
    """Per level: its first anchor, its number of anchors, and its range of a gt's K slots."""
    start = k0 = 0
    for n, k in zip(t.geometry.num_level, t.level_slots):
        yield start, n, slice(k0, k0 + k)
        start, k0 = start + n, k0 + k


def _slot_rows(maps: Sequence[torch.Tensor], t: _SlotTargets) -> torch.Tensor:
    """Each slot's channel vector ``maps[l][b, :, y, x]``, ``(S, ch)``: one gather per level,
    whose gradient lands in the level's map as it is."""
    batch, g, _ = t.cand.shape
    ch = maps[0].shape[1]
    rows = []
    for m, (start, n, ks) in zip(maps, _levels(t)):
        k = ks.stop - ks.start
        local = (t.cand[:, :, ks] - start).reshape(batch, 1, g * k)  # (B, 1, G*k_l)
        r = m.reshape(batch, ch, n).gather(2, local.expand(-1, ch, -1))  # (B, ch, G*k_l)
        rows.append(r.transpose(1, 2).reshape(batch, g, k, ch))
    return torch.cat(rows, dim=2).reshape(-1, ch)  # (B, G, K, ch) -> (S, ch)


class _BoxBranch(NamedTuple):
    """The box branch on the S candidate slots."""

    iou: torch.Tensor  # (S,) IoU of the detached predicted box with the slot's gt
    loss_bbox: torch.Tensor  # 0-d, GIoU over the global normaliser
    loss_dfl: torch.Tensor  # 0-d, DFL over the global normaliser


def _box_branch(
    cls_scores: Sequence[torch.Tensor],
    bbox_preds: Sequence[torch.Tensor],
    t: _SlotTargets,
    cfg: GFLConfig,
    work: torch.dtype,
) -> _BoxBranch:
    """GIoU and DFL on the positives, in grid units of each level.

    Every slot's row is gathered (a static number); the slots that are not
    positives weigh 0.
    """
    k = cfg.reg_max + 1
    s = t.geometry.strides[t.anchor][:, None]  # (S, 1)
    centres = t.geometry.centres[t.anchor] / s  # (S, 2), in grid units
    target_boxes = t.boxes / s  # (S, 4)
    max_logit = _slot_rows([m.detach() for m in cls_scores], t).amax(dim=1).to(work)  # (S,)
    zero = torch.zeros((), dtype=work, device=s.device)
    # sigmoid is monotonic: the max of the sigmoids is the sigmoid of the max
    weight = torch.where(t.won, max_logit.sigmoid(), zero)  # (S,)
    reg_sel = _slot_rows(bbox_preds, t).to(work)  # (S, 4(n+1)): l, t, r, b blocks
    pred_boxes = _decode(centres, _integral(reg_sel, cfg.reg_max))  # (S, 4), no clamp
    avg_factor = reduce_mean(weight.sum()).clamp(min=1)
    loss_bbox = giou_loss(pred_boxes, target_boxes, weight=weight, avg_factor=avg_factor)
    dfl_target = bbox2distance(centres, target_boxes, cfg.reg_max).reshape(-1)  # (4S,)
    loss_dfl = distribution_focal_loss(
        reg_sel.reshape(-1, k),
        dfl_target,
        weight=weight.repeat_interleave(4),
        avg_factor=4.0 * avg_factor,
    )  # (4S, n+1) rows: l, t, r, b of each slot
    iou = _overlaps(pred_boxes.detach(), target_boxes, "iou", True, 1e-6)  # (S,)
    return _BoxBranch(iou, loss_bbox, loss_dfl)


def _cls_branch(
    cls_scores: Sequence[torch.Tensor],
    t: _SlotTargets,
    iou: torch.Tensor,
    cfg: GFLConfig,
    work: torch.dtype,
) -> torch.Tensor:
    """Quality Focal Loss over every logit; a positive's label entry has its IoU as target.

    Per level, the negative terms of all entries are one fused pass over the
    ``(B, C, H_l W_l)`` logits; the positives' label entries are masked out of it and take
    the positive term, computed on their S gathered logits (labels outside ``[0, C)``
    count as negatives, as in :func:`~torch_impl.qfl.quality_focal_loss`).
    """
    batch, g, k = t.cand.shape
    c = cfg.num_classes
    is_pos = (t.won & (t.labels >= 0) & (t.labels < c)).view(batch, g, k)  # (B, G, K)
    column = t.labels.clamp(0, c - 1).view(batch, g, k)  # (B, G, K)
    image = torch.arange(batch, device=t.cand.device).view(batch, 1, 1).expand(batch, g, k)
    neg, x_pos = [], []
    for m, (start, n, ks) in zip(cls_scores, _levels(t)):
        at = (image[:, :, ks], column[:, :, ks], t.cand[:, :, ks] - start)  # (B, G, k_l) each
        w = None if t.label_weights is None else t.label_weights[:, None, start : start + n]
        level_neg, level_x = _DenseNegatives.apply(
            m.reshape(batch, c, n).to(work),  # (B, C, A_l)
            tuple(i.reshape(-1) for i in at),
            is_pos[:, :, ks].reshape(-1),
            w,
            cfg.qfl_beta,
        )  # 0-d, (B*G*k_l,)
        neg.append(level_neg)
        x_pos.append(level_x.view(batch, g, ks.stop - ks.start))
    x_pos = torch.cat(x_pos, dim=2).reshape(-1)  # (S,) logit at each slot's label
    zero = torch.zeros((), dtype=work, device=x_pos.device)
    score = torch.where(is_pos.reshape(-1), iou, zero)  # (S,)
    pos = torch.where(is_pos.reshape(-1), _positive_term(x_pos, score, cfg.qfl_beta), zero)
    num_total_samples = reduce_mean(t.num_total_samples).clamp(min=1)
    return (torch.stack(neg).sum() + pos.sum()) / num_total_samples
