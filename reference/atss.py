r"""ATSS: Adaptive Training Sample Selection (the GFL head's assigner).

For every gt, the candidates are, on each level, the ``min(topk, n_level)``
anchors whose centres are nearest to the gt's centre. The gt's IoU threshold
is the mean plus the (unbiased) standard deviation of its candidates' IoUs; a
candidate is positive iff its IoU reaches the threshold and its centre lies
inside the gt by more than 0.01 px on every side. An anchor positive for
several gts goes to the one with the highest IoU (lowest index on a tie).

Its PyTorch twin is :mod:`torch_impl.atss`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from .boxes import bbox_overlaps
from .validation import as_float, as_int, check_choice, check_scalar

__all__ = ["AssignResult", "nearest_k", "atss_assign"]

INSIDE_EPS = 0.01


class AssignResult(NamedTuple):
    """The result of an assignment.

    Attributes
    ----------
    num_gts : int
        Number of gts G (a ``(B,)`` tensor for a batched assignment).
    gt_inds : ndarray, shape (A,), int64
        0 = negative, -1 = ignored, k >= 1 = assigned to gt k-1.
    max_overlaps : ndarray, shape (A,)
        IoU with the assigned gt where positive, 0 elsewhere.
    labels : ndarray, shape (A,), int64, or None
        The assigned gt's label where positive, -1 elsewhere; None when no
        ``gt_labels`` were given.

    See Also
    --------
    torch_impl.AssignResult : the PyTorch twin.
    """

    num_gts: int
    gt_inds: np.ndarray
    max_overlaps: np.ndarray
    labels: np.ndarray | None


def check_num_level_anchors(num_level_anchors: object, num_anchors: int) -> list[int]:
    """Validate per-level anchor counts (ints >= 0 summing to ``A``); return them as ints."""
    raw = np.asarray(num_level_anchors)
    if raw.size == 0 and raw.dtype != bool:
        raw = raw.astype(np.int64)  # [] (no levels) comes out as float64
    counts = as_int(raw, "num_level_anchors", (None,))
    if counts.size and counts.min() < 0:
        raise ValueError(f"num_level_anchors must be >= 0, got {counts.tolist()}")
    if int(counts.sum()) != num_anchors:
        raise ValueError(
            f"num_level_anchors must sum to the number of anchors A={num_anchors}, "
            f"got {counts.tolist()} (sum {int(counts.sum())})"
        )
    return [int(c) for c in counts]


def nearest_k(d2: np.ndarray, k: int) -> np.ndarray:
    r"""Column indices of the ``k`` smallest entries of each row, ties to the lower index.

    Parameters
    ----------
    d2 : ndarray, shape (G, n)
        Squared distances.
    k : int
        ``0 <= k <= n``.

    Returns
    -------
    ndarray, shape (G, k), int64
        The selected columns of each row, in increasing column order.

    See Also
    --------
    torch_impl.atss.nearest_k : the PyTorch twin.

    See Also
    --------
    torch_impl.nearest_k : the PyTorch twin, differentiated by autograd.

    Notes
    -----
    A stable sort of each row, cut after ``k``: equal distances keep their
    column order, so a tie goes to the lower index (mmdetection's ``topk``
    breaks ties arbitrarily).
    """
    order = np.argsort(d2, axis=1, kind="stable")  # (G, n), nearest first
    return np.sort(order[:, :k], axis=1).astype(np.int64)  # (G, k)


def candidate_stats(ious: np.ndarray, ddof: int = 1) -> np.ndarray:
    r"""Per-gt ATSS threshold :math:`\mu + \sigma` of the candidates' IoUs.

    Parameters
    ----------
    ious : ndarray, shape (G, K)
        IoU of each gt's ``K`` candidates.
    ddof : {1, 0}
        1: :math:`\sigma` unbiased (``torch.std``); 0: biased (``np.std``).

    Returns
    -------
    ndarray, shape (G,)
        :math:`\mu_g + \sigma_g`; ``+inf`` when ``K <= ddof`` (no standard
        deviation: no positives).

    Notes
    -----
    .. math::
        \mu = \frac{1}{K}\sum_k u_k, \qquad
        \sigma = \sqrt{\frac{1}{K-\mathrm{ddof}}\sum_k (u_k - \mu)^2}.

    The sums run sequentially over ``k`` (``cumsum``), so that
    :mod:`torch_impl` reproduces them bit for bit on the CPU.
    """
    g, k = ious.shape
    if k <= ddof:
        return np.full(g, np.inf)
    mean = np.cumsum(ious, axis=1)[:, -1] / k  # (G,)
    dev = ious - mean[:, None]  # (G, K)
    var = np.cumsum(dev * dev, axis=1)[:, -1] / (k - ddof)  # (G,)
    return mean + np.sqrt(var)


def resolve_positives(
    pos: np.ndarray, cand: np.ndarray, ious: np.ndarray, num_anchors: int
) -> tuple[np.ndarray, np.ndarray]:
    """Give every anchor that is positive for some gt the gt of highest IoU (lowest index on a tie).

    Parameters
    ----------
    pos : ndarray, shape (G, K), bool
    cand : ndarray, shape (G, K), int
        Anchor index of each candidate.
    ious : ndarray, shape (G, K)
    num_anchors : int

    Returns
    -------
    gt_of : ndarray, shape (A,), int64
        Assigned gt index, -1 where the anchor is positive for no gt.
    iou_of : ndarray, shape (A,)
        IoU with that gt, 0 elsewhere.
    """
    g = pos.shape[0]
    if g == 0:
        return np.full(num_anchors, -1, dtype=np.int64), np.zeros(num_anchors)
    dense = np.full((g, num_anchors), -np.inf)  # (G, A): IoU where positive for that gt
    rows = np.broadcast_to(np.arange(g)[:, None], pos.shape)  # (G, K)
    dense[rows[pos], cand[pos]] = ious[pos]
    best = dense.argmax(axis=0)  # (A,): the first (lowest-index) gt of highest IoU
    best_iou = dense.max(axis=0)  # (A,)
    assigned = best_iou > -np.inf
    gt_of = np.where(assigned, best, -1).astype(np.int64)
    iou_of = np.where(assigned, best_iou, 0.0)
    return gt_of, iou_of


def atss_assign(
    anchors: np.ndarray,
    num_level_anchors: Sequence[int],
    gt_bboxes: np.ndarray,
    gt_labels: np.ndarray | None = None,
    gt_bboxes_ignore: np.ndarray | None = None,
    topk: int = 9,
    ignore_iof_thr: float = -1.0,
    *,
    std_ddof: int = 1,
) -> AssignResult:
    r"""Assign anchors to gts with ATSS (mmdetection's ``ATSSAssigner``).

    Parameters
    ----------
    anchors : ndarray, shape (A, 4)
        The image's (valid) anchors, levels concatenated.
    num_level_anchors : sequence of int, length L
        Number of anchors of each level; sums to ``A``.
    gt_bboxes : ndarray, shape (G, 4)
        Ground-truth boxes.
    gt_labels : ndarray, shape (G,), int, optional
        Their labels.
    gt_bboxes_ignore : ndarray, shape (I, 4), optional
        Boxes whose overlapped anchors are ignored (when ``ignore_iof_thr > 0``).
    topk : int
        Candidates per level and gt (fewer when a level has fewer anchors).
    ignore_iof_thr : float
        An anchor whose IoF with an ignore box exceeds this is ignored; ``<= 0``
        disables ignoring (the GFL config uses -1).
    std_ddof : {1, 0}
        A dialect switch (:mod:`reference.dialects`): the threshold's standard
        deviation is unbiased (1, ``torch.std``, every implementation we read)
        or biased (0, ``np.std``, a common porting slip).

    Returns
    -------
    AssignResult
        ``num_gts = G``; ``gt_inds (A,)``, ``max_overlaps (A,)``, ``labels (A,)``
        (None without ``gt_labels``).

    See Also
    --------
    torch_impl.atss_assign : the PyTorch twin.

    Notes
    -----
    With :math:`c_a` the centre of anchor :math:`a` and :math:`c_g` of gt
    :math:`g`, the candidates :math:`\mathcal{C}_g` are, on every level, the
    :math:`\min(k, n_\ell)` anchors of smallest :math:`\|c_a - c_g\|` (ties: lower
    index), over all levels together :math:`K` anchors. With
    :math:`u_{ag} = \mathrm{IoU}(a, g)`,

    .. math::
        t_g = \mu_g + \sigma_g, \quad
        \mu_g = \tfrac{1}{K}\textstyle\sum_{a \in \mathcal{C}_g} u_{ag}, \quad
        \sigma_g = \sqrt{\tfrac{1}{K-1}\textstyle\sum_{a \in \mathcal{C}_g} (u_{ag} - \mu_g)^2},

    and :math:`a \in \mathcal{C}_g` is positive for :math:`g` iff
    :math:`u_{ag} \ge t_g` and :math:`\min(c_x - x_1, c_y - y_1, x_2 - c_x, y_2 - c_y) > 0.01`.
    A gt with a single candidate has no :math:`\sigma` and no positives.
    Anchors whose IoF with an ignore box exceeds ``ignore_iof_thr`` get -1 and
    are never candidates (so a level's candidates are its nearest non-ignored
    anchors). With no gts every anchor is negative.

    Ranking by the squared distance is ranking by the distance. IoUs are only
    computed for the :math:`G \cdot K` candidate pairs. The same assignment, faster:
    :func:`reference.atss_fast.atss_assign_fast` (what :func:`reference.gfl_targets` runs).
    """
    return assign_with(
        nearest_k, resolve_positives, anchors, num_level_anchors, gt_bboxes, gt_labels,
        gt_bboxes_ignore, topk, ignore_iof_thr, std_ddof,
    )  # fmt: skip


def assign_with(
    nearest: Callable[[np.ndarray, int], np.ndarray],
    resolve: Callable[..., tuple[np.ndarray, np.ndarray]],
    anchors: np.ndarray,
    num_level_anchors: Sequence[int],
    gt_bboxes: np.ndarray,
    gt_labels: np.ndarray | None,
    gt_bboxes_ignore: np.ndarray | None,
    topk: int,
    ignore_iof_thr: float,
    std_ddof: int,
) -> AssignResult:
    """The steps of :func:`atss_assign`, with two of them given: ``nearest`` picks each
    gt's candidates on a level (:func:`nearest_k`) and ``resolve`` gives each anchor its
    gt (:func:`resolve_positives`). :mod:`reference.atss_fast` passes its fast forms."""
    dims: dict[str, int] = {}
    a = as_float(anchors, "anchors", ("A", 4), dims, finite=True)
    gt = as_float(gt_bboxes, "gt_bboxes", ("G", 4), dims, finite=True)
    counts = check_num_level_anchors(num_level_anchors, a.shape[0])
    labels_in = None if gt_labels is None else as_int(gt_labels, "gt_labels", ("G",), dims)
    topk = check_scalar(topk, "topk", low=1, integer=True)
    ddof = check_choice(std_ddof, "std_ddof", (1, 0))
    ignore_iof_thr = check_scalar(ignore_iof_thr, "ignore_iof_thr")
    ign = None
    if gt_bboxes_ignore is not None:
        ign = as_float(gt_bboxes_ignore, "gt_bboxes_ignore", (None, 4), finite=True)

    num_anchors, num_gts = a.shape[0], gt.shape[0]
    gt_inds = np.zeros(num_anchors, dtype=np.int64)
    max_overlaps = np.zeros(num_anchors)
    labels = None if labels_in is None else np.full(num_anchors, -1, dtype=np.int64)
    if num_gts == 0 or num_anchors == 0:
        return AssignResult(num_gts, gt_inds, max_overlaps, labels)

    ignored = np.zeros(num_anchors, dtype=bool)
    if ignore_iof_thr > 0 and ign is not None and ign.shape[0] > 0:
        ignored = bbox_overlaps(a, ign, mode="iof").max(axis=1) > ignore_iof_thr  # (A,)
        gt_inds[ignored] = -1

    centres = np.stack([(a[:, 0] + a[:, 2]) / 2.0, (a[:, 1] + a[:, 3]) / 2.0], axis=1)  # (A, 2)
    gt_c = np.stack([(gt[:, 0] + gt[:, 2]) / 2.0, (gt[:, 1] + gt[:, 3]) / 2.0], axis=1)  # (G, 2)

    cand_levels = []
    start = 0
    for n in counts:
        usable = np.flatnonzero(~ignored[start : start + n]) + start  # (n',)
        if usable.size:
            dx = centres[usable, 0][None, :] - gt_c[:, 0:1]  # (G, n')
            dy = centres[usable, 1][None, :] - gt_c[:, 1:2]  # (G, n')
            cand_levels.append(usable[nearest(dx * dx + dy * dy, min(topk, usable.size))])
        start += n
    cand = np.concatenate(cand_levels, axis=1) if cand_levels else np.empty((num_gts, 0), np.int64)
    k = cand.shape[1]  # (G, K)
    if k == 0:
        return AssignResult(num_gts, gt_inds, max_overlaps, labels)

    gt_rep = np.repeat(gt, k, axis=0)  # (G*K, 4), row g*K + j is gt g
    ious = bbox_overlaps(a[cand.reshape(-1)], gt_rep, is_aligned=True).reshape(num_gts, k)  # (G, K)
    thr = candidate_stats(ious, ddof)  # (G,)

    cc = centres[cand]  # (G, K, 2)
    inside = np.minimum(
        np.minimum(cc[..., 0] - gt[:, 0:1], cc[..., 1] - gt[:, 1:2]),
        np.minimum(gt[:, 2:3] - cc[..., 0], gt[:, 3:4] - cc[..., 1]),
    )  # (G, K)
    pos = (ious >= thr[:, None]) & (inside > INSIDE_EPS)  # (G, K)

    gt_of, iou_of = resolve(pos, cand, ious, num_anchors)
    assigned = gt_of >= 0
    gt_inds[assigned] = gt_of[assigned] + 1
    max_overlaps[assigned] = iou_of[assigned]
    if labels is not None:
        labels[assigned] = labels_in[gt_of[assigned]]
    return AssignResult(num_gts, gt_inds, max_overlaps, labels)
