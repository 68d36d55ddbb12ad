r"""Inference of the GFL head in NumPy: scores and boxes → detections.

The last of the head's three steps (:mod:`reference.head_targets` →
:mod:`reference.head_loss` → here); the twin of :mod:`torch_impl.head_predict`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .anchors import anchor_centers, grid_anchors
from .boxes import distance2bbox_forward
from .config import GFLConfig
from .dialects import Dialect, get_dialect
from .img_meta import parse_img_metas
from .integral import integral_forward
from .levels import check_level_maps
from .nms_fast import multiclass_nms_fast
from .numerics import sigmoid
from .validation import as_float

__all__ = ["gfl_predict"]


def top_indices(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values, by descending value; ties: lower index first."""
    return np.argsort(-values, kind="stable")[:k]


def gfl_predict(
    cls_scores: Sequence[np.ndarray],
    bbox_preds: Sequence[np.ndarray],
    img_metas: Sequence[dict],
    cfg: GFLConfig,
    rescale: bool = False,
    *,
    dialect: str | Dialect = "mmdet2",
) -> list[tuple[np.ndarray, np.ndarray]]:
    r"""Detections of every image (mmdetection's GFL ``get_bboxes``, per level ``nms_pre``).

    Parameters
    ----------
    cls_scores : list of ndarray, shape (B, C, H_l, W_l)
    bbox_preds : list of ndarray, shape (B, 4(n+1), H_l, W_l)
    img_metas : list of dict
        ``img_shape`` (boxes are clamped to it) and ``scale_factor``.
    cfg : GFLConfig
        ``nms_pre``, ``score_thr``, ``nms_iou_threshold``, ``max_per_img``.
    rescale : bool
        Divide the boxes by ``scale_factor`` (back to the original image).
    dialect : str or Dialect
        Where implementations differ (:mod:`reference.dialects`): here the
        anchors' ``center_offset`` and the decode's ``clamp_offset``.

    Returns
    -------
    list of (dets, labels), one per image
        ``dets`` ``(K, 5)``: ``(x1, y1, x2, y2, score)``, by descending score;
        ``labels`` ``(K,)`` int64.

    See Also
    --------
    torch_impl.gfl_predict : the PyTorch twin.

    Notes
    -----
    Per image and level of stride :math:`s`: scores :math:`\sigma(x)`,
    distances :math:`s\cdot\mathrm{Integral}(z)`; when ``0 < nms_pre`` and
    the level has more anchors, keep the ``nms_pre`` anchors with the highest
    max-class score (ties: lower index); decode from the anchor centre,
    clamped to ``img_shape``. Then concatenate the levels, optionally divide
    by ``scale_factor`` and run :func:`~reference.multiclass_nms` — in its fast
    form, :func:`~reference.nms_fast.multiclass_nms_fast`, which gives the same
    detections (tested) about 15 times faster on 80 classes.
    """
    batch = check_level_maps(cls_scores, bbox_preds, cfg)
    c, k = cfg.num_classes, cfg.reg_max + 1
    metas, d = parse_img_metas(img_metas, batch), get_dialect(dialect)
    featmap_sizes = [tuple(np.shape(m)[2:]) for m in cls_scores]
    centres = [
        anchor_centers(a)
        for a in grid_anchors(
            featmap_sizes, cfg.strides, cfg.octave_base_scale, center_offset=d.center_offset
        )
    ]
    results = []
    for i in range(batch):
        boxes_all, scores_all = [], []
        for lvl, stride in enumerate(cfg.strides):
            cls = as_float(cls_scores[lvl][i], f"cls_scores[{lvl}]", finite=True)
            reg = as_float(bbox_preds[lvl][i], f"bbox_preds[{lvl}]", finite=True)
            scores = sigmoid(cls.reshape(c, -1).T)  # (H*W, C)
            reg = reg.reshape(4 * k, -1).T  # (H*W, 4(n+1))
            pts = centres[lvl]
            if 0 < cfg.nms_pre < scores.shape[0]:
                keep = top_indices(scores.max(axis=1), cfg.nms_pre)
                scores, reg, pts = scores[keep], reg[keep], pts[keep]
            dist = integral_forward(reg, cfg.reg_max)[0] * stride  # (n, 4)
            boxes, _ = distance2bbox_forward(
                pts, dist, max_shape=metas[i].img_shape, clamp_offset=d.decode_clamp_offset
            )
            boxes_all.append(boxes)
            scores_all.append(scores)
        boxes = np.concatenate(boxes_all, axis=0)
        scores = np.concatenate(scores_all, axis=0)
        if rescale:
            boxes = boxes / metas[i].scale_factor
        scores = np.concatenate(
            [scores, np.zeros((scores.shape[0], 1))], axis=1
        )  # (N, C+1) background
        results.append(
            multiclass_nms_fast(
                boxes, scores, cfg.score_thr, cfg.nms_iou_threshold, cfg.max_per_img
            )
        )
    return results
