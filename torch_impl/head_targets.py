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

from reference.anchors import check_levels
from reference.config import GFLConfig
from reference.img_meta import parse_img_metas

from .anchors import _Geometry, _geometry, _valid_flags_batch
from .atss import AssignResult, _assign_slots, atss_assign_batched
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
    b = _batch_inputs(
        featmap_sizes, gt_bboxes, gt_labels, img_metas, cfg, gt_bboxes_ignore, device, dtype
    )
    geo = b.geometry
    batch, a = len(gt_bboxes), geo.anchors.shape[0]
    res = atss_assign_batched(
        geo.anchors, geo.num_level, b.gt_boxes, b.gt_labels, b.gt_valid, b.usable, cfg.topk
    )
    valid = _all_true(b.valid, batch, a, geo.anchors.device)  # (B, A)
    usable = _all_true(b.usable, batch, a, geo.anchors.device)  # (B, A)
    if b.usable is not b.valid:  # some anchors are ignored: -1
        res = res._replace(gt_inds=torch.where(valid & ~usable, -1, res.gt_inds))

    pos = res.gt_inds > 0  # (B, A)
    labels = torch.where(pos, res.labels, torch.full_like(res.labels, cfg.num_classes))  # (B, A)
    gt_index = (res.gt_inds - 1).clamp(min=0)  # (B, A)
    if b.gt_boxes.shape[1] > 0:
        bbox_targets = torch.gather(b.gt_boxes, 1, gt_index[..., None].expand(-1, -1, 4))
        bbox_targets = bbox_targets * pos[..., None].to(geo.anchors.dtype)  # (B, A, 4)
    else:  # no gt in the whole batch
        bbox_targets = b.gt_boxes.new_zeros(batch, a, 4)
    num_total_samples = pos.sum(1).clamp(min=1).sum().to(geo.anchors.dtype).clamp(min=1)
    return GFLTargets(
        geo.anchors.clone(),  # copies: the geometry is cached and shared between calls
        geo.strides.clone(),
        list(geo.num_level),
        valid,
        labels,
        usable.to(geo.anchors.dtype),
        bbox_targets,
        pos,
        num_total_samples,
        res,
    )


def _all_true(mask: torch.Tensor | None, batch: int, a: int, device: torch.device) -> torch.Tensor:
    """A fresh ``(B, A)`` bool mask: a copy of ``mask``, all True where it is None."""
    if mask is None:
        return torch.ones(batch, a, dtype=torch.bool, device=device)
    return mask.clone()


class _BatchInputs(NamedTuple):
    """The checked inputs of an assignment of the whole batch."""

    geometry: _Geometry
    valid: torch.Tensor | None  # (B, A) valid flags; None: all valid
    usable: torch.Tensor | None  # (B, A) valid and not ignored; None: all usable
    gt_boxes: torch.Tensor  # (B, G, 4) padded to the largest count
    gt_labels: torch.Tensor  # (B, G) int64, 0 in the padding
    gt_valid: torch.Tensor  # (B, G) bool: a real gt


def _batch_inputs(
    featmap_sizes: Sequence[tuple[int, int]],
    gt_bboxes: Sequence[torch.Tensor],
    gt_labels: Sequence[torch.Tensor],
    img_metas: Sequence[dict],
    cfg: GFLConfig,
    gt_bboxes_ignore: Sequence[torch.Tensor | None] | None,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> _BatchInputs:
    """Check the inputs of :func:`gfl_targets`; the geometry and valid flags come from
    caches keyed by the shapes (only shapes are read on the host)."""
    if not isinstance(cfg, GFLConfig):
        raise ValueError(f"cfg must be a GFLConfig, got {type(cfg).__name__}")
    batch = len(gt_bboxes)
    metas = parse_img_metas(img_metas, batch)
    if len(gt_labels) != batch:
        raise ValueError(f"gt_labels must have one entry per image ({batch}), got {len(gt_labels)}")
    device, dtype = _placement(gt_bboxes, device, dtype)
    sizes, strides = (tuple(v) for v in check_levels(featmap_sizes, cfg.strides))  # cache keys
    geo = _geometry(sizes, strides, cfg.octave_base_scale, dtype, device)
    valid = _valid_flags_batch(sizes, strides, tuple(tuple(m.pad_shape) for m in metas), device)
    gt_pad, gt_valid = _pad_boxes(gt_bboxes, "gt_bboxes", device, dtype)  # (B, G, 4), (B, G)
    labels_pad = _pad_labels(gt_labels, gt_bboxes, gt_valid.shape, device)  # (B, G)
    ignored = _ignored(geo.anchors, gt_bboxes_ignore, cfg, batch, device, dtype)  # (B, A) or None
    usable = valid
    if ignored is not None:
        usable = ~ignored if valid is None else valid & ~ignored
    return _BatchInputs(geo, valid, usable, gt_pad, labels_pad, gt_valid)


class _SlotTargets(NamedTuple):
    """The loss's view of the targets: ATSS's candidate slots instead of dense ``(B, A)`` maps.

    Every positive is a candidate of the gt it is assigned to, so the ``S = B * G * K``
    candidate slots (K candidates per gt) hold every positive once, as a ``won`` slot;
    their number is static (no ``nonzero()``, no sync). Negatives need no target but
    their label weight. A gt's candidates are sorted by anchor, so its ``K`` slots are
    level by level: ``level_slots[l]`` of them on level l.
    """

    geometry: _Geometry
    cand: torch.Tensor  # (B, G, K) int64: the anchor of each slot
    level_slots: tuple[int, ...]  # (L,) slots per gt on each level, min(topk, A_l); sum K
    anchor: torch.Tensor  # (S,) int64: the slot's anchor, cand flattened
    won: torch.Tensor  # (S,) bool: the anchor is a positive of the slot's gt
    boxes: torch.Tensor  # (S, 4) the slot's gt box
    labels: torch.Tensor  # (S,) int64: the slot's gt label
    label_weights: torch.Tensor | None  # (B, A): valid and not ignored; None: all 1
    num_total_samples: torch.Tensor  # 0-d, max(sum_i max(num_pos_i, 1), 1) of this process


def _slot_targets(
    featmap_sizes: Sequence[tuple[int, int]],
    gt_bboxes: Sequence[torch.Tensor],
    gt_labels: Sequence[torch.Tensor],
    img_metas: Sequence[dict],
    cfg: GFLConfig,
    gt_bboxes_ignore: Sequence[torch.Tensor | None] | None,
    device: torch.device,
    dtype: torch.dtype,
) -> _SlotTargets:
    """:func:`gfl_targets` in candidate space: the same assignment, for the loss."""
    b = _batch_inputs(
        featmap_sizes, gt_bboxes, gt_labels, img_metas, cfg, gt_bboxes_ignore, device, dtype
    )
    geo = b.geometry
    batch, g = b.gt_valid.shape
    level_slots = tuple(min(cfg.topk, n) for n in geo.num_level)
    k = sum(level_slots)
    if g > 0 and k > 0:
        slots = _assign_slots(
            geo.anchors, list(geo.num_level), b.gt_boxes, b.gt_valid, b.usable, cfg.topk
        )
        cand, won = slots.cand, slots.won()  # (B, G, K), (B, G, K)
    else:  # no gt (or no anchor): no slot
        cand = torch.zeros(batch, g, k, dtype=torch.long, device=geo.anchors.device)
        won = torch.zeros(batch, g, k, dtype=torch.bool, device=geo.anchors.device)
    num_pos = won.sum(dim=(1, 2))  # (B,)
    return _SlotTargets(
        geo,
        cand,
        level_slots,
        cand.reshape(-1),
        won.reshape(-1),
        b.gt_boxes[:, :, None, :].expand(batch, g, k, 4).reshape(-1, 4),
        b.gt_labels[:, :, None].expand(batch, g, k).reshape(-1),
        None if b.usable is None else b.usable.to(dtype),
        num_pos.clamp(min=1).sum().to(dtype).clamp(min=1),
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
) -> torch.Tensor | None:
    """``(B, A)`` bool: anchors whose IoF with an ignore box exceeds ``cfg.ignore_iof_thr``;
    None when ignoring is off or there is nothing to ignore."""
    if cfg.ignore_iof_thr <= 0 or gt_bboxes_ignore is None:
        return None
    if len(gt_bboxes_ignore) != batch:
        raise ValueError(
            f"gt_bboxes_ignore must have one entry per image ({batch}), got {len(gt_bboxes_ignore)}"
        )
    ignore = [torch.zeros(0, 4) if b is None else b for b in gt_bboxes_ignore]
    ign_pad, ign_valid = _pad_boxes(ignore, "gt_bboxes_ignore", device, dtype)  # (B, K, 4)
    if ign_pad.shape[1] == 0:
        return None
    iof = _overlaps(anchors.expand(batch, -1, -1), ign_pad, "iof", False, 1e-6)  # (B, A, K)
    iof = iof.masked_fill(~ign_valid[:, None, :], -1.0)
    return iof.amax(dim=2) > cfg.ignore_iof_thr
