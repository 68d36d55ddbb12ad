"""Stable numerics (sigmoid, softplus / log-sigmoid, BCE from logits, (log-)softmax) and
the finite-difference checker of :mod:`reference.gradcheck` itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st

from reference import integral_backward, integral_forward
from reference.gradcheck import check_backward, numerical_vjp, rel_error
from reference.numerics import (
    bce_with_logits,
    log_sigmoid,
    log_softmax,
    sigmoid,
    sigmoid_softplus,
    softmax,
    softplus,
)
from reference.testing.strategies import WIDE_LOGIT, finite_floats, logits, wide_logits

RAISE = dict(over="raise", invalid="raise", divide="raise")  # underflow to 0 is fine
EDGES = np.array([-WIDE_LOGIT, -745.0, -710.0, -50.0, -1e-300, 0.0, 1e-300, 50.0, 710.0,
                  WIDE_LOGIT])


def t64(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


# ================================================================ numerics


def test_sigmoid_and_log_sigmoid_at_the_extremes():
    with np.errstate(**RAISE):
        s = sigmoid(EDGES)
        ls = log_sigmoid(EDGES)
        sp = softplus(EDGES)
    assert s[0] == 0.0 and s[-1] == 1.0 and s[5] == 0.5
    np.testing.assert_allclose(s[2], np.exp(-710.0), rtol=1e-13)  # not 0: ~4.5e-309
    assert ls[0] == -WIDE_LOGIT and ls[-1] == 0.0  # log σ(-1e4) = -1e4 exactly
    assert sp[0] == 0.0 and sp[-1] == WIDE_LOGIT
    np.testing.assert_allclose(ls[3], -50.0 - np.exp(-50.0), rtol=1e-15)
    np.testing.assert_allclose(ls[6], -np.log(2.0), rtol=1e-15)


@given(x=wide_logits((16,)))
def test_sigmoid_softplus_log_sigmoid_match_torch_and_their_identities(x):
    with np.errstate(**RAISE):
        s, sp, ls = sigmoid(x), softplus(x), log_sigmoid(x)
    for a in (s, sp, ls):
        assert np.all(np.isfinite(a))
    np.testing.assert_allclose(s, torch.sigmoid(t64(x)).numpy(), rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(ls, F.logsigmoid(t64(x)).numpy(), rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(sp, np.logaddexp(0.0, x), rtol=1e-15, atol=1e-300)
    # softplus(x) - softplus(-x) = x; σ(x) + σ(-x) = 1; log σ(x) = -softplus(-x)
    np.testing.assert_allclose(sp - softplus(-x), x, rtol=1e-15, atol=1e-14)
    np.testing.assert_allclose(s + sigmoid(-x), 1.0, rtol=1e-15)
    np.testing.assert_array_equal(ls, -softplus(-x))


@given(x=wide_logits((16,)))
@example(x=EDGES)
def test_sigmoid_softplus_is_sigmoid_and_softplus_bit_for_bit(x):
    with np.errstate(**RAISE):
        s, sp = sigmoid_softplus(x)
    np.testing.assert_array_equal(s, sigmoid(x))
    np.testing.assert_array_equal(sp, softplus(x))


def test_bce_with_logits_at_the_extremes():
    x = np.array([WIDE_LOGIT, -WIDE_LOGIT, WIDE_LOGIT, -WIDE_LOGIT, 0.0])
    y = np.array([0.0, 1.0, 1.0, 0.0, 0.3])
    with np.errstate(**RAISE):
        out = bce_with_logits(x, y)
    np.testing.assert_array_equal(out[:4], [WIDE_LOGIT, WIDE_LOGIT, 0.0, 0.0])
    np.testing.assert_allclose(out[4], np.log(2.0), rtol=1e-15)


@given(x=wide_logits((12,)), y=st.lists(finite_floats(0.0, 1.0), min_size=12, max_size=12))
def test_bce_with_logits_matches_torch_and_the_obvious_formula(x, y):
    y = np.asarray(y)
    with np.errstate(**RAISE):
        out = bce_with_logits(x, y)
    assert np.all(np.isfinite(out)) and np.all(out >= -1e-12 * np.abs(x))
    t = F.binary_cross_entropy_with_logits(t64(x), t64(y), reduction="none").numpy()
    scale = 1.0 + np.abs(x)
    assert np.all(np.abs(out - t) <= 1e-15 * scale)
    # -y log σ(x) - (1 - y) log(1 - σ(x)), each log taken stably
    obvious = y * np.logaddexp(0.0, -x) + (1.0 - y) * np.logaddexp(0.0, x)
    assert np.all(np.abs(out - obvious) <= 1e-14 * scale)


def test_log_softmax_at_the_extremes():
    x = np.array([[WIDE_LOGIT, -WIDE_LOGIT, 0.0], [-WIDE_LOGIT, -WIDE_LOGIT, -WIDE_LOGIT]])
    with np.errstate(**RAISE):
        out = log_softmax(x, axis=1)
        p = softmax(x, axis=1)
    np.testing.assert_array_equal(out[0], [0.0, -2 * WIDE_LOGIT, -WIDE_LOGIT])
    np.testing.assert_allclose(out[1], -np.log(3.0), rtol=1e-15)
    np.testing.assert_array_equal(p[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(p[1], 1.0 / 3.0, rtol=1e-15)
    # an empty softmax axis is returned as is
    assert log_softmax(np.zeros((2, 0))).shape == (2, 0)
    assert softmax(np.zeros((0, 5))).shape == (0, 5)


@given(x=wide_logits((3, 7)), c=finite_floats(-100.0, 100.0))
@example(x=np.pad(np.array([[1.0, -254.0]]), ((2, 0), (5, 0))), c=0.0)  # found
def test_log_softmax_matches_torch_sums_to_one_and_ignores_a_shift(x, c):
    with np.errstate(**RAISE):
        out = log_softmax(x, axis=1)
        p = softmax(x, axis=1)
    assert np.all(np.isfinite(out)) and np.all(out <= 0.0)
    t = torch.log_softmax(t64(x), dim=1).numpy()
    assert np.all(np.abs(out - t) <= 1e-15 * (1 + np.abs(t)))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-14)
    # exp turns out's absolute rounding (~1e-16 |out|) into a relative one (found at -255)
    assert np.all(np.abs(np.exp(out) - p) <= 1e-15 * (1 + np.abs(out)) * p + 1e-300)
    shifted = log_softmax(x + c, axis=1)
    assert np.all(np.abs(shifted - out) <= 1e-15 * (2 * WIDE_LOGIT + 200))


# ================================================================ gradcheck


def test_rel_error_basics():
    a = np.array([[1.0, -2.0], [3.0, 0.5]])
    assert rel_error(a, a) == 0.0
    assert rel_error(a, -a) == 1.0  # opposite signs
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.zeros((0, 4)), np.zeros((0, 4))) == 0.0
    # max |a - b| / (max |a| + max |b|): the largest entries set the scale
    assert rel_error(np.array([100.0, 1e-9]), np.array([100.0, 2e-9])) == pytest.approx(5e-12)
    # below the floor, the floor is the scale
    assert rel_error(np.array([1e-20]), np.array([0.0]), floor=1e-12) == pytest.approx(1e-8)
    with pytest.raises(ValueError, match=r"a and b must have the same shape, got \(2,\) and "
                                         r"\(3,\)"):
        rel_error(np.zeros(2), np.zeros(3))


@given(a=logits((3, 4), -5.0, 5.0), x=logits((4,), -5.0, 5.0), d=logits((3,), -2.0, 2.0))
@example(a=np.array([[0.0, -5.0, 0.0, 0.0], [0.0] * 4, [0.0, 5.0, 0.0, 0.0]]),
         x=np.array([0.0, 4.0, 0.0, 0.0]), d=np.array([1.5, 0.0, -2.0]))  # found
@example(a=np.array([[0.0] * 4, [0.0] * 4, [0.0, 2.5, -2.0, -1.0]]),
         x=np.array([0.0, 3.0, 3.0, 1.0]), d=np.array([0.0, 0.0, 1.0]))  # found
def test_numerical_vjp_is_exact_for_linear_and_quadratic_maps(a, x, d):
    """Central differences are exact for polynomials of degree <= 2, up to rounding:
    ~1e-16 / h times the size of the products summed into <d, f(x ± h)>, |d|ᵀ|a||x|
    (found: 1.3e-8 for 70, and 7.9e-10 where f = 7.5 - 6 - 1 = 0.5 cancels)."""
    x_before = x.copy()
    noise = 4e-16 * (1.0 + np.abs(d) @ np.abs(a) @ (np.abs(x) + 1e-6)) / 1e-6
    lin = numerical_vjp(lambda v: a @ v, x, d)
    np.testing.assert_allclose(lin, a.T @ d, rtol=0, atol=noise)
    quad = numerical_vjp(lambda v: v**2, x, np.ones(4))
    noise = 4e-16 * (1.0 + np.sum((np.abs(x) + 1e-6) ** 2)) / 1e-6
    np.testing.assert_allclose(quad, 2 * x, rtol=0, atol=noise)
    np.testing.assert_array_equal(x, x_before)  # the point is not mutated


def test_numerical_vjp_of_a_multidimensional_input():
    x = np.arange(6.0).reshape(2, 3)
    d = np.array([1.0, -1.0])
    out = numerical_vjp(lambda v: np.array([v.sum(), (v[0] * v[1]).sum()]), x, d)
    np.testing.assert_allclose(out, np.ones((2, 3)) - x[::-1], atol=1e-8)


@pytest.mark.parametrize("reg_max", [1, 4])
def test_check_backward_accepts_the_right_gradient_and_catches_wrong_ones(reg_max):
    pred = np.random.default_rng(0).normal(size=(2, 4 * (reg_max + 1)))

    def forward(p):
        return integral_forward(p, reg_max)

    assert check_backward(forward, integral_backward, pred) < 1e-8
    assert check_backward(forward, lambda g, c: 1.01 * integral_backward(g, c), pred) > 1e-3

    def one_sign_flipped(g, c):
        d = integral_backward(g, c)
        d[0, 0] = -d[0, 0]
        return d

    assert check_backward(forward, one_sign_flipped, pred) > 1e-3
    # a random upstream gradient, seeded: the same seed gives the same answer
    assert check_backward(forward, integral_backward, pred, seed=3) == check_backward(
        forward, integral_backward, pred, seed=3)
