"""Backbone, FPN and the whole detector (with the real GFLHead)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tiny_model import TINY  # the detector these tests share

from torch_impl import GFLConfig
from torch_impl.detector.data import SyntheticDetection, collate
from torch_impl.detector.model import (
    FPN,
    PRESETS,
    GFLDetector,
    ModelConfig,
    ResNetBackbone,
    config_from_dict,
)


def test_backbone_strides_and_channels():
    b = ResNetBackbone(8, (8, 16, 24, 32), (1, 2, 1, 1))
    outs = b(torch.zeros(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 8, 12), (2, 24, 4, 6), (2, 32, 2, 3)]
    assert b.out_channels == (16, 24, 32)
    with pytest.raises(ValueError, match="4 entries"):
        ResNetBackbone(8, (8, 16, 24), (1, 1, 1))
    with pytest.raises(ValueError, match=r"stage_blocks\[1\]"):
        ResNetBackbone(8, (8, 16, 24, 32), (1, 0, 1, 1))


@pytest.mark.parametrize("size, expect", [(128, [16, 8, 4, 2, 1]), (96, [12, 6, 3, 2, 1])])
def test_fpn_gives_p3_to_p7(size, expect):
    b = ResNetBackbone(8, (8, 16, 16, 32), (1, 1, 1, 1))
    f = FPN(b.out_channels, 32, num_outs=5)
    outs = f(b(torch.zeros(1, 3, size, size)))
    assert [o.shape[-1] for o in outs] == expect
    assert all(o.shape[1] == 32 for o in outs)
    with pytest.raises(ValueError, match="feats must have 3 levels"):
        f(outs[:2])


def test_detector_forward_loss_predict():
    torch.manual_seed(0)
    model = GFLDetector(TINY)
    ds = SyntheticDetection(3, 64, seed=1)
    batch = collate([ds[i] for i in range(3)])
    cls_scores, bbox_preds = model(batch.images)
    assert [tuple(c.shape) for c in cls_scores] == [(3, 6, s, s) for s in (8, 4, 2, 1, 1)]
    assert bbox_preds[0].shape == (3, 4 * 17, 8, 8)
    losses = model(batch.images, batch.gt_bboxes, batch.gt_labels, batch.img_metas)
    assert set(losses) == {"loss_cls", "loss_bbox", "loss_dfl"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    model.eval()
    results = model.predict(batch.images, batch.img_metas)
    assert len(results) == 3
    for dets, labels in results:
        assert dets.shape[1] == 5 and labels.shape == dets.shape[:1]
    # uint8 and float 0-255 inputs are the same thing
    a = model(batch.images)[0][0]
    b = model(batch.images.float())[0][0]
    torch.testing.assert_close(a, b)


def test_detector_learns_a_tiny_batch():
    torch.manual_seed(0)
    model = GFLDetector(TINY)
    ds = SyntheticDetection(4, 64, seed=2)
    batch = collate([ds[i] for i in range(4)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = last = None
    for _ in range(30):
        losses = model(batch.images, batch.gt_bboxes, batch.gt_labels, batch.img_metas)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
        last = float(loss.detach())
    assert last < 0.6 * first


def test_detector_config_errors_and_round_trip():
    with pytest.raises(ValueError, match="head_cfg.num_classes must equal"):
        GFLDetector(TINY, GFLConfig(num_classes=3))
    with pytest.raises(ValueError, match="head_cfg.strides must be 8, 16, 32"):
        GFLDetector(TINY, GFLConfig(num_classes=6, strides=(4, 8, 16, 32, 64)))
    with pytest.raises(ValueError, match="images must be a tensor of shape"):
        GFLDetector(TINY)(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="pixel_mean and pixel_std"):
        ModelConfig(pixel_std=(1.0, 0.0, 1.0))
    model = GFLDetector(TINY, GFLConfig(num_classes=6, strides=(8, 16, 32)))
    assert len(model(torch.zeros(1, 3, 64, 64))[0]) == 3
    d = model.config_dict()
    assert config_from_dict(ModelConfig, d["model"]) == TINY
    assert config_from_dict(GFLConfig, d["head"]).strides == (8, 16, 32)
    with pytest.raises(ValueError, match="unknown field"):
        config_from_dict(ModelConfig, {**d["model"], "depth": 3})
    assert dataclasses.replace(PRESETS["gpu"], num_classes=2).feat_channels % 32 == 0


def test_cpu_preset_has_no_towers_and_its_head_still_trains():
    """``stacked_convs=0``: the output convs read the pyramid directly, and every weight learns."""
    cfg = PRESETS["cpu"]
    assert cfg.stacked_convs == 0 and cfg.stage_blocks == (2, 3, 3, 1)
    torch.manual_seed(0)
    model = GFLDetector(cfg, GFLConfig(num_classes=6, reg_max=6, octave_base_scale=4))
    head = model.head
    assert len(head.cls_convs) == 0 and len(head.reg_convs) == 0
    assert head.gfl_cls.in_channels == cfg.fpn_channels == head.gfl_reg.in_channels
    ds = SyntheticDetection(2, 64, 0, "train")
    batch = collate([ds[0], ds[1]])
    losses = model(batch.images, batch.gt_bboxes, batch.gt_labels, batch.img_metas)
    sum(losses.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert float(head.gfl_cls.weight.grad.abs().sum()) > 0
