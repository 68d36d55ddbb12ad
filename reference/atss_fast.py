r"""NumPy only: the fast path of :mod:`reference.atss`, tested against it.

:func:`atss_assign_fast` takes the same arguments, runs the same steps and the
same validation (:func:`reference.atss.assign_with`) and returns the same
:class:`~reference.atss.AssignResult`, bit for bit, as
:func:`reference.atss.atss_assign`; two of its steps are replaced by faster
forms of the same function, each tested against its textbook form
(``tests/test_atss.py``). Read :mod:`reference.atss` to learn ATSS; this module
exists for speed. :func:`reference.gfl_targets` uses it.

Why it exists: the textbook's candidate search (:func:`reference.atss.nearest_k`)
sorts every gt's distances to all the anchors of a level, 17 000 of them on the
first level of an 800x1333 image, to keep 9; and its resolution of the positives
(:func:`reference.atss.resolve_positives`) builds a gt x anchor table to look at
a few hundred entries. Together they took two thirds of ``gfl_targets``' time.

* :func:`nearest_k_fast` finds the :math:`k`-th smallest distance of each row by
  a partial sort (``np.partition``, linear time), takes every column below it
  and, among the columns equal to it, the lowest-indexed ones: the stable sort's
  first :math:`k`, without sorting.
* :func:`resolve_positives_fast` sorts the positive (gt, anchor) pairs by anchor,
  then by decreasing IoU, then by gt, and keeps each anchor's first pair: the
  table's ``argmax`` over gts, without the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .atss import AssignResult, assign_with, nearest_k

__all__ = ["nearest_k_fast", "resolve_positives_fast", "atss_assign_fast"]


def nearest_k_fast(d2: np.ndarray, k: int) -> np.ndarray:
    """:func:`reference.atss.nearest_k` (the same columns, in increasing order)."""
    g, n = d2.shape
    if k == 0 or k >= n:
        return nearest_k(d2, k)  # nothing, or every column
    kth = np.partition(d2, k - 1, axis=1)[:, k - 1 : k]  # (G, 1): the k-th smallest distance
    below = d2 < kth
    tied = d2 == kth
    room = k - below.sum(axis=1, keepdims=True)  # (G, 1): tied columns to take, lowest first
    take = below | (tied & (np.cumsum(tied, axis=1) <= room))  # (G, n), k per row
    if not np.all(take.sum(axis=1) == k):  # a NaN distance: the stable sort decides
        return nearest_k(d2, k)
    return np.nonzero(take)[1].reshape(g, k).astype(np.int64, copy=False)  # columns ascending


def resolve_positives_fast(
    pos: np.ndarray, cand: np.ndarray, ious: np.ndarray, num_anchors: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`reference.atss.resolve_positives` (the same ``gt_of`` and ``iou_of``)."""
    gt, j = np.nonzero(pos)  # the positive (gt, candidate) pairs
    anchor, iou = cand[gt, j], ious[gt, j]
    order = np.lexsort((gt, -iou, anchor))  # by anchor, then highest IoU, then lowest gt
    anchor, gt, iou = anchor[order], gt[order], iou[order]
    first = np.ones(anchor.size, dtype=bool)  # each anchor's first pair
    first[1:] = anchor[1:] != anchor[:-1]
    gt_of = np.full(num_anchors, -1, dtype=np.int64)
    iou_of = np.zeros(num_anchors)
    gt_of[anchor[first]] = gt[first]
    iou_of[anchor[first]] = iou[first]
    return gt_of, iou_of


def atss_assign_fast(
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
    """:func:`reference.atss.atss_assign`, with :func:`nearest_k_fast` and
    :func:`resolve_positives_fast` (the same result)."""
    return assign_with(
        nearest_k_fast, resolve_positives_fast, anchors, num_level_anchors, gt_bboxes,
        gt_labels, gt_bboxes_ignore, topk, ignore_iof_thr, std_ddof,
    )  # fmt: skip
