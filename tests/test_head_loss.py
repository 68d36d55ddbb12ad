"""The head's loss: reference forward + hand backward vs torch autograd, finite
differences, mmdetection's golden losses and gradients, DDP, edge cases.

Tests of :mod:`reference.head_loss` and :mod:`torch_impl.head_loss`.
"""

from __future__ import annotations

import contextlib
import importlib

import numpy as np
import pytest
import torch
from head_fixtures import golden_inputs, tiny_workload, to_torch, torch_loss
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as R
import torch_impl as T
from reference.dialects import DIALECTS
from reference.gradcheck import numerical_vjp, rel_error
from reference.testing.strategies import head_workloads

# --- reference vs torch -------------------------------------------------------------


@given(head_workloads())
@settings(max_examples=60)
def test_reference_loss_and_hand_gradient_equal_torch_autograd(work):
    cfg, cls, reg, gtb, gtl, metas = work
    losses, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg)
    d_cls, d_reg = R.gfl_loss_backward(cache)
    t_losses, t_cls, t_reg = torch_loss(cfg, cls, reg, gtb, gtl, metas)
    for key in ("loss_cls", "loss_bbox", "loss_dfl"):
        assert abs(losses[key] - float(t_losses[key])) <= 1e-8 * max(abs(losses[key]), 1e-12), key
    for a, b in zip(d_cls + d_reg, t_cls + t_reg):
        assert rel_error(a, b) <= 1e-8


@given(head_workloads(), st.sampled_from(sorted(DIALECTS)))
@settings(max_examples=40)
def test_fast_paths_change_nothing(work, dialect):
    """The head runs QFL and ATSS in their fast forms (``reference.qfl_fast``,
    ``reference.atss_fast``): with the textbook forms put back, the losses and the
    gradients are the same, bit for bit."""
    cfg, cls, reg, gtb, gtl, metas = work

    def run():
        with np.errstate(invalid="ignore"):  # gfocal: NaN losses without positives
            losses, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg, dialect=dialect)
            return losses, R.gfl_loss_backward(cache, 0.5, 2.0, 3.0)

    losses, (d_cls, d_reg) = run()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(importlib.import_module("reference.head_loss"), "qfl_forward_fast",
                   R.qfl_forward)  # fmt: skip
        mp.setattr(importlib.import_module("reference.head_targets"), "atss_assign_fast",
                   R.atss_assign)  # fmt: skip
        t_losses, (t_cls, t_reg) = run()
    np.testing.assert_equal(losses, t_losses)
    for a, b in zip(d_cls + d_reg, t_cls + t_reg):
        np.testing.assert_array_equal(a, b)


@given(head_workloads(max_batch=2, max_classes=3))
@settings(max_examples=30)
def test_torch_loss_matches_reference_with_ignore_boxes(work):
    """Ignore boxes: ignored anchors are never candidates and weigh 0 in QFL, on both sides."""
    cfg, cls, reg, gtb, gtl, metas = work
    cfg = R.GFLConfig(num_classes=cfg.num_classes, strides=cfg.strides, ignore_iof_thr=0.5)
    ignore = [b[:1] + 3.0 if b.shape[0] else np.zeros((0, 4)) for b in gtb]
    losses, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg, ignore)
    d_cls, d_reg = R.gfl_loss_backward(cache)
    t_losses, t_cls, t_reg = torch_loss(cfg, cls, reg, gtb, gtl, metas, gt_bboxes_ignore=ignore)
    for key in ("loss_cls", "loss_bbox", "loss_dfl"):
        assert abs(losses[key] - float(t_losses[key])) <= 1e-8 * max(abs(losses[key]), 1e-12), key
    for a, b in zip(d_cls + d_reg, t_cls + t_reg):
        assert rel_error(a, b) <= 1e-8


def test_torch_loss_and_its_gradient_run_on_the_meta_device(monkeypatch):
    """Meta tensors have shapes but no values, so the loss and its backward run there only
    if nothing reads a value on the host (``.item()``, ``nonzero()``, a boolean mask):
    on a GPU, the training step never waits. Padding and ignore boxes included."""
    monkeypatch.setattr(torch, "autocast", lambda *a, **k: contextlib.nullcontext())  # no meta
    cfg = R.GFLConfig(num_classes=3, strides=(8, 16, 32), ignore_iof_thr=0.5)
    sizes = [(8, 8), (4, 4), (2, 2)]

    def meta(*shape, dtype=torch.float32, grad=False):
        return torch.empty(*shape, dtype=dtype, device="meta", requires_grad=grad)

    cls = [meta(2, 3, h, w, grad=True) for h, w in sizes]
    reg = [meta(2, 68, h, w, grad=True) for h, w in sizes]
    gtb = [meta(3, 4), meta(1, 4)]
    gtl = [meta(3, dtype=torch.long), meta(1, dtype=torch.long)]
    metas = [{"img_shape": (50, 60), "pad_shape": (56, 60)}, {"img_shape": (64, 64)}]
    losses = T.gfl_loss(cls, reg, gtb, gtl, metas, cfg, [meta(2, 4), None])
    sum(losses.values()).backward()
    assert all(v.shape == () and v.device.type == "meta" for v in losses.values())
    assert [c.grad.shape for c in cls + reg] == [c.shape for c in cls + reg]


@given(head_workloads(max_batch=2, max_classes=4))
@settings(max_examples=10)
def test_torch_loss_of_channels_last_maps_equals_the_contiguous_ones(work):
    """The loss reads the maps in whatever memory layout they come (the detector trains
    channels-last): same losses, same gradients, gradients in the maps' layout."""
    cfg, cls, reg, gtb, gtl, metas = work
    gts = (to_torch(gtb), [torch.as_tensor(g) for g in gtl])
    runs = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        maps = [t.to(memory_format=fmt).requires_grad_() for t in to_torch(cls + reg)]
        losses = T.gfl_loss(maps[: len(cls)], maps[len(cls) :], *gts, metas, cfg)
        sum(losses.values()).backward()
        assert all(m.grad.is_contiguous(memory_format=fmt) for m in maps)
        runs.append(([float(v.detach()) for v in losses.values()], [m.grad for m in maps]))
    (l_a, g_a), (l_b, g_b) = runs
    assert l_a == pytest.approx(l_b, rel=1e-12, abs=1e-15)
    for a, b in zip(g_a, g_b):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


def test_torch_loss_backward_with_a_retained_graph_gives_the_same_gradient_twice():
    """QFL's fused backward reuses a forward buffer for the gradient, once: a retained
    graph run backward twice accumulates the same gradient twice."""
    cfg, cls, reg, gtb, gtl, metas = tiny_workload()
    cls_t, reg_t = to_torch(cls, True), to_torch(reg, True)
    losses = T.gfl_loss(cls_t, reg_t, to_torch(gtb), [torch.as_tensor(g) for g in gtl], metas, cfg)
    total = sum(losses.values())
    total.backward(retain_graph=True)
    once = [t.grad.clone() for t in cls_t + reg_t]
    total.backward()
    for g1, t in zip(once, cls_t + reg_t):
        torch.testing.assert_close(t.grad, 2 * g1, rtol=1e-14, atol=0)


def test_torch_loss_matches_reference_on_a_workload_with_no_gts_at_all():
    rng = np.random.default_rng(0)
    cfg = R.GFLConfig(num_classes=3, strides=(8, 16, 32))
    sizes = [(4, 4), (2, 2), (1, 1)]
    cls = [rng.normal(size=(2, 3, h, w)) for h, w in sizes]
    reg = [rng.normal(size=(2, 68, h, w)) for h, w in sizes]
    gtb = [np.zeros((0, 4)), np.zeros((0, 4))]
    gtl = [np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)]
    metas = [{"img_shape": (32, 32)}] * 2
    losses, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg)
    d_cls, d_reg = R.gfl_loss_backward(cache)
    assert losses["loss_bbox"] == 0.0 and losses["loss_dfl"] == 0.0
    assert all(np.all(g == 0) for g in d_reg)
    assert losses["loss_cls"] > 0
    t_losses, t_cls, t_reg = torch_loss(cfg, cls, reg, gtb, gtl, metas)
    assert float(t_losses["loss_bbox"]) == 0.0 and float(t_losses["loss_dfl"]) == 0.0
    assert abs(float(t_losses["loss_cls"]) - losses["loss_cls"]) < 1e-12
    assert all(np.all(g == 0) for g in t_reg)
    for a, b in zip(d_cls, t_cls):
        assert rel_error(a, b) <= 1e-10


# --- finite differences ---------------------------------------------------------------


def test_hand_gradient_passes_finite_differences_on_a_tiny_workload():
    """FD of each loss w.r.t. the inputs it differentiates through.

    mmdetection detaches the box weights (max class score) and the IoU target
    of QFL, so the loss's gradient is checked per branch: loss_cls w.r.t. the
    class logits, loss_bbox + loss_dfl w.r.t. the box logits. Perturbing the
    box logits moves no detached quantity that the box losses read.
    """
    cfg, cls, reg, gtb, gtl, metas = tiny_workload()
    losses, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg)
    assert losses["loss_bbox"] > 0, "the workload must have positives"

    d_cls, _ = R.gfl_loss_backward(cache, 1.0, 0.0, 0.0)
    for lvl in range(2):

        def f_cls(x, lvl=lvl):
            c = list(cls)
            c[lvl] = x
            return np.array(R.gfl_loss_forward(c, reg, gtb, gtl, metas, cfg)[0]["loss_cls"])

        num = numerical_vjp(f_cls, cls[lvl], np.array(1.0))
        assert rel_error(d_cls[lvl], num) <= 1e-7

    _, d_reg = R.gfl_loss_backward(cache, 0.0, 1.0, 1.0)
    for lvl in range(2):

        def f_reg(x, lvl=lvl):
            r = list(reg)
            r[lvl] = x
            out = R.gfl_loss_forward(cls, r, gtb, gtl, metas, cfg)[0]
            return np.array(out["loss_bbox"] + out["loss_dfl"])

        num = numerical_vjp(f_reg, reg[lvl], np.array(1.0))
        assert rel_error(d_reg[lvl], num) <= 1e-7


def test_upstream_gradients_scale_each_branch_linearly():
    cfg, cls, reg, gtb, gtl, metas = tiny_workload()
    _, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg)
    a_cls, a_reg = R.gfl_loss_backward(cache, 1.0, 1.0, 1.0)
    c_cls, _ = R.gfl_loss_backward(cache, 1.0, 0.0, 0.0)
    _, b_reg = R.gfl_loss_backward(cache, 0.0, 1.0, 0.0)
    _, f_reg = R.gfl_loss_backward(cache, 0.0, 0.0, 1.0)
    h_cls, h_reg = R.gfl_loss_backward(cache, 0.5, 0.5, 0.5)
    for lvl in range(2):
        np.testing.assert_allclose(a_cls[lvl], c_cls[lvl], atol=0)  # only QFL reaches cls
        np.testing.assert_allclose(a_reg[lvl], b_reg[lvl] + f_reg[lvl], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(h_reg[lvl], 0.5 * a_reg[lvl], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(h_cls[lvl], 0.5 * a_cls[lvl], rtol=1e-12, atol=1e-15)


# --- mmdetection golden outputs ---------------------------------------------------------


def assert_grads_close(ours, gold, rtol):
    for a, g in zip(ours, gold):
        scale = max(np.abs(g).max(), 1e-30)
        assert np.abs(a - g).max() / scale <= rtol


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_golden_losses_and_gradients_reference(golden, case):
    d = golden(f"gfl_loss_{case}")
    cfg, cls, reg, gtb, gtl, metas = golden_inputs(d)
    losses, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg)
    assert cache.avg_factor == pytest.approx(float(d["avg_factor"]), rel=1e-6)
    for key in ("cls", "bbox", "dfl"):
        assert losses[f"loss_{key}"] == pytest.approx(
            float(d[f"loss_{key}_total_spec"]), rel=1e-5, abs=1e-12
        )
    d_cls, d_reg = R.gfl_loss_backward(cache)
    assert_grads_close(d_cls, [d[f"grad_cls_scores_{lvl}"] for lvl in range(5)], 1e-4)
    assert_grads_close(d_reg, [d[f"grad_bbox_preds_{lvl}"] for lvl in range(5)], 1e-4)


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_golden_losses_and_gradients_torch_float32(golden, case):
    d = golden(f"gfl_loss_{case}")
    cfg, cls, reg, gtb, gtl, metas = golden_inputs(d)
    losses, t_cls, t_reg = torch_loss(cfg, cls, reg, gtb, gtl, metas, dtype=torch.float32)
    for key in ("cls", "bbox", "dfl"):
        assert losses[f"loss_{key}"].dtype == torch.float32
        assert float(losses[f"loss_{key}"]) == pytest.approx(
            float(d[f"loss_{key}_total_spec"]), rel=1e-5, abs=1e-12
        )
    assert_grads_close(t_cls, [d[f"grad_cls_scores_{lvl}"] for lvl in range(5)], 1e-4)
    assert_grads_close(t_reg, [d[f"grad_bbox_preds_{lvl}"] for lvl in range(5)], 1e-4)


# --- bad input ------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    cfg, cls, reg, gtb, gtl, metas = tiny_workload()
    with pytest.raises(ValueError, match=r"cls_scores must be a list of 2"):
        R.gfl_loss_forward(cls[:1], reg, gtb, gtl, metas, cfg)
    with pytest.raises(
        ValueError, match=r"bbox_preds\[0\] must have shape .*20 channels.*got \(1, 68, 4, 4\)"
    ):
        R.gfl_loss_forward(cls, [np.zeros((1, 68, 4, 4)), reg[1]], gtb, gtl, metas, cfg)
    with pytest.raises(ValueError, match=r"gt_labels\[0\] must lie in \[0, num_classes\)"):
        R.gfl_loss_forward(cls, reg, gtb, [np.array([0, 2])], metas, cfg)
    with pytest.raises(ValueError, match=r"gt_bboxes\[0\] must have shape"):
        R.gfl_loss_forward(cls, reg, [np.zeros((2, 5))], gtl, metas, cfg)
    with pytest.raises(ValueError, match=r"img_metas must have one dict per image \(1\), got 2"):
        R.gfl_loss_forward(cls, reg, gtb, gtl, metas * 2, cfg)
    with pytest.raises(ValueError, match=r"img_shape"):
        R.gfl_loss_forward(cls, reg, gtb, gtl, [{"pad_shape": (32, 32)}], cfg)
    with pytest.raises(ValueError, match=r"cfg must be a GFLConfig"):
        R.gfl_loss_forward(cls, reg, gtb, gtl, metas, {"num_classes": 2})
    with pytest.raises(ValueError, match=r"must be finite"):
        R.gfl_loss_forward([np.full_like(cls[0], np.nan), cls[1]], reg, gtb, gtl, metas, cfg)
    with pytest.raises(ValueError, match=r"scale_factor"):
        R.gfl_predict(cls, reg, [{"img_shape": (32, 32), "scale_factor": (1.0, 2.0)}], cfg)
    with pytest.raises(
        ValueError, match=r"cls_scores\[1\] must have shape \(B=1, 2, H1, W1\), got \(1, 3, 2, 2\)"
    ):
        T.gfl_loss(
            to_torch(cls[:1]) + [torch.zeros(1, 3, 2, 2)],
            to_torch(reg),
            to_torch(gtb),
            [torch.as_tensor(g) for g in gtl],
            metas,
            cfg,
        )
    with pytest.raises(ValueError, match=r"gt_labels\[0\] must be an integer tensor"):
        T.gfl_loss(
            to_torch(cls), to_torch(reg), to_torch(gtb), [torch.tensor([0.0, 1.0])], metas, cfg
        )


def test_loss_does_not_mutate_its_inputs():
    cfg, cls, reg, gtb, gtl, metas = tiny_workload()
    copies = [a.copy() for a in cls + reg + gtb + gtl]
    meta_copy = [dict(m) for m in metas]
    _, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg)
    R.gfl_loss_backward(cache)
    R.gfl_predict(cls, reg, metas, cfg)
    for a, b in zip(cls + reg + gtb + gtl, copies):
        np.testing.assert_array_equal(a, b)
    assert metas == meta_copy
