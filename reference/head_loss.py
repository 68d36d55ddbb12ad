r"""The whole GFL head loss in NumPy: forward, and a hand-derived backward.

Read this module top to bottom: :func:`gfl_loss_forward` takes the targets of
:func:`~reference.head_targets.gfl_targets`, computes Quality Focal Loss over
every anchor and the GIoU and Distribution Focal losses over the positives;
:func:`gfl_loss_backward` chains the pieces' backward functions in reverse
order. The twin of :mod:`torch_impl.head_loss`.

All levels are processed together: anchors of every level are concatenated
(level 0 first), and each anchor carries its level's stride. Because both
normalisers (``num_total_samples`` and ``avg_factor``) are global, the sum
over levels of mmdetection's per-level losses equals the loss computed over
the concatenation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .anchors import anchor_centers
from .boxes import Distance2BBoxCache, bbox2distance, bbox_overlaps
from .boxes import distance2bbox_backward as _d2b_backward
from .boxes import distance2bbox_forward as _d2b_forward
from .config import GFLConfig
from .dfl import DFLCache, dfl_backward, dfl_forward
from .dialects import MMDET2, Dialect, get_dialect
from .giou import GIoUCache, giou_loss_backward, giou_loss_forward
from .head_targets import gfl_targets
from .integral import IntegralCache, integral_backward, integral_forward
from .levels import (
    check_level_maps,
    flatten_levels,
    put_level_rows,
    take_level_rows,
    unflatten_levels,
)
from .numerics import sigmoid
from .qfl import QFLCache
from .qfl_fast import qfl_backward_fast, qfl_forward_fast
from .reduce import ReduceCache, weight_reduce_backward, weight_reduce_forward

__all__ = ["GFLLossCache", "gfl_loss_forward", "gfl_loss_backward"]


class GFLLossCache(NamedTuple):
    """What :func:`gfl_loss_backward` needs: shapes, the positives, and each piece's cache."""

    cfg: GFLConfig
    cls_shapes: list[tuple[int, ...]]  # per level (B, C, H_l, W_l)
    bbox_shapes: list[tuple[int, ...]]  # per level (B, 4(n+1), H_l, W_l)
    flat_cls_shape: tuple[int, ...]  # (B, A, C)
    flat_bbox_shape: tuple[int, ...]  # (B, A, 4(n+1))
    pos_flat: np.ndarray  # (P,) indices of positives in the flattened (B*A) rows
    qfl: QFLCache  # from qfl_forward_fast: its d_pred, which qfl_backward accepts too
    qfl_reduce: ReduceCache
    integral: IntegralCache
    d2b: Distance2BBoxCache
    giou: GIoUCache
    giou_reduce: ReduceCache
    dfl: DFLCache
    dfl_reduce: ReduceCache
    pos_strides: np.ndarray  # (P,)
    avg_factor: float
    scale: float = 1.0  # 0 when the dialect zeroes every loss (nanodet, no positives)


class _BoxBranch(NamedTuple):
    """The box branch on the P positives, in grid units of each level."""

    pred_boxes: np.ndarray  # (P, 4) decoded from the Integral, no clamp
    loss_giou: float  # weighted GIoU sum (avg_factor 1), before the global normaliser
    loss_dfl: float  # weighted DFL sum / 4, before the global normaliser
    integral: IntegralCache
    d2b: Distance2BBoxCache
    giou: GIoUCache
    giou_reduce: ReduceCache
    dfl: DFLCache
    dfl_reduce: ReduceCache


def _box_branch(
    reg_pos: np.ndarray,
    centres: np.ndarray,
    target_boxes: np.ndarray,
    weight: np.ndarray,
    reg_max: int,
    d: Dialect = MMDET2,
) -> _BoxBranch:
    """GIoU and DFL of the positives: ``reg_pos (P, 4(n+1))``, ``centres (P, 2)``,
    ``target_boxes (P, 4)``, ``weight (P,)`` (detached); the dialect's switches here:
    ``avg_factor_eps`` is added to the avg_factors, DFL targets are clamped below
    ``reg_max - target_eps``."""
    eps = d.avg_factor_eps
    dist, int_cache = integral_forward(reg_pos, reg_max)  # (P, 4)
    pred_boxes, d2b_cache = _d2b_forward(centres, dist)  # (P, 4), no clamp in training
    giou_el, giou_cache = giou_loss_forward(pred_boxes, target_boxes)  # (P,)
    loss_giou, giou_red = weight_reduce_forward(giou_el, weight, "mean", 1.0, eps=eps)
    corners = reg_pos.reshape(-1, reg_max + 1)  # (4P, n+1): rows l, t, r, b of each positive
    dfl_target = bbox2distance(centres, target_boxes, reg_max, d.target_eps).reshape(-1)  # (4P,)
    dfl_el, dfl_cache = dfl_forward(corners, dfl_target)  # (4P,)
    loss_dfl, dfl_red = weight_reduce_forward(dfl_el, np.repeat(weight, 4), "mean", 4.0, eps=eps)
    return _BoxBranch(
        pred_boxes,
        float(loss_giou),
        float(loss_dfl),
        int_cache,
        d2b_cache,
        giou_cache,
        giou_red,
        dfl_cache,
        dfl_red,
    )


def gfl_loss_forward(
    cls_scores: Sequence[np.ndarray],
    bbox_preds: Sequence[np.ndarray],
    gt_bboxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    img_metas: Sequence[dict],
    cfg: GFLConfig,
    gt_bboxes_ignore: Sequence[np.ndarray | None] | None = None,
    *,
    dialect: str | Dialect = "mmdet2",
) -> tuple[dict[str, float], GFLLossCache]:
    r"""The GFL head's loss (mmdetection's ``GFLHead.loss``).

    Parameters
    ----------
    cls_scores : list of ndarray, shape (B, C, H_l, W_l), one per level
        Classification logits.
    bbox_preds : list of ndarray, shape (B, 4(n+1), H_l, W_l), one per level
        Distribution logits of the four sides (left, top, right, bottom).
    gt_bboxes : list of ndarray, shape (G_i, 4)
    gt_labels : list of ndarray of int, shape (G_i,)
    img_metas : list of dict
    cfg : GFLConfig
    gt_bboxes_ignore : list of ndarray (K_i, 4) or None, optional
    dialect : str or Dialect
        Where implementations differ (:mod:`reference.dialects`): the switches
        of :func:`gfl_targets`, QFL's ``abs``, the IoU's offset, whether QFL is
        weighted by the label weights, the ``avg_factor`` epsilon, the DFL
        targets' ``target_eps``, and the box normaliser ``box_norm``
        (``"clamp"``: :math:`W` as below; ``"none"``: :math:`W = \sum w`, NaN
        losses when it is 0; ``"zero"``: :math:`W = \sum w`, but every loss,
        and its gradient, is 0 when :math:`\sum w \le 0`).

    Returns
    -------
    losses : dict
        ``loss_cls``, ``loss_bbox``, ``loss_dfl`` (floats, summed over levels,
        loss weights applied).
    cache : GFLLossCache

    See Also
    --------
    torch_impl.gfl_loss : the PyTorch twin, differentiated by autograd.

    Notes
    -----
    With targets from :func:`gfl_targets`, on level :math:`\ell` of stride
    :math:`s` and for a positive anchor of centre :math:`c`:

    * predicted box :math:`\hat b = \mathrm{distance2bbox}(c/s,\ \mathrm{Integral}(z))`
      (grid units), target :math:`b = b_{gt}/s`;
    * QFL score target :math:`y = \mathrm{IoU}(\hat b, b)` (no gradient),
      0 for negatives;
    * weight :math:`w = \max_k \sigma(x_k)` (no gradient);
    * DFL targets :math:`\mathrm{bbox2distance}(c/s, b, n)`, in :math:`[0, n-0.1]`.

    .. math::
        L_{cls} &= \frac{\lambda_{cls}}{N_{s}}\sum_{\text{anchors}} \omega\,\mathrm{QFL}(x; y) \\
        L_{bbox} &= \lambda_{bbox}\frac{1}{W}\sum_{\text{pos}} w\,(1-\mathrm{GIoU}(\hat b, b)) \\
        L_{dfl} &= \lambda_{dfl}\frac{1}{4W}\sum_{\text{pos}} w \sum_{\text{sides}}\mathrm{DFL}

    with :math:`\omega` the label weights, :math:`N_s` = ``num_total_samples``,
    :math:`W = \max(\sum_{\text{pos}} w, 1)`
    and :math:`\lambda = (1, 2, 0.25)`.

    QFL runs in its fast form, :func:`~reference.qfl_fast.qfl_forward_fast` (the same
    loss and gradient, bit for bit, tested), whose cache holds the gradient itself; the
    box logits are read at the positives' rows only (``take_level_rows``).
    """
    batch = check_level_maps(cls_scores, bbox_preds, cfg)
    c, k = cfg.num_classes, cfg.reg_max + 1
    if len(gt_bboxes) != batch:
        raise ValueError(f"gt_bboxes must have one entry per image ({batch}), got {len(gt_bboxes)}")
    featmap_sizes = [tuple(np.shape(m)[2:]) for m in cls_scores]
    d = get_dialect(dialect)
    t = gfl_targets(featmap_sizes, gt_bboxes, gt_labels, img_metas, cfg, gt_bboxes_ignore,
                    dialect=d)  # fmt: skip

    cls = flatten_levels(cls_scores, "cls_scores", c)  # (B, A, C)
    a = cls.shape[1]
    cls2 = cls.reshape(batch * a, c)  # (B*A, C)
    pos_flat = np.flatnonzero(t.pos.reshape(-1))  # (P,)
    # the positives' rows of the flattened box logits (B*A, 4(n+1)), the only ones used
    reg_pos = take_level_rows(bbox_preds, "bbox_preds", 4 * k, pos_flat)  # (P, 4(n+1))
    anchor_of = pos_flat % a  # each positive's anchor index
    pos_strides = t.strides[anchor_of]  # (P,)

    # --- box branch, on the positives, in grid units of each level -----------
    centres = anchor_centers(t.anchors[anchor_of]) / pos_strides[:, None]  # (P, 2)
    target_boxes = t.bbox_targets.reshape(-1, 4)[pos_flat] / pos_strides[:, None]  # (P, 4)
    weight = sigmoid(cls2[pos_flat]).max(axis=1) if pos_flat.size else np.zeros(0)  # (P,), detached
    box = _box_branch(reg_pos, centres, target_boxes, weight, cfg.reg_max, d)
    avg_factor, scale = _box_normaliser(weight, d.box_norm)

    # --- classification branch, on every anchor ------------------------------
    score = np.zeros(batch * a)  # (B*A,) IoU target, 0 for negatives
    score[pos_flat] = bbox_overlaps(box.pred_boxes, target_boxes, "iou", is_aligned=True,
                                    offset=d.iou_offset)  # fmt: skip
    qfl_el, qfl_cache = qfl_forward_fast(cls2, t.labels.reshape(-1), score, cfg.qfl_beta,
                                         abs_factor=d.qfl_abs)  # (B*A,)  # fmt: skip
    label_weights = t.label_weights.reshape(-1) if d.qfl_label_weights else None
    loss_cls, qfl_red = weight_reduce_forward(
        qfl_el, label_weights, "mean", t.num_total_samples, eps=d.avg_factor_eps
    )

    with np.errstate(invalid="ignore"):  # 0/0 = NaN, said by box_norm="none"
        losses = {
            "loss_cls": scale * cfg.loss_cls_weight * float(loss_cls),
            "loss_bbox": float(scale * cfg.loss_bbox_weight * box.loss_giou / avg_factor),
            "loss_dfl": float(scale * cfg.loss_dfl_weight * box.loss_dfl / avg_factor),
        }
    cache = GFLLossCache(
        cfg, [np.shape(m) for m in cls_scores], [np.shape(m) for m in bbox_preds], cls.shape,
        (batch, a, 4 * k), pos_flat, qfl_cache, qfl_red, box.integral, box.d2b, box.giou,
        box.giou_reduce, box.dfl, box.dfl_reduce, pos_strides, avg_factor, scale,
    )  # fmt: skip
    return losses, cache


def _box_normaliser(weight: np.ndarray, box_norm: str) -> tuple[np.ndarray, float]:
    r"""The box losses' normaliser :math:`W` and a scale for all three losses.

    ``weight (P,)`` are the positives' detached max class scores. ``"clamp"``:
    :math:`W = \max(\sum w, 1)` (mmdetection); ``"none"``: :math:`W = \sum w`
    (GFocal; 0 with no positives, and the box losses are then NaN, 0/0);
    ``"zero"``: :math:`W = \sum w`, and when :math:`\sum w \le 0` every loss is
    multiplied by 0 (nanodet; :math:`W` is then taken as 1). :math:`W` is a 0-d
    float64 array, so that 0/0 is NaN rather than an exception.
    """
    total = np.float64(weight.sum())
    if box_norm == "clamp":
        return np.maximum(total, 1.0), 1.0
    if box_norm == "zero" and total <= 0:
        return np.float64(1.0), 0.0
    return total, 1.0


def gfl_loss_backward(
    cache: GFLLossCache,
    d_loss_cls: float = 1.0,
    d_loss_bbox: float = 1.0,
    d_loss_dfl: float = 1.0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    r"""Gradient of the weighted losses with respect to every level's inputs.

    Parameters
    ----------
    cache : GFLLossCache
        From :func:`gfl_loss_forward`.
    d_loss_cls, d_loss_bbox, d_loss_dfl : float
        Upstream gradients of the three losses (1.0 each: the gradient of
        their sum).

    Returns
    -------
    d_cls_scores : list of ndarray, shape (B, C, H_l, W_l)
    d_bbox_preds : list of ndarray, shape (B, 4(n+1), H_l, W_l)

    Notes
    -----
    The chain, in reverse order of the forward:

    .. math::
        \frac{\partial L}{\partial x} &= \texttt{qfl\_backward}\big(
            \lambda_{cls}\,\omega / N_{samples}\big) \\
        \frac{\partial L}{\partial z} &= \texttt{integral\_backward}\Big(
            \texttt{distance2bbox\_backward}\big(\texttt{giou\_backward}
            (\lambda_{bbox} w / W)\big)\Big)
            + \texttt{dfl\_backward}\big(\lambda_{dfl}\,w / (4W)\big)

    Only QFL reaches the classification logits (the weights :math:`w` and
    the IoU targets are constants), and only the positives' rows of the box
    logits receive a gradient.
    """
    cfg = cache.cfg
    k = cfg.reg_max + 1
    b, a, c = cache.flat_cls_shape
    # classification: scalar → weighted mean → per-anchor QFL → logits
    g_cls = float(d_loss_cls) * cfg.loss_cls_weight * cache.scale
    d_qfl_el = weight_reduce_backward(np.asarray(g_cls), cache.qfl_reduce)  # (B*A,)
    d_cls2 = qfl_backward_fast(d_qfl_el, cache.qfl)  # (B*A, C)

    # box: GIoU → boxes → distances → logits; DFL → logits. W = 0 only without positives
    # (box_norm="none"): the scales are then inf or NaN, and there is no row to scale.
    with np.errstate(divide="ignore", invalid="ignore"):
        g_bbox = float(d_loss_bbox) * cfg.loss_bbox_weight * cache.scale / cache.avg_factor
        g_dfl = float(d_loss_dfl) * cfg.loss_dfl_weight * cache.scale / cache.avg_factor
    d_giou_el = weight_reduce_backward(np.asarray(g_bbox), cache.giou_reduce)  # (P,)
    d_boxes = giou_loss_backward(d_giou_el, cache.giou)  # (P, 4)
    d_dist = _d2b_backward(d_boxes, cache.d2b)  # (P, 4)
    d_reg_pos = integral_backward(d_dist, cache.integral)  # (P, 4(n+1))
    d_dfl_el = weight_reduce_backward(np.asarray(g_dfl), cache.dfl_reduce)  # (4P,)
    d_corners = dfl_backward(d_dfl_el, cache.dfl)  # (4P, n+1)
    d_reg_pos = d_reg_pos + d_corners.reshape(-1, 4 * k)  # (P, 4(n+1))

    d_cls = unflatten_levels(d_cls2.reshape(b, a, c), cache.cls_shapes)  # (B, A, C) → levels
    # the positives' rows of a zero (B*A, 4(n+1)) gradient, unflattened into the levels
    d_reg = put_level_rows(d_reg_pos, cache.pos_flat, cache.bbox_shapes)
    return d_cls, d_reg
