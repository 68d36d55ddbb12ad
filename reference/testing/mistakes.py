r"""The mistakes :func:`reference.testing.check` must catch: a catalogue of wrong
implementations that people really write.

Each entry of :data:`MISTAKES` is a :class:`Mistake`: its name, the piece it
implements, what people write and why it is wrong, and the candidate itself —
a small function that is the textbook formula with exactly one mistake in it
(marked ``# the mistake``). ``mistake.check()`` runs the engine on it; every
entry fails with a shrunk counterexample (``tests/test_mistakes.py``), and
``notebooks/09_common_mistakes.ipynb`` shows what each does to the numbers.

>>> from reference.testing.mistakes import MISTAKES, mistake
>>> report = mistake("nms_suppresses_at_threshold").check()
>>> report.passed
False

Most candidates work on NumPy arrays and reuse the reference's building blocks
for everything but the mistake. Those that only an autograd program can make (a
quality target that is not detached), and a few written the way people write
them in PyTorch, are torch candidates; torch is imported only when one runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

import reference as R
from reference.atss import AssignResult, candidate_stats, nearest_k, resolve_positives
from reference.boxes import Distance2BBoxCache
from reference.config import GFLConfig
from reference.dfl import DFLCache
from reference.integral import IntegralCache
from reference.nms import box_area, check_nms_inputs, detections, pair_iou
from reference.numerics import log_softmax, softmax
from reference.qfl import QFLCache

from . import check
from .engine import DEFAULT_EXAMPLES
from .report import Report

if TYPE_CHECKING:
    import torch

__all__ = ["Mistake", "MISTAKES", "mistake"]


@dataclass(frozen=True)
class Mistake:
    """A wrong implementation of one piece, and what is wrong with it.

    Attributes
    ----------
    name : str
        A unique, descriptive name (``"qfl_without_abs"``).
    piece : str
        The piece it implements, one of :data:`reference.testing.PIECES`.
    description : str
        What people write and why it is wrong, in one or two sentences.
    forward, backward : callable, optional
        The candidate of a differentiable piece (a torch forward has no backward).
    fn : callable, optional
        The candidate of a plain piece.
    array_type : {"numpy", "torch"}
        What the candidate takes.
    """

    name: str
    piece: str
    description: str
    forward: Callable | None = None
    backward: Callable | None = None
    fn: Callable | None = None
    array_type: str = "numpy"

    def candidate(self) -> dict[str, Any]:
        """The keyword arguments that hand this candidate to :func:`~reference.testing.check`."""
        given = {"forward": self.forward, "backward": self.backward, "fn": self.fn}
        return {k: v for k, v in given.items() if v is not None} | {"array_type": self.array_type}

    def check(self, max_examples: int = DEFAULT_EXAMPLES) -> Report:
        """``check(self.piece, ...)`` on this candidate: the autograder's report."""
        return check(self.piece, max_examples=max_examples, **self.candidate())


# --- integral ------------------------------------------------------------------------------


def integral_softmax_over_sides(pred: torch.Tensor, reg_max: int) -> torch.Tensor:
    """Integral whose softmax runs over the 4 sides instead of over each side's n+1 bins.

    ``pred (N, 4(n+1))`` → ``(N, 4)``.
    """
    import torch

    k = reg_max + 1
    prob = torch.softmax(pred.reshape(-1, 4, k), dim=1)  # (N, 4, n+1); the mistake: dim=1
    bins = torch.arange(k, dtype=pred.dtype)  # (n+1,)
    return prob @ bins  # (N, 4)


def integral_unshifted_forward(pred: np.ndarray, reg_max: int = 16) -> tuple[np.ndarray, Any]:
    """Integral with the softmax written ``exp(x) / sum(exp(x))``, without the max shift.

    ``pred (N, 4(n+1))`` → ``(out (N, 4), cache)``; the backward is the reference's.
    """
    k = reg_max + 1
    e = np.exp(pred.reshape(-1, 4, k))  # (N, 4, n+1); the mistake: inf above x ≈ 709
    prob = e / e.sum(axis=-1, keepdims=True)  # inf / inf = NaN (0 / 0 when all x < -745)
    bins = np.arange(k, dtype=np.float64)  # (n+1,)
    out = prob @ bins  # (N, 4)
    return out, IntegralCache(prob, out, bins, pred.shape)


# --- QFL -------------------------------------------------------------------------------------


def _qfl_target(pred: torch.Tensor, label: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """The dense soft target ``(N, C)``: the score at a positive's label, 0 elsewhere."""
    import torch

    c = pred.shape[1]
    rows = torch.nonzero((label >= 0) & (label < c)).reshape(-1)  # (P,)
    target = torch.zeros_like(pred)  # (N, C)
    target[rows, label[rows]] = score[rows].to(pred.dtype)
    return target


def _power(x: torch.Tensor, beta: float) -> torch.Tensor:
    """``x ** beta``, and 1 for ``beta = 0`` (``pow``'s gradient at ``0 ** 0`` is NaN)."""
    return x**beta if beta else x.new_ones(x.shape)


def qfl_log_eps(pred: torch.Tensor, label: torch.Tensor, score: torch.Tensor,
                beta: float) -> torch.Tensor:  # fmt: skip
    """QFL with the BCE written ``-(y log(σ + eps) + (1 - y) log(1 - σ + eps))``.

    ``pred (N, C)``, ``label (N,)``, ``score (N,)`` → ``(N,)``.
    """
    import torch

    y = _qfl_target(pred, label, score)  # (N, C)
    sigma = pred.sigmoid()
    eps = 1e-12
    bce = -(y * torch.log(sigma + eps) + (1 - y) * torch.log(1 - sigma + eps))  # the mistake
    return (bce * _power((y - sigma).abs(), beta)).sum(dim=1)  # (N,)


def qfl_without_abs(pred: torch.Tensor, label: torch.Tensor, score: torch.Tensor,
                    beta: float) -> torch.Tensor:  # fmt: skip
    """QFL with the modulating factor ``(y - σ)^β`` instead of ``|y - σ|^β``.

    ``pred (N, C)``, ``label (N,)``, ``score (N,)`` → ``(N,)``.
    """
    import torch.nn.functional as F

    y = _qfl_target(pred, label, score)  # (N, C)
    sigma = pred.sigmoid()
    bce = F.binary_cross_entropy_with_logits(pred, y, reduction="none")  # (N, C), stable
    return (bce * _power(y - sigma, beta)).sum(dim=1)  # the mistake: no .abs()


def qfl_backward_factor_dropped(d_loss: np.ndarray, cache: QFLCache) -> np.ndarray:
    """QFL's backward with the modulating factor treated as a constant.

    ``d_loss (N,)`` → ``d_pred (N, C)``: only ``|y - σ|^β (σ - y)``; the product
    rule's second term ``β BCE |y - σ|^(β-1) sign(σ - y) σ(1 - σ)`` is missing.
    """
    sig = cache.sig  # (N, C)
    d_x = cache.sig_beta * sig  # negatives: σ^β (σ - 0); the mistake: the factor's term is gone
    r, c, y = cache.pos_rows, cache.pos_cols, cache.pos_score  # (P,) each
    d_x[r, c] = np.abs(y - sig[r, c]) ** cache.beta * (sig[r, c] - y)  # positives: likewise
    return d_x * d_loss[:, None]


# --- DFL -------------------------------------------------------------------------------------


def dfl_weights_swapped_forward(pred: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, Any]:
    """DFL with its two weights swapped: ``CE(l)·(y - l) + CE(r)·(r - y)``.

    ``pred (M, n+1)``, ``label (M,)`` → ``(loss (M,), cache)``; the backward is the reference's.
    """
    left = np.floor(label).astype(np.int64)  # (M,)
    w_left = label - left  # the mistake: this is the right bin's weight ...
    w_right = (left + 1) - label  # ... and this the left bin's
    logp = log_softmax(pred, axis=1)  # (M, n+1)
    rows = np.arange(pred.shape[0])
    loss = -(logp[rows, left] * w_left + logp[rows, left + 1] * w_right)
    return loss, DFLCache(np.exp(logp), left, w_left, w_right)


def dfl_log_of_softmax_forward(pred: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, Any]:
    """DFL as ``-log(softmax(pred))`` at the two bins: the log of a probability that underflows.

    ``pred (M, n+1)``, ``label (M,)`` → ``(loss (M,), cache)``; the backward is the reference's.
    """
    left = np.floor(label).astype(np.int64)  # (M,)
    w_left, w_right = (left + 1) - label, label - left
    prob = softmax(pred, axis=1)  # (M, n+1): max-shifted, but exactly 0 far below the max
    rows = np.arange(pred.shape[0])
    # the mistake: log(0) = -inf, and 0 * -inf = NaN at an integer target
    loss = -(np.log(prob[rows, left]) * w_left + np.log(prob[rows, left + 1]) * w_right)
    return loss, DFLCache(prob, left, w_left, w_right)


# --- boxes -----------------------------------------------------------------------------------


def _distances(points: np.ndarray, bbox: np.ndarray) -> np.ndarray:
    """``(x - x1, y - y1, x2 - x, y2 - y)``: ``(M, 2)``, ``(M, 4)`` → ``(M, 4)``."""
    p, b = np.asarray(points, np.float64), np.asarray(bbox, np.float64)
    return np.stack([p[:, 0] - b[:, 0], p[:, 1] - b[:, 1], b[:, 2] - p[:, 0], b[:, 3] - p[:, 1]],
                    axis=-1)  # fmt: skip


def bbox2distance_clamped_to_max_dis(points: np.ndarray, bbox: np.ndarray,
                                     max_dis: float | None = None,
                                     eps: float = 0.1) -> np.ndarray:  # fmt: skip
    """bbox2distance clamped to ``[0, max_dis]``: a DFL target can reach ``n``, one bin too far.

    ``points (M, 2)``, ``bbox (M, 4)`` → ``(M, 4)``.
    """
    dist = _distances(points, bbox)  # (M, 4)
    if max_dis is not None:
        dist = np.clip(dist, 0.0, max_dis)  # the mistake: max_dis, not max_dis - eps
    return dist


def bbox2distance_not_clamped(points: np.ndarray, bbox: np.ndarray, max_dis: float | None = None,
                              eps: float = 0.1) -> np.ndarray:  # fmt: skip
    """bbox2distance that ignores ``max_dis``: targets beyond the last bin reach the DFL.

    ``points (M, 2)``, ``bbox (M, 4)`` → ``(M, 4)``.
    """
    return _distances(points, bbox)  # (M, 4); the mistake: no clamp to [0, max_dis - eps]


def iou_plus_one(bboxes1: np.ndarray, bboxes2: np.ndarray, mode: str = "iou",
                 is_aligned: bool = False, eps: float = 1e-6) -> np.ndarray:  # fmt: skip
    """bbox_overlaps with the old "+1 pixel" convention: a box is ``x2 - x1 + 1`` wide.

    ``bboxes1 (M, 4)``, ``bboxes2 (N, 4)`` → ``(M, N)``, or ``(M,)`` when aligned.
    """
    b1, b2 = np.asarray(bboxes1, np.float64), np.asarray(bboxes2, np.float64)
    if not is_aligned:
        b1, b2 = b1[:, None, :], b2[None, :, :]  # (M, 1, 4), (1, N, 4)
    area1 = (b1[..., 2] - b1[..., 0] + 1) * (b1[..., 3] - b1[..., 1] + 1)  # the mistake: + 1
    area2 = (b2[..., 2] - b2[..., 0] + 1) * (b2[..., 3] - b2[..., 1] + 1)  # (and every + 1 below)
    inter = np.minimum(b1[..., 2:], b2[..., 2:]) - np.maximum(b1[..., :2], b2[..., :2]) + 1
    wh = np.clip(inter, 0.0, None)  # (..., 2)
    overlap = wh[..., 0] * wh[..., 1]
    union = np.broadcast_to(area1, overlap.shape) if mode == "iof" else area1 + area2 - overlap
    union = np.maximum(union, eps)
    if mode != "giou":
        return overlap / union
    enc = np.maximum(b1[..., 2:], b2[..., 2:]) - np.minimum(b1[..., :2], b2[..., :2]) + 1
    enclose = np.maximum(np.clip(enc, 0.0, None).prod(axis=-1), eps)
    return overlap / union - (enclose - union) / enclose


def giou_loss_without_enclosing_box(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """"GIoU" loss ``1 - I/U``: the enclosing-box term is left out, so it is the IoU loss.

    ``pred (M, 4)``, ``target (M, 4)`` → ``(M,)``.
    """
    import torch

    lt = torch.maximum(pred[:, :2], target[:, :2])  # (M, 2)
    rb = torch.minimum(pred[:, 2:], target[:, 2:])  # (M, 2)
    wh = (rb - lt).clamp(min=0)
    overlap = wh[:, 0] * wh[:, 1]
    area_p = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_t = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    union = (area_p + area_t - overlap).clamp(min=1e-6)
    return 1 - overlap / union  # the mistake: no "- (E - U) / E" term


def distance2bbox_backward_through_clamp(d_boxes: np.ndarray, cache: Any) -> np.ndarray:
    """distance2bbox's backward that lets the gradient through clamped coordinates.

    ``d_boxes (M, 4)`` → ``d_distance (M, 4)``.
    """
    return d_boxes * np.array([-1.0, -1.0, 1.0, 1.0])  # the mistake: cache.pass_mask not applied


def distance2bbox_strict_mask_forward(points: np.ndarray, distance: np.ndarray,
                                      max_shape: tuple[int, int] | None = None
                                      ) -> tuple[np.ndarray, Distance2BBoxCache]:  # fmt: skip
    """distance2bbox whose clamp mask counts a coordinate *on* a bound as clamped.

    ``points (M, 2)``, ``distance (M, 4)`` → ``(boxes (M, 4), cache)``; the backward is
    the reference's, which zeroes the gradient wherever the mask is False.
    """
    boxes, _ = R.distance2bbox_forward(points, distance)  # (M, 4), not clamped
    if max_shape is None:
        return boxes, Distance2BBoxCache(np.ones(boxes.shape, dtype=bool))
    h, w = max_shape
    upper = np.array([w, h, w, h], dtype=np.float64)
    passes = (boxes > 0.0) & (boxes < upper)  # the mistake: not (boxes >= 0) & (boxes <= upper)
    return np.clip(boxes, 0.0, upper), Distance2BBoxCache(passes)


def weight_reduce_ignoring_avg_factor_forward(
    loss: np.ndarray, weight: np.ndarray | None = None, reduction: str = "mean",
    avg_factor: float | None = None,
) -> tuple[np.ndarray, Any]:  # fmt: skip
    """weight_reduce that never passes ``avg_factor`` on: "mean" divides by the element count.

    ``loss`` any shape → reduced; the backward is the reference's.
    """
    return R.weight_reduce_forward(loss, weight, reduction)  # the mistake: avg_factor dropped


# --- anchors and ATSS ----------------------------------------------------------------------


def grid_anchors_at_cell_centres(featmap_sizes: Sequence[tuple[int, int]],
                                 strides: Sequence[int] = (8, 16, 32, 64, 128),
                                 octave_base_scale: float = 8) -> list[np.ndarray]:  # fmt: skip
    """Anchors centred at the cell's centre ``((j + ½)s, (i + ½)s)``, not its corner ``(js, is)``.

    Returns a list of ``(H·W, 4)`` arrays, one per level.
    """
    out = []
    for (h, w), s in zip(featmap_sizes, strides):
        ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")  # (H, W) each
        cx = (jj.reshape(-1) + 0.5) * s  # the mistake: + 0.5 (mmdetection's center_offset=0.5)
        cy = (ii.reshape(-1) + 0.5) * s
        half = octave_base_scale * s / 2
        out.append(np.stack([cx - half, cy - half, cx + half, cy + half], axis=1).reshape(-1, 4))
    return out


def _centres(boxes: np.ndarray) -> np.ndarray:
    """``(..., 4)`` boxes → ``(..., 2)`` centres."""
    return np.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], -1)


def _candidates_per_level(d2: np.ndarray, counts: list[int], topk: int) -> np.ndarray:
    """The textbook step: the ``min(topk, n_l)`` nearest anchors of each level. ``(G, K)``."""
    cand, start = [], 0
    for n in counts:
        cand.append(start + nearest_k(d2[:, start : start + n], min(topk, n)))  # (G, k_l)
        start += n
    return np.concatenate(cand, axis=1)


def _centre_inside(centres: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """The textbook step: each candidate's centre lies inside its gt by more than 0.01 px.

    ``centres (G, K, 2)``, ``gt (G, 4)`` → ``(G, K)`` bool.
    """
    lt = centres - gt[:, None, :2]  # (G, K, 2)
    rb = gt[:, None, 2:] - centres  # (G, K, 2)
    return np.minimum(lt.min(axis=-1), rb.min(axis=-1)) > 0.01


def _atss(anchors: np.ndarray, num_level_anchors: Sequence[int], gt_bboxes: np.ndarray,
          gt_labels: np.ndarray | None, gt_bboxes_ignore: np.ndarray | None, topk: int,
          ignore_iof_thr: float, candidates: Callable = _candidates_per_level,
          threshold: Callable = candidate_stats,
          inside: Callable = _centre_inside) -> AssignResult:  # fmt: skip
    """ATSS written plainly on the reference's helpers, each of its three steps swappable.

    Arguments as :func:`reference.atss_assign`; ``candidates(d2 (G, A'), counts, topk)``,
    ``threshold(ious (G, K))`` and ``inside(centres (G, K, 2), gt (G, 4))`` are the
    steps (the textbook ones by default), run over the anchors that are not ignored.
    """
    a, gt = np.asarray(anchors, np.float64), np.asarray(gt_bboxes, np.float64)
    counts = [int(n) for n in num_level_anchors]
    ignored = np.zeros(a.shape[0], dtype=bool)  # (A,)
    if ignore_iof_thr > 0 and gt_bboxes_ignore is not None and len(gt_bboxes_ignore):
        ignored = R.bbox_overlaps(a, gt_bboxes_ignore, mode="iof").max(axis=1) > ignore_iof_thr
    use = np.flatnonzero(~ignored)  # (A',): ignored anchors are never candidates
    level = np.repeat(np.arange(len(counts)), counts)  # (A,) level of each anchor
    use_counts = np.bincount(level[use], minlength=len(counts)).tolist()
    gt_of, iou_of = np.full(a.shape[0], -1), np.zeros(a.shape[0])  # (A,), (A,)
    if gt.shape[0] and use.size:
        au = a[use]  # (A', 4)
        diff = _centres(au)[None, :, :] - _centres(gt)[:, None, :]  # (G, A', 2)
        cand = candidates((diff**2).sum(axis=-1), use_counts, topk)  # (G, K), indices into au
        gt_rep = np.repeat(gt, cand.shape[1], axis=0)  # (G*K, 4)
        ious = R.bbox_overlaps(au[cand.reshape(-1)], gt_rep, is_aligned=True).reshape(cand.shape)
        pos = (ious >= threshold(ious)[:, None]) & inside(_centres(au[cand]), gt)  # (G, K)
        gt_of[use], iou_of[use] = resolve_positives(pos, cand, ious, use.size)
    gt_inds = np.where(ignored, -1, gt_of + 1).astype(np.int64)  # (A,)
    labels = None if gt_labels is None else np.full(a.shape[0], -1, dtype=np.int64)  # (A,)
    if labels is not None:
        labels[gt_of >= 0] = np.asarray(gt_labels, np.int64)[gt_of[gt_of >= 0]]
    return AssignResult(gt.shape[0], gt_inds, iou_of, labels)


def atss_biased_std(anchors: np.ndarray, num_level_anchors: Sequence[int],
                    gt_bboxes: np.ndarray, gt_labels: np.ndarray | None = None,
                    gt_bboxes_ignore: np.ndarray | None = None, topk: int = 9,
                    ignore_iof_thr: float = -1.0) -> AssignResult:  # fmt: skip
    """ATSS whose threshold is the mean plus the *biased* std (``np.std``'s default ``ddof=0``)."""

    def mean_plus_std(ious: np.ndarray) -> np.ndarray:  # (G, K) -> (G,)
        return ious.mean(axis=1) + ious.std(axis=1)  # the mistake: ddof=0

    return _atss(anchors, num_level_anchors, gt_bboxes, gt_labels, gt_bboxes_ignore, topk,
                 ignore_iof_thr, threshold=mean_plus_std)  # fmt: skip


def atss_candidates_over_all_levels(anchors: np.ndarray, num_level_anchors: Sequence[int],
                                    gt_bboxes: np.ndarray, gt_labels: np.ndarray | None = None,
                                    gt_bboxes_ignore: np.ndarray | None = None, topk: int = 9,
                                    ignore_iof_thr: float = -1.0) -> AssignResult:  # fmt: skip
    """ATSS taking the ``topk · L`` nearest anchors of all levels at once, not topk per level."""

    def all_levels(d2: np.ndarray, counts: list[int], topk: int) -> np.ndarray:  # (G, K)
        return nearest_k(d2, min(topk * len(counts), d2.shape[1]))  # the mistake: one pool

    return _atss(anchors, num_level_anchors, gt_bboxes, gt_labels, gt_bboxes_ignore, topk,
                 ignore_iof_thr, candidates=all_levels)  # fmt: skip


def atss_without_centre_test(anchors: np.ndarray, num_level_anchors: Sequence[int],
                             gt_bboxes: np.ndarray, gt_labels: np.ndarray | None = None,
                             gt_bboxes_ignore: np.ndarray | None = None, topk: int = 9,
                             ignore_iof_thr: float = -1.0) -> AssignResult:  # fmt: skip
    """ATSS without "the anchor's centre lies inside the gt": IoU ≥ threshold alone decides."""

    def anywhere(centres: np.ndarray, gt: np.ndarray) -> np.ndarray:  # (G, K) bool
        return np.ones(centres.shape[:2], dtype=bool)  # the mistake: no centre-inside test

    return _atss(anchors, num_level_anchors, gt_bboxes, gt_labels, gt_bboxes_ignore, topk,
                 ignore_iof_thr, inside=anywhere)  # fmt: skip


# --- NMS ---------------------------------------------------------------------------------------


def nms_suppresses_at_threshold(boxes: np.ndarray, scores: np.ndarray,
                                iou_threshold: float) -> np.ndarray:  # fmt: skip
    """Greedy NMS that suppresses at ``IoU >= t``: a box at exactly the threshold is lost.

    ``boxes (N, 4)``, ``scores (N,)`` → kept indices ``(K,)``.
    """
    _, b, s, _, t = check_nms_inputs(boxes, scores, iou_threshold)
    t, area = b.dtype.type(t), box_area(b)  # the IoU in the boxes' precision, as the reference
    remaining, keep = np.argsort(-s, kind="stable"), []  # best first, ties by index
    while remaining.size:
        best, remaining = remaining[0], remaining[1:]
        keep.append(best)
        iou = pair_iou(b, area, best, remaining)  # (R,)
        remaining = remaining[~(iou >= t)]  # the mistake: >=; SPEC suppresses only IoU > t
    return np.array(keep, dtype=np.int64)


def nms_not_sorted_by_score(boxes: np.ndarray, scores: np.ndarray,
                            iou_threshold: float) -> np.ndarray:  # fmt: skip
    """Greedy NMS that visits the boxes in input order instead of by descending score.

    ``boxes (N, 4)``, ``scores (N,)`` → kept indices ``(K,)``.
    """
    _, b, s, _, t = check_nms_inputs(boxes, scores, iou_threshold)
    t, area = b.dtype.type(t), box_area(b)
    remaining, keep = np.arange(s.shape[0]), []  # the mistake: not argsort(-s, kind="stable")
    while remaining.size:
        best, remaining = remaining[0], remaining[1:]
        keep.append(best)
        iou = pair_iou(b, area, best, remaining)  # (R,)
        remaining = remaining[~(iou > t)]
    return np.array(keep, dtype=np.int64)


def batched_nms_across_classes(
    boxes: np.ndarray, scores: np.ndarray, idxs: np.ndarray, iou_threshold: float,
    class_agnostic: bool = False,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """batched_nms as one plain NMS over all boxes: a box suppresses boxes of other classes.

    ``boxes (N, 4)``, ``scores (N,)``, ``idxs (N,)`` → ``(dets (K, 5), keep (K,))``.
    """
    keep = R.nms(boxes, scores, iou_threshold)  # (K,); the mistake: idxs is never used
    return detections(np.asarray(boxes, np.float64), np.asarray(scores, np.float64), keep), keep


def multiclass_nms_keeps_score_at_threshold(
    multi_bboxes: np.ndarray, multi_scores: np.ndarray, score_thr: float, iou_threshold: float,
    max_num: int = -1,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """multiclass_nms whose score filter keeps ``score >= score_thr`` (SPEC: strictly above).

    ``multi_bboxes (N, 4)`` or ``(N, 4C)``, ``multi_scores (N, C+1)`` →
    ``(dets (K, 5), labels (K,))``.
    """
    scores = np.asarray(multi_scores)[:, :-1]  # (N, C): the background column dropped
    n, per_row = scores.shape[0], np.shape(multi_bboxes)[1] // 4
    boxes = np.asarray(multi_bboxes).reshape(n, per_row, 4)  # (N, 1 or C, 4)
    rows, labels = np.nonzero(scores >= scores.dtype.type(score_thr))  # the mistake: >=
    pair_boxes = boxes[rows, labels if per_row > 1 else 0]  # (M, 4)
    dets, keep = R.batched_nms(pair_boxes, scores[rows, labels], labels, iou_threshold)
    if max_num > 0:
        dets, keep = dets[:max_num], keep[:max_num]
    return dets, labels[keep].astype(np.int64)


# --- the head's loss (torch: what autograd differentiates is the mistake) ----------------------


def _torch_head_loss(cls_scores: list[torch.Tensor], bbox_preds: list[torch.Tensor],
                     gt_bboxes: list[torch.Tensor], gt_labels: list[torch.Tensor],
                     img_metas: list[dict], cfg: GFLConfig, quality_of: Callable,
                     weight_of: Callable) -> dict[str, torch.Tensor]:  # fmt: skip
    """The GFL head's loss written plainly on :mod:`torch_impl` pieces, two steps swappable.

    ``quality_of(pred_boxes (P, 4), target_boxes (P, 4))`` gives the QFL score
    target ``(P,)`` of the positives, ``weight_of(cls_pos (P, C))`` the weights
    ``(P,)`` of their box losses. Returns ``loss_cls``, ``loss_bbox`` and
    ``loss_dfl``, 0-d tensors with the loss weights applied.
    """
    import torch

    import torch_impl as T
    from torch_impl.anchors import anchor_centers

    dtype = cls_scores[0].dtype
    sizes = [tuple(m.shape[-2:]) for m in cls_scores]
    t = T.gfl_targets(sizes, gt_bboxes, gt_labels, img_metas, cfg, dtype=dtype)
    cls = T.flatten_levels(cls_scores, dtype)  # (B, A, C)
    reg = T.flatten_levels(bbox_preds, dtype)  # (B, A, 4(n+1))
    c, k = cls.shape[-1], cfg.reg_max + 1
    pos = torch.nonzero(t.pos.reshape(-1)).reshape(-1)  # (P,) rows of the flat (B*A)
    anchor_of = pos % cls.shape[1]
    s = t.strides[anchor_of][:, None]  # (P, 1)
    centres = anchor_centers(t.anchors[anchor_of]) / s  # (P, 2), in grid units
    target_boxes = t.bbox_targets.reshape(-1, 4)[pos] / s  # (P, 4)
    reg_pos = reg.reshape(-1, 4 * k)[pos]  # (P, 4(n+1))
    pred_boxes = T.distance2bbox(centres, T.integral(reg_pos, cfg.reg_max))  # (P, 4)
    weight = weight_of(cls.reshape(-1, c)[pos])  # (P,)
    avg = weight.sum().clamp(min=1)
    loss_bbox = T.giou_loss(pred_boxes, target_boxes, weight=weight, avg_factor=avg)
    dfl_target = T.bbox2distance(centres, target_boxes, cfg.reg_max).reshape(-1)  # (4P,)
    loss_dfl = T.distribution_focal_loss(reg_pos.reshape(-1, k), dfl_target,
                                         weight=weight.repeat_interleave(4), avg_factor=4 * avg)
    score = torch.zeros(cls.shape[0] * cls.shape[1], dtype=dtype)  # (B*A,)
    score = score.index_put((pos,), quality_of(pred_boxes, target_boxes))
    loss_cls = T.quality_focal_loss(cls.reshape(-1, c), t.labels.reshape(-1), score,
                                    weight=t.label_weights.reshape(-1), beta=cfg.qfl_beta,
                                    avg_factor=t.num_total_samples.clamp(min=1))
    return {"loss_cls": cfg.loss_cls_weight * loss_cls,
            "loss_bbox": cfg.loss_bbox_weight * loss_bbox,
            "loss_dfl": cfg.loss_dfl_weight * loss_dfl}  # fmt: skip


def _iou(pred_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
    """Aligned IoU ``(P,)`` of ``(P, 4)`` boxes."""
    import torch_impl as T

    return T.bbox_overlaps(pred_boxes, target_boxes, is_aligned=True)


def _detached_iou(pred_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
    """The textbook quality target: the IoU of the *detached* predicted box. ``(P,)``."""
    return _iou(pred_boxes.detach(), target_boxes)


def _detached_max_score(cls_pos: torch.Tensor) -> torch.Tensor:
    """The textbook weight: the highest class probability, detached. ``(P, C)`` → ``(P,)``."""
    return cls_pos.detach().sigmoid().amax(dim=1)


def gfl_loss_quality_not_detached(cls_scores: list[torch.Tensor], bbox_preds: list[torch.Tensor],
                                  gt_bboxes: list[torch.Tensor], gt_labels: list[torch.Tensor],
                                  img_metas: list[dict], cfg: GFLConfig) -> dict:  # fmt: skip
    """The head's loss with the QFL target ``IoU(predicted box, gt)`` taken on the live box.

    Per-level lists of tensors, as :func:`torch_impl.gfl_loss` → dict of 0-d losses.
    """
    return _torch_head_loss(cls_scores, bbox_preds, gt_bboxes, gt_labels, img_metas, cfg,
                            quality_of=_iou,  # the mistake: not _detached_iou
                            weight_of=_detached_max_score)  # fmt: skip


def gfl_loss_weight_not_detached(cls_scores: list[torch.Tensor], bbox_preds: list[torch.Tensor],
                                 gt_bboxes: list[torch.Tensor], gt_labels: list[torch.Tensor],
                                 img_metas: list[dict], cfg: GFLConfig) -> dict:  # fmt: skip
    """The head's loss with the box losses weighted by a *live* ``sigmoid(cls).max()``.

    Per-level lists of tensors, as :func:`torch_impl.gfl_loss` → dict of 0-d losses.
    """

    def max_score(cls_pos: torch.Tensor) -> torch.Tensor:  # (P, C) -> (P,)
        return cls_pos.sigmoid().amax(dim=1)  # the mistake: no .detach()

    return _torch_head_loss(cls_scores, bbox_preds, gt_bboxes, gt_labels, img_metas, cfg,
                            quality_of=_detached_iou, weight_of=max_score)  # fmt: skip


# --- the catalogue -------------------------------------------------------------------------

_M = Mistake

#: Every catalogued mistake, in the order of the pieces.
MISTAKES: tuple[Mistake, ...] = (
    _M("integral_softmax_over_sides", "integral",
       "The logits are reshaped to (N, 4, n+1) but the softmax runs over dim=1, the four "
       "sides, instead of over each side's n+1 bins: nothing is a distribution any more.",
       forward=integral_softmax_over_sides, array_type="torch"),
    _M("integral_unshifted_softmax", "integral",
       "softmax written as exp(x) / sum(exp(x)) without subtracting the max: exp overflows "
       "to inf above x ≈ 709 (underflows to 0 far below) and the distance is NaN.",
       forward=integral_unshifted_forward, backward=R.integral_backward),
    _M("qfl_log_eps", "qfl",
       "BCE written as -(y log(σ + eps) + (1 - y) log(1 - σ + eps)) instead of from logits: "
       "once σ rounds to 1 the loss saturates at -log(eps) and its gradient vanishes.",
       forward=qfl_log_eps, array_type="torch"),
    _M("qfl_without_abs", "qfl",
       "The modulating factor written (y - σ)^β without abs(): harmless at β = 2, but for any "
       "other β it is negative (β = 1) or NaN (fractional β) wherever σ > y.",
       forward=qfl_without_abs, array_type="torch"),
    _M("qfl_factor_gradient_dropped", "qfl",
       "A hand-written backward that treats |y - σ|^β as a constant (as if detached): the "
       "term β·BCE·|y - σ|^(β-1)·sign(σ - y)·σ(1 - σ) of the product rule is missing.",
       forward=R.qfl_forward, backward=qfl_backward_factor_dropped),
    _M("dfl_weights_swapped", "dfl",
       "The two DFL weights swapped, CE(l)·(y - l) + CE(r)·(r - y): the loss pulls the "
       "distribution towards the *farther* bin, so the decoded distance moves away from y.",
       forward=dfl_weights_swapped_forward, backward=R.dfl_backward),
    _M("dfl_log_of_softmax", "dfl",
       "DFL as -log(softmax(pred)[bin]) instead of a log-softmax: a probability that "
       "underflows to 0 gives log 0 = -inf, an infinite loss or 0·(-inf) = NaN.",
       forward=dfl_log_of_softmax_forward, backward=R.dfl_backward),
    _M("giou_loss_without_enclosing_box", "giou_loss",
       "'GIoU' computed as 1 - I/U with the enclosing-box term left out: that is the IoU "
       "loss, constant 1 (zero gradient) for every pair of disjoint boxes.",
       forward=giou_loss_without_enclosing_box, array_type="torch"),
    _M("distance2bbox_clamp_keeps_gradient", "distance2bbox",
       "The forward clamps the decoded box to the image but the hand-written backward "
       "passes the gradient through every coordinate, clamped or not.",
       forward=R.distance2bbox_forward, backward=distance2bbox_backward_through_clamp),
    _M("distance2bbox_clamp_mask_excludes_bounds", "distance2bbox",
       "The clamp's mask written 0 < x < w instead of 0 <= x <= w: a coordinate exactly on "
       "the image border loses its gradient, which torch.clamp (and SPEC) let through.",
       forward=distance2bbox_strict_mask_forward, backward=R.distance2bbox_backward),
    _M("weight_reduce_ignores_avg_factor", "weight_reduce",
       "avg_factor accepted but never used: 'mean' divides by the number of elements (all "
       "anchors) instead of by the number of positives, shrinking the loss by orders of magnitude.",
       forward=weight_reduce_ignoring_avg_factor_forward, backward=R.weight_reduce_backward),
    _M("iou_plus_one", "bbox_overlaps",
       "IoU with the old Pascal VOC '+1 pixel' convention, width = x2 - x1 + 1: every IoU is "
       "off, most for small boxes (mmdetection 2.x dropped the offset).",
       fn=iou_plus_one),
    _M("bbox2distance_clamped_to_max_dis", "bbox2distance",
       "DFL targets clamped to [0, n] instead of [0, n - 0.1]: a target of exactly n needs "
       "bin n + 1, which does not exist (mmdetection raises an IndexError).",
       fn=bbox2distance_clamped_to_max_dis),
    _M("bbox2distance_not_clamped", "bbox2distance",
       "max_dis ignored: a gt side farther than n strides from the anchor gives a DFL target "
       "beyond the last bin (and a point outside its box a negative one).",
       fn=bbox2distance_not_clamped),
    _M("grid_anchors_at_cell_centres", "grid_anchors",
       "Anchors centred at the cell's centre ((j + ½)s, (i + ½)s), the center_offset=0.5 "
       "habit, while the GFL config puts them at the cell's corner (js, is).",
       fn=grid_anchors_at_cell_centres),
    _M("atss_biased_std", "atss_assign",
       "The ATSS threshold computed with np.std's default ddof=0 (torch's std is unbiased): "
       "the threshold is a little lower and, now and then, an extra anchor becomes positive.",
       fn=atss_biased_std),
    _M("atss_candidates_over_all_levels", "atss_assign",
       "Candidates taken as the topk·L nearest anchors over all levels at once instead of "
       "topk per level: the finest level, densest near the gt, takes most of the candidates.",
       fn=atss_candidates_over_all_levels),
    _M("atss_without_centre_test", "atss_assign",
       "The test 'the anchor's centre lies inside the gt' left out: anchors whose centre is "
       "outside a gt become its positives, with distance targets clamped to 0 on that side.",
       fn=atss_without_centre_test),
    _M("nms_suppresses_at_threshold", "nms",
       "NMS that suppresses at IoU >= t: SPEC (and mmcv) suppress only above t, so a box "
       "whose IoU with a kept box is exactly t is wrongly dropped.",
       fn=nms_suppresses_at_threshold),
    _M("nms_not_sorted_by_score", "nms",
       "Greedy NMS that visits the boxes in input order: a low-scoring box early in the list "
       "suppresses the better box that overlaps it.",
       fn=nms_not_sorted_by_score),
    _M("batched_nms_across_classes", "batched_nms",
       "Per-class NMS done as one plain NMS over all boxes: a person suppresses the bicycle "
       "it rides.",
       fn=batched_nms_across_classes),
    _M("multiclass_nms_keeps_score_at_threshold", "multiclass_nms",
       "The score filter written score >= score_thr: SPEC keeps only scores strictly above "
       "it, so a detection scored exactly score_thr must be dropped.",
       fn=multiclass_nms_keeps_score_at_threshold),
    _M("gfl_loss_quality_not_detached", "gfl_loss",
       "The QFL target IoU(predicted box, gt) computed without .detach(): the classification "
       "loss now pushes the box branch towards boxes that are easy to score, not right.",
       forward=gfl_loss_quality_not_detached, array_type="torch"),
    _M("gfl_loss_weight_not_detached", "gfl_loss",
       "The box losses weighted by sigmoid(cls).max() without .detach(): the classifier can "
       "now lower the box loss by scoring down the positives whose boxes are hard.",
       forward=gfl_loss_weight_not_detached, array_type="torch"),
)  # fmt: skip


def mistake(name: str) -> Mistake:
    """The catalogued mistake called ``name``.

    Raises
    ------
    ValueError
        If no mistake has that name.
    """
    for m in MISTAKES:
        if m.name == name:
            return m
    raise ValueError(f"name must be one of {[m.name for m in MISTAKES]}, got {name!r}")
