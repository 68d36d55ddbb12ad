r"""Inference of the GFL head in PyTorch: scores and boxes → detections.

The last of the head's three steps (:mod:`torch_impl.head_targets` →
:mod:`torch_impl.head_loss` → here); the twin of :mod:`reference.head_predict`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reference.anchors import check_levels
from reference.config import GFLConfig
from reference.img_meta import parse_img_metas

from .anchors import _geometry
from .boxes import _decode
from .integral import _integral
from .levels import check_level_maps
from .nms import multiclass_nms
from .validation import work_dtype

__all__ = ["gfl_predict"]


def gfl_predict(
    cls_scores: Sequence[torch.Tensor],
    bbox_preds: Sequence[torch.Tensor],
    img_metas: Sequence[dict],
    cfg: GFLConfig,
    rescale: bool = False,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    r"""Detections of every image (the twin of :func:`reference.gfl_predict`).

    Parameters
    ----------
    cls_scores : list of Tensor, shape (B, C, H_l, W_l)
    bbox_preds : list of Tensor, shape (B, 4(n+1), H_l, W_l)
    img_metas : list of dict
    cfg : GFLConfig
    rescale : bool

    Returns
    -------
    list of (dets (K, 5), labels (K,)), one per image
        In the inputs' dtype (float32 for float16/bfloat16 inputs).

    Notes
    -----
    Scoring, the ``nms_pre`` cut (a stable sort: ties keep the lower anchor
    index), the Integral and decoding run for the whole batch at once; NMS
    then runs image by image (each image keeps a different number of boxes).
    """
    batch = check_level_maps(cls_scores, bbox_preds, cfg)
    metas = parse_img_metas(img_metas, batch)
    device = cls_scores[0].device
    work = work_dtype(cls_scores[0].dtype)
    c, k = cfg.num_classes, cfg.reg_max + 1
    sizes, strides = check_levels([m.shape[-2:] for m in cls_scores], cfg.strides)
    geo = _geometry(tuple(sizes), tuple(strides), cfg.octave_base_scale, work, device)
    starts = [sum(geo.num_level[:lvl]) for lvl in range(len(sizes))]
    boxes_all, scores_all = [], []
    with torch.no_grad(), torch.autocast(device_type=device.type, enabled=False):
        for lvl, stride in enumerate(cfg.strides):
            scores = cls_scores[lvl].permute(0, 2, 3, 1).reshape(batch, -1, c).to(work).sigmoid()
            reg = bbox_preds[lvl].permute(0, 2, 3, 1).reshape(batch, -1, 4 * k).to(work)
            n = geo.num_level[lvl]
            pts = geo.centres[starts[lvl] : starts[lvl] + n].expand(batch, -1, -1)  # (B, n, 2)
            if 0 < cfg.nms_pre < scores.shape[1]:
                order = torch.sort(scores.amax(dim=2), dim=1, descending=True, stable=True).indices
                keep = order[:, : cfg.nms_pre]  # (B, nms_pre)
                scores = torch.gather(scores, 1, keep[..., None].expand(-1, -1, c))
                reg = torch.gather(reg, 1, keep[..., None].expand(-1, -1, 4 * k))
                pts = torch.gather(pts, 1, keep[..., None].expand(-1, -1, 2))
            boxes_all.append(_decode(pts, _integral(reg, cfg.reg_max) * stride))  # (B, n, 4)
            scores_all.append(scores)
        boxes = torch.cat(boxes_all, dim=1)  # (B, N, 4)
        scores = torch.cat(scores_all, dim=1)  # (B, N, C)
        bg = torch.zeros(*scores.shape[:2], 1, dtype=work, device=device)
        scores = torch.cat([scores, bg], dim=2)  # (B, N, C+1)
        results = []
        for i, meta in enumerate(metas):
            h, w = meta.img_shape
            upper = torch.tensor([w, h, w, h], dtype=work, device=device)
            b = torch.minimum(boxes[i].clamp(min=0), upper)
            if rescale:
                b = b / torch.as_tensor(meta.scale_factor, dtype=work, device=device)
            results.append(
                multiclass_nms(b, scores[i], cfg.score_thr, cfg.nms_iou_threshold, cfg.max_per_img)
            )
    return results
