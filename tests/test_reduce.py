"""weight_reduce: torch ``weight_reduce_loss`` vs the reference forward/backward, finite
differences and the closed-form gradients (w / D for mean, w for sum, w·g for none)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_rel
from hypothesis import example, given
from hypothesis import strategies as st

from reference import weight_reduce_backward, weight_reduce_forward
from reference.gradcheck import check_backward
from reference.testing.strategies import reduce_inputs
from torch_impl import weight_reduce_loss

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
seeds = st.integers(0, 2**32 - 1)


EMPTY = (np.zeros(0), None, "mean", None)
EMPTY_AVG = (np.zeros((0, 3)), np.zeros((0, 3)), "mean", 2.0)
BROADCAST = (np.arange(6.0).reshape(2, 3), np.array([[1.0], [0.5]]), "sum", None)


@given(inputs=reduce_inputs(), seed=seeds, avg_as_tensor=st.booleans())
@example(inputs=EMPTY, seed=0, avg_as_tensor=False)
@example(inputs=EMPTY_AVG, seed=0, avg_as_tensor=True)
@example(inputs=BROADCAST, seed=0, avg_as_tensor=False)
def test_weight_reduce_numpy_matches_torch_float64(inputs, seed, avg_as_tensor):
    loss, weight, reduction, avg = inputs
    out, cache = weight_reduce_forward(loss, weight, reduction, avg)
    d_out = np.random.default_rng(seed).normal(size=out.shape)
    d_loss = weight_reduce_backward(d_out, cache)
    x = torch.tensor(loss, requires_grad=True)
    t_weight = None if weight is None else torch.from_numpy(weight)
    t_avg = torch.tensor(avg, dtype=torch.float64) if (avg is not None and avg_as_tensor) else avg
    t_out = weight_reduce_loss(x, t_weight, reduction, t_avg)
    t_out.backward(torch.from_numpy(d_out))
    assert tuple(t_out.shape) == out.shape == (loss.shape if reduction == "none" else ())
    assert d_loss.shape == x.grad.shape == loss.shape
    assert_rel(out, t_out.detach().numpy(), 1e-10, "forward")
    assert_rel(d_loss, x.grad.numpy(), 1e-10, "gradient")


@given(inputs=reduce_inputs(max_n=3), seed=seeds)
def test_weight_reduce_backward_matches_central_differences(inputs, seed):
    loss, weight, reduction, avg = inputs
    err = check_backward(lambda x: weight_reduce_forward(x, weight, reduction, avg),
                         weight_reduce_backward, loss, seed=seed)
    assert err <= 1e-7


@given(inputs=reduce_inputs(), seed=seeds)
@example(inputs=(np.zeros((7, 3)), np.pad([[2.22507386e-309]], ((6, 0), (2, 0))), "mean", None),
         seed=0)  # found
def test_weight_reduce_closed_form(inputs, seed):
    """none: w·l and gradient w·g; sum: Σ w·l and gradient w·g; mean: Σ w·l / D and
    gradient w·g / D, with D = avg_factor (exactly, no eps) or the number of elements."""
    loss, weight, reduction, avg = inputs
    w = np.ones_like(loss) if weight is None else np.broadcast_to(weight, loss.shape)
    out, cache = weight_reduce_forward(loss, weight, reduction, avg)
    g = np.random.default_rng(seed).normal(size=out.shape)
    d_loss = weight_reduce_backward(g, cache)
    if reduction == "none":  # avg_factor, if any, is unused
        np.testing.assert_array_equal(out, loss * w)
        np.testing.assert_array_equal(d_loss, g * w)
        return
    if reduction == "sum":
        np.testing.assert_allclose(out, np.sum(loss * w), rtol=1e-14)
        np.testing.assert_allclose(d_loss, g * w, rtol=1e-15, atol=1e-300)
        return
    d = avg if avg is not None else loss.size
    if d == 0:  # mean of an empty loss is 0
        assert out == 0.0 and d_loss.shape == loss.shape
        return
    np.testing.assert_allclose(out, np.sum(loss * w) / d, rtol=1e-14, atol=1e-300)
    # atol: (w / D)·g and w·g / D round differently in subnormals (found: w = 2.2e-309)
    np.testing.assert_allclose(d_loss, g * w / d, rtol=1e-15, atol=1e-300)


def test_weight_reduce_mean_of_empty_is_zero():
    for shape in ((0,), (0, 4)):
        out, cache = weight_reduce_forward(np.zeros(shape))
        assert out.shape == () and out == 0.0
        assert weight_reduce_backward(np.array(1.0), cache).shape == shape
        x = torch.zeros(shape, requires_grad=True)
        t_out = weight_reduce_loss(x)
        t_out.backward()
        assert t_out.shape == () and t_out.item() == 0.0 and x.grad.shape == shape
        assert weight_reduce_loss(x, avg_factor=torch.tensor(3.0)).item() == 0.0
        assert weight_reduce_loss(x, reduction="sum").item() == 0.0
        assert weight_reduce_loss(x, reduction="none").shape == shape


def test_weight_reduce_mean_with_avg_factor_has_no_eps():
    """mmdet divides by avg_factor + 1.19e-7; the contract divides by avg_factor."""
    loss = np.array([1.0, 2.0, 3.0])
    out, _ = weight_reduce_forward(loss, np.array([1.0, 0.0, 2.0]), "mean", 7.0)
    assert out == 1.0  # (1 + 6) / 7 exactly
    t_out = weight_reduce_loss(torch.from_numpy(loss), torch.tensor([1.0, 0.0, 2.0],
                               dtype=torch.float64), "mean", torch.tensor(7.0))
    assert t_out.item() == 1.0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_weight_reduce_keeps_device_and_takes_a_0d_tensor_avg_factor(dtype, device):
    x = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=dtype, device=device, requires_grad=True)
    w = torch.tensor([1.0, 0.5, 0.0, 2.0], dtype=dtype, device=device)
    out = weight_reduce_loss(x, w, avg_factor=torch.tensor(2.0, device=device))
    assert out.shape == () and out.device == x.device
    assert out.item() == pytest.approx((1 + 1 + 0 + 8) / 2.0)
    out.backward()
    assert x.grad.dtype == dtype
    torch.testing.assert_close(x.grad.float().cpu(), torch.tensor([0.5, 0.25, 0.0, 1.0]))
