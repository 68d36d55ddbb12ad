"""torch's modules: GFLHead's structure, initialisation, forward, loss and predict
through the module, and autocast. (Integral and Scale are tested beside their
function in ``test_integral.py``.)

Tests of :mod:`torch_impl.modules`.
"""

from __future__ import annotations

import pytest
import torch
from head_fixtures import make_head, tiny_workload

import torch_impl as T


def test_head_structure_and_initialisation():
    head = T.GFLHead(80, 256)
    assert len(head.cls_convs) == 12 and len(head.scales) == 5
    assert head.gfl_reg.out_channels == 68 and head.gfl_cls.out_channels == 80
    assert isinstance(head.cls_convs[1], torch.nn.GroupNorm) and head.cls_convs[1].num_groups == 32
    prior = torch.sigmoid(head.gfl_cls.bias)
    torch.testing.assert_close(prior, torch.full_like(prior, 0.01))
    assert abs(float(head.gfl_reg.weight.detach().std()) - 0.01) < 1e-3
    assert all(float(s.scale.detach()) == 1.0 for s in head.scales)


def test_head_forward_shapes_and_loss_runs_backward():
    head = make_head()
    feats = [torch.randn(2, 16, 8, 8), torch.randn(2, 16, 4, 4), torch.randn(2, 16, 2, 2)]
    cls, reg = head(feats)
    assert [tuple(c.shape) for c in cls] == [(2, 4, 8, 8), (2, 4, 4, 4), (2, 4, 2, 2)]
    assert [tuple(r.shape) for r in reg] == [(2, 68, 8, 8), (2, 68, 4, 4), (2, 68, 2, 2)]
    gtb = [torch.tensor([[4.0, 5.0, 40.0, 50.0]]), torch.zeros(0, 4)]
    gtl = [torch.tensor([2]), torch.zeros(0, dtype=torch.long)]
    metas = [{"img_shape": (64, 64)}, {"img_shape": (60, 50)}]
    losses = head.loss(cls, reg, gtb, gtl, metas)
    assert set(losses) == {"loss_cls", "loss_bbox", "loss_dfl"}
    sum(losses.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())
    dets = head.predict([c.detach() for c in cls], [r.detach() for r in reg], metas)
    assert len(dets) == 2


@pytest.mark.parametrize("dtype", [torch.bfloat16])
def test_autocast_keeps_losses_finite_and_close_to_float32(dtype):
    head = make_head()
    feats = [torch.randn(2, 16, 8, 8), torch.randn(2, 16, 4, 4), torch.randn(2, 16, 2, 2)]
    gtb = [
        torch.tensor([[4.0, 5.0, 40.0, 50.0], [20.0, 10.0, 60.0, 30.0]]),
        torch.tensor([[0.0, 0, 30, 30]]),
    ]
    gtl = [torch.tensor([2, 0]), torch.tensor([1])]
    metas = [{"img_shape": (64, 64)}] * 2
    ref = head.loss(*head(feats), gtb, gtl, metas)
    with torch.autocast("cpu", dtype=dtype):
        cls, reg = head(feats)
        assert cls[0].dtype == dtype
        low = head.loss(cls, reg, gtb, gtl, metas)
    for key in ref:
        assert low[key].dtype == torch.float32
        assert torch.isfinite(low[key])
        assert low[key].item() == pytest.approx(ref[key].item(), rel=5e-2, abs=1e-3)
    sum(low.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


def test_head_module_rejects_bad_arguments():
    cfg = tiny_workload()[0]
    with pytest.raises(ValueError, match=r"num_classes must equal cfg.num_classes \(2\), got 3"):
        T.GFLHead(3, 8, cfg=cfg)
    with pytest.raises(
        ValueError, match=r"feat_channels must be divisible by norm_groups \(32\), got 48"
    ):
        T.GFLHead(3, 8, feat_channels=48)
    with pytest.raises(ValueError, match=r"feats must be a list of 3"):
        make_head()([torch.zeros(1, 16, 4, 4)])
