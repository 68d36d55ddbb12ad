r"""Non-maximum suppression: plain, per-class (batched) and multi-class.

Greedy NMS visits the boxes by descending score (a stable sort: equal scores
keep the lower index first) and keeps a box unless its IoU with a box kept
before it is strictly greater than the threshold. The IoU is mmcv's (no +1
offset, no eps): :math:`I / (A_i + A_j - I)`; two zero-area boxes give 0/0 =
NaN, which suppresses nothing.

Precision: float32 (and float16) boxes are compared in float32, everything
else in float64, as mmcv's compiled CPU op compares a float32 IoU with the
float32 threshold. Scores are compared with ``score_thr`` in their own dtype.

How it is computed (exactly, without a Python loop over boxes):

1. *Suppression edges.* Only pairs with IoU > t matter. Sorting the boxes by
   :math:`x_1` and sweeping finds every pair whose x-extents can overlap
   enough (see :func:`overlap_edges`); the exact IoU is evaluated on those
   pairs only.
2. *Greedy resolution.* With the edges directed from the higher-ranked box
   to the lower-ranked one, greedy NMS is the unique fixed point of
   :math:`\mathrm{keep}_j = \lnot \exists i \to j: \mathrm{keep}_i`; iterating
   from "keep everything" reaches it (Cluster-NMS), see :func:`greedy_keep`.
"""

from __future__ import annotations

import numpy as np

from .validation import as_float, as_int, check_scalar

MAX_CLUSTER_ITERS = 32
_PAIR_CHUNK = 1 << 21


def work_dtype(dtype: np.dtype) -> type:
    """float32 for float16/float32 boxes, float64 otherwise."""
    return np.float32 if dtype in (np.float16, np.float32) else np.float64


def _real(x: object, name: str, spec, dims: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``x`` (finite, real) and return it as float64 and in its working precision."""
    raw = np.asarray(x)
    x64 = as_float(raw, name, spec, dims, finite=True)
    return x64, raw.astype(work_dtype(raw.dtype), copy=False)


def check_iou_threshold(iou_threshold: object) -> float:
    """``iou_threshold`` must be a number in [0, 1]. Shared with :mod:`torch_impl`."""
    return check_scalar(iou_threshold, "iou_threshold", low=0.0, high=1.0)


def pair_iou(b: np.ndarray, area: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    r"""IoU of the box pairs ``(i[p], j[p])``, in ``b``'s dtype, mmcv's formula.

    Parameters
    ----------
    b : ndarray, shape (N, 4)
    area : ndarray, shape (N,)
        :math:`(x_2 - x_1)(y_2 - y_1)`.
    i, j : ndarray, shape (P,), int

    Returns
    -------
    ndarray, shape (P,)
        :math:`I / ((A_i + A_j) - I)` with
        :math:`I = \max(0, \min(x_2) - \max(x_1)) \cdot \max(0, \min(y_2) - \max(y_1))`;
        NaN for 0/0.
    """
    w = np.minimum(b[i, 2], b[j, 2]) - np.maximum(b[i, 0], b[j, 0])  # (P,)
    h = np.minimum(b[i, 3], b[j, 3]) - np.maximum(b[i, 1], b[j, 1])  # (P,)
    inter = np.maximum(w, 0) * np.maximum(h, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / ((area[i] + area[j]) - inter)


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
    finds the run's end. The runs are expanded into pair lists (in chunks of
    about two million pairs), filtered on a positive y-overlap, and the exact
    IoU (:func:`pair_iou`) decides.
    """
    n = b.shape[0]
    empty = np.empty(0, dtype=np.int64)
    if n < 2:
        return empty, empty
    thr = b.dtype.type(iou_threshold)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # (N,)
    order = np.argsort(b[:, 0], kind="stable")  # (N,)
    xs = b[order, 0]
    lim = _x_window(b[order], iou_threshold)
    hi = np.minimum(
        np.searchsorted(xs, b[order, 2], side="left"), np.searchsorted(xs, lim, side="right")
    )  # (N,) partners of sorted box r are r+1 .. hi[r]-1
    cnt = np.maximum(hi - np.arange(1, n + 1), 0)  # (N,)
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


def _nms_core(
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


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    r"""Greedy non-maximum suppression.

    Parameters
    ----------
    boxes : ndarray, shape (N, 4)
        Boxes ``(x1, y1, x2, y2)``.
    scores : ndarray, shape (N,)
    iou_threshold : float
        In [0, 1]; a box is suppressed iff its IoU with a kept box is
        strictly greater.

    Returns
    -------
    ndarray, shape (K,), int64
        Indices of the kept boxes, by descending score (ties: lower index first).

    Notes
    -----
    Visiting the boxes by descending score, box :math:`j` is kept iff
    :math:`\mathrm{IoU}(i, j) \le t` (or NaN) for every kept :math:`i` before it, with
    :math:`\mathrm{IoU} = I / (A_i + A_j - I)` in the boxes' precision (see the
    module notes for float32 and for the algorithm).
    """
    dims: dict[str, int] = {}
    _, b = _real(boxes, "boxes", ("N", 4), dims)
    s, _ = _real(scores, "scores", ("N",), dims)
    thr = check_iou_threshold(iou_threshold)
    return _nms_core(b, s, None, thr)


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    idxs: np.ndarray,
    iou_threshold: float,
    class_agnostic: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    r"""NMS within each group of ``idxs``; all kept boxes by descending score.

    Parameters
    ----------
    boxes : ndarray, shape (N, 4)
    scores : ndarray, shape (N,)
    idxs : ndarray, shape (N,), int
        Group (class) of each box.
    iou_threshold : float
        In [0, 1].
    class_agnostic : bool
        Ignore ``idxs`` (one group).

    Returns
    -------
    dets : ndarray, shape (K, 5), float64
        Kept ``(x1, y1, x2, y2, score)``.
    keep : ndarray, shape (K,), int64
        Their indices, by descending score (ties: lower index first).

    Notes
    -----
    Exact per-group NMS: boxes of different groups never suppress each other
    (no coordinate-offset trick), as if :func:`nms` ran on each group and the
    results were merged by score.
    """
    dims: dict[str, int] = {}
    b64, b = _real(boxes, "boxes", ("N", 4), dims)
    s, _ = _real(scores, "scores", ("N",), dims)
    groups = as_int(idxs, "idxs", ("N",), dims)
    thr = check_iou_threshold(iou_threshold)
    keep = _nms_core(b, s, None if class_agnostic else groups, thr)
    dets = np.concatenate([b64[keep], s[keep, None]], axis=1)  # (K, 5)
    return dets, keep


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


def multiclass_nms(
    multi_bboxes: np.ndarray,
    multi_scores: np.ndarray,
    score_thr: float,
    iou_threshold: float,
    max_num: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Score filter, per-class NMS and top-``max_num`` over (box, class) pairs.

    Parameters
    ----------
    multi_bboxes : ndarray, shape (N, 4) or (N, 4 C)
        Boxes shared by all classes, or one box per class.
    multi_scores : ndarray, shape (N, C + 1)
        Class scores; the last column (background) is ignored.
    score_thr : float
        A pair is a candidate iff its score is strictly greater (compared in
        the scores' precision).
    iou_threshold : float
        In [0, 1].
    max_num : int
        Keep at most this many (when > 0).

    Returns
    -------
    dets : ndarray, shape (K, 5), float64
        ``(x1, y1, x2, y2, score)`` by descending score (ties: lower
        ``n C + c`` first).
    labels : ndarray, shape (K,), int64
        Class of each detection.

    Notes
    -----
    The candidates are the pairs :math:`(n, c)`, :math:`c < C`, with
    :math:`s_{nc} > \tau`, in row-major order; NMS runs within each class
    (:func:`batched_nms` with ``idxs = c``); the kept pairs are sorted by
    descending score and cut to ``max_num``. With shared boxes the pairwise
    IoUs are computed once for all classes.

    With ``max_num > 0`` the work stops early, exactly: a pair is kept or
    suppressed by the higher-ranked pairs of its class alone, so NMS of the
    best-ranked prefix of candidates decides that prefix; the prefix grows
    (×4) until it keeps ``max_num`` pairs or holds every candidate.
    """
    raw_scores = np.asarray(multi_scores)
    s64 = as_float(raw_scores, "multi_scores", (None, None), finite=True)
    n, c1 = s64.shape
    if c1 < 1:
        raise ValueError(f"multi_scores must have shape (N, C+1) with C+1 >= 1, got {s64.shape}")
    num_classes = c1 - 1
    raw_boxes = np.asarray(multi_bboxes)
    shared = raw_boxes.ndim == 2 and raw_boxes.shape[1] == 4
    spec = (n, 4) if shared else (n, 4 * num_classes)
    note = f"(boxes shared by all classes, or 4*C with C = {num_classes} classes)"
    b64 = as_float(raw_boxes, "multi_bboxes", spec, note=note, finite=True)
    b = raw_boxes.astype(work_dtype(raw_boxes.dtype), copy=False)
    tau = check_scalar(score_thr, "score_thr")
    thr = check_iou_threshold(iou_threshold)
    max_num = check_scalar(max_num, "max_num", integer=True)

    cmp = raw_scores if np.issubdtype(raw_scores.dtype, np.floating) else s64
    valid = cmp[:, :num_classes] > cmp.dtype.type(tau)  # (N, C)
    box_of, cls_of = np.nonzero(valid)  # (M,) row-major candidate order
    m = box_of.size
    if m == 0:
        return np.zeros((0, 5)), np.zeros(0, dtype=np.int64)
    cand_scores = s64[box_of, cls_of]  # (M,)
    order = np.argsort(-cand_scores, kind="stable")  # (M,) rank -> candidate
    if shared:
        cand_boxes64 = b64[box_of]  # (M, 4)
    else:
        per_class = b.reshape(n, num_classes, 4)  # (N, C, 4)
        cand_boxes64 = b64.reshape(n, num_classes, 4)[box_of, cls_of]  # (M, 4)

    def keep_in_prefix(p: int) -> np.ndarray:
        """Greedy per-class NMS of the ``p`` best-ranked candidates, kept ones by rank."""
        sel = order[:p]  # (p,) candidates by rank
        if shared:
            ci, cj = _shared_box_edges(b, box_of[sel], cls_of[sel], num_classes, thr)
        else:
            ci, cj = grouped_edges(per_class[box_of[sel], cls_of[sel]], cls_of[sel], thr)
        return sel[greedy_keep(p, np.minimum(ci, cj), np.maximum(ci, cj))]

    # A pair's fate depends only on the pairs of its class ranked before it, so
    # NMS of a rank prefix is exact for that prefix; once it keeps max_num pairs
    # the rest cannot enter the output. Grow the prefix until it does.
    p = m if max_num <= 0 else min(m, max(8 * max_num, 1024))
    keep = keep_in_prefix(p)
    while max_num > 0 and keep.size < max_num and p < m:
        p = min(m, 4 * p)
        keep = keep_in_prefix(p)
    if max_num > 0:
        keep = keep[:max_num]
    dets = np.concatenate([cand_boxes64[keep], cand_scores[keep, None]], axis=1)  # (K, 5)
    return dets, cls_of[keep].astype(np.int64)
