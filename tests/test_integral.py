"""The Integral (softmax per side, then the expected bin): NumPy reference vs torch,
finite differences, identities and mmdetection goldens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_rel
from hypothesis import assume, example, given
from hypothesis import strategies as st

from reference import integral_backward, integral_forward
from reference.gradcheck import check_backward
from reference.testing.strategies import WIDE_LOGIT, finite_floats, integral_inputs
from torch_impl import Integral, integral

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
HALF_TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
seeds = st.integers(0, 2**32 - 1)


def grad_floor(g) -> float:
    """The scale below which an Integral gradient g P_j (j - ŷ) is rounding noise.

    When a side saturates, j - ŷ cancels in both implementations (ŷ = 1 - 8e-7 for
    logits (0, 14)) and carries ~1e-16 n |g| absolute error, over 1e-10 relative to the
    tiny gradient (found: rel_error 1.7e-10). Entries below 1e-4 |g| are compared
    absolutely.
    """
    return 1e-4 * max(float(np.max(np.abs(g), initial=0.0)), 1e-8)


def softmax_rows(z: np.ndarray) -> np.ndarray:
    """The obvious softmax over the last axis (shifted by the max so that ±1e4 is fine)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def torch_integral(pred: np.ndarray, reg_max: int, d_out: np.ndarray):
    x = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    out = integral(x, reg_max)
    out.backward(torch.from_numpy(d_out))
    return out.detach().numpy(), x.grad.numpy()


# ---------------------------------------------------------------- agreement


EXTREME = np.tile(np.array([WIDE_LOGIT, -WIDE_LOGIT, 0.0, 50.0, -50.0])[None], (2, 4))[:, :20]


@given(inputs=integral_inputs(max_n=4, wide=True), seed=seeds)
@example(inputs=(np.zeros((0, 68)), 16), seed=0)
@example(inputs=(EXTREME, 4), seed=1)
@example(inputs=(np.full((1, 8), WIDE_LOGIT), 1), seed=2)
@example(inputs=(np.array([[0.0, 14.0, 14.0, 0.0, 0.0, 16.0, 0.0, 14.0]]), 1), seed=0)  # found
def test_integral_numpy_matches_torch_float64(inputs, seed):
    pred, reg_max = inputs
    d_out = np.random.default_rng(seed).normal(size=(pred.shape[0], 4))
    out, cache = integral_forward(pred, reg_max)
    d_pred = integral_backward(d_out, cache)
    t_out, t_grad = torch_integral(pred, reg_max, d_out)
    assert out.shape == t_out.shape == (pred.shape[0], 4)
    assert d_pred.shape == t_grad.shape == pred.shape
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(d_pred))
    assert np.all(np.isfinite(t_out)) and np.all(np.isfinite(t_grad))
    assert_rel(out, t_out, 1e-10, "forward")
    assert_rel(d_pred, t_grad, 1e-10, "gradient", floor=grad_floor(d_out))


# ---------------------------------------------------------------- finite differences


@given(inputs=integral_inputs(max_n=3, lo=-10.0, hi=10.0), seed=seeds)
@example(inputs=(np.zeros((1, 8)), 1), seed=0)
@example(inputs=(np.array([[0.0, 6.0, 6.0, 0.0, 0.0, 9.0, 0.0, 6.0]]), 1), seed=0)
@example(inputs=(np.array([[0.0, 6.0, 6.0, 0.0, 0.0, 14.0, 0.0, 6.0]]), 1), seed=0)  # found
def test_integral_backward_matches_central_differences(inputs, seed):
    pred, reg_max = inputs
    d_out = np.random.default_rng(seed).normal(size=(pred.shape[0], 4))
    _, cache = integral_forward(pred, reg_max)
    # A central difference of <d_out, f> has absolute noise ~ 1e-16 |<d_out, f>| / h; a
    # saturated softmax has gradients too small to resolve against it (found: logits
    # 0, 6, 14 gave max |grad| 2.5e-3 and rel_error 1.01e-7 at h = 1e-6).
    grad = integral_backward(d_out, cache)
    assume(grad.size == 0 or np.max(np.abs(grad)) > 1e-2)
    err = check_backward(
        lambda p: integral_forward(p, reg_max), integral_backward, pred, d_out=d_out, h=1e-5
    )
    assert err <= 1e-7


# ---------------------------------------------------------------- identities


@given(inputs=integral_inputs(max_n=4, wide=True))
def test_integral_lies_in_zero_to_reg_max(inputs):
    pred, reg_max = inputs
    out, _ = integral_forward(pred, reg_max)
    assert np.all((out >= 0.0) & (out <= reg_max))
    t_out = integral(torch.from_numpy(pred), reg_max).numpy()
    assert np.all((t_out >= 0.0) & (t_out <= reg_max))


@given(
    inputs=integral_inputs(max_n=4, lo=-50.0, hi=50.0),
    shifts=st.tuples(*[finite_floats(-100.0, 100.0)] * 4),
)
def test_integral_is_unchanged_by_adding_a_constant_to_a_side(inputs, shifts):
    pred, reg_max = inputs
    k = reg_max + 1
    shifted = pred + np.repeat(np.asarray(shifts), k)[None, :]  # one constant per side
    out, _ = integral_forward(pred, reg_max)
    out_shifted, _ = integral_forward(shifted, reg_max)
    np.testing.assert_allclose(out_shifted, out, rtol=0, atol=1e-10 * reg_max)


@given(inputs=integral_inputs(max_n=4, wide=True), seed=seeds)
def test_integral_gradient_closed_form(inputs, seed):
    """d ŷ / d z_j = P_j (j - ŷ): each side's gradient row sums to 0."""
    pred, reg_max = inputs
    k = reg_max + 1
    n = pred.shape[0]
    g = np.random.default_rng(seed).normal(size=(n, 4))
    out, cache = integral_forward(pred, reg_max)
    d_pred = integral_backward(g, cache).reshape(n, 4, k)
    prob = softmax_rows(pred.reshape(n, 4, k))
    y_hat = prob @ np.arange(k)
    np.testing.assert_allclose(out, y_hat, rtol=1e-12, atol=1e-12 * k)
    expected = g[..., None] * prob * (np.arange(k) - y_hat[..., None])
    np.testing.assert_allclose(d_pred, expected, rtol=1e-10, atol=1e-12 * k)
    assert np.all(np.abs(d_pred.sum(-1)) <= 1e-10 * k * (1 + np.abs(g)))


@pytest.mark.parametrize("reg_max", [1, 4, 16])
def test_integral_uniform_logits_give_the_middle_and_a_spike_gives_its_bin(reg_max):
    k = reg_max + 1
    uniform = np.zeros((1, 4 * k))
    out, _ = integral_forward(uniform, reg_max)
    np.testing.assert_allclose(out, reg_max / 2, rtol=1e-14)
    spike = np.full((k, 4 * k), -WIDE_LOGIT)
    for b in range(k):
        spike[b, b::k] = WIDE_LOGIT  # bin b of every side
    out, cache = integral_forward(spike, reg_max)
    np.testing.assert_array_equal(out, np.repeat(np.arange(k, dtype=float)[:, None], 4, 1))
    # a saturated softmax has no gradient left
    np.testing.assert_array_equal(integral_backward(np.ones((k, 4)), cache), 0.0)
    t_out = integral(torch.from_numpy(spike), reg_max).numpy()
    np.testing.assert_array_equal(t_out, out)


# ---------------------------------------------------------------- empty input


@pytest.mark.parametrize("reg_max", [1, 16])
def test_integral_empty_input(reg_max):
    k = reg_max + 1
    out, cache = integral_forward(np.zeros((0, 4 * k)), reg_max)
    assert out.shape == (0, 4) and out.dtype == np.float64
    d_pred = integral_backward(np.zeros((0, 4)), cache)
    assert d_pred.shape == (0, 4 * k) and d_pred.dtype == np.float64
    x = torch.zeros((0, 4 * k), dtype=torch.float64, requires_grad=True)
    t_out = integral(x, reg_max)
    assert t_out.shape == (0, 4)
    t_out.sum().backward()
    assert x.grad.shape == (0, 4 * k)


# ---------------------------------------------------------------- torch dtypes


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_integral_keeps_dtype_and_device(dtype, device):
    pred = np.random.default_rng(0).normal(scale=3.0, size=(5, 68))
    x = torch.tensor(pred, dtype=dtype, device=device, requires_grad=True)
    out = integral(x)
    assert out.dtype == dtype and out.device == x.device and out.shape == (5, 4)
    out.float().sum().backward()
    assert x.grad.dtype == dtype and x.grad.device == x.device
    # against the reference on the rounded inputs: only the rounding of the result differs
    rounded = x.detach().double().cpu().numpy()
    ref_out, cache = integral_forward(rounded)
    ref_grad = integral_backward(np.ones((5, 4)), cache)
    assert_rel(out.detach().double().cpu().numpy(), ref_out, HALF_TOL[dtype], "forward")
    assert_rel(x.grad.double().cpu().numpy(), ref_grad, 10 * HALF_TOL[dtype], "gradient")


def test_integral_module_matches_function():
    pred = torch.from_numpy(np.random.default_rng(3).normal(size=(4, 20)))
    module = Integral(reg_max=4)
    assert "reg_max=4" in repr(module)
    torch.testing.assert_close(module(pred), integral(pred, 4), rtol=0, atol=0)


# ---------------------------------------------------------------- goldens (mmdet 2.28.2)


@pytest.mark.parametrize("suffix", ["", "_rm4"])
def test_integral_golden_float64(golden, suffix):
    g = golden("integral")
    reg_max = int(g["reg_max" + suffix])
    pred, d_out = g["pred" + suffix], g["d_out" + suffix]
    out, cache = integral_forward(pred, reg_max)
    assert_rel(out, g["out" + suffix], 1e-12, "reference forward")
    assert_rel(integral_backward(d_out, cache), g["d_pred" + suffix], 1e-12, "reference backward")
    t_out, t_grad = torch_integral(pred, reg_max, d_out)
    assert_rel(t_out, g["out" + suffix], 1e-12, "torch forward")
    assert_rel(t_grad, g["d_pred" + suffix], 1e-12, "torch gradient")


def test_integral_golden_empty(golden):
    g = golden("integral")
    out, _ = integral_forward(g["pred_empty"], int(g["reg_max"]))
    assert out.shape == g["out_empty"].shape
    assert integral(torch.from_numpy(g["pred_empty"])).shape == g["out_empty"].shape


def test_integral_golden_float32(golden):
    g = golden("integral")
    pred = g["pred_f32"]
    d_out = g["d_out"]
    x = torch.tensor(pred, requires_grad=True)
    out = integral(x)
    assert out.dtype == torch.float32
    out.backward(torch.from_numpy(d_out.astype(np.float32)))
    assert_rel(out.detach().numpy(), g["out_f32"], 1e-5, "torch float32 forward")
    assert_rel(x.grad.numpy(), g["d_pred_f32"], 1e-5, "torch float32 gradient")
    ref_out, cache = integral_forward(pred)  # float64 from the float32 inputs
    assert ref_out.dtype == np.float64
    assert_rel(ref_out, g["out_f32"], 1e-5, "reference forward")
    assert_rel(integral_backward(d_out, cache), g["d_pred_f32"], 1e-5, "reference backward")


def test_integral_reference_accepts_integer_and_float32_input():
    """``reference`` computes in float64 whatever it is given."""
    pred = np.random.default_rng(5).normal(scale=4.0, size=(3, 68))
    out32, _ = integral_forward(pred.astype(np.float32))
    out_int, _ = integral_forward(np.round(pred).astype(np.int32))
    assert out32.dtype == out_int.dtype == np.float64
    np.testing.assert_array_equal(out32, integral_forward(pred.astype(np.float32).astype(float))[0])
    np.testing.assert_array_equal(out_int, integral_forward(np.round(pred))[0])
