"""Shared inputs of the head's tests (targets, loss, predict, modules): small
workloads, mmdetection's golden inputs and the torch side of a loss call."""

from __future__ import annotations

import numpy as np
import torch

import reference as R
import torch_impl as T


def to_torch(arrays, requires_grad=False, dtype=torch.float64):
    return [torch.tensor(a, dtype=dtype, requires_grad=requires_grad) for a in arrays]


def torch_loss(
    cfg,
    cls_scores,
    bbox_preds,
    gt_bboxes,
    gt_labels,
    img_metas,
    dtype=torch.float64,
    gt_bboxes_ignore=None,
):
    cls_t = to_torch(cls_scores, True, dtype)
    reg_t = to_torch(bbox_preds, True, dtype)
    losses = T.gfl_loss(
        cls_t,
        reg_t,
        to_torch(gt_bboxes, dtype=dtype),
        [torch.as_tensor(g) for g in gt_labels],
        img_metas,
        cfg,
        None if gt_bboxes_ignore is None else to_torch(gt_bboxes_ignore, dtype=dtype),
    )
    sum(losses.values()).backward()
    losses = {k: v.detach() for k, v in losses.items()}
    return losses, [c.grad.numpy() for c in cls_t], [r.grad.numpy() for r in reg_t]


def tiny_workload():
    rng = np.random.default_rng(7)
    cfg = R.GFLConfig(num_classes=2, reg_max=4, strides=(8, 16), octave_base_scale=2)
    sizes = [(4, 4), (2, 2)]
    cls = [rng.normal(size=(1, 2, h, w)) for h, w in sizes]
    reg = [rng.normal(size=(1, 20, h, w)) for h, w in sizes]
    gtb = [np.array([[3.0, 4.0, 21.0, 27.0], [10.0, 2.0, 30.0, 14.0]])]
    gtl = [np.array([0, 1])]
    metas = [{"img_shape": (32, 32)}]
    return cfg, cls, reg, gtb, gtl, metas


def golden_inputs(d):
    b = int(d["batch"])
    cls = [d[f"cls_scores_{lvl}"] for lvl in range(5)]
    reg = [d[f"bbox_preds_{lvl}"] for lvl in range(5)]
    gtb = [d[f"gt_bboxes_{i}"] for i in range(b)]
    gtl = [d[f"gt_labels_{i}"] for i in range(b)]
    metas = [
        {"img_shape": tuple(d["img_shape"][i]), "pad_shape": tuple(d["pad_shape"][i])}
        for i in range(b)
    ]
    return R.GFLConfig(num_classes=int(d["num_classes"])), cls, reg, gtb, gtl, metas


def make_head(num_classes=4, in_channels=16, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = R.GFLConfig(num_classes=num_classes, strides=(8, 16, 32))
    return T.GFLHead(
        num_classes, in_channels, feat_channels=16, stacked_convs=2, cfg=cfg, norm_groups=8, **kw
    )


def dialect_workload(kind: str = "padded", qfl_beta: float = 2.0):
    """:func:`tiny_workload` on a 24 x 32 image, for the dialects' tests: level 0's bottom row is
    padding (4 invalid anchors, label weight 0) and both gts lie inside the image.

    ``kind``: ``"padded"`` (4 positives under mmdet2, their weights summing to more than 1),
    ``"faint"`` (the class logits lowered by 8: positives whose weights sum to less than 1),
    ``"no_gt"`` (no ground truth: no positives).
    """
    cfg, cls, reg, _, gtl, _ = tiny_workload()
    cfg = R.GFLConfig(num_classes=2, reg_max=4, strides=(8, 16), octave_base_scale=2,
                      qfl_beta=qfl_beta)  # fmt: skip
    gtb = [np.array([[3.0, 4.0, 21.0, 22.0], [10.0, 2.0, 30.0, 14.0]])]
    metas = [{"img_shape": (24, 32), "pad_shape": (24, 32)}]
    if kind == "faint":
        cls = [m - 8.0 for m in cls]
    elif kind == "no_gt":
        gtb, gtl = [np.zeros((0, 4))], [np.zeros(0, dtype=np.int64)]
    elif kind != "padded":
        raise ValueError(f"kind must be 'padded', 'faint' or 'no_gt', got {kind!r}")
    return cfg, cls, reg, gtb, gtl, metas
