r"""The GFL head's training targets in PyTorch: ATSS on the whole batch at once,
then per-anchor labels, weights and boxes (mmdetection's ``GFLHead.get_targets``).

The first of the head's three steps (targets → :mod:`torch_impl.head_loss` →
:mod:`torch_impl.head_predict`); the twin of :mod:`reference.head_targets`,
which assigns image by image. Here the gts of the batch are padded to the
largest count and :func:`~torch_impl.atss.atss_assign_batched` assigns every
image in one pass; only shapes are read on the host, so nothing waits for a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from reference.config import GFLConfig
from reference.img_meta import parse_img_metas

from .anchors import grid_anchors, valid_flags
from .atss import AssignResult, atss_assign_batched
from .boxes import _overlaps
from .validation import check_tensor, work_dtype

__all__ = ["GFLTargets", "gfl_targets"]


class GFLTargets(NamedTuple):
    r"""Per-anchor training targets of a batch (levels concatenated, level 0 first).

    The twin of :class:`reference.GFLTargets`, with the same fields and meanings.

    Attributes
    ----------
    anchors : Tensor, shape (A, 4)
    strides : Tensor, shape (A,) — the stride of each anchor's level
    num_level_anchors : list of int — anchors per level
    valid : Tensor of bool, shape (B, A) — valid flags (padding)
    labels : Tensor of int64, shape (B, A) — gt label at positives, C elsewhere
    label_weights : Tensor, shape (B, A) — 1 for valid, non-ignored anchors
    bbox_targets : Tensor, shape (B, A, 4) — gt box at positives, 0 elsewhere
    pos : Tensor of bool, shape (B, A)
    num_total_samples : 0-d Tensor — :math:`\max(\sum_i \max(n^{pos}_i, 1), 1)` of
        this process (the loss averages it over ranks)
    assign_results : AssignResult — batched (fields with a leading B axis);
        ``gt_inds`` is 0 at invalid anchors and −1 at ignored ones
    """

    anchors: torch.Tensor
    strides: torch.Tensor
    num_level_anchors: list[int]
    valid: torch.Tensor
    labels: torch.Tensor
    label_weights: torch.Tensor
    bbox_targets: torch.Tensor
    pos: torch.Tensor
    num_total_samples: torch.Tensor
    assign_results: AssignResult


def gfl_targets(
    featmap_sizes: Sequence[tuple[int, int]],
    gt_bboxes: Sequence[torch.Tensor],
    gt_labels: Sequence[torch.Tensor],
    img_metas: Sequence[dict],
    cfg: GFLConfig,
    gt_bboxes_ignore: Sequence[torch.Tensor | None] | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> GFLTargets:
    r"""ATSS targets of every anchor of every image, the batch at once
    (the twin of :func:`reference.gfl_targets`).

    Parameters
    ----------
    featmap_sizes : list of (H_l, W_l), one per level
    gt_bboxes : list of Tensor, shape (G_i, 4), one per image
    gt_labels : list of Tensor of int, shape (G_i,), values in ``[0, C)`` (not checked:
        looking at values costs a sync)
    img_metas : list of dict, one per image (``img_shape``, ``pad_shape``)
    cfg : GFLConfig
    gt_bboxes_ignore : list of Tensor (K_i, 4) or None, optional
        Boxes to ignore (used only when ``cfg.ignore_iof_thr > 0``).
    device : torch.device or str, optional
        Where the targets live; default: the first gt tensor's device.
    dtype : torch.dtype, optional
        Of anchors, strides, weights and boxes; default: the gts' dtype, float32 at
        least (float32 when no image has a gt tensor).

    Returns
    -------
    GFLTargets

    Notes
    -----
    Per image the semantics are :func:`reference.gfl_targets`': ATSS on the
    valid anchors; positives get their gt's label and box and label weight 1;
    negatives label C and weight 1; ignored and invalid anchors label C and
    weight 0; :math:`N_{samples} = \max(\sum_i \max(n^{pos}_i, 1), 1)`.
    """
    if not isinstance(cfg, GFLConfig):
        raise ValueError(f"cfg must be a GFLConfig, got {type(cfg).__name__}")
    batch = len(gt_bboxes)
    metas = parse_img_metas(img_metas, batch)
    if len(gt_labels) != batch:
        raise ValueError(f"gt_labels must have one entry per image ({batch}), got {len(gt_labels)}")
    device, dtype = _placement(gt_bboxes, device, dtype)
    level_anchors = grid_anchors(
        featmap_sizes, cfg.strides, cfg.octave_base_scale, device=device, dtype=dtype
    )
    num_level = [int(a.shape[0]) for a in level_anchors]
    anchors = torch.cat(level_anchors)  # (A, 4)
    strides = torch.cat(
        [
            torch.full((n,), float(s), dtype=dtype, device=device)
            for n, s in zip(num_level, cfg.strides)
        ]
    )  # (A,)
    valid = torch.stack(
        [
            torch.cat(valid_flags(featmap_sizes, m.pad_shape, cfg.strides, device=device))
            for m in metas
        ]
    )  # (B, A), from shapes only

    gt_pad, gt_valid = _pad_boxes(gt_bboxes, "gt_bboxes", device, dtype)  # (B, G, 4), (B, G)
    labels_pad = _pad_labels(gt_labels, gt_bboxes, gt_valid.shape, device)  # (B, G)
    usable = valid & ~_ignored(anchors, gt_bboxes_ignore, cfg, batch, device, dtype)  # (B, A)
    res = atss_assign_batched(anchors, num_level, gt_pad, labels_pad, gt_valid, usable, cfg.topk)
    res = res._replace(gt_inds=torch.where(valid & ~usable, -1, res.gt_inds))  # ignored: -1

    pos = res.gt_inds > 0  # (B, A)
    labels = torch.where(pos, res.labels, torch.full_like(res.labels, cfg.num_classes))  # (B, A)
    gt_index = (res.gt_inds - 1).clamp(min=0)  # (B, A)
    if gt_pad.shape[1] > 0:
        bbox_targets = torch.gather(gt_pad, 1, gt_index[..., None].expand(-1, -1, 4))  # (B, A, 4)
        bbox_targets = bbox_targets * pos[..., None].to(dtype)  # 0 at non-positives
    else:  # no gt in the whole batch
        bbox_targets = torch.zeros(batch, anchors.shape[0], 4, dtype=dtype, device=device)
    num_total_samples = pos.sum(1).clamp(min=1).sum().to(dtype).clamp(min=1)
    return GFLTargets(
        anchors,
        strides,
        num_level,
        valid,
        labels,
        usable.to(dtype),
        bbox_targets,
        pos,
        num_total_samples,
        res,
    )


def _placement(
    gt_bboxes: Sequence[torch.Tensor],
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> tuple[torch.device, torch.dtype]:
    """The targets' device and dtype: as given, else the first gts' (float32 at least)."""
    first = gt_bboxes[0] if gt_bboxes and isinstance(gt_bboxes[0], torch.Tensor) else None
    if device is None:
        device = first.device if first is not None else "cpu"
    if dtype is None:
        floating = first is not None and first.is_floating_point()
        dtype = work_dtype(first.dtype) if floating else torch.float32
    return torch.device(device), dtype


def _pad_boxes(
    boxes: Sequence[torch.Tensor], name: str, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a list of ``(G_i, 4)`` boxes to ``(B, G, 4)`` with a validity mask ``(B, G)``."""
    for i, b in enumerate(boxes):
        check_tensor(b, f"{name}[{i}]", (None, 4))
    counts = [int(b.shape[0]) for b in boxes]  # shapes are host metadata: no sync
    g = max(counts, default=0)
    padded = torch.zeros(len(boxes), g, 4, dtype=dtype, device=device)
    for i, b in enumerate(boxes):  # copies only; the assignment itself is batched
        padded[i, : counts[i]] = b.to(device=device, dtype=dtype)
    valid = torch.arange(g, device=device)[None, :] < torch.tensor(counts, device=device)[:, None]
    return padded, valid


def _pad_labels(
    gt_labels: Sequence[torch.Tensor],
    gt_bboxes: Sequence[torch.Tensor],
    shape: torch.Size,
    device: torch.device,
) -> torch.Tensor:
    """Pad a list of ``(G_i,)`` labels to ``(B, G)`` (0 in the padding)."""
    labels = torch.zeros(shape, dtype=torch.long, device=device)  # (B, G)
    for i, lab in enumerate(gt_labels):
        check_tensor(lab, f"gt_labels[{i}]", (gt_bboxes[i].shape[0],), kind="int")
        labels[i, : lab.shape[0]] = lab.to(device)
    return labels


def _ignored(
    anchors: torch.Tensor,
    gt_bboxes_ignore: Sequence[torch.Tensor | None] | None,
    cfg: GFLConfig,
    batch: int,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``(B, A)`` bool: anchors whose IoF with an ignore box exceeds ``cfg.ignore_iof_thr``."""
    none = torch.zeros(batch, anchors.shape[0], dtype=torch.bool, device=device)
    if cfg.ignore_iof_thr <= 0 or gt_bboxes_ignore is None:
        return none
    if len(gt_bboxes_ignore) != batch:
        raise ValueError(
            f"gt_bboxes_ignore must have one entry per image ({batch}), got {len(gt_bboxes_ignore)}"
        )
    ignore = [torch.zeros(0, 4) if b is None else b for b in gt_bboxes_ignore]
    ign_pad, ign_valid = _pad_boxes(ignore, "gt_bboxes_ignore", device, dtype)  # (B, K, 4)
    if ign_pad.shape[1] == 0:
        return none
    iof = _overlaps(anchors.expand(batch, -1, -1), ign_pad, "iof", False, 1e-6)  # (B, A, K)
    iof = iof.masked_fill(~ign_valid[:, None, :], -1.0)
    return iof.amax(dim=2) > cfg.ignore_iof_thr
