r"""Box geometry: IoU / GIoU / IoF overlaps, and the two box <-> distance maps.

Boxes are ``(x1, y1, x2, y2)`` in pixels; points are ``(x, y)``. A distance
row is ``(left, top, right, bottom)``: how far the box's sides lie from the
point.

Its PyTorch twin is :mod:`torch_impl.boxes`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .validation import as_float, check_choice, check_hw, check_scalar

__all__ = [
    "bbox_overlaps",
    "bbox2distance",
    "Distance2BBoxCache",
    "distance2bbox_forward",
    "distance2bbox_backward",
]

OVERLAP_MODES = ("iou", "giou", "iof")


def bbox_overlaps(
    bboxes1: np.ndarray,
    bboxes2: np.ndarray,
    mode: str = "iou",
    is_aligned: bool = False,
    eps: float = 1e-6,
    *,
    offset: int = 0,
) -> np.ndarray:
    r"""IoU, GIoU or IoF between two sets of boxes.

    Parameters
    ----------
    bboxes1 : ndarray, shape (M, 4)
        Boxes ``(x1, y1, x2, y2)``.
    bboxes2 : ndarray, shape (N, 4)
        Boxes; with ``is_aligned`` it must have ``N = M``.
    mode : {"iou", "giou", "iof"}
        IoU, generalised IoU, or intersection over the area of ``bboxes1``.
    is_aligned : bool
        Compare row ``i`` with row ``i`` only.
    eps : float
        Lower bound of the union (IoF: of ``area1``) and of the enclosing
        box's area.
    offset : {0, 1}
        A dialect switch (:mod:`reference.dialects`, mmcv's name): 1 is the
        legacy "+1" pixel convention of mmdetection 1.x (and GFocal), where
        a box is ``x2 - x1 + 1`` wide.

    Returns
    -------
    ndarray, shape (M, N), or (M,) when aligned
        The overlaps, float64. Empty inputs give empty outputs.

    See Also
    --------
    torch_impl.bbox_overlaps : the PyTorch twin.

    Notes
    -----
    With :math:`I` the intersection area, :math:`U = A_1 + A_2 - I` the union
    and :math:`E` the area of the smallest enclosing box,

    .. math::
        \mathrm{IoU} = \frac{I}{\max(U, \epsilon)}, \quad
        \mathrm{GIoU} = \mathrm{IoU}
            - \frac{\max(E,\epsilon) - \max(U,\epsilon)}{\max(E, \epsilon)},
        \quad \mathrm{IoF} = \frac{I}{\max(A_1, \epsilon)}.

    Box areas are :math:`(x_2 - x_1 + o)(y_2 - y_1 + o)` without clamping (as in
    mmdetection), :math:`o` the offset; intersection and enclosing widths
    (:math:`+\,o` too) are clamped at 0.
    """
    check_choice(mode, "mode", OVERLAP_MODES)
    b1 = as_float(bboxes1, "bboxes1", ("M", 4))
    dims: dict[str, int] = {}
    if is_aligned:
        dims["M"] = b1.shape[0]
        b2 = as_float(
            bboxes2, "bboxes2", ("M", 4), dims, note="(is_aligned: as many rows as bboxes1)"
        )
    else:
        b2 = as_float(bboxes2, "bboxes2", ("N", 4))
    eps = check_scalar(eps, "eps", low=0.0)
    o = check_choice(offset, "offset", (0, 1))
    if not is_aligned:
        b1 = b1[:, None, :]  # (M, 1, 4)
        b2 = b2[None, :, :]  # (1, N, 4)
    area1 = (b1[..., 2] - b1[..., 0] + o) * (b1[..., 3] - b1[..., 1] + o)
    area2 = (b2[..., 2] - b2[..., 0] + o) * (b2[..., 3] - b2[..., 1] + o)
    lt = np.maximum(b1[..., :2], b2[..., :2])
    rb = np.minimum(b1[..., 2:], b2[..., 2:])
    wh = np.clip(rb - lt + o, 0.0, None)
    overlap = wh[..., 0] * wh[..., 1]
    if mode == "iof":
        union = np.broadcast_to(area1, overlap.shape)
    else:
        union = area1 + area2 - overlap
    union = np.maximum(union, eps)
    ious = overlap / union
    if mode != "giou":
        return ious
    enc_wh = np.clip(
        np.maximum(b1[..., 2:], b2[..., 2:]) - np.minimum(b1[..., :2], b2[..., :2]) + o, 0.0, None
    )
    enclose = np.maximum(enc_wh[..., 0] * enc_wh[..., 1], eps)
    return ious - (enclose - union) / enclose


def bbox2distance(
    points: np.ndarray,
    bbox: np.ndarray,
    max_dis: float | None = None,
    eps: float = 0.1,
) -> np.ndarray:
    r"""Distances from points to the four sides of their boxes.

    Parameters
    ----------
    points : ndarray, shape (M, 2)
        Points ``(x, y)``.
    bbox : ndarray, shape (M, 4)
        Boxes ``(x1, y1, x2, y2)``, one per point.
    max_dis : float, optional
        When given, distances are clamped to ``[0, max_dis - eps]``; when None
        nothing is clamped (a point outside its box gives negative distances).
    eps : float
        Keeps clamped distances strictly below ``max_dis``.

    Returns
    -------
    ndarray, shape (M, 4)
        ``(x - x1, y - y1, x2 - x, y2 - y)``.

    See Also
    --------
    torch_impl.bbox2distance : the PyTorch twin.

    Notes
    -----
    In the GFL head this is called on the level's grid (centres and boxes
    divided by the stride) with ``max_dis = reg_max``, so every DFL target lies
    in :math:`[0, n - 0.1]` and its right bin :math:`\lfloor y \rfloor + 1`
    is at most :math:`n`.
    """
    dims: dict[str, int] = {}
    p = as_float(points, "points", ("M", 2), dims)
    b = as_float(bbox, "bbox", ("M", 4), dims)
    dist = np.stack(
        [p[:, 0] - b[:, 0], p[:, 1] - b[:, 1], b[:, 2] - p[:, 0], b[:, 3] - p[:, 1]], axis=-1
    )  # (M, 4)
    if max_dis is not None:
        max_dis = check_scalar(max_dis, "max_dis", low=0.0, low_open=True)
        eps = check_scalar(eps, "eps", low=0.0)
        if eps >= max_dis:
            raise ValueError(f"eps must be < max_dis = {max_dis:g}, got {eps:g}")
        dist = np.clip(dist, 0.0, max_dis - eps)
    return dist


class Distance2BBoxCache(NamedTuple):
    """What :func:`distance2bbox_backward` needs: which coordinates were kept."""

    pass_mask: np.ndarray  # (M, 4) bool: 1 where the clamp let the gradient through


def distance2bbox_forward(
    points: np.ndarray,
    distance: np.ndarray,
    max_shape: tuple[int, int] | None = None,
    *,
    clamp_offset: int | None = 0,
) -> tuple[np.ndarray, Distance2BBoxCache]:
    r"""Decode ``(left, top, right, bottom)`` distances into boxes.

    Parameters
    ----------
    points : ndarray, shape (M, 2)
        Points ``(x, y)``.
    distance : ndarray, shape (M, 4)
        Distances to the four sides.
    max_shape : (h, w), optional
        When given, x is clamped to ``[0, w]`` and y to ``[0, h]``.
    clamp_offset : {0, 1, None}
        A dialect switch (:mod:`reference.dialects`): 1 clamps x to
        ``[0, w - 1]`` and y to ``[0, h - 1]`` instead (mmdetection 1.x, GFocal);
        None never clamps, even with a ``max_shape`` (ultralytics' ``dist2bbox``).

    Returns
    -------
    boxes : ndarray, shape (M, 4)
        ``(x - l, y - t, x + r, y + b)``, clamped when ``max_shape`` is given.
    cache : Distance2BBoxCache

    See Also
    --------
    torch_impl.distance2bbox : the PyTorch twin, differentiated by autograd.

    Notes
    -----
    The map is linear, so its backward is a signed copy:

    .. math::
        \frac{\partial L}{\partial l} = -\frac{\partial L}{\partial x_1}, \quad
        \frac{\partial L}{\partial t} = -\frac{\partial L}{\partial y_1}, \quad
        \frac{\partial L}{\partial r} = \frac{\partial L}{\partial x_2}, \quad
        \frac{\partial L}{\partial b} = \frac{\partial L}{\partial y_2},

    times 0 where a coordinate was clamped (strictly outside the bounds; at a
    bound itself the gradient passes, as ``torch.clamp``'s does).
    """
    dims: dict[str, int] = {}
    p = as_float(points, "points", ("M", 2), dims)
    d = as_float(distance, "distance", ("M", 4), dims)
    boxes = np.stack(
        [p[:, 0] - d[:, 0], p[:, 1] - d[:, 1], p[:, 0] + d[:, 2], p[:, 1] + d[:, 3]], axis=-1
    )  # (M, 4)
    o = check_choice(clamp_offset, "clamp_offset", (0, 1, None))
    pass_mask = np.ones(boxes.shape, dtype=bool)
    if max_shape is not None and o is not None:
        h, w = check_hw(max_shape, "max_shape", finite=False)
        upper = np.array([w, h, w, h]) - o
        pass_mask = (boxes >= 0.0) & (boxes <= upper)
        boxes = np.clip(boxes, 0.0, upper)
    return boxes, Distance2BBoxCache(pass_mask)


def distance2bbox_backward(d_boxes: np.ndarray, cache: Distance2BBoxCache) -> np.ndarray:
    r"""Backward of :func:`distance2bbox_forward` with respect to ``distance``.

    Parameters
    ----------
    d_boxes : ndarray, shape (M, 4)
        Upstream gradient of the boxes.
    cache : Distance2BBoxCache

    Returns
    -------
    d_distance : ndarray, shape (M, 4)
        :math:`(-g_{x_1}, -g_{y_1}, g_{x_2}, g_{y_2})`, zero where clamped.
    """
    g = as_float(d_boxes, "d_boxes", cache.pass_mask.shape)
    g = np.where(cache.pass_mask, g, 0.0)
    return g * np.array([-1.0, -1.0, 1.0, 1.0])
