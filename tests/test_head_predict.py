"""The head's inference: mmdetection's golden detections, NumPy vs torch, empty scores.

Tests of :mod:`reference.head_predict` and :mod:`torch_impl.head_predict`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from head_fixtures import to_torch
from hypothesis import given, settings

import reference as R
import torch_impl as T
from reference.testing.strategies import head_workloads


def predict_inputs(d):
    b = int(d["batch"])
    cls = [d[f"cls_scores_{lvl}"] for lvl in range(5)]
    reg = [d[f"bbox_preds_{lvl}"] for lvl in range(5)]
    metas = []
    for i in range(b):
        sf = 1.5 if i == 0 else d["scale_factor"][i]  # image 0: the scalar form
        metas.append(
            {
                "img_shape": tuple(d["img_shape"][i]),
                "pad_shape": tuple(d["pad_shape"][i]),
                "scale_factor": sf,
            }
        )
    return cls, reg, metas


@pytest.mark.parametrize("impl", ["reference", "torch"])
@pytest.mark.parametrize(
    "tag,nms_pre,rescale",
    [("", 100, False), ("_rescale", 100, True), ("_nms_pre1000", 1000, False)],
)
def test_golden_predict(golden, impl, tag, nms_pre, rescale):
    d = golden("gfl_predict")
    cls, reg, metas = predict_inputs(d)
    cfg = R.GFLConfig(num_classes=int(d["num_classes"]), nms_pre=nms_pre)
    if impl == "reference":
        out = R.gfl_predict(cls, reg, metas, cfg, rescale=rescale)
    else:
        out = T.gfl_predict(
            to_torch(cls, dtype=torch.float32),
            to_torch(reg, dtype=torch.float32),
            metas,
            cfg,
            rescale=rescale,
        )
        out = [(dets.numpy(), labels.numpy()) for dets, labels in out]
    for i, (dets, labels) in enumerate(out):
        np.testing.assert_array_equal(labels, d[f"labels{tag}_{i}"])
        np.testing.assert_allclose(dets, d[f"dets{tag}_{i}"], rtol=1e-5, atol=1e-5)


# --- predict: NumPy vs torch ------------------------------------------------------------


@given(head_workloads(max_classes=6))
@settings(max_examples=30)
def test_predict_numpy_and_torch_give_the_same_detections(work):
    cfg, cls, reg, _, _, metas = work
    cfg = R.GFLConfig(
        num_classes=cfg.num_classes, strides=cfg.strides, nms_pre=20, score_thr=0.3, max_per_img=15
    )
    ref = R.gfl_predict(cls, reg, metas, cfg, rescale=True)
    tor = T.gfl_predict(to_torch(cls), to_torch(reg), metas, cfg, rescale=True)
    for (d1, l1), (d2, l2) in zip(ref, tor):
        np.testing.assert_array_equal(l1, l2.numpy())
        np.testing.assert_allclose(d1, d2.numpy(), rtol=1e-12, atol=1e-12)


def test_predict_on_empty_scores_gives_empty_detections():
    cfg = R.GFLConfig(num_classes=3, strides=(8, 16))
    cls = [np.full((1, 3, 2, 2), -50.0), np.full((1, 3, 1, 1), -50.0)]
    reg = [np.zeros((1, 68, 2, 2)), np.zeros((1, 68, 1, 1))]
    metas = [{"img_shape": (16, 16)}]
    ((dets, labels),) = R.gfl_predict(cls, reg, metas, cfg)
    assert dets.shape == (0, 5) and labels.shape == (0,)
    ((dets, labels),) = T.gfl_predict(to_torch(cls), to_torch(reg), metas, cfg)
    assert tuple(dets.shape) == (0, 5) and tuple(labels.shape) == (0,)
