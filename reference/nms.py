r"""Non-maximum suppression: plain, per-class (batched) and multi-class, the textbook way.

Greedy NMS visits the boxes by descending score (a stable sort: equal scores
keep the lower index first). It takes the best remaining box, then drops every
remaining box whose IoU with it is strictly greater than the threshold, and
repeats until no box remains. The IoU is mmcv's (no +1 offset, no eps):
:math:`I / (A_i + A_j - I)`; two zero-area boxes give 0/0 = NaN, which
suppresses nothing.

Precision: float32 (and float16) boxes are compared in float32, everything
else in float64 (:func:`work_dtype`), as mmcv's compiled CPU op compares a
float32 IoU with the float32 threshold. Scores are compared with ``score_thr``
in their own dtype.

This module is the reference: one Python step per kept box, each vectorised
over the remaining boxes. :mod:`reference.nms_fast` computes the same results
(bit for bit, same validation) without a Python loop over boxes;
``tests/test_nms.py`` checks it against this module. Its PyTorch twin is
:mod:`torch_impl.nms`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .validation import as_float, as_int, check_scalar

__all__ = ["nms", "batched_nms", "multiclass_nms"]  # the helpers below serve nms_fast too


# --- the algorithm: greedy NMS, vectorised over the remaining boxes ---------------------------


def greedy_nms(b: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    r"""Greedy NMS of checked inputs: the loop itself.

    Parameters
    ----------
    b : ndarray, shape (N, 4)
        Boxes in the working precision (the IoU and the comparison are in ``b.dtype``).
    scores : ndarray, shape (N,)
    iou_threshold : float

    Returns
    -------
    ndarray, shape (K,), int64
        Kept indices, by descending score (ties: lower index first).
    """
    t = b.dtype.type(iou_threshold)  # the threshold in the boxes' precision
    area = box_area(b)  # (N,)
    remaining = np.argsort(-scores, kind="stable")  # (N,) best first; ties: lower index first
    keep = []
    while remaining.size:
        best, remaining = remaining[0], remaining[1:]
        keep.append(best)
        iou = pair_iou(b, area, best, remaining)  # (R,)
        remaining = remaining[~(iou > t)]  # strictly greater; NaN > t is False: kept
    return np.array(keep, dtype=np.int64)


def per_group_nms(
    b: np.ndarray, scores: np.ndarray, groups: np.ndarray | None, iou_threshold: float
) -> np.ndarray:
    """:func:`greedy_nms` within each group, the kept boxes of all groups by descending score.

    Parameters
    ----------
    b : ndarray, shape (N, 4)
    scores : ndarray, shape (N,)
    groups : ndarray, shape (N,), int, or None
        None: all boxes are one group.
    iou_threshold : float

    Returns
    -------
    ndarray, shape (K,), int64
        Kept indices, by descending score (ties: lower index first).
    """
    if groups is None:
        return greedy_nms(b, scores, iou_threshold)
    kept = [np.empty(0, dtype=np.int64)]
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)  # (N_g,)
        kept.append(members[greedy_nms(b[members], scores[members], iou_threshold)])
    keep = np.sort(np.concatenate(kept))  # by index, so that ties below stay by index
    return keep[np.argsort(-scores[keep], kind="stable")]


# --- the public functions ---------------------------------------------------------------------


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

    See Also
    --------
    torch_impl.nms : the PyTorch twin.

    Notes
    -----
    With the boxes ranked by descending score, the best remaining box
    :math:`i` is kept and every remaining :math:`j` with

    .. math:: \mathrm{IoU}(i, j) = \frac{I_{ij}}{(A_i + A_j) - I_{ij}} > t

    is dropped (NaN compares false), until none remains (:func:`greedy_nms`).
    So box :math:`j` is kept iff :math:`\mathrm{IoU}(i, j) \le t` (or NaN)
    for every kept :math:`i` ranked before it. The IoU is evaluated in the
    boxes' working precision (:func:`work_dtype`).
    """
    _, b, s, _, thr = check_nms_inputs(boxes, scores, iou_threshold)
    return greedy_nms(b, s, thr)


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

    See Also
    --------
    torch_impl.batched_nms : the PyTorch twin.

    Notes
    -----
    Exact per-group NMS: :func:`nms` runs on each group
    :math:`G_g = \{n : \mathrm{idxs}_n = g\}` and the kept boxes are merged by
    descending score. Boxes of different groups never suppress each other
    (no coordinate-offset trick).
    """
    b64, b, s, groups, thr = check_nms_inputs(boxes, scores, iou_threshold, idxs)
    keep = per_group_nms(b, s, None if class_agnostic else groups, thr)
    return detections(b64, s, keep), keep


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

    See Also
    --------
    torch_impl.multiclass_nms : the PyTorch twin.

    Notes
    -----
    The candidates are the pairs :math:`(n, c)`, :math:`c < C`, with
    :math:`s_{nc} > \tau`, in row-major order (:func:`multiclass_candidates`);
    NMS runs within each class (:func:`batched_nms` with ``idxs = c``); the
    kept pairs are sorted by descending score and cut to the first ``max_num``.
    """
    cand = multiclass_candidates(multi_bboxes, multi_scores, score_thr, iou_threshold, max_num)
    keep = per_group_nms(cand.boxes, cand.scores, cand.cls_of, cand.iou_threshold)  # (K,)
    if cand.max_num > 0:
        keep = keep[: cand.max_num]
    return detections(cand.boxes64, cand.scores, keep), cand.cls_of[keep]


# --- IoU in the working precision -------------------------------------------------------------


def work_dtype(dtype: np.dtype) -> type:
    """float32 for float16/float32 boxes, float64 otherwise."""
    return np.float32 if dtype in (np.float16, np.float32) else np.float64


def box_area(b: np.ndarray) -> np.ndarray:
    r"""Areas :math:`(x_2 - x_1)(y_2 - y_1)` of ``b`` (shape (N, 4)), in ``b``'s dtype: (N,)."""
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def pair_iou(b: np.ndarray, area: np.ndarray, i: object, j: np.ndarray) -> np.ndarray:
    r"""IoU of the boxes ``b[i]`` and ``b[j]``, elementwise, in ``b``'s dtype (mmcv's formula).

    Parameters
    ----------
    b : ndarray, shape (N, 4)
    area : ndarray, shape (N,)
        :func:`box_area` of ``b``.
    i : int or ndarray, shape (P,), int
        One box (compared with every ``j``) or one box per pair.
    j : ndarray, shape (P,), int

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


# --- validation and candidates (shared with reference.nms_fast) -------------------------------


def check_iou_threshold(iou_threshold: object) -> float:
    """``iou_threshold`` must be a number in [0, 1]. Shared with :mod:`torch_impl`."""
    return check_scalar(iou_threshold, "iou_threshold", low=0.0, high=1.0)


def check_nms_inputs(
    boxes: object, scores: object, iou_threshold: object, idxs: object = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, float]:
    """Validate the arguments of :func:`nms` / :func:`batched_nms` (``idxs`` given).

    Returns
    -------
    boxes64 : ndarray, shape (N, 4), float64
    boxes : ndarray, shape (N, 4)
        In the working precision (:func:`work_dtype`).
    scores : ndarray, shape (N,), float64
    groups : ndarray, shape (N,), int64, or None
        ``idxs``, or None when it is not given.
    iou_threshold : float
    """
    dims: dict[str, int] = {}
    raw = np.asarray(boxes)
    boxes64 = as_float(raw, "boxes", ("N", 4), dims, finite=True)
    scores64 = as_float(scores, "scores", ("N",), dims, finite=True)
    groups = None if idxs is None else as_int(idxs, "idxs", ("N",), dims)
    thr = check_iou_threshold(iou_threshold)
    return boxes64, raw.astype(work_dtype(raw.dtype), copy=False), scores64, groups, thr


class Candidates(NamedTuple):
    """The (box, class) pairs whose score passes ``score_thr``, in row-major order.

    Attributes
    ----------
    box_of, cls_of : ndarray, shape (M,), int64
        Box row :math:`n` and class :math:`c` of each pair.
    boxes : ndarray, shape (M, 4)
        Its box, in the working precision.
    boxes64 : ndarray, shape (M, 4), float64
    scores : ndarray, shape (M,), float64
    shared_boxes : ndarray, shape (N, 4), or None
        The boxes (working precision) when all classes share them.
    num_classes : int
    iou_threshold : float
    max_num : int
    """

    box_of: np.ndarray
    cls_of: np.ndarray
    boxes: np.ndarray
    boxes64: np.ndarray
    scores: np.ndarray
    shared_boxes: np.ndarray | None
    num_classes: int
    iou_threshold: float
    max_num: int


def multiclass_candidates(
    multi_bboxes: object,
    multi_scores: object,
    score_thr: object,
    iou_threshold: object,
    max_num: object,
) -> Candidates:
    r"""Validate the arguments of :func:`multiclass_nms` and pick the candidate pairs.

    Parameters
    ----------
    multi_bboxes, multi_scores, score_thr, iou_threshold, max_num
        As for :func:`multiclass_nms`.

    Returns
    -------
    Candidates
        The pairs :math:`(n, c)`, :math:`c < C`, with :math:`s_{nc} > \tau`
        compared in the scores' dtype (float32 scores with ``float32(score_thr)``),
        in row-major order, and the checked thresholds.
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
    per_row = 1 if shared else num_classes  # boxes per row
    b64 = as_float(raw_boxes, "multi_bboxes", spec, note=note, finite=True)
    b64 = b64.reshape(n, per_row, 4)  # (N, 1 or C, 4)
    b = raw_boxes.astype(work_dtype(raw_boxes.dtype), copy=False).reshape(n, per_row, 4)
    tau = check_scalar(score_thr, "score_thr")
    thr = check_iou_threshold(iou_threshold)
    max_num = check_scalar(max_num, "max_num", integer=True)

    cmp = raw_scores if np.issubdtype(raw_scores.dtype, np.floating) else s64
    valid = cmp[:, :num_classes] > cmp.dtype.type(tau)  # (N, C)
    box_of, cls_of = np.nonzero(valid)  # (M,) row-major candidate order
    box_col = np.zeros_like(cls_of) if shared else cls_of  # (M,) which box of the row
    return Candidates(
        box_of=box_of.astype(np.int64),
        cls_of=cls_of.astype(np.int64),
        boxes=b[box_of, box_col],  # (M, 4)
        boxes64=b64[box_of, box_col],  # (M, 4)
        scores=s64[box_of, cls_of],  # (M,)
        shared_boxes=b[:, 0] if shared else None,  # (N, 4)
        num_classes=num_classes,
        iou_threshold=thr,
        max_num=max_num,
    )


def detections(boxes64: np.ndarray, scores: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``(x1, y1, x2, y2, score)`` rows of the kept boxes: (K, 5), float64."""
    return np.concatenate([boxes64[keep], scores[keep, None]], axis=1)  # (K, 5)
