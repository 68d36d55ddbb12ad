"""The head's targets: mmdetection's golden targets, and the batched torch
``gfl_targets`` against the image-by-image reference (valid flags, ignore boxes,
images and batches without gts).

Tests of :mod:`reference.head_targets` and :mod:`torch_impl.head_targets`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from head_fixtures import golden_inputs, tiny_workload, to_torch, torch_loss
from hypothesis import given, settings

import reference as R
import torch_impl as T
from reference.testing.strategies import head_workloads
from torch_impl.anchors import _geometry, _valid_flags_batch


def torch_targets(cfg, featmap_sizes, gtb, gtl, metas, ignore=None, dtype=torch.float64):
    return T.gfl_targets(
        featmap_sizes,
        to_torch(gtb, dtype=dtype),
        [torch.as_tensor(g) for g in gtl],
        metas,
        cfg,
        None if ignore is None else to_torch(ignore, dtype=dtype),
        dtype=dtype,
    )


def assert_targets_equal(ref: R.GFLTargets, tor: T.GFLTargets, rtol: float = 0.0) -> None:
    """Every field of the torch targets equals the reference's (per image, the
    batched assignment restricted to the valid anchors is the reference's)."""
    np.testing.assert_array_equal(tor.anchors.numpy(), ref.anchors)
    np.testing.assert_array_equal(tor.strides.numpy(), ref.strides)
    assert tor.num_level_anchors == ref.num_level_anchors
    for field in ("valid", "labels", "label_weights", "pos"):
        np.testing.assert_array_equal(getattr(tor, field).numpy(), getattr(ref, field), field)
    np.testing.assert_allclose(tor.bbox_targets.numpy(), ref.bbox_targets, rtol=rtol, atol=0)
    assert float(tor.num_total_samples) == ref.num_total_samples
    res = tor.assign_results
    for i, r in enumerate(ref.assign_results):
        valid = ref.valid[i]
        assert int(res.num_gts[i]) == r.num_gts
        np.testing.assert_array_equal(res.gt_inds[i].numpy()[valid], r.gt_inds)
        np.testing.assert_array_equal(res.gt_inds[i].numpy()[~valid], 0)  # invalid: negative
        np.testing.assert_array_equal(res.labels[i].numpy()[valid], r.labels)
        np.testing.assert_allclose(res.max_overlaps[i].numpy()[valid], r.max_overlaps, rtol=1e-12)


# --- mmdetection golden outputs ---------------------------------------------------------


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_golden_targets_reference(golden, case):
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


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_golden_targets_torch_float32(golden, case):
    d = golden(f"gfl_loss_{case}")
    cfg, cls, reg, gtb, gtl, metas = golden_inputs(d)
    t = torch_targets(cfg, [c.shape[2:] for c in cls], gtb, gtl, metas, dtype=torch.float32)
    assert t.bbox_targets.dtype == torch.float32 and t.labels.dtype == torch.int64
    np.testing.assert_array_equal(t.labels.numpy(), d["labels"])
    np.testing.assert_array_equal(t.label_weights.numpy(), d["label_weights"])
    np.testing.assert_array_equal(t.valid.numpy(), d["valid_flags"])
    np.testing.assert_allclose(t.bbox_targets.numpy(), d["bbox_targets"], rtol=1e-6)
    assert float(t.num_total_samples) == float(d["num_total_samples"])
    for i in range(len(gtb)):
        valid = d["valid_flags"][i].astype(bool)
        gt_inds = t.assign_results.gt_inds[i].numpy()[valid]
        np.testing.assert_array_equal(gt_inds, d[f"assigned_gt_inds_{i}"])


# --- torch (batched) vs reference (image by image) ----------------------------------------


@given(head_workloads())
@settings(max_examples=60)
def test_torch_targets_equal_reference_targets(work):
    cfg, cls, _, gtb, gtl, metas = work
    sizes = [c.shape[2:] for c in cls]
    ref = R.gfl_targets(sizes, gtb, gtl, metas, cfg)
    assert_targets_equal(ref, torch_targets(cfg, sizes, gtb, gtl, metas))


@given(head_workloads(max_batch=2, max_classes=3))
@settings(max_examples=30)
def test_torch_targets_equal_reference_with_ignore_boxes(work):
    """Ignore boxes (``ignore_iof_thr > 0``): ignored anchors get ``gt_inds`` −1 and
    label weight 0 on both sides; some images have no ignore box (None)."""
    cfg, cls, _, gtb, gtl, metas = work
    cfg = R.GFLConfig(num_classes=cfg.num_classes, strides=cfg.strides, ignore_iof_thr=0.5)
    sizes = [c.shape[2:] for c in cls]
    ignore = [b[:1] + 3.0 if b.shape[0] else np.zeros((0, 4)) for b in gtb]
    ref = R.gfl_targets(sizes, gtb, gtl, metas, cfg, ignore)
    tor = torch_targets(cfg, sizes, gtb, gtl, metas, ignore)
    assert_targets_equal(ref, tor)
    ignore_none = [None] + ignore[1:]
    ref = R.gfl_targets(
        sizes, gtb, gtl, metas, cfg, [None if b is None else b for b in ignore_none]
    )
    tor = T.gfl_targets(
        sizes,
        to_torch(gtb),
        [torch.as_tensor(g) for g in gtl],
        metas,
        cfg,
        [None] + to_torch(ignore[1:]),
        dtype=torch.float64,
    )
    assert_targets_equal(ref, tor)


def test_an_ignore_box_over_a_gt_ignores_the_anchors_mostly_inside_it():
    """A hand-built case: one gt, an ignore box covering it. An anchor is ignored (−1,
    label weight 0) iff the fraction of its own area inside the ignore box exceeds
    ``ignore_iof_thr``; ignored anchors are never candidates, so the gt's anchors are
    all ignored and it gets no positive. Both sides agree."""
    cfg, cls, _, _, _, metas = tiny_workload()
    cfg = R.GFLConfig(
        num_classes=2, reg_max=4, strides=(8, 16), octave_base_scale=2, ignore_iof_thr=0.5
    )
    sizes = [c.shape[2:] for c in cls]
    gtb, gtl = [np.array([[8.0, 8.0, 24.0, 24.0]])], [np.array([1])]
    ignore = [np.array([[0.0, 0.0, 32.0, 32.0]])]
    ref = R.gfl_targets(sizes, gtb, gtl, metas, cfg, ignore)
    a = ref.anchors
    inter = np.clip(np.minimum(a[:, 2], 32) - np.maximum(a[:, 0], 0), 0, None) * np.clip(
        np.minimum(a[:, 3], 32) - np.maximum(a[:, 1], 0), 0, None
    )
    iof = inter / ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))  # (A,)
    expect_ignored = iof > 0.5
    assert expect_ignored.any() and not expect_ignored.all()
    np.testing.assert_array_equal(ref.assign_results[0].gt_inds == -1, expect_ignored)
    np.testing.assert_array_equal(ref.label_weights[0], (~expect_ignored).astype(float))
    assert not ref.pos.any()
    assert_targets_equal(ref, torch_targets(cfg, sizes, gtb, gtl, metas, ignore))


def test_a_batch_without_gts_is_all_negative_and_counts_each_image_once():
    cfg, cls, _, _, _, _ = tiny_workload()
    sizes = [c.shape[2:] for c in cls]
    gtb = [np.zeros((0, 4)), np.zeros((0, 4))]
    gtl = [np.zeros(0, dtype=np.int64)] * 2
    metas = [{"img_shape": (32, 32)}, {"img_shape": (12, 10), "pad_shape": (16, 16)}]
    ref = R.gfl_targets(sizes, gtb, gtl, metas, cfg)
    assert not ref.pos.any() and (ref.labels == cfg.num_classes).all()
    assert ref.num_total_samples == 2.0
    assert (ref.label_weights == ref.valid).all() and not ref.valid[1].all()
    tor = torch_targets(cfg, sizes, gtb, gtl, metas)
    assert tor.bbox_targets.shape == (2, sum(h * w for h, w in sizes), 4)
    assert_targets_equal(ref, tor)


def test_torch_targets_live_on_the_requested_device_and_dtype():
    cfg, cls, _, gtb, gtl, metas = tiny_workload()
    sizes = [c.shape[2:] for c in cls]
    labels = [torch.as_tensor(g) for g in gtl]
    t = T.gfl_targets(sizes, to_torch(gtb), labels, metas, cfg)  # float64 gts
    assert t.anchors.dtype == torch.float64 and t.anchors.device.type == "cpu"
    assert t.valid.dtype == torch.bool and t.pos.dtype == torch.bool
    t = T.gfl_targets(sizes, to_torch(gtb, dtype=torch.float16), labels, metas, cfg)
    assert t.bbox_targets.dtype == torch.float32  # half precision works in float32
    t = T.gfl_targets(sizes, to_torch(gtb), labels, metas, cfg, dtype=torch.float32)
    assert t.bbox_targets.dtype == torch.float32 and t.num_total_samples.dtype == torch.float32


def test_targets_reject_bad_input():
    cfg, cls, _, gtb, gtl, metas = tiny_workload()
    sizes = [c.shape[2:] for c in cls]
    with pytest.raises(ValueError, match=r"gt_labels must have one entry per image \(1\), got 2"):
        R.gfl_targets(sizes, gtb, gtl * 2, metas, cfg)
    with pytest.raises(ValueError, match=r"gt_labels must have one entry per image \(1\), got 2"):
        T.gfl_targets(sizes, to_torch(gtb), [torch.as_tensor(gtl[0])] * 2, metas, cfg)
    with pytest.raises(ValueError, match=r"cfg must be a GFLConfig"):
        T.gfl_targets(sizes, to_torch(gtb), [torch.as_tensor(gtl[0])], metas, {"num_classes": 2})
    with pytest.raises(ValueError, match=r"img_metas must have one dict per image \(1\), got 2"):
        T.gfl_targets(sizes, to_torch(gtb), [torch.as_tensor(gtl[0])], metas * 2, cfg)
    with pytest.raises(ValueError, match=r"gt_bboxes\[0\] must have shape \(\*, 4\)"):
        T.gfl_targets(sizes, [torch.zeros(2, 5)], [torch.as_tensor(gtl[0])], metas, cfg)
    with pytest.raises(ValueError, match=r"gt_labels\[0\] must be an integer tensor"):
        T.gfl_targets(sizes, to_torch(gtb), [torch.tensor([0.0, 1.0])], metas, cfg)
    with pytest.raises(ValueError, match=r"gt_bboxes_ignore must have one entry per image"):
        cfg_ign = R.GFLConfig(num_classes=2, reg_max=4, strides=(8, 16), ignore_iof_thr=0.5)
        T.gfl_targets(sizes, to_torch(gtb), [torch.as_tensor(gtl[0])], metas, cfg_ign, [])


# --- the anchors and valid flags cached per shape ------------------------------------------


def _workload_at(cfg, pad_hw, img_shapes, seed):
    """Random head outputs of a batch padded to ``pad_hw`` and two gts per image."""
    rng = np.random.default_rng(seed)
    sizes = [(-(-pad_hw[0] // s), -(-pad_hw[1] // s)) for s in cfg.strides]
    b = len(img_shapes)
    cls = [rng.normal(size=(b, cfg.num_classes, h, w)) for h, w in sizes]
    reg = [rng.normal(size=(b, 4 * (cfg.reg_max + 1), h, w)) for h, w in sizes]
    gtb, gtl = [], []
    for h, w in img_shapes:
        xy = rng.uniform(0, [w - 8, h - 8], size=(2, 2))
        gtb.append(np.concatenate([xy, np.minimum(xy + rng.uniform(8, 40, (2, 2)), [w, h])], 1))
        gtl.append(rng.integers(0, cfg.num_classes, size=2))
    metas = [{"img_shape": s, "pad_shape": s} for s in img_shapes]
    return sizes, cls, reg, gtb, gtl, metas


def test_cached_anchors_follow_sizes_pad_shapes_and_dtypes():
    """``gfl_targets``, ``gfl_loss`` and ``gfl_predict`` cache the anchors per (feature-map
    sizes, strides, dtype, device) and the valid flags per (sizes, pad shapes): going back
    and forth between sizes, pad shapes and dtypes, every call still equals the
    reference, and mutating the targets returned does not reach the cache."""
    cfg = R.GFLConfig(num_classes=3, strides=(8, 16, 32))
    cases = [
        ((64, 64), [(64, 64), (64, 64)]),  # every anchor valid
        ((96, 64), [(96, 64), (80, 50)]),  # another size; the second image padded
        ((64, 64), [(64, 64), (40, 64)]),  # the first size, other pad shapes
        ((64, 64), [(64, 64), (64, 64)]),
        ((96, 64), [(96, 64), (80, 50)]),
    ]
    _geometry.cache_clear()
    _valid_flags_batch.cache_clear()
    for i, (pad_hw, img_shapes) in enumerate(cases):
        sizes, cls, reg, gtb, gtl, metas = _workload_at(cfg, pad_hw, img_shapes, seed=i)
        ref = R.gfl_targets(sizes, gtb, gtl, metas, cfg)
        for dtype in (torch.float64, torch.float32):
            tor = torch_targets(cfg, sizes, gtb, gtl, metas, dtype=dtype)
            assert tor.anchors.dtype == tor.strides.dtype == dtype
            np.testing.assert_array_equal(tor.anchors.numpy(), ref.anchors)  # exact in float32
            np.testing.assert_array_equal(tor.strides.numpy(), ref.strides)
            np.testing.assert_array_equal(tor.valid.numpy(), ref.valid)
            np.testing.assert_array_equal(tor.label_weights.numpy(), ref.label_weights)
            tor.anchors.add_(1000.0)  # the caller's copies
            tor.strides.zero_()
            tor.valid.zero_()
        assert_targets_equal(ref, torch_targets(cfg, sizes, gtb, gtl, metas))
        losses, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg)
        d_cls, d_reg = R.gfl_loss_backward(cache)
        t_losses, t_cls, t_reg = torch_loss(cfg, cls, reg, gtb, gtl, metas)
        for key in ("loss_cls", "loss_bbox", "loss_dfl"):
            assert float(t_losses[key]) == pytest.approx(losses[key], rel=1e-10, abs=1e-12)
        for a, b in zip(d_cls + d_reg, t_cls + t_reg):
            np.testing.assert_allclose(b, a, rtol=1e-8, atol=1e-12)
        cfg_pred = R.GFLConfig(num_classes=3, strides=(8, 16, 32), nms_pre=20, score_thr=0.3)
        ref_det = R.gfl_predict(cls, reg, metas, cfg_pred)
        for (d1, l1), (d2, l2) in zip(
            ref_det, T.gfl_predict(to_torch(cls), to_torch(reg), metas, cfg_pred)
        ):
            np.testing.assert_array_equal(l1, l2.numpy())
            np.testing.assert_allclose(d1, d2.numpy(), rtol=1e-12, atol=1e-12)
    assert _geometry.cache_info().hits > 0  # the caches were used
    assert _valid_flags_batch.cache_info().hits > 0
