"""Anchors and valid flags: golden values, the grid formula, NumPy == torch, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import reference as R
import torch_impl as T
from reference.anchors import anchor_centers as anchor_centers_np
from reference.testing.strategies import featmap_levels, grid_boxes
from torch_impl.anchors import anchor_centers as anchor_centers_t


def test_golden_anchors(golden):
    d = golden("anchors")
    sizes, strides = d["featmap_sizes"].tolist(), d["strides"].tolist()
    base = int(d["octave_base_scale"])
    ref = R.grid_anchors(sizes, strides, base)
    tor = T.grid_anchors(sizes, strides, base, dtype=torch.float64)
    for lvl in range(len(sizes)):
        np.testing.assert_array_equal(ref[lvl], d[f"anchors_{lvl}"])
        np.testing.assert_array_equal(tor[lvl].numpy(), d[f"anchors_{lvl}"])
        assert ref[lvl].dtype == np.float64


@pytest.mark.parametrize("key", ["", "_b"])
def test_golden_valid_flags(golden, key):
    d = golden("anchors")
    sizes, strides = d["featmap_sizes"].tolist(), d["strides"].tolist()
    pad = tuple(d[f"pad_shape{key}"].tolist())
    ref = R.valid_flags(sizes, pad, strides)
    tor = T.valid_flags(sizes, pad, strides)
    for lvl in range(len(sizes)):
        np.testing.assert_array_equal(ref[lvl], d[f"valid_flags{key}_{lvl}"])
        np.testing.assert_array_equal(tor[lvl].numpy(), d[f"valid_flags{key}_{lvl}"])
        assert ref[lvl].dtype == bool and tor[lvl].dtype == torch.bool


@given(featmap_levels(max_side=12))
def test_grid_anchors_formula(levels):
    sizes, strides = levels
    ref = R.grid_anchors(sizes, strides)
    tor = T.grid_anchors(sizes, strides, dtype=torch.float64)
    expected = grid_boxes(sizes, strides)
    for (h, w), s, r, t, e in zip(sizes, strides, ref, tor, expected):
        assert r.shape == (h * w, 4)
        np.testing.assert_array_equal(r, e)
        np.testing.assert_array_equal(t.numpy(), e)
        np.testing.assert_array_equal(r[:, 2] - r[:, 0], np.full(h * w, 8.0 * s))
        ii, jj = np.divmod(np.arange(h * w), w)  # row-major: i outer
        centres = np.stack([jj * s, ii * s], axis=1).astype(np.float64)  # (H*W, 2)
        np.testing.assert_array_equal(anchor_centers_np(r), centres)
        np.testing.assert_array_equal(anchor_centers_t(t).numpy(), centres)


@given(featmap_levels(max_side=12), st.floats(0, 200), st.floats(0, 200))
def test_valid_flags_counts(levels, pad_h, pad_w):
    sizes, strides = levels
    ref = R.valid_flags(sizes, (pad_h, pad_w), strides)
    tor = T.valid_flags(sizes, (pad_h, pad_w), strides)
    for (h, w), s, r, t in zip(sizes, strides, ref, tor):
        vh, vw = min(math.ceil(pad_h / s), h), min(math.ceil(pad_w / s), w)
        grid = r.reshape(h, w)
        assert grid.sum() == vh * vw
        assert grid[:vh, :vw].all()
        np.testing.assert_array_equal(t.numpy(), r)


def test_empty_levels():
    ref = R.grid_anchors([(0, 3), (2, 0)], (8, 16))
    assert [a.shape for a in ref] == [(0, 4), (0, 4)]
    tor = T.grid_anchors([(0, 3), (2, 0)], (8, 16))
    assert [tuple(a.shape) for a in tor] == [(0, 4), (0, 4)]
    assert [f.shape for f in R.valid_flags([(0, 3)], (10, 10), (8,))] == [(0,)]


def test_torch_dtype_and_device():
    out = T.grid_anchors([(2, 3)], (8,), dtype=torch.float32, device="cpu")
    assert out[0].dtype == torch.float32 and out[0].device.type == "cpu"
    assert T.grid_anchors([(2, 3)], (8,))[0].dtype == torch.get_default_dtype()


@pytest.mark.parametrize("impl", [R, T])
@pytest.mark.parametrize(
    "args,match",
    [
        (([(2, 2)], (8, 16)), r"featmap_sizes must have one \(H, W\) per stride \(2 levels\)"),
        (([(2, 2, 2)], (8,)), r"featmap_sizes must hold \(H, W\) pairs"),
        (([(2, -1)], (8,)), r"featmap_sizes must hold \(H, W\) pairs of integers >= 0"),
        (([(2, 2.5)], (8,)), r"featmap_sizes must hold \(H, W\) pairs of integers"),
        ((5, (8,)), r"featmap_sizes must be a sequence of \(H, W\) pairs, got 5"),
        (([(2, 2)], (0,)), r"strides must be > 0, got 0"),
        (([(2, 2)], (8,), 0), r"octave_base_scale must be > 0, got 0"),
    ],
)
def test_grid_anchors_bad_input(impl, args, match):
    with pytest.raises(ValueError, match=match):
        impl.grid_anchors(*args)


@pytest.mark.parametrize("impl", [R, T])
@pytest.mark.parametrize(
    "pad,match",
    [
        ((10,), r"pad_shape must be \(h, w\), got \(10,\)"),
        ((-1, 10), r"pad_shape must be \(h, w\) with finite h, w >= 0, got \(-1, 10\)"),
        ((float("nan"), 10), r"pad_shape must be \(h, w\) with finite h, w >= 0"),
    ],
)
def test_valid_flags_bad_input(impl, pad, match):
    with pytest.raises(ValueError, match=match):
        impl.valid_flags([(2, 2)], pad, (8,))


def test_anchor_centers_bad_input():
    with pytest.raises(ValueError, match=r"anchors must have shape \(\*, 4\), got \(3, 5\)"):
        anchor_centers_np(np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"anchors must have shape \(\.\.\., 4\), got \(3, 5\)"):
        anchor_centers_t(torch.zeros(3, 5))
