"""The whole GFL head: reference loss + hand backward vs torch autograd, finite
differences, mmdetection's golden outputs, predict, DDP, autocast, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from strategies import head_workloads

import reference as R
import torch_impl as T
from reference.gradcheck import numerical_vjp, rel_error


def to_torch(arrays, requires_grad=False, dtype=torch.float64):
    return [torch.tensor(a, dtype=dtype, requires_grad=requires_grad) for a in arrays]


def torch_loss(cfg, cls_scores, bbox_preds, gt_bboxes, gt_labels, img_metas, dtype=torch.float64):
    cls_t = to_torch(cls_scores, True, dtype)
    reg_t = to_torch(bbox_preds, True, dtype)
    losses = T.gfl_loss(
        cls_t,
        reg_t,
        to_torch(gt_bboxes, dtype=dtype),
        [torch.as_tensor(g) for g in gt_labels],
        img_metas,
        cfg,
    )
    sum(losses.values()).backward()
    losses = {k: v.detach() for k, v in losses.items()}
    return losses, [c.grad.numpy() for c in cls_t], [r.grad.numpy() for r in reg_t]


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


def assert_grads_close(ours, gold, rtol):
    for a, g in zip(ours, gold):
        scale = max(np.abs(g).max(), 1e-30)
        assert np.abs(a - g).max() / scale <= rtol


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_golden_targets_losses_and_gradients_reference(golden, case):
    d = golden(f"gfl_loss_{case}")
    cfg, cls, reg, gtb, gtl, metas = golden_inputs(d)
    t = R.gfl_targets([c.shape[2:] for c in cls], gtb, gtl, metas, cfg)
    np.testing.assert_array_equal(t.labels, d["labels"])
    np.testing.assert_array_equal(t.label_weights, d["label_weights"])
    np.testing.assert_array_equal(t.valid, d["valid_flags"])
    np.testing.assert_allclose(t.bbox_targets, d["bbox_targets"], rtol=1e-6)
    assert t.num_total_samples == float(d["num_total_samples"])
    for i, res in enumerate(t.assign_results):
        np.testing.assert_array_equal(res.gt_inds, d[f"assigned_gt_inds_{i}"])
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


# --- the module --------------------------------------------------------------------------


def make_head(num_classes=4, in_channels=16, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = R.GFLConfig(num_classes=num_classes, strides=(8, 16, 32))
    return T.GFLHead(
        num_classes, in_channels, feat_channels=16, stacked_convs=2, cfg=cfg, norm_groups=8, **kw
    )


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


# --- two processes (gloo) ------------------------------------------------------------------


def _ddp_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        head = _ddp_head()
        ddp = torch.nn.parallel.DistributedDataParallel(head)
        feats, gtb, gtl, metas = _ddp_batch()
        sl = slice(2 * rank, 2 * rank + 2)
        cls, reg = ddp([f[sl] for f in feats])
        losses = head.loss(cls, reg, gtb[sl], gtl[sl], metas[sl])
        sum(losses.values()).backward()
        torch.save({n: p.grad for n, p in head.named_parameters()}, f"{out_dir}/grads_{rank}.pt")
    finally:
        dist.destroy_process_group()


def _ddp_head():
    """A float64 head whose class scores start near 0.88, so that each rank's
    box-weight sum exceeds 1: mmdetection clamps ``avg_factor`` to >= 1 after
    the rank mean, and only above that clamp is DDP exactly the whole batch."""
    head = make_head(seed=0).double()
    with torch.no_grad():
        head.gfl_cls.bias.fill_(2.0)
    return head


def _ddp_batch():
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(4, 16, s, s, generator=g, dtype=torch.float64) for s in (8, 4, 2)]
    gtb = [
        torch.tensor([[4.0, 5.0, 40.0, 50.0], [20.0, 10.0, 60.0, 30.0]]),
        torch.zeros(0, 4),  # an image without gts on rank 0
        torch.tensor([[10.0, 12.0, 30.0, 60.0]]),
        torch.tensor([[0.0, 0.0, 64.0, 64.0], [30.0, 30.0, 50.0, 44.0], [5.0, 40.0, 25.0, 62.0]]),
    ]
    gtb = [b.double() for b in gtb]
    gtl = [
        torch.tensor([2, 0]),
        torch.zeros(0, dtype=torch.long),
        torch.tensor([1]),
        torch.tensor([3, 1, 0]),
    ]
    metas = [
        {"img_shape": (64, 64)},
        {"img_shape": (60, 64)},
        {"img_shape": (64, 50)},
        {"img_shape": (64, 64)},
    ]
    return feats, gtb, gtl, metas


def test_two_process_ddp_gradients_equal_single_process_whole_batch(tmp_path):
    import torch.multiprocessing as mp

    head = _ddp_head()
    feats, gtb, gtl, metas = _ddp_batch()
    losses = head.loss(*head(feats), gtb, gtl, metas)
    sum(losses.values()).backward()
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    g0 = torch.load(tmp_path / "grads_0.pt", weights_only=True)
    g1 = torch.load(tmp_path / "grads_1.pt", weights_only=True)
    for name, p in head.named_parameters():
        torch.testing.assert_close(g0[name], g1[name])  # DDP averaged them
        torch.testing.assert_close(g0[name], p.grad, rtol=1e-9, atol=1e-12)


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
    with pytest.raises(ValueError, match=r"num_classes must equal cfg.num_classes \(2\), got 3"):
        T.GFLHead(3, 8, cfg=cfg)
    with pytest.raises(
        ValueError, match=r"feat_channels must be divisible by norm_groups \(32\), got 48"
    ):
        T.GFLHead(3, 8, feat_channels=48)
    with pytest.raises(ValueError, match=r"feats must be a list of 3"):
        make_head()([torch.zeros(1, 16, 4, 4)])


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
