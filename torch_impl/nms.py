r"""Non-maximum suppression in pure PyTorch (the twin of :mod:`reference.nms`, which
states the contract).

Greedy NMS by descending score (stable: ties keep the lower index first); a
box is suppressed iff its IoU with a kept box is strictly greater than the
threshold; mmcv's IoU :math:`I / (A_i + A_j - I)`, NaN (0/0) never
suppresses. float32 boxes are compared in float32, float64 in float64;
float16 / bfloat16 boxes are compared in float32.

The algorithm is an exact matrix method, without a Python loop over boxes
(see :func:`cluster_keep`): the boxes, sorted by score (grouped by class for
:func:`batched_nms`), are processed in blocks; within a block, Cluster-NMS
iterates on the upper-triangular suppression matrix until the kept set stops
changing, which is exactly greedy NMS. Boxes of different classes never
suppress each other (a same-class mask; no coordinate-offset trick).
torchvision is not used: its CPU sort is not stable and its CPU kernel
compares the IoU with the threshold as a double, so float32 boxes with an
IoU of exactly 0.6 would be suppressed at threshold 0.6.
"""

from __future__ import annotations

import torch

from reference.nms import check_iou_threshold

from .validation import check_scalar, check_tensor, work_dtype

__all__ = ["nms", "batched_nms", "multiclass_nms"]

CPU_BLOCK = 512
CUDA_BLOCK = 4096
MAX_SHARED_BOXES = 8192


def _block_size(device: torch.device) -> int:
    return CPU_BLOCK if device.type == "cpu" else CUDA_BLOCK


def iou_matrix(b1: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    r"""mmcv's IoU of every pair, in the boxes' dtype.

    Parameters
    ----------
    b1 : Tensor, shape (M, 4)
    b2 : Tensor, shape (N, 4)

    Returns
    -------
    Tensor, shape (M, N)
        :math:`I / ((A_i + A_j) - I)` with
        :math:`I = \max(0, \min(x_2) - \max(x_1)) \cdot \max(0, \min(y_2) - \max(y_1))`;
        no eps, NaN for 0/0.
    """
    p = [b1[:, i].contiguous()[:, None] for i in range(4)]  # 4 x (M, 1)
    q = [b2[:, i].contiguous()[None, :] for i in range(4)]  # 4 x (1, N)
    area1 = (p[2] - p[0]) * (p[3] - p[1])  # (M, 1)
    area2 = (q[2] - q[0]) * (q[3] - q[1])  # (1, N)
    w = torch.minimum(p[2], q[2]).sub_(torch.maximum(p[0], q[0])).clamp_(min=0)  # (M, N)
    h = torch.minimum(p[3], q[3]).sub_(torch.maximum(p[1], q[1])).clamp_(min=0)  # (M, N)
    inter = w.mul_(h)  # (M, N)
    union = (area1 + area2).sub_(inter)  # (M, N)
    return inter.div_(union)


def cluster_keep(sup: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    r"""Greedy NMS of a block from its suppression matrix, by Cluster-NMS iterations.

    Parameters
    ----------
    sup : Tensor, shape (n, n), bool
        ``sup[i, j]``: ``i`` is ranked before ``j`` and would suppress it
        (strictly upper triangular).
    alive : Tensor, shape (n,), bool
        Not already suppressed from outside the block.

    Returns
    -------
    Tensor, shape (n,), bool
        Greedy NMS's kept set.

    Notes
    -----
    Greedy NMS is the unique solution of
    :math:`k_j = a_j \land \lnot \bigvee_i (k_i \land S_{ij})` (induction over
    the ranks). The iteration :math:`k^{(t+1)}_j = a_j \land \lnot \bigvee_i
    (k^{(t)}_i \land S_{ij})` from :math:`k^{(0)} = a` fixes one more rank per
    step at least, and stops at the solution as soon as :math:`k` repeats;
    in practice after a few steps. Each step is one matrix-vector product
    :math:`k^\top S` (exact: integer counts below :math:`2^{24}`).
    """
    s = sup.to(torch.float32)  # (n, n)
    keep = alive
    while True:
        hits = keep.to(torch.float32)[None, :] @ s  # (1, n) how many kept boxes suppress each
        new = alive & (hits[0] == 0)  # (n,)
        if torch.equal(new, keep):
            return keep
        keep = new


def _sorted_keep(
    b: torch.Tensor, groups: torch.Tensor | None, thr: float, box_sup: tuple | None = None
) -> torch.Tensor:
    """Greedy per-group NMS of boxes already sorted by rank (grouped by class when given).

    ``b (N, 4)`` in the working dtype; ``groups (N,)`` non-decreasing or None;
    ``box_sup = (S, box_of)``: a precomputed box-level suppression matrix
    ``S (U, U)`` and each entry's box, used instead of recomputing IoUs.
    Returns the kept mask ``(N,)``.
    """
    n = b.shape[0]
    keep = torch.zeros(n, dtype=torch.bool, device=b.device)
    thr_t = torch.tensor(thr, dtype=b.dtype, device=b.device)  # the threshold in the boxes' dtype

    def suppresses(rows: torch.Tensor | slice, cols: slice, mixed: bool) -> torch.Tensor:
        if box_sup is not None:
            mat, box_of = box_sup
            hit = mat.index_select(0, box_of[rows]).index_select(1, box_of[cols])  # (R, n_b)
        else:
            hit = iou_matrix(b[rows], b[cols]) > thr_t  # (R, n_b)
        if mixed:
            hit &= groups[rows][:, None] == groups[cols][None, :]  # (R, n_b) same class only
        return hit

    for s, e, w, mixed in _block_plan(n, groups, _block_size(b.device)):
        alive = torch.ones(e - s, dtype=torch.bool, device=b.device)
        if w < s:  # kept boxes of the block's first group before the block
            prev = torch.arange(w, s, device=b.device)[keep[w:s]]  # (P,)
            alive = ~suppresses(prev, slice(s, e), mixed).any(dim=0)
        ar = torch.arange(e - s, device=b.device)
        upper = ar[:, None] < ar[None, :]  # (n_b, n_b) row ranked before column
        sup = suppresses(slice(s, e), slice(s, e), mixed) & upper  # (n_b, n_b)
        keep[s:e] = cluster_keep(sup, alive)
    return keep


def _block_plan(
    n: int, groups: torch.Tensor | None, block: int
) -> list[tuple[int, int, int, bool]]:
    """Blocks ``(start, end, window_start, mixed)`` over a group-sorted sequence.

    Whole groups are packed into blocks of at most ``block`` entries; a larger
    group is cut into chunks, each of which must also look back at the kept
    boxes of its group from ``window_start`` on. ``mixed``: the block (or
    window) holds more than one group, so a same-class mask is needed.
    """
    if groups is None:
        return [(s, min(s + block, n), 0, False) for s in range(0, n, block)]
    counts = torch.unique_consecutive(groups, return_counts=True)[1].tolist()  # host sync
    plan: list[tuple[int, int, int, bool]] = []
    start = 0  # first entry not yet in a block
    pending = 0  # groups packed into the open block
    pos = 0
    for c in counts:
        if pos + c - start > block and pos > start:  # close the open block before this group
            plan.append((start, pos, start, pending > 1))
            start, pending = pos, 0
        if c > block:  # a big group alone, in chunks
            for s in range(pos, pos + c, block):
                plan.append((s, min(s + block, pos + c), pos, False))
            start = pos + c
        else:
            pending += 1
        pos += c
    if pos > start:
        plan.append((start, pos, start, pending > 1))
    return plan


def _nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    groups: torch.Tensor | None,
    thr: float,
    box_sup: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Kept indices by descending score (stable) of per-group greedy NMS; inputs checked.

    ``box_sup = (S, box_id)``: entry ``i`` is box ``box_id[i]`` of a precomputed
    box-level suppression matrix ``S``.
    """
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices  # (N,) rank -> index
    if groups is not None:
        by_group = torch.sort(groups[order], stable=True).indices  # class-major, ranks in order
        order_g = order[by_group]  # (N,) position -> index
    else:
        by_group, order_g = None, order
    b = boxes[order_g].to(work_dtype(boxes.dtype))  # (N, 4)
    if box_sup is not None:
        box_sup = (box_sup[0], box_sup[1][order_g])
    keep = _sorted_keep(b, None if groups is None else groups[order_g], thr, box_sup)  # (N,)
    if by_group is None:
        return order[keep]
    ranks = by_group[keep].sort().values  # kept ranks, by descending score
    return order[ranks]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    r"""Greedy non-maximum suppression (see :func:`reference.nms`).

    Parameters
    ----------
    boxes : Tensor, shape (N, 4)
    scores : Tensor, shape (N,)
    iou_threshold : float
        In [0, 1].

    Returns
    -------
    Tensor, shape (K,), int64
        Kept indices by descending score (ties: lower index first).
    """
    dims: dict[str, int] = {}
    check_tensor(boxes, "boxes", ("N", 4), dims)
    check_tensor(scores, "scores", ("N",), dims)
    thr = check_iou_threshold(iou_threshold)
    return _nms(boxes, scores, None, thr)


def batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    idxs: torch.Tensor,
    iou_threshold: float,
    class_agnostic: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""NMS within each group of ``idxs`` (see :func:`reference.batched_nms`).

    Parameters
    ----------
    boxes : Tensor, shape (N, 4)
    scores : Tensor, shape (N,)
    idxs : Tensor, shape (N,), int
    iou_threshold : float
    class_agnostic : bool

    Returns
    -------
    dets : Tensor, shape (K, 5)
        ``(x1, y1, x2, y2, score)``, in the promoted dtype of boxes and scores.
    keep : Tensor, shape (K,), int64
        Kept indices by descending score (ties: lower index first).
    """
    dims: dict[str, int] = {}
    check_tensor(boxes, "boxes", ("N", 4), dims)
    check_tensor(scores, "scores", ("N",), dims)
    check_tensor(idxs, "idxs", ("N",), dims, kind="int")
    thr = check_iou_threshold(iou_threshold)
    keep = _nms(boxes, scores, None if class_agnostic else idxs, thr)
    return _dets(boxes[keep], scores[keep]), keep


def _dets(boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    dt = torch.promote_types(boxes.dtype, scores.dtype)
    return torch.cat([boxes.to(dt), scores.to(dt)[:, None]], dim=1)  # (K, 5)


def multiclass_nms(
    multi_bboxes: torch.Tensor,
    multi_scores: torch.Tensor,
    score_thr: float,
    iou_threshold: float,
    max_num: int = -1,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Score filter, per-class NMS, top ``max_num`` (see :func:`reference.multiclass_nms`).

    Parameters
    ----------
    multi_bboxes : Tensor, shape (N, 4) or (N, 4 C)
    multi_scores : Tensor, shape (N, C + 1)
        The last column (background) is ignored.
    score_thr : float
        Strict: a pair is kept iff ``score > score_thr`` in the scores' dtype.
    iou_threshold : float
    max_num : int
        Keep at most this many when > 0.

    Returns
    -------
    dets : Tensor, shape (K, 5)
    labels : Tensor, shape (K,), int64

    Notes
    -----
    The candidates are the pairs :math:`(n, c)` with :math:`s_{nc} > \tau` in
    row-major order; :func:`batched_nms` with ``idxs = c`` and the cut to
    ``max_num`` follow. With shared boxes (and at most ``MAX_SHARED_BOXES``
    distinct candidate boxes) the box-level suppression matrix is computed
    once and every class's blocks are gathered from it. With ``max_num > 0``
    only a growing prefix of the best-ranked candidates is processed, which
    gives the same result (see :func:`reference.nms_fast.multiclass_nms_fast`).
    """
    check_tensor(multi_scores, "multi_scores", (None, None))
    n, c1 = multi_scores.shape
    if c1 < 1:
        raise ValueError(
            f"multi_scores must have shape (N, C+1) with C+1 >= 1, got {tuple(multi_scores.shape)}"
        )
    num_classes = c1 - 1
    shared = multi_bboxes.ndim == 2 and multi_bboxes.shape[1] == 4
    check_tensor(
        multi_bboxes,
        "multi_bboxes",
        (n, 4) if shared else (n, 4 * num_classes),
        note=f"(boxes shared by all classes, or 4*C with C = {num_classes} classes)",
    )
    tau = check_scalar(score_thr, "score_thr")
    thr = check_iou_threshold(iou_threshold)
    max_num = check_scalar(max_num, "max_num", integer=True)

    scores = multi_scores[:, :num_classes]  # (N, C)
    box_of, cls_of = torch.nonzero(scores > tau, as_tuple=True)  # (M,) row-major
    if shared:
        cand_boxes = multi_bboxes[box_of]  # (M, 4)
    else:
        cand_boxes = multi_bboxes.reshape(n, num_classes, 4)[box_of, cls_of]  # (M, 4)
    cand_scores = scores[box_of, cls_of]  # (M,)
    m = cand_scores.shape[0]
    order = torch.sort(cand_scores, descending=True, stable=True).indices  # (M,) rank -> cand

    def keep_in_prefix(p: int) -> torch.Tensor:
        """Per-class NMS of the ``p`` best-ranked candidates; kept ones by rank."""
        sel = order[:p]  # (p,)
        box_sup = None
        if shared:
            used, box_id = torch.unique(box_of[sel], return_inverse=True)  # (U,), (p,)
            if used.shape[0] <= MAX_SHARED_BOXES:  # IoUs of the U boxes once, for every class
                ub = multi_bboxes[used].to(work_dtype(multi_bboxes.dtype))  # (U, 4)
                thr_t = torch.tensor(thr, dtype=ub.dtype, device=ub.device)
                box_sup = (iou_matrix(ub, ub) > thr_t, box_id)  # (U, U), (p,)
        return sel[_nms(cand_boxes[sel], cand_scores[sel], cls_of[sel], thr, box_sup)]

    # Exact early stop (see reference.nms_fast): NMS of a rank prefix decides
    # that prefix; grow it until it keeps max_num pairs. Reading the count is a
    # host sync, as NMS's variable-sized output already is.
    p = m if max_num <= 0 else min(m, max(8 * max_num, 1024))
    keep = keep_in_prefix(p)
    while max_num > 0 and keep.shape[0] < max_num and p < m:
        p = min(m, 4 * p)
        keep = keep_in_prefix(p)
    if max_num > 0:
        keep = keep[:max_num]
    return _dets(cand_boxes[keep], cand_scores[keep]), cls_of[keep]
