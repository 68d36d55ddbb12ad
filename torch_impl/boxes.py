r"""Box geometry in PyTorch: overlaps and the box <-> distance maps.

The twin of :mod:`reference.boxes` (semantics and formulas there); these versions
keep the input's dtype and device and are differentiable by autograd.
"""

from __future__ import annotations

import torch

from reference.boxes import OVERLAP_MODES

from .validation import check_choice, check_hw, check_scalar, check_tensor

__all__ = ["bbox_overlaps", "bbox2distance", "distance2bbox"]


def bbox_overlaps(
    bboxes1: torch.Tensor,
    bboxes2: torch.Tensor,
    mode: str = "iou",
    is_aligned: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    r"""IoU, GIoU or IoF between two sets of boxes (see :func:`reference.bbox_overlaps`).

    Parameters
    ----------
    bboxes1 : Tensor, shape (M, 4)
    bboxes2 : Tensor, shape (N, 4); (M, 4) when ``is_aligned``
    mode : {"iou", "giou", "iof"}
    is_aligned : bool
    eps : float

    Returns
    -------
    Tensor, shape (M, N), or (M,) when aligned
    """
    check_choice(mode, "mode", OVERLAP_MODES)
    dims: dict[str, int] = {}
    check_tensor(bboxes1, "bboxes1", ("M", 4), dims)
    if is_aligned:
        check_tensor(
            bboxes2, "bboxes2", ("M", 4), dims, note="(is_aligned: as many rows as bboxes1)"
        )
    else:
        check_tensor(bboxes2, "bboxes2", ("N", 4))
    eps = check_scalar(eps, "eps", low=0.0)
    return _overlaps(bboxes1, bboxes2, mode, is_aligned, eps)


def _overlaps(
    b1: torch.Tensor, b2: torch.Tensor, mode: str, is_aligned: bool, eps: float
) -> torch.Tensor:
    """Unchecked overlaps; broadcasts over any leading batch axes when not aligned.

    ``b1`` is ``(..., M, 4)`` and ``b2`` ``(..., N, 4)``; the result is
    ``(..., M, N)`` (or ``(..., M)`` when aligned).
    """
    if not is_aligned:
        b1 = b1.unsqueeze(-2)  # (..., M, 1, 4)
        b2 = b2.unsqueeze(-3)  # (..., 1, N, 4)
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    lt = torch.maximum(b1[..., :2], b2[..., :2])
    rb = torch.minimum(b1[..., 2:], b2[..., 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    if mode == "iof":
        union = area1.expand_as(overlap)
    else:
        union = area1 + area2 - overlap
    eps_t = union.new_tensor([eps])
    union = torch.maximum(union, eps_t)
    ious = overlap / union
    if mode != "giou":
        return ious
    enc_lt = torch.minimum(b1[..., :2], b2[..., :2])
    enc_rb = torch.maximum(b1[..., 2:], b2[..., 2:])
    enc_wh = (enc_rb - enc_lt).clamp(min=0)
    enclose = torch.maximum(enc_wh[..., 0] * enc_wh[..., 1], eps_t)
    return ious - (enclose - union) / enclose


def bbox2distance(
    points: torch.Tensor,
    bbox: torch.Tensor,
    max_dis: float | None = None,
    eps: float = 0.1,
) -> torch.Tensor:
    r"""Distances ``(x - x1, y - y1, x2 - x, y2 - y)``, clamped to ``[0, max_dis - eps]``
    when ``max_dis`` is given (see :func:`reference.bbox2distance`).

    Parameters
    ----------
    points : Tensor, shape (M, 2)
    bbox : Tensor, shape (M, 4)
    max_dis : float, optional
    eps : float

    Returns
    -------
    Tensor, shape (M, 4)
    """
    dims: dict[str, int] = {}
    check_tensor(points, "points", ("M", 2), dims)
    check_tensor(bbox, "bbox", ("M", 4), dims)
    dist = torch.stack(
        [
            points[:, 0] - bbox[:, 0],
            points[:, 1] - bbox[:, 1],
            bbox[:, 2] - points[:, 0],
            bbox[:, 3] - points[:, 1],
        ],
        dim=-1,
    )  # (M, 4)
    if max_dis is not None:
        max_dis = check_scalar(max_dis, "max_dis", low=0.0, low_open=True)
        eps = check_scalar(eps, "eps", low=0.0)
        if eps >= max_dis:
            raise ValueError(f"eps must be < max_dis = {max_dis:g}, got {eps:g}")
        dist = dist.clamp(min=0, max=max_dis - eps)
    return dist


def distance2bbox(
    points: torch.Tensor,
    distance: torch.Tensor,
    max_shape: tuple[int, int] | None = None,
) -> torch.Tensor:
    r"""Decode ``(l, t, r, b)`` distances into boxes ``(x - l, y - t, x + r, y + b)``,
    x clamped to ``[0, w]`` and y to ``[0, h]`` when ``max_shape = (h, w)``
    is given (see :func:`reference.distance2bbox_forward`).

    Parameters
    ----------
    points : Tensor, shape (M, 2)
    distance : Tensor, shape (M, 4)
    max_shape : (h, w), optional

    Returns
    -------
    Tensor, shape (M, 4)
    """
    dims: dict[str, int] = {}
    check_tensor(points, "points", ("M", 2), dims)
    check_tensor(distance, "distance", ("M", 4), dims)
    boxes = _decode(points, distance)
    if max_shape is not None:
        h, w = check_hw(max_shape, "max_shape", finite=False)
        boxes = _clamp_boxes(boxes, h, w)
    return boxes


def _decode(points: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """Unchecked decode; ``points (..., 2)``, ``distance (..., 4)`` → ``(..., 4)``."""
    x, y = points[..., 0], points[..., 1]
    return torch.stack(
        [x - distance[..., 0], y - distance[..., 1], x + distance[..., 2], y + distance[..., 3]],
        dim=-1,
    )


def _clamp_boxes(boxes: torch.Tensor, h: float, w: float) -> torch.Tensor:
    """Clamp x to ``[0, w]`` and y to ``[0, h]`` (each side its own clamp, as torch.clamp)."""
    x1 = boxes[..., 0].clamp(min=0, max=w)
    y1 = boxes[..., 1].clamp(min=0, max=h)
    x2 = boxes[..., 2].clamp(min=0, max=w)
    y2 = boxes[..., 3].clamp(min=0, max=h)
    return torch.stack([x1, y1, x2, y2], dim=-1)
