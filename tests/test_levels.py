"""Per-level head outputs: the shape checks and the flattening into one anchor axis.

Tests of :mod:`reference.levels` and :mod:`torch_impl.levels`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reference as R
import torch_impl as T
from reference.levels import put_level_rows, take_level_rows

CFG = R.GFLConfig(num_classes=3, reg_max=2, strides=(8, 16))  # 4 * 3 = 12 box channels


def level_maps(batch=2, sizes=((3, 4), (2, 2)), channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch, channels, h, w)) for h, w in sizes]


def test_flatten_is_levels_in_order_then_rows_then_columns():
    """A tiny obvious reference: the anchor index runs level by level, y outer, x inner."""
    maps = level_maps()
    flat = R.flatten_levels(maps, "cls_scores", 3)  # (B, A, C)
    expected = []
    for m in maps:
        for y in range(m.shape[2]):
            for x in range(m.shape[3]):
                expected.append(m[:, :, y, x])  # (B, C)
    np.testing.assert_array_equal(flat, np.stack(expected, axis=1))


def test_torch_flatten_equals_reference_and_unflatten_inverts_it():
    maps = level_maps()
    flat = R.flatten_levels(maps, "cls_scores", 3)
    t_flat = T.flatten_levels([torch.from_numpy(m) for m in maps], torch.float64)
    np.testing.assert_array_equal(t_flat.numpy(), flat)
    back = R.unflatten_levels(flat, [m.shape for m in maps])
    for a, b in zip(back, maps):
        np.testing.assert_array_equal(a, b)
    assert T.flatten_levels(
        [torch.zeros(2, 3, 1, 1, dtype=torch.float16)], torch.float32
    ).dtype == (torch.float32)


def test_check_level_maps_returns_the_batch_size_on_both_sides():
    cls, reg = level_maps(channels=3), level_maps(channels=12)
    assert R.check_level_maps(cls, reg, CFG) == 2
    assert (
        T.check_level_maps(
            [torch.from_numpy(c) for c in cls], [torch.from_numpy(r) for r in reg], CFG
        )
        == 2
    )


@pytest.mark.parametrize("side", ["reference", "torch"])
def test_check_level_maps_names_what_is_wrong(side):
    as_side = (
        (lambda ms: ms) if side == "reference" else (lambda ms: [torch.from_numpy(m) for m in ms])
    )
    check = R.check_level_maps if side == "reference" else T.check_level_maps
    noun = "arrays" if side == "reference" else "tensors"
    cls, reg = as_side(level_maps(channels=3)), as_side(level_maps(channels=12))
    with pytest.raises(ValueError, match=rf"cls_scores must be a list of 2 {noun}"):
        check(cls[:1], reg, CFG)
    with pytest.raises(ValueError, match=rf"bbox_preds must be a list of 2 {noun}"):
        check(cls, reg[0], CFG)
    with pytest.raises(ValueError, match=r"cls_scores\[1\] must have shape \(B=2, 3, H1, W1\)"):
        check([cls[0], as_side(level_maps(channels=4))[1]], reg, CFG)
    with pytest.raises(
        ValueError, match=r"\(4\*\(reg_max\+1\) = 12 channels\), got \(2, 8, 3, 4\)"
    ):
        check(cls, [as_side(level_maps(channels=8))[0], reg[1]], CFG)
    with pytest.raises(ValueError, match=r"bbox_preds\[0\] must have shape \(B=1, 12, H0=3"):
        check(as_side(level_maps(batch=1)), reg, CFG)
    with pytest.raises(ValueError, match=r"cfg must be a GFLConfig, got dict"):
        check(cls, reg, {"num_classes": 3})


def test_torch_check_level_maps_rejects_integer_maps():
    cls = [torch.zeros(1, 3, 3, 4, dtype=torch.int64), torch.zeros(1, 3, 2, 2)]
    reg = [torch.zeros(1, 12, 3, 4), torch.zeros(1, 12, 2, 2)]
    with pytest.raises(ValueError, match=r"cls_scores\[0\] must be a floating tensor"):
        T.check_level_maps(cls, reg, CFG)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_level_rows_are_the_rows_of_the_flattened_maps(dtype):
    """``take_level_rows`` reads rows of ``flatten_levels`` without flattening;
    ``put_level_rows`` is ``unflatten_levels`` of zeros holding those rows."""
    maps = [(10 * m).astype(dtype) for m in level_maps(sizes=((3, 4), (0, 2), (2, 2)))]
    shapes = [m.shape for m in maps]
    flat = R.flatten_levels(maps, "cls_scores", 3).reshape(-1, 3)  # (B*A, 3): 2 * 16 rows
    rows = np.array([0, 5, 11, 12, 15, 16, 27, 31])  # both images, every non-empty level
    taken = take_level_rows(maps, "cls_scores", 3, rows)
    assert taken.dtype == np.float64
    np.testing.assert_array_equal(taken, flat[rows])
    values = np.random.default_rng(1).normal(size=(rows.size, 3))
    dense = np.zeros_like(flat)
    dense[rows] = values
    expected = R.unflatten_levels(dense.reshape(2, -1, 3), shapes)
    for got, want in zip(put_level_rows(values, rows, shapes), expected):
        np.testing.assert_array_equal(got, want)
        assert got.flags.c_contiguous and got.shape == want.shape
    assert take_level_rows(maps, "cls_scores", 3, rows[:0]).shape == (0, 3)


def test_level_rows_check_what_flatten_checks():
    maps = level_maps()
    maps[1][1, 2, 0, 1] = np.inf
    for f in (R.flatten_levels, lambda m, n, c: take_level_rows(m, n, c, np.array([0]))):
        with pytest.raises(ValueError, match=r"bbox_preds\[1\] must be finite, got 1 non-finite"):
            f(maps, "bbox_preds", 3)
        with pytest.raises(ValueError, match=r"bbox_preds\[0\] must be a real .* got dtype bool"):
            f([maps[0] > 0, maps[1]], "bbox_preds", 3)
    with np.errstate(over="ignore"):  # finite as a long double, inf in float64
        huge = [np.full((1, 3, 1, 1), 1e300, dtype=np.longdouble) ** 2]
        with pytest.raises(ValueError, match=r"x\[0\] must be finite"):
            take_level_rows(huge, "x", 3, np.array([0]))
        with pytest.raises(ValueError, match=r"x\[0\] must be finite"):
            R.flatten_levels(huge, "x", 3)
