"""Box geometry: distance2bbox (with its backward), bbox2distance and bbox_overlaps —
NumPy reference vs torch, finite differences, identities and mmdetection goldens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_rel
from hypothesis import assume, example, given
from hypothesis import strategies as st

from reference import bbox2distance, bbox_overlaps, distance2bbox_backward, distance2bbox_forward
from reference.gradcheck import check_backward
from reference.testing.strategies import (
    box_pairs,
    boxes,
    finite_floats,
    max_shapes,
    points_and_distances,
    points_in_boxes,
)
from torch_impl import bbox2distance as t_bbox2distance
from torch_impl import bbox_overlaps as t_bbox_overlaps
from torch_impl import distance2bbox as t_distance2bbox

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
MODES = ["iou", "giou", "iof"]
SIGN = np.array([-1.0, -1.0, 1.0, 1.0])
seeds = st.integers(0, 2**32 - 1)


def torch_d2b(points, distance, d_out, max_shape=None):
    p = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    d = torch.tensor(distance, dtype=torch.float64, requires_grad=True)
    out = t_distance2bbox(p, d, max_shape)
    out.backward(torch.from_numpy(d_out))
    return out.detach().numpy(), d.grad.numpy(), p.grad.numpy()


def naive_overlap(a, b, mode: str, eps: float = 1e-6) -> float:
    """The obvious IoU / GIoU / IoF of two boxes, one pair at a time in Python floats."""
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    denom = max(area_a if mode == "iof" else area_a + area_b - inter, eps)
    if mode != "giou":
        return inter / denom
    ew = max(max(a[2], b[2]) - min(a[0], b[0]), 0.0)
    eh = max(max(a[3], b[3]) - min(a[1], b[1]), 0.0)
    enclose = max(ew * eh, eps)
    return inter / denom - (enclose - denom) / enclose


# ================================================================ distance2bbox

ON_BOUNDS = (np.array([[10.0, 10.0], [0.0, 50.0]]), np.array([[10.0, 10.0, 50.0, 40.0],
                                                               [0.0, 50.0, 60.0, 0.0]]))


@given(pd=points_and_distances(), max_shape=st.one_of(st.none(), max_shapes), seed=seeds)
@example(pd=(np.zeros((0, 2)), np.zeros((0, 4))), max_shape=None, seed=0)
@example(pd=(np.zeros((0, 2)), np.zeros((0, 4))), max_shape=(5, 5), seed=0)
@example(pd=ON_BOUNDS, max_shape=(50, 60), seed=0)  # every coordinate exactly on a bound
def test_distance2bbox_numpy_matches_torch_float64(pd, max_shape, seed):
    points, distance = pd
    d_out = np.random.default_rng(seed).normal(size=distance.shape)
    out, cache = distance2bbox_forward(points, distance, max_shape)
    d_dist = distance2bbox_backward(d_out, cache)
    t_out, t_dist, _ = torch_d2b(points, distance, d_out, max_shape)
    assert out.shape == t_out.shape == d_dist.shape == t_dist.shape == distance.shape
    assert_rel(out, t_out, 1e-10, "forward")
    assert_rel(d_dist, t_dist, 1e-10, "gradient")


@given(pd=points_and_distances(max_n=3), max_shape=st.one_of(st.none(), max_shapes), seed=seeds)
@example(pd=(np.array([[93.0, 0.0], [12.0, -1.0]]), np.array([[92.0, 1.0, 0.0, 2.0], [0.0] * 4])),
         max_shape=(1, 11), seed=1_210_181_279)  # found: rounding noise at h = 1e-6
def test_distance2bbox_backward_matches_central_differences(pd, max_shape, seed):
    points, distance = pd
    out, _ = distance2bbox_forward(points, distance)
    if max_shape is not None:  # stay 1e-3 (> h) away from the clamp bounds
        h, w = max_shape
        upper = np.array([w, h, w, h])
        assume(np.all(np.abs(out) > 1e-3) and np.all(np.abs(out - upper) > 1e-3))
    # The map is piecewise linear: a central difference has no truncation error, only
    # rounding noise ~ 1e-16 |<d_out, boxes>| / h, so a large step is the accurate one.
    err = check_backward(lambda d: distance2bbox_forward(points, d, max_shape),
                         distance2bbox_backward, distance, seed=seed, h=1e-4)
    assert err <= 1e-7


@given(pd=points_and_distances(), max_shape=st.one_of(st.none(), max_shapes), seed=seeds)
@example(pd=ON_BOUNDS, max_shape=(50, 60), seed=0)
def test_distance2bbox_backward_is_a_signed_copy_zeroed_where_clamped(pd, max_shape, seed):
    """d l = -d x1, d t = -d y1, d r = d x2, d b = d y2; 0 strictly outside [0, w] / [0, h],
    passed on the bound itself (as torch.clamp)."""
    points, distance = pd
    g = np.random.default_rng(seed).normal(size=distance.shape)
    raw, _ = distance2bbox_forward(points, distance)
    out, cache = distance2bbox_forward(points, distance, max_shape)
    if max_shape is None:
        np.testing.assert_array_equal(out, raw)
        inside = np.ones(raw.shape, dtype=bool)
    else:
        h, w = max_shape
        upper = np.array([w, h, w, h], dtype=float)
        np.testing.assert_array_equal(out, np.clip(raw, 0.0, upper))
        inside = (raw >= 0.0) & (raw <= upper)
    np.testing.assert_array_equal(distance2bbox_backward(g, cache), np.where(inside, SIGN * g, 0))


def test_distance2bbox_passes_the_gradient_on_the_bound_itself():
    points, distance = ON_BOUNDS  # boxes (0, 0, 60, 50) and (0, 0, 60, 50), all on bounds
    out, cache = distance2bbox_forward(points, distance, (50, 60))
    np.testing.assert_array_equal(out, [[0.0, 0.0, 60.0, 50.0]] * 2)
    np.testing.assert_array_equal(distance2bbox_backward(np.ones((2, 4)), cache), [SIGN] * 2)
    _, t_dist, _ = torch_d2b(points, distance, np.ones((2, 4)), (50, 60))
    np.testing.assert_array_equal(t_dist, [SIGN] * 2)
    # just beyond the bound (x2, y2 by 1e-9): clamped, no gradient there
    _, cache = distance2bbox_forward(points, distance + [0.0, 0.0, 1e-9, 1e-9], (50, 60))
    np.testing.assert_array_equal(distance2bbox_backward(np.ones((2, 4)), cache),
                                  [[-1.0, -1.0, 0.0, 0.0]] * 2)


def test_distance2bbox_empty_input():
    for max_shape in (None, (10, 10)):
        out, cache = distance2bbox_forward(np.zeros((0, 2)), np.zeros((0, 4)), max_shape)
        assert out.shape == (0, 4) and out.dtype == np.float64
        assert distance2bbox_backward(np.zeros((0, 4)), cache).shape == (0, 4)
        d = torch.zeros((0, 4), requires_grad=True)
        t_out = t_distance2bbox(torch.zeros(0, 2), d, max_shape)
        assert t_out.shape == (0, 4)
        t_out.sum().backward()
        assert d.grad.shape == (0, 4)


# ================================================================ bbox2distance


@given(pb=points_in_boxes(), outside=st.booleans(),
       max_dis=st.one_of(st.none(), st.sampled_from([16.0, 4.0]), finite_floats(0.5, 100.0)))
@example(pb=(np.zeros((0, 2)), np.zeros((0, 4))), outside=False, max_dis=16.0)
def test_bbox2distance_numpy_matches_torch_float64(pb, outside, max_dis):
    points, bbox = pb
    if outside:  # points anywhere: negative distances, which the clamp sends to 0
        points = points * 3.0 - 100.0
    out = bbox2distance(points, bbox, max_dis)
    t_out = t_bbox2distance(torch.from_numpy(points), torch.from_numpy(bbox), max_dis).numpy()
    assert out.shape == t_out.shape == bbox.shape
    assert_rel(out, t_out, 1e-10, "forward")
    raw = bbox2distance(points, bbox)
    if max_dis is None:
        np.testing.assert_array_equal(out, raw)
    else:  # the clamp: [0, max_dis - 0.1]
        np.testing.assert_array_equal(out, np.clip(raw, 0.0, max_dis - 0.1))


@given(pb=points_in_boxes())
def test_distance2bbox_after_bbox2distance_is_the_identity(pb):
    points, bbox = pb
    dist = bbox2distance(points, bbox)
    assert np.all(dist > 0.0)
    back, _ = distance2bbox_forward(points, dist)
    np.testing.assert_allclose(back, bbox, rtol=0, atol=1e-12)
    t_back = t_distance2bbox(torch.from_numpy(points), t_bbox2distance(
        torch.from_numpy(points), torch.from_numpy(bbox)))
    np.testing.assert_allclose(t_back.numpy(), bbox, rtol=0, atol=1e-12)


@given(pb=points_in_boxes(), max_dis=finite_floats(1.0, 120.0))
def test_distance2bbox_after_clamped_bbox2distance_is_the_identity_inside_the_clamp(pb, max_dis):
    points, bbox = pb
    dist = bbox2distance(points, bbox, max_dis)
    assert np.all((dist >= 0.0) & (dist <= max_dis - 0.1))
    back, _ = distance2bbox_forward(points, dist)
    inside = np.all(bbox2distance(points, bbox) < max_dis - 0.1, axis=1)  # rows not clamped
    np.testing.assert_allclose(back[inside], bbox[inside], rtol=0, atol=1e-12)


@given(pd=points_and_distances())
def test_bbox2distance_after_distance2bbox_is_the_identity(pd):
    points, distance = pd
    boxes_, _ = distance2bbox_forward(points, distance)
    np.testing.assert_allclose(bbox2distance(points, boxes_), distance, rtol=0, atol=1e-12)


def test_bbox2distance_empty_input():
    for max_dis in (None, 16):
        assert bbox2distance(np.zeros((0, 2)), np.zeros((0, 4)), max_dis).shape == (0, 4)
        assert t_bbox2distance(torch.zeros(0, 2), torch.zeros(0, 4), max_dis).shape == (0, 4)


# ================================================================ bbox_overlaps


@given(b1=boxes(), b2=boxes(), mode=st.sampled_from(MODES))
@example(b1=np.zeros((0, 4)), b2=np.array([[0.0, 0.0, 1.0, 1.0]]), mode="giou")
@example(b1=np.array([[0.0, 0.0, 0.0, 5.0]]), b2=np.array([[0.0, 0.0, 0.0, 5.0]]), mode="giou")
def test_bbox_overlaps_numpy_matches_torch_and_a_naive_loop(b1, b2, mode):
    out = bbox_overlaps(b1, b2, mode)
    t_out = t_bbox_overlaps(torch.from_numpy(b1), torch.from_numpy(b2), mode).numpy()
    assert out.shape == t_out.shape == (len(b1), len(b2))
    assert_rel(out, t_out, 1e-10, "torch")
    naive = np.array([[naive_overlap(a, b, mode) for b in b2] for a in b1]).reshape(out.shape)
    np.testing.assert_allclose(out, naive, rtol=1e-12, atol=1e-15)


@given(pairs=box_pairs(), mode=st.sampled_from(MODES))
def test_bbox_overlaps_aligned_is_the_diagonal(pairs, mode):
    b1, b2 = pairs
    out = bbox_overlaps(b1, b2, mode, is_aligned=True)
    t_out = t_bbox_overlaps(torch.from_numpy(b1), torch.from_numpy(b2), mode, True).numpy()
    assert out.shape == t_out.shape == (len(b1),)
    assert_rel(out, t_out, 1e-10, "torch")
    np.testing.assert_allclose(out, np.diag(bbox_overlaps(b1, b2, mode)), rtol=1e-14, atol=0)


@given(b1=boxes(), b2=boxes())
def test_bbox_overlaps_ranges_and_orderings(b1, b2):
    """IoU in [0, 1] and symmetric; GIoU in [-1, IoU]; IoF >= IoU (area1 <= union)."""
    iou, giou, iof = (bbox_overlaps(b1, b2, m) for m in MODES)
    assert np.all((iou >= 0) & (iou <= 1))
    np.testing.assert_allclose(iou, bbox_overlaps(b2, b1).T, rtol=1e-14, atol=0)
    assert np.all((giou >= -1) & (giou <= iou + 1e-14))
    assert np.all((iof >= iou - 1e-14) & (iof <= 1 + 1e-14))
    np.testing.assert_allclose(np.diag(bbox_overlaps(b1, b1)), 1.0, rtol=1e-14)


@pytest.mark.parametrize("mode", MODES)
def test_bbox_overlaps_empty_input(mode):
    e, b = np.zeros((0, 4)), np.array([[0.0, 0.0, 2.0, 2.0]] * 3)
    for impl, conv in ((bbox_overlaps, np.asarray), (t_bbox_overlaps, torch.from_numpy)):
        assert tuple(impl(conv(e), conv(b), mode).shape) == (0, 3)
        assert tuple(impl(conv(b), conv(e), mode).shape) == (3, 0)
        assert tuple(impl(conv(e), conv(e), mode).shape) == (0, 0)
        assert tuple(impl(conv(e), conv(e), mode, is_aligned=True).shape) == (0,)


# ================================================================ torch dtypes


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_box_functions_keep_dtype_and_device(dtype, device):
    rng = np.random.default_rng(0)
    b = np.round(np.sort(rng.uniform(0, 60, size=(5, 2, 2)), axis=1).reshape(5, 4)) + [0, 0, 1, 1]
    pts = np.round((b[:, :2] + b[:, 2:]) / 2)
    tb = torch.tensor(b, dtype=dtype, device=device)
    tp = torch.tensor(pts, dtype=dtype, device=device)
    tol = {torch.float32: 1e-6, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    for mode in MODES:
        for aligned in (False, True):
            out = t_bbox_overlaps(tb, tb.flip(0), mode, aligned)
            assert out.dtype == dtype and out.device == tb.device
            ref = bbox_overlaps(b, b[::-1], mode, aligned)
            assert_rel(out.double().cpu().numpy(), ref, tol, f"{mode} {aligned}")
    dist = t_bbox2distance(tp, tb, 16.0)
    assert dist.dtype == dtype and dist.device == tb.device
    assert_rel(dist.double().cpu().numpy(), bbox2distance(pts, b, 16.0), tol, "bbox2distance")
    d = dist.detach().requires_grad_()
    dec = t_distance2bbox(tp, d, (40, 50))
    assert dec.dtype == dtype and dec.device == tb.device
    dec.float().sum().backward()
    assert d.grad.dtype == dtype and d.grad.device == tb.device
    ref_dec, _ = distance2bbox_forward(pts, dist.double().cpu().numpy(), (40, 50))
    assert_rel(dec.detach().double().cpu().numpy(), ref_dec, tol, "distance2bbox")


# ================================================================ goldens (mmdet 2.28.2)


def test_distance2bbox_golden(golden):
    g = golden("distance2bbox")
    max_shape = tuple(int(v) for v in g["max_shape"])
    for shape, suffix in ((None, ""), (max_shape, "_clamped")):
        out, cache = distance2bbox_forward(g["points"], g["distance"], shape)
        assert_rel(out, g["boxes" + suffix], 1e-12, "reference boxes")
        assert_rel(distance2bbox_backward(g["d_out"], cache), g["d_distance" + suffix], 1e-12)
        t_out, t_dist, t_pts = torch_d2b(g["points"], g["distance"], g["d_out"], shape)
        assert_rel(t_out, g["boxes" + suffix], 1e-12, "torch boxes")
        assert_rel(t_dist, g["d_distance" + suffix], 1e-12, "torch d_distance")
        assert_rel(t_pts, g["d_points" + suffix], 1e-12, "torch d_points")


def test_bbox2distance_golden(golden):
    g = golden("bbox2distance")
    pts, bbox = g["points"], g["bbox"]
    max_dis, eps = float(g["max_dis"]), float(g["eps"])
    assert_rel(bbox2distance(pts, bbox), g["dist_unclamped"], 1e-12)
    assert_rel(bbox2distance(pts, bbox, max_dis, eps), g["dist_clamped"], 1e-12)
    tp, tb = torch.from_numpy(pts), torch.from_numpy(bbox)
    assert_rel(t_bbox2distance(tp, tb).numpy(), g["dist_unclamped"], 1e-12)
    assert_rel(t_bbox2distance(tp, tb, max_dis, eps).numpy(), g["dist_clamped"], 1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_bbox_overlaps_golden(golden, mode):
    g = golden("bbox_overlaps")
    eps = float(g["eps"])
    t = torch.from_numpy
    assert_rel(bbox_overlaps(g["bboxes1"], g["bboxes2"], mode, eps=eps), g[mode], 1e-12)
    assert_rel(t_bbox_overlaps(t(g["bboxes1"]), t(g["bboxes2"]), mode, eps=eps).numpy(),
               g[mode], 1e-12)
    aligned = bbox_overlaps(g["aligned1"], g["aligned2"], mode, True, eps)
    assert_rel(aligned, g[mode + "_aligned"], 1e-12)
    t_aligned = t_bbox_overlaps(t(g["aligned1"]), t(g["aligned2"]), mode, True, eps).numpy()
    assert_rel(t_aligned, g[mode + "_aligned"], 1e-12)


def test_bbox_overlaps_golden_empty(golden):
    g = golden("bbox_overlaps")
    e, b1, b2 = g["empty"], g["bboxes1"], g["bboxes2"]
    assert bbox_overlaps(e, b2).shape == g["iou_empty_rows"].shape
    assert bbox_overlaps(b1, e).shape == g["iou_empty_cols"].shape
    assert bbox_overlaps(e, e, is_aligned=True).shape == g["iou_empty_aligned"].shape
    t = torch.from_numpy
    assert t_bbox_overlaps(t(e), t(b2)).shape == g["iou_empty_rows"].shape
    assert t_bbox_overlaps(t(b1), t(e)).shape == g["iou_empty_cols"].shape
    assert t_bbox_overlaps(t(e), t(e), is_aligned=True).shape == g["iou_empty_aligned"].shape
