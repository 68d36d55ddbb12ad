r"""ATSS assignment in PyTorch, per image and for a whole batch at once.

The twin of :mod:`reference.atss` (semantics there). The batched version
pads the gts to the batch's largest count and works with masks only: no loop
over images or gts, no host-device sync (no ``.item()``, ``nonzero()`` or
boolean-mask indexing); only the levels are a Python loop.

float16 / bfloat16 inputs are assigned in float32 (squared pixel distances
overflow float16); ``max_overlaps`` comes back in the anchors' dtype.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from reference.atss import INSIDE_EPS, check_num_level_anchors

from .boxes import _overlaps
from .validation import check_scalar, check_tensor, work_dtype

__all__ = ["AssignResult", "nearest_k", "atss_assign", "atss_assign_batched"]


class AssignResult(NamedTuple):
    """The result of an assignment (the tensor twin of :class:`reference.AssignResult`).

    Attributes
    ----------
    num_gts : int, or Tensor of shape (B,)
        Number of (valid) gts, per image for a batched assignment.
    gt_inds : Tensor, shape (A,) or (B, A), int64
        0 = negative, -1 = ignored, k >= 1 = assigned to gt k-1.
    max_overlaps : Tensor, shape (A,) or (B, A)
        IoU with the assigned gt where positive, 0 elsewhere.
    labels : Tensor, shape (A,) or (B, A), int64, or None
        The assigned gt's label where positive, -1 elsewhere.
    """

    num_gts: int | torch.Tensor
    gt_inds: torch.Tensor
    max_overlaps: torch.Tensor
    labels: torch.Tensor | None


def _level_counts(num_level_anchors: object, num_anchors: int) -> list[int]:
    if isinstance(num_level_anchors, torch.Tensor):
        num_level_anchors = num_level_anchors.tolist()
    return check_num_level_anchors(np.asarray(num_level_anchors), num_anchors)


def _centres(boxes: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` boxes → ``(..., 2)`` centres."""
    return torch.stack(
        [(boxes[..., 0] + boxes[..., 2]) / 2.0, (boxes[..., 1] + boxes[..., 3]) / 2.0], dim=-1
    )  # (..., 2)


def nearest_k(d2: torch.Tensor, k: int) -> torch.Tensor:
    r"""Indices of the ``k`` smallest entries along the last axis, ties to the lower index.

    Parameters
    ----------
    d2 : Tensor, shape (B, G, n)
    k : int
        ``0 <= k <= n``.

    Returns
    -------
    Tensor, shape (B, G, k), int64
        The selected indices of each row (in no particular order).

    See Also
    --------
    reference.atss.nearest_k : the NumPy twin.

    See Also
    --------
    reference.nearest_k : the NumPy twin.

    Notes
    -----
    ``topk`` breaks ties arbitrarily. With :math:`v` the :math:`k`-th smallest
    value and :math:`m` the number of entries below it, the selection is all
    :math:`m` entries :math:`< v` (``topk``'s first :math:`m`, values sorted)
    and the :math:`k - m` lowest indices among the entries :math:`= v` (a
    second ``topk``, on the index where the value is :math:`v` and :math:`n`
    elsewhere). Shapes never depend on the data: no host sync.
    """
    b, g, n = d2.shape
    if k >= n:
        return torch.arange(n, device=d2.device).expand(b, g, n).clone()  # (B, G, n)
    if k == 0:
        return torch.empty((b, g, 0), dtype=torch.long, device=d2.device)
    vals, idx = torch.topk(d2, k, dim=-1, largest=False, sorted=True)  # (B, G, k)
    kth = vals[..., -1:]  # (B, G, 1)
    n_lt = (vals < kth).sum(-1, keepdim=True)  # (B, G, 1)
    cols = torch.arange(n, device=d2.device)  # (n,)
    tie_key = torch.where(d2 == kth, cols, n)  # (B, G, n)
    ties = torch.topk(tie_key, k, dim=-1, largest=False, sorted=True).values  # (B, G, k)
    slots = torch.arange(k, device=d2.device)  # (k,)
    from_ties = ties.gather(-1, (slots - n_lt).clamp(min=0))  # (B, G, k) slot j <- ties[j - m]
    return torch.where(slots < n_lt, idx, from_ties)


def _packed_keys(d2: torch.Tensor) -> torch.Tensor:
    r"""Unique int64 sort keys :math:`\mathrm{bits}(d^2) \cdot 2^{32} + i` for float32 ``d2 >= 0``.

    Non-negative IEEE floats order like their bit patterns, so the keys order
    by distance, then by index: one ``topk`` on them is exact, ties included.
    The two int32 halves are written side by side and viewed as one int64
    (one pass; the low word comes first on a little-endian machine).
    """
    n = d2.shape[-1]
    bits = d2.contiguous().view(torch.int32)  # (..., n)
    if sys.byteorder != "little":  # pragma: no cover - no big-endian torch build in sight
        return (bits.to(torch.long) << 32) | torch.arange(n, device=d2.device)
    idx = torch.arange(n, dtype=torch.int32, device=d2.device).expand_as(bits)  # (..., n)
    pairs = torch.stack([idx, bits], dim=-1)  # (..., n, 2) int32
    return pairs.view(torch.long)[..., 0]  # (..., n, 1) int64 -> (..., n)


def _candidates(
    centres: torch.Tensor,
    gt_c: torch.Tensor,
    counts: list[int],
    anchor_ok: torch.Tensor | None,
    topk: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per level, the ``min(topk, n)`` nearest usable anchors of every gt.

    Returns the candidates' anchor indices ``(B, G, K)``, increasing, and, when
    some anchors are unusable, which candidate slots hold a usable anchor.
    """
    b, g = gt_c.shape[:2]
    cx, cy = centres[:, 0].contiguous(), centres[:, 1].contiguous()  # (A,), (A,)
    d2 = cx - gt_c[..., 0:1].contiguous()  # (B, G, A) dx
    d2.mul_(d2)
    dy = cy - gt_c[..., 1:2].contiguous()  # (B, G, A)
    d2.add_(dy.mul_(dy))  # (B, G, A) dx^2 + dy^2
    if anchor_ok is not None:
        d2 = d2.masked_fill(~anchor_ok[:, None, :], float("inf"))  # (B, G, A)
    packed = d2.dtype == torch.float32
    if packed:
        d2 = _packed_keys(d2)  # (B, G, A) int64, unique per row
    cands = []
    start = 0
    for n in counts:
        k = min(topk, n)
        if k > 0:
            level = d2[..., start : start + n]  # (B, G, n)
            if packed:
                sel = torch.topk(level, k, dim=-1, largest=False, sorted=False).indices
            else:
                sel = nearest_k(level, k)
            cands.append(sel + start)  # (B, G, k)
        start += n
    cand = torch.cat(cands, dim=-1).sort(dim=-1).values  # (B, G, K)
    if anchor_ok is None:
        return cand, None
    ok = anchor_ok.gather(1, cand.reshape(b, -1)).reshape(cand.shape)  # (B, G, K)
    return cand, ok


def _thresholds(ious: torch.Tensor, ok: torch.Tensor | None) -> torch.Tensor:
    r"""Mean + unbiased std of each gt's usable candidates' IoUs, ``+inf`` below 2 of them.

    The sums are sequential (``cumsum``) like :func:`reference.atss.candidate_stats`,
    with unusable slots adding exact zeros, so a float64 CPU run matches the
    reference bit for bit.
    """
    if ok is None:
        n_c = torch.full(ious.shape[:-1], ious.shape[-1], device=ious.device)  # (B, G)
        u = ious
    else:
        n_c = ok.sum(-1)  # (B, G)
        u = torch.where(ok, ious, 0.0)  # (B, G, K)
    nf = n_c.to(ious.dtype)
    mean = u.cumsum(-1)[..., -1] / nf  # (B, G)
    dev = u - mean[..., None]  # (B, G, K)
    if ok is not None:
        dev = torch.where(ok, dev, 0.0)
    var = (dev * dev).cumsum(-1)[..., -1] / (nf - 1)  # (B, G)
    return torch.where(n_c >= 2, mean + var.sqrt(), float("inf"))  # (B, G)


class _Slots(NamedTuple):
    """ATSS in candidate space: slot ``(b, g, j)`` is gt ``g``'s ``j``-th candidate in image ``b``.

    Every positive is one of its gt's candidates, so the positives of a batch are
    the ``won`` slots: the sparse form of the assignment (``B * G * K`` slots).
    """

    cand: torch.Tensor  # (B, G, K) anchor index of each slot
    hit: torch.Tensor  # (B, G, K) bool: positive for this gt, with the anchor's best IoU
    gt_of: torch.Tensor  # (B, A) the gt each anchor is assigned to, G where none
    best: torch.Tensor  # (B, A) the IoU with that gt, -1 where none

    def won(self) -> torch.Tensor:
        """``(B, G, K)`` bool: the slot's anchor is positive and assigned to the slot's gt
        (of the gts it hits, the lowest index)."""
        b, g, k = self.cand.shape
        g_ids = torch.arange(g, device=self.cand.device).view(1, g, 1)  # (1, G, 1)
        assigned = self.gt_of.gather(1, self.cand.reshape(b, g * k)).reshape(b, g, k)
        return self.hit & (assigned == g_ids)


def _assign_slots(
    anchors: torch.Tensor,
    counts: list[int],
    gt: torch.Tensor,
    gt_valid: torch.Tensor | None,
    anchor_ok: torch.Tensor | None,
    topk: int,
) -> _Slots:
    """Batched ATSS on checked inputs with at least one gt and one anchor:
    ``anchors (A, 4)``, ``gt (B, G, 4)``, masks ``(B, G)`` / ``(B, A)`` or None."""
    b, g = gt.shape[:2]
    a = anchors.shape[0]
    dev = anchors.device
    centres = _centres(anchors)  # (A, 2)
    cand, ok = _candidates(centres, _centres(gt), counts, anchor_ok, topk)  # (B, G, K)
    k = cand.shape[-1]
    ious = _overlaps(anchors[cand], gt[:, :, None, :], "iou", True, 1e-6)  # (B, G, K)
    thr = _thresholds(ious, ok)  # (B, G)

    cc = centres[cand]  # (B, G, K, 2)
    gx1, gy1, gx2, gy2 = (gt[..., i : i + 1] for i in range(4))  # (B, G, 1) each
    inside = torch.minimum(
        torch.minimum(cc[..., 0] - gx1, cc[..., 1] - gy1),
        torch.minimum(gx2 - cc[..., 0], gy2 - cc[..., 1]),
    )  # (B, G, K)
    pos = (ious >= thr[..., None]) & (inside > INSIDE_EPS)  # (B, G, K)
    if ok is not None:
        pos = pos & ok
    if gt_valid is not None:
        pos = pos & gt_valid[..., None]  # (B, G, K) padded gts have no positives

    flat = cand.reshape(b, g * k)  # (B, G*K)
    val = torch.where(pos, ious, -1.0).reshape(b, g * k)  # IoU >= 0, so -1 marks "not positive"
    best = torch.full((b, a), -1.0, dtype=ious.dtype, device=dev)
    best = best.scatter_reduce(1, flat, val, reduce="amax")  # (B, A) best positive IoU
    hit = pos & (ious == best.gather(1, flat).reshape(b, g, k))  # (B, G, K)
    g_ids = torch.arange(g, device=dev).view(1, g, 1).expand(b, g, k)  # (B, G, K)
    g_sel = torch.where(hit, g_ids, g).reshape(b, g * k)  # (B, G*K)
    gt_of = torch.full((b, a), g, dtype=torch.long, device=dev)
    gt_of = gt_of.scatter_reduce(1, flat, g_sel, reduce="amin")  # (B, A) lowest best gt
    return _Slots(cand, hit, gt_of, best)


def _assign(
    anchors: torch.Tensor,
    counts: list[int],
    gt: torch.Tensor,
    gt_labels: torch.Tensor | None,
    gt_valid: torch.Tensor | None,
    anchor_ok: torch.Tensor | None,
    topk: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Batched ATSS on checked inputs: ``anchors (A, 4)``, ``gt (B, G, 4)``, masks or None.

    Returns ``gt_inds (B, A)``, ``max_overlaps (B, A)`` and ``labels (B, A)`` or None.
    """
    b, g = gt.shape[:2]
    a = anchors.shape[0]
    dev = anchors.device
    if g == 0 or a == 0:  # every anchor negative
        gt_inds = torch.zeros((b, a), dtype=torch.long, device=dev)
        max_overlaps = torch.zeros((b, a), dtype=anchors.dtype, device=dev)
        labels = None if gt_labels is None else torch.full_like(gt_inds, -1)
        return gt_inds, max_overlaps, labels

    slots = _assign_slots(anchors, counts, gt, gt_valid, anchor_ok, topk)
    assigned = slots.gt_of < g  # (B, A)
    gt_inds = torch.where(assigned, slots.gt_of + 1, 0)
    max_overlaps = torch.where(assigned, slots.best, 0.0).to(anchors.dtype)
    labels = None
    if gt_labels is not None:
        lab = gt_labels.long().gather(1, slots.gt_of.clamp(max=g - 1))  # (B, A)
        labels = torch.where(assigned, lab, -1)
    return gt_inds, max_overlaps, labels


def atss_assign(
    anchors: torch.Tensor,
    num_level_anchors: Sequence[int],
    gt_bboxes: torch.Tensor,
    gt_labels: torch.Tensor | None = None,
    gt_bboxes_ignore: torch.Tensor | None = None,
    topk: int = 9,
    ignore_iof_thr: float = -1.0,
) -> AssignResult:
    r"""ATSS assignment of one image (see :func:`reference.atss_assign`).

    Parameters
    ----------
    anchors : Tensor, shape (A, 4)
        The image's valid anchors, levels concatenated.
    num_level_anchors : sequence of int, length L
        Anchors per level (Python ints; sums to ``A``).
    gt_bboxes : Tensor, shape (G, 4)
    gt_labels : Tensor, shape (G,), int, optional
    gt_bboxes_ignore : Tensor, shape (I, 4), optional
    topk : int
    ignore_iof_thr : float
        Ignoring is on only when > 0.

    Returns
    -------
    AssignResult
        ``num_gts`` (int G), ``gt_inds (A,)``, ``max_overlaps (A,)`` in the
        anchors' dtype, ``labels (A,)`` or None.

    Notes
    -----
    Runs :func:`atss_assign_batched`'s kernel on a batch of one, with the
    ignored anchors marked unusable (never candidates) and then set to -1.
    """
    dims: dict[str, int] = {}
    check_tensor(anchors, "anchors", ("A", 4), dims)
    check_tensor(gt_bboxes, "gt_bboxes", ("G", 4), dims)
    if gt_labels is not None:
        check_tensor(gt_labels, "gt_labels", ("G",), dims, kind="int")
    if gt_bboxes_ignore is not None:
        check_tensor(gt_bboxes_ignore, "gt_bboxes_ignore", (None, 4))
    counts = _level_counts(num_level_anchors, anchors.shape[0])
    topk = check_scalar(topk, "topk", low=1, integer=True)
    ignore_iof_thr = check_scalar(ignore_iof_thr, "ignore_iof_thr")

    work = work_dtype(anchors.dtype, gt_bboxes.dtype)
    a = anchors.to(work)
    ignored = None
    if (
        ignore_iof_thr > 0
        and gt_bboxes_ignore is not None
        and gt_bboxes_ignore.shape[0] > 0
        and a.shape[0] > 0
        and gt_bboxes.shape[0] > 0
    ):
        iof = _overlaps(a, gt_bboxes_ignore.to(work), "iof", False, 1e-6)  # (A, I)
        ignored = iof.amax(dim=1) > ignore_iof_thr  # (A,)
    gt_inds, max_overlaps, labels = _assign(
        a,
        counts,
        gt_bboxes.to(work)[None],  # (1, G, 4)
        None if gt_labels is None else gt_labels[None],  # (1, G)
        None,
        None if ignored is None else ~ignored[None],  # (1, A)
        topk,
    )
    gt_inds = gt_inds[0]
    if ignored is not None:
        gt_inds = torch.where(ignored, -1, gt_inds)
    return AssignResult(
        gt_bboxes.shape[0],
        gt_inds,
        max_overlaps[0].to(anchors.dtype),
        None if labels is None else labels[0],
    )


def atss_assign_batched(
    anchors: torch.Tensor,
    num_level_anchors: Sequence[int],
    gt_bboxes: torch.Tensor,
    gt_labels: torch.Tensor | None,
    gt_valid: torch.Tensor,
    anchor_valid: torch.Tensor | None = None,
    topk: int = 9,
) -> AssignResult:
    r"""ATSS assignment of a whole batch in one pass, without host syncs.

    Parameters
    ----------
    anchors : Tensor, shape (A, 4)
        All anchors (levels concatenated), shared by the batch.
    num_level_anchors : sequence of int, length L
        Anchors per level (Python ints; sums to ``A``).
    gt_bboxes : Tensor, shape (B, G, 4)
        gts padded to the batch's largest count.
    gt_labels : Tensor, shape (B, G), int, or None
    gt_valid : Tensor, shape (B, G), bool
        Which gts are real.
    anchor_valid : Tensor, shape (B, A), bool, optional
        Usable anchors (valid flags, padding); None: all.
    topk : int

    Returns
    -------
    AssignResult
        ``num_gts (B,)``, ``gt_inds (B, A)``, ``max_overlaps (B, A)`` (anchors'
        dtype), ``labels (B, A)`` or None; per image exactly what
        :func:`atss_assign` gives on that image's usable anchors and real gts
        (unusable anchors are 0, negative).

    Notes
    -----
    Per level, the distances of all ``(B, G, n)`` pairs are computed with
    unusable anchors at :math:`+\infty`; :func:`nearest_k` picks the
    candidates (a level with fewer usable anchors than ``topk`` gets padding
    slots, masked out). IoUs are computed for the ``(B, G, K)`` candidates
    only. Padded gts are masked out of the positives. The winner per anchor
    (highest IoU, then lowest gt index) comes from two ``scatter_reduce``
    passes (``amax`` of the IoU, ``amin`` of the gt index among the maxima).
    """
    dims: dict[str, int] = {}
    check_tensor(anchors, "anchors", ("A", 4), dims)
    check_tensor(gt_bboxes, "gt_bboxes", ("B", "G", 4), dims)
    if gt_labels is not None:
        check_tensor(gt_labels, "gt_labels", ("B", "G"), dims, kind="int")
    check_tensor(gt_valid, "gt_valid", ("B", "G"), dims, kind="bool")
    if anchor_valid is not None:
        check_tensor(anchor_valid, "anchor_valid", ("B", "A"), dims, kind="bool")
    counts = _level_counts(num_level_anchors, anchors.shape[0])
    topk = check_scalar(topk, "topk", low=1, integer=True)

    work = work_dtype(anchors.dtype, gt_bboxes.dtype)
    gt_inds, max_overlaps, labels = _assign(
        anchors.to(work), counts, gt_bboxes.to(work), gt_labels, gt_valid, anchor_valid, topk
    )
    return AssignResult(gt_valid.sum(dim=1), gt_inds, max_overlaps.to(anchors.dtype), labels)
