r"""The GFL head's loss in PyTorch, for a whole batch, differentiated by autograd.

The second of the head's three steps (:mod:`torch_impl.head_targets` → here →
:mod:`torch_impl.head_predict`); the twin of :mod:`reference.head_loss`, whose
docstrings carry the math and whose backward is derived by hand. This version
never reads a tensor's value on the host, so a training step on a GPU does
not wait for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from reference.config import GFLConfig

from .anchors import anchor_centers
from .boxes import _decode, _overlaps, bbox2distance
from .dfl import distribution_focal_loss
from .distributed import reduce_mean
from .giou import giou_loss
from .head_targets import GFLTargets, gfl_targets
from .integral import _integral
from .levels import check_level_maps, flatten_levels
from .qfl import quality_focal_loss
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
    * Targets come from :func:`~torch_impl.head_targets.gfl_targets`: the whole batch
      is assigned in one call, gts padded to the largest count.
    * Positives are a subset of the ATSS candidates, so there are at most
      :math:`P_{max} = B \cdot G \cdot \text{topk} \cdot L` of them. The box
      branch gathers :math:`P_{max}` rows with ``topk`` over the positive
      mask — a static shape, so no ``nonzero()`` and no host sync; rows that
      are not positives get weight 0.
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
        t = gfl_targets(
            featmap_sizes,
            gt_bboxes,
            gt_labels,
            img_metas,
            cfg,
            gt_bboxes_ignore,
            device=device,
            dtype=work,
        )
        cls = flatten_levels(cls_scores, work)  # (B, A, C)
        reg = flatten_levels(bbox_preds, work)  # (B, A, 4(n+1))
        max_gts = max((int(b.shape[0]) for b in gt_bboxes), default=0)  # host metadata
        box = _box_branch(cls, reg, t, cfg, max_gts)
        loss_cls = _cls_branch(cls, t, box, cfg)
    return {
        "loss_cls": cfg.loss_cls_weight * loss_cls,
        "loss_bbox": cfg.loss_bbox_weight * box.loss_bbox,
        "loss_dfl": cfg.loss_dfl_weight * box.loss_dfl,
    }


class _BoxBranch(NamedTuple):
    """The box branch on the P gathered rows (a static number, at least the positives)."""

    sel: torch.Tensor  # (P,) flat (B*A) row of each gathered anchor
    sel_pos: torch.Tensor  # (P,) bool: the row is a real positive
    iou: torch.Tensor  # (P,) IoU of the detached predicted box with its target
    loss_bbox: torch.Tensor  # 0-d, GIoU over the global normaliser
    loss_dfl: torch.Tensor  # 0-d, DFL over the global normaliser


def _box_branch(
    cls: torch.Tensor, reg: torch.Tensor, t: GFLTargets, cfg: GFLConfig, max_gts: int
) -> _BoxBranch:
    """GIoU and DFL on the positives, in grid units of each level.

    Positives are a subset of the ATSS candidates, so at most
    ``P_max = B * G * topk * L`` rows: ``topk`` over the positive mask gathers
    them with a static shape (no ``nonzero()``, no sync); other rows weigh 0.
    """
    batch, a, c = cls.shape
    k = cfg.reg_max + 1
    p_max = min(batch * a, max_gts * batch * cfg.topk * len(cfg.strides))
    sel = torch.topk(t.pos.reshape(-1).to(torch.uint8), p_max, sorted=False).indices  # (P,)
    sel_pos = t.pos.reshape(-1)[sel]  # (P,) True for real positives
    anchor_of = sel % a
    s = t.strides[anchor_of][:, None]  # (P, 1)
    centres = anchor_centers(t.anchors[anchor_of]) / s  # (P, 2), in grid units
    target_boxes = t.bbox_targets.reshape(-1, 4)[sel] / s  # (P, 4)
    zero = torch.zeros((), dtype=cls.dtype, device=cls.device)
    weight = torch.where(
        sel_pos, cls.reshape(-1, c)[sel].detach().sigmoid().amax(dim=1), zero
    )  # (P,)
    reg_sel = reg.reshape(-1, 4 * k)[sel]  # (P, 4(n+1))
    pred_boxes = _decode(centres, _integral(reg_sel, cfg.reg_max))  # (P, 4), no clamp
    avg_factor = reduce_mean(weight.sum()).clamp(min=1)
    loss_bbox = giou_loss(pred_boxes, target_boxes, weight=weight, avg_factor=avg_factor)
    dfl_target = bbox2distance(centres, target_boxes, cfg.reg_max).reshape(-1)  # (4P,)
    loss_dfl = distribution_focal_loss(
        reg_sel.reshape(-1, k),
        dfl_target,
        weight=weight.repeat_interleave(4),
        avg_factor=4.0 * avg_factor,
    )  # (4P, n+1) rows: l, t, r, b of each selected anchor
    iou = _overlaps(pred_boxes.detach(), target_boxes, "iou", True, 1e-6)  # (P,)
    return _BoxBranch(sel, sel_pos, iou, loss_bbox, loss_dfl)


def _cls_branch(cls: torch.Tensor, t: GFLTargets, box: _BoxBranch, cfg: GFLConfig) -> torch.Tensor:
    """Quality Focal Loss over every anchor; the positives' target is their IoU."""
    batch, a, c = cls.shape
    zero = torch.zeros((), dtype=cls.dtype, device=cls.device)
    score = torch.zeros(batch * a, dtype=cls.dtype, device=cls.device)
    score = score.index_put((box.sel,), torch.where(box.sel_pos, box.iou, zero))  # (B*A,)
    num_total_samples = reduce_mean(t.num_total_samples).clamp(min=1)
    return quality_focal_loss(
        cls.reshape(-1, c),
        t.labels.reshape(-1),
        score,
        weight=t.label_weights.reshape(-1),
        beta=cfg.qfl_beta,
        avg_factor=num_total_samples,
    )
