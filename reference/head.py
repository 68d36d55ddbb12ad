r"""The whole GFL head loss in NumPy: targets, forward, and a hand-derived backward.

Read this module top to bottom: :func:`gfl_targets` turns ground truth into
per-anchor targets with ATSS; :func:`gfl_loss_forward` computes Quality Focal
Loss over every anchor and the GIoU and Distribution Focal losses over the
positives; :func:`gfl_loss_backward` chains the pieces' backward functions in
reverse order.

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

from .anchors import anchor_centers, grid_anchors, valid_flags
from .atss import atss_assign
from .boxes import bbox2distance, bbox_overlaps
from .boxes import distance2bbox_backward as _d2b_backward
from .boxes import distance2bbox_forward as _d2b_forward
from .config import GFLConfig
from .dfl import dfl_backward, dfl_forward
from .giou import giou_loss_backward, giou_loss_forward
from .img_meta import parse_img_metas
from .integral import integral_backward, integral_forward
from .numerics import sigmoid
from .qfl import qfl_backward, qfl_forward
from .reduce import weight_reduce_backward, weight_reduce_forward
from .validation import as_float, as_int, check_shape


class GFLTargets(NamedTuple):
    """Per-anchor training targets of a batch (levels concatenated, level 0 first).

    Attributes
    ----------
    anchors : ndarray, shape (A, 4)
    strides : ndarray, shape (A,)  — the stride of each anchor's level
    num_level_anchors : list of int — anchors per level
    valid : ndarray of bool, shape (B, A) — valid flags (padding)
    labels : ndarray of int, shape (B, A) — gt label at positives, C elsewhere
    label_weights : ndarray, shape (B, A) — 1 for valid, non-ignored anchors
    bbox_targets : ndarray, shape (B, A, 4) — gt box at positives, 0 elsewhere
    pos : ndarray of bool, shape (B, A)
    num_total_samples : float — :math:`\\max(\\sum_i \\max(n^{pos}_i, 1), 1)`
    assign_results : list of AssignResult — ATSS on each image's valid anchors
    """

    anchors: np.ndarray
    strides: np.ndarray
    num_level_anchors: list[int]
    valid: np.ndarray
    labels: np.ndarray
    label_weights: np.ndarray
    bbox_targets: np.ndarray
    pos: np.ndarray
    num_total_samples: float
    assign_results: list


def gfl_targets(
    featmap_sizes: Sequence[tuple[int, int]],
    gt_bboxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    img_metas: Sequence[dict],
    cfg: GFLConfig,
    gt_bboxes_ignore: Sequence[np.ndarray | None] | None = None,
) -> GFLTargets:
    r"""ATSS targets of every anchor of every image (mmdetection's ``get_targets``).

    Parameters
    ----------
    featmap_sizes : list of (H_l, W_l), one per level
    gt_bboxes : list of ndarray, shape (G_i, 4), one per image
    gt_labels : list of ndarray of int, shape (G_i,), values in ``[0, C)``
    img_metas : list of dict, one per image (``img_shape``, ``pad_shape``)
    cfg : GFLConfig
    gt_bboxes_ignore : list of ndarray (K_i, 4) or None, optional
        Boxes to ignore (used only when ``cfg.ignore_iof_thr > 0``).

    Returns
    -------
    GFLTargets

    Notes
    -----
    Per image, ATSS runs on the valid anchors only (``allowed_border=-1``:
    inside flags are the valid flags). Positives get their gt's label and box
    and label weight 1; negatives label C and weight 1; ignored (−1) and
    invalid anchors label C and weight 0. The QFL normaliser counts an image
    without positives as 1:

    .. math:: N_{samples} = \max\Big(\sum_i \max(n^{pos}_i, 1),\ 1\Big).
    """
    batch = len(gt_bboxes)
    metas = parse_img_metas(img_metas, batch)
    if len(gt_labels) != batch:
        raise ValueError(f"gt_labels must have one entry per image ({batch}), got {len(gt_labels)}")
    if gt_bboxes_ignore is not None and len(gt_bboxes_ignore) != batch:
        raise ValueError(
            f"gt_bboxes_ignore must have one entry per image ({batch}), got {len(gt_bboxes_ignore)}"
        )
    c = cfg.num_classes
    level_anchors = grid_anchors(featmap_sizes, cfg.strides, cfg.octave_base_scale)
    num_level = [a.shape[0] for a in level_anchors]
    anchors = np.concatenate(level_anchors, axis=0)  # (A, 4)
    strides = np.concatenate(
        [np.full(n, s, dtype=np.float64) for n, s in zip(num_level, cfg.strides)]
    )
    a = anchors.shape[0]
    valid = np.zeros((batch, a), dtype=bool)
    labels = np.full((batch, a), c, dtype=np.int64)
    label_weights = np.zeros((batch, a))
    bbox_targets = np.zeros((batch, a, 4))
    results = []
    num_pos_total = 0
    for i in range(batch):
        gts = as_float(gt_bboxes[i], f"gt_bboxes[{i}]", ("G", 4), finite=True)
        gl = as_int(gt_labels[i], f"gt_labels[{i}]", (gts.shape[0],))
        if np.any((gl < 0) | (gl >= c)):
            raise ValueError(
                f"gt_labels[{i}] must lie in [0, num_classes) = [0, {c}), got {gl.tolist()}"
            )
        flags = np.concatenate(valid_flags(featmap_sizes, metas[i].pad_shape, cfg.strides))  # (A,)
        valid[i] = flags
        num_level_valid = [int(f.sum()) for f in np.split(flags, np.cumsum(num_level)[:-1])]
        ignore = None if gt_bboxes_ignore is None else gt_bboxes_ignore[i]
        res = atss_assign(
            anchors[flags], num_level_valid, gts, gl, ignore, cfg.topk, cfg.ignore_iof_thr
        )
        results.append(res)
        idx = np.flatnonzero(flags)  # valid anchor → its index among all anchors
        pos_local = res.gt_inds > 0
        pos_idx = idx[pos_local]
        labels[i, pos_idx] = res.labels[pos_local]
        bbox_targets[i, pos_idx] = gts[res.gt_inds[pos_local] - 1]
        label_weights[i, idx[res.gt_inds >= 0]] = 1.0
        num_pos_total += max(int(pos_local.sum()), 1)
    pos = labels < c
    num_total_samples = float(max(num_pos_total, 1))
    return GFLTargets(
        anchors,
        strides,
        num_level,
        valid,
        labels,
        label_weights,
        bbox_targets,
        pos,
        num_total_samples,
        results,
    )


def flatten_levels(maps: Sequence[np.ndarray], name: str, channels: int) -> np.ndarray:
    """Concatenate per-level NCHW maps into ``(B, A, channels)`` (y outer, x inner)."""
    checked = [
        as_float(
            m,
            f"{name}[{lvl}]",
            ("B", channels, None, None),
            finite=True,
            note=f"(channels {channels})",
        )
        for lvl, m in enumerate(maps)
    ]
    b = checked[0].shape[0]
    total = sum(m.shape[2] * m.shape[3] for m in checked)
    out = np.empty((b, total, channels))  # (B, A, ch)
    start = 0
    for m in checked:
        _, _, h, w = m.shape
        # one copy per level: NCHW → the (B, H, W, ch) view of this level's rows
        out[:, start : start + h * w].reshape(b, h, w, channels)[...] = m.transpose(0, 2, 3, 1)
        start += h * w
    return out


def unflatten_levels(flat: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Inverse of :func:`flatten_levels`: ``(B, A, ch)`` → per-level ``(B, ch, H, W)``."""
    out, start = [], 0
    for b, ch, h, w in shapes:
        part = flat[:, start : start + h * w].reshape(b, h, w, ch)  # (B, H, W, ch)
        out.append(np.ascontiguousarray(part.transpose(0, 3, 1, 2)))  # (B, ch, H, W)
        start += h * w
    return out


def check_level_maps(
    cls_scores: Sequence[np.ndarray], bbox_preds: Sequence[np.ndarray], cfg: GFLConfig
) -> int:
    """Check the per-level head outputs against ``cfg``; return the batch size B.

    ``cls_scores[l]`` must be ``(B, C, H_l, W_l)`` and ``bbox_preds[l]``
    ``(B, 4(n+1), H_l, W_l)``, one pair per stride of ``cfg``.
    """
    if not isinstance(cfg, GFLConfig):
        raise ValueError(f"cfg must be a GFLConfig, got {type(cfg).__name__}")
    n_levels = len(cfg.strides)
    for name, maps in (("cls_scores", cls_scores), ("bbox_preds", bbox_preds)):
        if isinstance(maps, np.ndarray) or len(maps) != n_levels:
            raise ValueError(
                f"{name} must be a list of {n_levels} arrays (one per stride in cfg.strides), "
                f"got {type(maps).__name__} of length {len(maps)}"
            )
    c, k = cfg.num_classes, cfg.reg_max + 1
    dims: dict[str, int] = {}
    for lvl in range(n_levels):
        check_shape(
            np.shape(cls_scores[lvl]), f"cls_scores[{lvl}]", ("B", c, f"H{lvl}", f"W{lvl}"), dims
        )
        check_shape(
            np.shape(bbox_preds[lvl]),
            f"bbox_preds[{lvl}]",
            ("B", 4 * k, f"H{lvl}", f"W{lvl}"),
            dims,
            note=f"(4*(reg_max+1) = {4 * k} channels)",
        )
    return dims["B"]


class GFLLossCache(NamedTuple):
    cfg: GFLConfig
    cls_shapes: list[tuple[int, ...]]
    bbox_shapes: list[tuple[int, ...]]
    flat_cls_shape: tuple[int, ...]  # (B, A, C)
    flat_bbox_shape: tuple[int, ...]  # (B, A, 4(n+1))
    pos_flat: np.ndarray  # (P,) indices of positives in the flattened (B*A) rows
    qfl: object
    qfl_reduce: object
    integral: object
    d2b: object
    giou: object
    giou_reduce: object
    dfl: object
    dfl_reduce: object
    pos_strides: np.ndarray  # (P,)
    avg_factor: float


def gfl_loss_forward(
    cls_scores: Sequence[np.ndarray],
    bbox_preds: Sequence[np.ndarray],
    gt_bboxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    img_metas: Sequence[dict],
    cfg: GFLConfig,
    gt_bboxes_ignore: Sequence[np.ndarray | None] | None = None,
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

    Returns
    -------
    losses : dict
        ``loss_cls``, ``loss_bbox``, ``loss_dfl`` (floats, summed over levels,
        loss weights applied).
    cache : GFLLossCache

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
    """
    batch = check_level_maps(cls_scores, bbox_preds, cfg)
    c, k = cfg.num_classes, cfg.reg_max + 1
    if len(gt_bboxes) != batch:
        raise ValueError(f"gt_bboxes must have one entry per image ({batch}), got {len(gt_bboxes)}")
    featmap_sizes = [tuple(np.shape(m)[2:]) for m in cls_scores]
    t = gfl_targets(featmap_sizes, gt_bboxes, gt_labels, img_metas, cfg, gt_bboxes_ignore)

    cls = flatten_levels(cls_scores, "cls_scores", c)  # (B, A, C)
    reg = flatten_levels(bbox_preds, "bbox_preds", 4 * k)  # (B, A, 4(n+1))
    a = cls.shape[1]
    cls2 = cls.reshape(batch * a, c)  # (B*A, C)
    reg2 = reg.reshape(batch * a, 4 * k)  # (B*A, 4(n+1))
    pos_flat = np.flatnonzero(t.pos.reshape(-1))  # (P,)
    anchor_of = pos_flat % a  # each positive's anchor index
    pos_strides = t.strides[anchor_of]  # (P,)

    # --- box branch, on the positives, in grid units of each level -----------
    centres = anchor_centers(t.anchors[anchor_of]) / pos_strides[:, None]  # (P, 2)
    target_boxes = t.bbox_targets.reshape(-1, 4)[pos_flat] / pos_strides[:, None]  # (P, 4)
    weight = sigmoid(cls2[pos_flat]).max(axis=1) if pos_flat.size else np.zeros(0)  # (P,), detached
    dist, int_cache = integral_forward(reg2[pos_flat], cfg.reg_max)  # (P, 4)
    pred_boxes, d2b_cache = _d2b_forward(centres, dist)  # (P, 4), no clamp in training
    giou_el, giou_cache = giou_loss_forward(pred_boxes, target_boxes)  # (P,)
    loss_giou, giou_red = weight_reduce_forward(giou_el, weight, "mean", avg_factor=1.0)
    corners = reg2[pos_flat].reshape(-1, k)  # (4P, n+1): rows l, t, r, b of each positive
    dfl_target = bbox2distance(centres, target_boxes, cfg.reg_max).reshape(-1)  # (4P,)
    dfl_el, dfl_cache = dfl_forward(corners, dfl_target)  # (4P,)
    loss_dfl, dfl_red = weight_reduce_forward(dfl_el, np.repeat(weight, 4), "mean", avg_factor=4.0)
    avg_factor = max(float(weight.sum()), 1.0)

    # --- classification branch, on every anchor ------------------------------
    score = np.zeros(batch * a)  # (B*A,) IoU target, 0 for negatives
    score[pos_flat] = bbox_overlaps(pred_boxes, target_boxes, "iou", is_aligned=True)
    qfl_el, qfl_cache = qfl_forward(cls2, t.labels.reshape(-1), score, cfg.qfl_beta)  # (B*A,)
    loss_cls, qfl_red = weight_reduce_forward(
        qfl_el, t.label_weights.reshape(-1), "mean", avg_factor=t.num_total_samples
    )

    losses = {
        "loss_cls": cfg.loss_cls_weight * float(loss_cls),
        "loss_bbox": cfg.loss_bbox_weight * float(loss_giou) / avg_factor,
        "loss_dfl": cfg.loss_dfl_weight * float(loss_dfl) / avg_factor,
    }
    cache = GFLLossCache(
        cfg,
        [np.shape(m) for m in cls_scores],
        [np.shape(m) for m in bbox_preds],
        cls.shape,
        reg.shape,
        pos_flat,
        qfl_cache,
        qfl_red,
        int_cache,
        d2b_cache,
        giou_cache,
        giou_red,
        dfl_cache,
        dfl_red,
        pos_strides,
        avg_factor,
    )
    return losses, cache


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
    g_cls = float(d_loss_cls) * cfg.loss_cls_weight
    d_qfl_el = weight_reduce_backward(np.asarray(g_cls), cache.qfl_reduce)  # (B*A,)
    d_cls2 = qfl_backward(d_qfl_el, cache.qfl)  # (B*A, C)

    # box: GIoU → boxes → distances → logits; DFL → logits
    g_bbox = float(d_loss_bbox) * cfg.loss_bbox_weight / cache.avg_factor
    d_giou_el = weight_reduce_backward(np.asarray(g_bbox), cache.giou_reduce)  # (P,)
    d_boxes = giou_loss_backward(d_giou_el, cache.giou)  # (P, 4)
    d_dist = _d2b_backward(d_boxes, cache.d2b)  # (P, 4)
    d_reg_pos = integral_backward(d_dist, cache.integral)  # (P, 4(n+1))
    g_dfl = float(d_loss_dfl) * cfg.loss_dfl_weight / cache.avg_factor
    d_dfl_el = weight_reduce_backward(np.asarray(g_dfl), cache.dfl_reduce)  # (4P,)
    d_corners = dfl_backward(d_dfl_el, cache.dfl)  # (4P, n+1)
    d_reg_pos = d_reg_pos + d_corners.reshape(-1, 4 * k)  # (P, 4(n+1))

    d_reg2 = np.zeros((b * a, 4 * k))
    d_reg2[cache.pos_flat] = d_reg_pos
    d_cls = unflatten_levels(d_cls2.reshape(b, a, c), cache.cls_shapes)  # (B, A, C) → levels
    d_reg = unflatten_levels(d_reg2.reshape(b, a, 4 * k), cache.bbox_shapes)  # (B, A, 4(n+1))
    return d_cls, d_reg
