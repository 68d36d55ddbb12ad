r"""NumPy only: the fast path of :mod:`reference.nms`, tested against it.

:func:`nms_fast`, :func:`batched_nms_fast` and :func:`multiclass_nms_fast`
take the same arguments, run the same validation (imported from
:mod:`reference.nms`) and return the same arrays, bit for bit, as
:func:`reference.nms.nms`, :func:`~reference.nms.batched_nms` and
:func:`~reference.nms.multiclass_nms`; ``tests/test_nms.py`` checks that on
Hypothesis inputs built at the decision boundaries and on the mmdetection
goldens. Read :mod:`reference.nms` to learn NMS; this module exists for speed.

Why it exists: the textbook loop takes one Python step per kept box, each
over all remaining boxes, so its cost grows with :math:`K N` and with the
interpreter's overhead per step (about a second for ``multiclass_nms`` of
1000 boxes x 80 classes). This path computes the same thing without a Python
loop over boxes, at about the speed of mmcv's compiled op (``make bench``
times both; ``docs/fast_paths.md`` has the numbers):

1. *Suppression edges.* Only pairs with IoU > t matter. Sorting the boxes by
   :math:`x_1` and sweeping finds every pair whose x-extents can overlap
   enough (see :func:`overlap_edges`); the exact IoU
   (:func:`reference.nms.pair_iou`, the same expression as the textbook's) is
   evaluated on those pairs only.
2. *Greedy resolution.* With the edges directed from the higher-ranked box
   to the lower-ranked one, greedy NMS is the unique fixed point of
   :math:`\mathrm{keep}_j = \lnot \exists i \to j: \mathrm{keep}_i`; iterating
   from "keep everything" reaches it (Cluster-NMS), see :func:`greedy_keep`.
3. *Early stop* (:func:`multiclass_nms_fast` with ``max_num > 0``): NMS of the
   best-ranked prefix of candidates is exact for that prefix, so the prefix
   grows only until it keeps ``max_num`` pairs.
"""

from __future__ import annotations

import numpy as np

from .nms import (
    Candidates,
    box_area,
    check_nms_inputs,
    detections,
    multiclass_candidates,
    pair_iou,
)

__all__ = [
    "batched_nms_fast",
    "greedy_keep",
    "grouped_edges",
    "multiclass_nms_fast",
    "nms_fast",
    "overlap_edges",
]

MAX_CLUSTER_ITERS = 32
_PAIR_CHUNK = 1 << 21


def _x_window(b: np.ndarray, iou_threshold: float) -> np.ndarray:
    r"""Largest :math:`x_1` that a box further right can have and still exceed the threshold.

    Notes
    -----
    For :math:`x_{1j} \ge x_{1i}`, :math:`I \le (x_{2i} - x_{1j}) h_i` and the union is
    at least :math:`w_i h_i`, so :math:`\mathrm{IoU} > t` needs
    :math:`x_{1j} < x_{1i} + (1 - t) w_i`. The window adds :math:`10^{-3} w_i`
    (far more than the rounding of a float32 IoU, :math:`\approx 14 \cdot 2^{-24} w_i`)
    and a float64 slack, so no pair is ever missed.
    """
    x1 = b[:, 0].astype(np.float64)
    x2 = b[:, 2].astype(np.float64)
    width = np.maximum(x2 - x1, 0.0)
    slack = 1e-12 * (np.abs(x1) + np.abs(x2))
    return x1 + (1.0 - iou_threshold + 1e-3) * width + slack  # (N,)


def _candidate_runs(b: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The x-sorted order and, for each sorted box, how many boxes to its right can overlap it.

    Returns
    -------
    order : ndarray, shape (N,), int
        Box indices sorted by :math:`x_1` (stable).
    cnt : ndarray, shape (N,), int
        Sorted box ``r`` may exceed the threshold only with sorted boxes
        ``r + 1 .. r + cnt[r]``.
    """
    n = b.shape[0]
    order = np.argsort(b[:, 0], kind="stable")  # (N,)
    xs = b[order, 0]
    lim = _x_window(b[order], iou_threshold)
    hi = np.minimum(
        np.searchsorted(xs, b[order, 2], side="left"), np.searchsorted(xs, lim, side="right")
    )  # (N,) partners of sorted box r are r+1 .. hi[r]-1
    return order, np.maximum(hi - np.arange(1, n + 1), 0)


def overlap_edges(b: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    r"""All pairs of boxes whose IoU exceeds the threshold.

    Parameters
    ----------
    b : ndarray, shape (N, 4)
        Boxes in their working precision.
    iou_threshold : float
        In [0, 1].

    Returns
    -------
    i, j : ndarray, shape (E,), int64
        Each unordered pair with :math:`\mathrm{IoU} > t` once.

    Notes
    -----
    A pair can only exceed :math:`t \ge 0` if its intersection is positive.
    With the boxes sorted by :math:`x_1`, the partners of box :math:`i` that
    lie to its right are a contiguous run: those with
    :math:`x_{1j} < x_{2i}` and inside :func:`_x_window`; ``searchsorted``
    finds the run's end (:func:`_candidate_runs`). The runs are expanded into
    pair lists (in chunks of about two million pairs), filtered on a positive
    y-overlap, and the exact IoU (:func:`reference.nms.pair_iou`) decides.
    """
    n = b.shape[0]
    empty = np.empty(0, dtype=np.int64)
    if n < 2:
        return empty, empty
    thr = b.dtype.type(iou_threshold)
    area = box_area(b)  # (N,)
    order, cnt = _candidate_runs(b, iou_threshold)  # (N,), (N,)
    ends = np.cumsum(cnt)  # (N,)
    out_i, out_j = [], []
    start = 0
    while start < n:
        base = ends[start] - cnt[start]
        stop = max(start + 1, int(np.searchsorted(ends, base + _PAIR_CHUNK, side="right")))
        c = cnt[start:stop]
        total = int(ends[stop - 1] - base)
        if total:
            r = np.repeat(np.arange(start, stop), c)  # (P,)
            offset = np.arange(total) - np.repeat(np.cumsum(c) - c, c)  # (P,) 0..c_r-1
            i, j = order[r], order[r + 1 + offset]  # (P,), (P,)
            y_ok = np.minimum(b[i, 3], b[j, 3]) > np.maximum(b[i, 1], b[j, 1])
            i, j = i[y_ok], j[y_ok]
            hit = pair_iou(b, area, i, j) > thr  # NaN compares False
            out_i.append(i[hit])
            out_j.append(j[hit])
        start = stop
    if not out_i:
        return empty, empty
    return np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64)


def grouped_edges(
    b: np.ndarray, groups: np.ndarray | None, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`overlap_edges` within each group (all boxes one group when ``groups`` is None).

    Parameters
    ----------
    b : ndarray, shape (N, 4)
    groups : ndarray, shape (N,), int, or None
    iou_threshold : float

    Returns
    -------
    i, j : ndarray, shape (E,), int64
        Pairs of the same group with IoU above the threshold.
    """
    if groups is None:
        return overlap_edges(b, iou_threshold)
    order = np.argsort(groups, kind="stable")  # (N,)
    cuts = np.flatnonzero(np.diff(groups[order])) + 1
    out_i, out_j = [], []
    for members in np.split(order, cuts):  # one group at a time
        if members.size > 1:
            i, j = overlap_edges(b[members], iou_threshold)
            out_i.append(members[i])
            out_j.append(members[j])
    if not out_i:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(out_i), np.concatenate(out_j)


def greedy_keep(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    r"""Greedy NMS on ranks ``0..n-1`` given the suppression edges ``src -> dst``.

    Parameters
    ----------
    n : int
        Number of boxes, ranked by descending score.
    src, dst : ndarray, shape (E,), int
        Rank ``src[e] < dst[e]``: box ``src[e]`` suppresses ``dst[e]`` if kept.

    Returns
    -------
    ndarray, shape (n,), bool
        Which ranks greedy NMS keeps.

    Notes
    -----
    Greedy NMS is the unique solution of
    :math:`k_j = \lnot \bigvee_{i \to j} k_i` (by induction over the ranks).
    Cluster-NMS iterates :math:`k^{(t+1)}_j = \lnot \bigvee_{i \to j} k^{(t)}_i`
    from :math:`k^{(0)} = 1`: after :math:`t` steps the first :math:`t` ranks are
    final, and a repeated :math:`k` is the solution. Usually a handful of
    steps suffice; a long suppression chain falls back to one sequential pass
    over the boxes that suppress something.
    """
    keep = np.ones(n, dtype=bool)
    if src.size == 0:
        return keep
    for _ in range(MAX_CLUSTER_ITERS):
        new = np.ones(n, dtype=bool)
        new[dst[keep[src]]] = False
        if np.array_equal(new, keep):
            return keep
        keep = new
    order = np.argsort(src, kind="stable")  # sequential fallback, CSR by source rank
    src_s, dst_s = src[order], dst[order]
    starts = np.flatnonzero(np.r_[True, src_s[1:] != src_s[:-1]])
    stops = np.r_[starts[1:], src_s.size]
    keep = np.ones(n, dtype=bool)
    for a, z in zip(starts, stops):
        if keep[src_s[a]]:
            keep[dst_s[a:z]] = False
    return keep


def _keep_by_edges(
    b: np.ndarray, scores: np.ndarray, groups: np.ndarray | None, iou_threshold: float
) -> np.ndarray:
    """Kept indices (by descending score) of per-group greedy NMS; inputs already checked."""
    n = b.shape[0]
    order = np.argsort(-scores, kind="stable")  # (N,) rank -> index
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)  # index -> rank
    i, j = grouped_edges(b, groups, iou_threshold)
    ri, rj = rank[i], rank[j]
    keep = greedy_keep(n, np.minimum(ri, rj), np.maximum(ri, rj))
    return order[keep]


def nms_fast(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """:func:`reference.nms.nms`, computed by x-sorted sweep + Cluster-NMS.

    Same parameters, validation and result (kept indices, shape (K,), int64).
    """
    _, b, s, _, thr = check_nms_inputs(boxes, scores, iou_threshold)
    return _keep_by_edges(b, s, None, thr)


def batched_nms_fast(
    boxes: np.ndarray,
    scores: np.ndarray,
    idxs: np.ndarray,
    iou_threshold: float,
    class_agnostic: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`reference.nms.batched_nms`, computed by x-sorted sweep + Cluster-NMS.

    Same parameters, validation and result: ``dets`` (K, 5) float64 and
    ``keep`` (K,) int64.
    """
    b64, b, s, groups, thr = check_nms_inputs(boxes, scores, iou_threshold, idxs)
    keep = _keep_by_edges(b, s, None if class_agnostic else groups, thr)
    return detections(b64, s, keep), keep


def _shared_box_edges(
    b: np.ndarray, box_of: np.ndarray, cls_of: np.ndarray, num_classes: int, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Edges between candidates of the same class when all classes share the boxes.

    The box-level edges are computed once and expanded to every class in
    which both boxes are candidates.
    """
    n = b.shape[0]
    used = np.unique(box_of)
    bi, bj = overlap_edges(b[used], iou_threshold)
    bi, bj = used[bi], used[bj]  # (E,) box indices
    cand_id = np.full((n, num_classes), -1, dtype=np.int64)  # (N, C)
    cand_id[box_of, cls_of] = np.arange(box_of.size)
    ci, cj = cand_id[bi], cand_id[bj]  # (E, C)
    e, c = np.nonzero((ci >= 0) & (cj >= 0))  # (E',)
    return ci[e, c], cj[e, c]


def _keep_in_prefix(cand: Candidates, order: np.ndarray, p: int) -> np.ndarray:
    """Per-class greedy NMS of the ``p`` best-ranked candidates: kept candidates, by rank."""
    sel = order[:p]  # (p,) candidates by rank
    thr = cand.iou_threshold
    if cand.shared_boxes is not None:  # box IoUs once for all classes
        args = (cand.shared_boxes, cand.box_of[sel], cand.cls_of[sel], cand.num_classes, thr)
        ci, cj = _shared_box_edges(*args)
    else:
        ci, cj = grouped_edges(cand.boxes[sel], cand.cls_of[sel], thr)
    return sel[greedy_keep(p, np.minimum(ci, cj), np.maximum(ci, cj))]


def multiclass_nms_fast(
    multi_bboxes: np.ndarray,
    multi_scores: np.ndarray,
    score_thr: float,
    iou_threshold: float,
    max_num: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`reference.nms.multiclass_nms`, by sweep + Cluster-NMS with an exact early stop.

    Same parameters, validation and result: ``dets`` (K, 5) float64 and
    ``labels`` (K,) int64.

    Notes
    -----
    With shared boxes the pairwise IoUs are computed once for all classes.
    With ``max_num > 0`` the work stops early, exactly: a pair is kept or
    suppressed by the higher-ranked pairs of its class alone, so NMS of the
    best-ranked prefix of candidates decides that prefix; the prefix grows
    (x4) until it keeps ``max_num`` pairs or holds every candidate.
    """
    cand = multiclass_candidates(multi_bboxes, multi_scores, score_thr, iou_threshold, max_num)
    m, max_num = cand.scores.size, cand.max_num
    order = np.argsort(-cand.scores, kind="stable")  # (M,) rank -> candidate
    p = m if max_num <= 0 else min(m, max(8 * max_num, 1024))
    keep = _keep_in_prefix(cand, order, p)
    while max_num > 0 and keep.size < max_num and p < m:
        p = min(m, 4 * p)
        keep = _keep_in_prefix(cand, order, p)
    if max_num > 0:
        keep = keep[:max_num]
    return detections(cand.boxes64, cand.scores, keep), cand.cls_of[keep]
