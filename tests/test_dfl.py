"""Distribution Focal Loss: NumPy reference vs torch, finite differences, identities and
mmdetection goldens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_rel, check_reduced_loss_matches_torch
from hypothesis import assume, example, given
from hypothesis import strategies as st

from reference import dfl_backward, dfl_forward
from reference.gradcheck import check_backward
from reference.testing.strategies import WIDE_LOGIT, dfl_inputs, finite_floats, logits
from torch_impl import distribution_focal_loss

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
seeds = st.integers(0, 2**32 - 1)


def grad_floor(g) -> float:
    """The scale below which a DFL gradient g (S - t) is rounding noise.

    When a row's softmax saturates on the target's bin, S_r - t_r cancels to ~1e-7 in
    both implementations and carries ~1e-16 |g| absolute error; relative to that tiny
    gradient it exceeds 1e-10 (found: logits (0, 0, 0, 16), label 3 - 1 ulp). Entries
    below 1e-4 |g| are therefore compared absolutely.
    """
    return 1e-4 * max(float(np.max(np.abs(g), initial=0.0)), 1e-8)


def log_softmax_rows(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def two_hot(label: np.ndarray, k: int) -> np.ndarray:
    """The obvious two-hot target: r - y on bin l = floor(y), y - l on bin r = l + 1."""
    t = np.zeros((len(label), k))
    for i, y in enumerate(label):
        left = int(np.floor(y))
        t[i, left] += left + 1 - y
        t[i, left + 1] += y - left
    return t


def torch_dfl(pred, label, d_out, **kw):
    x = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    loss = distribution_focal_loss(x, torch.tensor(label, dtype=torch.float64), **kw)
    loss.backward(torch.as_tensor(d_out, dtype=torch.float64))
    return loss.detach().numpy(), x.grad.numpy()


# ---------------------------------------------------------------- agreement

N16 = 16
EDGE_LABELS = np.array([0.0, 3.0, 7.0, N16 - 0.1, 0.5, 12.25, 15.0, 0.001])  # integers, clamp
EDGE_PRED = np.tile(np.array([WIDE_LOGIT, -WIDE_LOGIT, 0.0, 50.0]), (8, 5))[:, : N16 + 1]


@given(inputs=dfl_inputs(wide=True), seed=seeds)
@example(inputs=(np.zeros((0, 17)), np.zeros(0)), seed=0)
@example(inputs=(EDGE_PRED, EDGE_LABELS), seed=0)
@example(inputs=(np.zeros((3, 17)), np.array([0.0, 1.0, N16 - 0.1])), seed=1)
@example(inputs=(np.array([[WIDE_LOGIT, -WIDE_LOGIT]]), np.array([0.9])), seed=2)
def test_dfl_numpy_matches_torch_float64_per_row(inputs, seed):
    pred, label = inputs
    d_out = np.random.default_rng(seed).normal(size=pred.shape[0])
    loss, cache = dfl_forward(pred, label)
    d_pred = dfl_backward(d_out, cache)
    t_loss, t_grad = torch_dfl(pred, label, d_out, reduction="none")
    assert loss.shape == t_loss.shape == (pred.shape[0],)
    assert d_pred.shape == t_grad.shape == pred.shape
    for a in (loss, d_pred, t_loss, t_grad):
        assert np.all(np.isfinite(a))
    assert_rel(loss, t_loss, 1e-10, "forward")
    assert_rel(d_pred, t_grad, 1e-10, "gradient", floor=grad_floor(d_out))


@given(
    inputs=dfl_inputs(wide=True),
    seed=seeds,
    reduction=st.sampled_from(["mean", "sum", "none"]),
    use_weight=st.booleans(),
    avg=st.one_of(st.none(), finite_floats(0.5, 50.0)),
    avg_as_tensor=st.booleans(),
)
@example(inputs=(np.array([[0.0, 0.0, 0.0, 16.0]]), np.array([np.nextafter(3.0, 0.0)])), seed=1,
         reduction="mean", use_weight=False, avg=None, avg_as_tensor=False)  # found
def test_dfl_reduced_matches_reference_composed_with_weight_reduce(
    inputs, seed, reduction, use_weight, avg, avg_as_tensor
):
    check_reduced_loss_matches_torch(
        dfl_forward, dfl_backward, torch_dfl, inputs,
        seed, reduction, use_weight, avg, avg_as_tensor, grad_floor,
    )  # fmt: skip


# ---------------------------------------------------------------- finite differences


@given(inputs=dfl_inputs(max_m=3, lo=-10.0, hi=10.0), seed=seeds)
@example(inputs=(np.zeros((3, 17)), np.array([0.0, 5.0, N16 - 0.1])), seed=0)
@example(inputs=(np.zeros((1, 2)), np.array([0.5])), seed=0)
@example(inputs=(np.array([[9.0, -2.0]]), np.array([0.0])), seed=0)  # found: |grad| 2e-6
def test_dfl_backward_matches_central_differences(inputs, seed):
    pred, label = inputs
    d_out = np.random.default_rng(seed).normal(size=pred.shape[0])
    _, cache = dfl_forward(pred, label)
    # gradients of a saturated softmax are below the resolution of a central difference
    grad = dfl_backward(d_out, cache)
    assume(grad.size == 0 or np.max(np.abs(grad)) > 1e-2)
    err = check_backward(lambda p: dfl_forward(p, label), dfl_backward, pred, d_out=d_out, h=1e-5)
    assert err <= 1e-7


# ---------------------------------------------------------------- identities


@given(inputs=dfl_inputs(wide=True), seed=seeds)
@example(inputs=(EDGE_PRED, EDGE_LABELS), seed=0)
def test_dfl_gradient_is_softmax_minus_two_hot(inputs, seed):
    pred, label = inputs
    g = np.random.default_rng(seed).normal(size=pred.shape[0])
    loss, cache = dfl_forward(pred, label)
    d_pred = dfl_backward(g, cache)
    target = two_hot(label, pred.shape[1])
    prob = np.exp(log_softmax_rows(pred)) if pred.size else pred
    np.testing.assert_allclose(d_pred, g[:, None] * (prob - target), rtol=1e-12, atol=1e-15)
    assert np.all(np.abs(d_pred.sum(axis=1)) <= 1e-14 * (1 + np.abs(g)))
    # ... and the loss is the cross-entropy with that two-hot target
    ce = -(target * log_softmax_rows(pred)).sum(axis=1) if pred.size else loss
    np.testing.assert_allclose(loss, ce, rtol=1e-12, atol=1e-12)


@given(pred=logits((6, 9), -30.0, 30.0), label=st.lists(st.integers(0, 7), min_size=6,
                                                         max_size=6))
@example(pred=np.pad(np.array([[14.0]]), ((0, 5), (0, 8))), label=[0] * 6)  # found
def test_dfl_with_an_integer_target_is_cross_entropy(pred, label):
    lab = np.asarray(label)
    loss, _ = dfl_forward(pred, lab.astype(float))
    # atol: a loss of 6.7e-6 is log(1 + 6.7e-6) and carries ~1e-16 absolute rounding (found)
    tol = dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(loss, -log_softmax_rows(pred)[np.arange(6), lab], **tol)
    ce = F.cross_entropy(torch.from_numpy(pred), torch.from_numpy(lab), reduction="none")
    np.testing.assert_allclose(loss, ce.numpy(), **tol)
    t_loss = distribution_focal_loss(torch.from_numpy(pred), torch.from_numpy(lab).double(),
                                     reduction="none")
    np.testing.assert_allclose(t_loss.numpy(), ce.numpy(), **tol)


@given(inputs=dfl_inputs(wide=True))
def test_dfl_is_at_least_the_entropy_of_its_target(inputs):
    """Gibbs: the cross-entropy with the two-hot target is at least its entropy (>= 0)."""
    pred, label = inputs
    loss, _ = dfl_forward(pred, label)
    t = two_hot(label, pred.shape[1])
    entropy = -np.sum(np.where(t > 0, t * np.log(np.where(t > 0, t, 1.0)), 0.0), axis=1)
    assert np.all(loss >= entropy - 1e-12 * (1 + np.abs(loss)))


@pytest.mark.parametrize("y", [0.0, 2.0, 2.4, N16 - 0.1])
def test_dfl_is_minimal_at_the_two_hot_distribution(y):
    """Logits log(two-hot) make the softmax equal the target: the gradient vanishes."""
    t = two_hot(np.array([y]), N16 + 1)
    with np.errstate(divide="ignore"):
        pred = np.where(t > 0, np.log(np.where(t > 0, t, 1.0)), -WIDE_LOGIT)
    loss, cache = dfl_forward(pred, np.array([y]))
    np.testing.assert_allclose(dfl_backward(np.ones(1), cache), 0.0, atol=1e-15)
    entropy = -np.sum(t[t > 0] * np.log(t[t > 0]))
    np.testing.assert_allclose(loss, entropy, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- empty input and torch


def test_dfl_empty_input():
    loss, cache = dfl_forward(np.zeros((0, 17)), np.zeros(0))
    assert loss.shape == (0,) and loss.dtype == np.float64
    assert dfl_backward(np.zeros(0), cache).shape == (0, 17)
    x = torch.zeros((0, 17), requires_grad=True)
    label = torch.zeros(0)
    assert distribution_focal_loss(x, label, reduction="none").shape == (0,)
    assert distribution_focal_loss(x, label, reduction="sum").item() == 0.0
    out = distribution_focal_loss(x, label)  # mean of nothing is 0, not NaN
    out.backward()
    assert out.item() == 0.0 and x.grad.shape == (0, 17)
    assert distribution_focal_loss(x, label, avg_factor=torch.tensor(4.0)).item() == 0.0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dfl_half_inputs_give_a_float32_loss(dtype, device):
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(scale=3.0, size=(8, 17)), dtype=dtype, device=device,
                     requires_grad=True)
    label = torch.tensor(EDGE_LABELS, dtype=dtype, device=device)
    loss = distribution_focal_loss(x, label, reduction="none")
    assert loss.dtype == torch.float32 and loss.device == x.device and loss.shape == (8,)
    loss.sum().backward()
    assert x.grad.dtype == dtype and x.grad.device == x.device
    ref, cache = dfl_forward(x.detach().double().cpu().numpy(), label.double().cpu().numpy())
    assert_rel(loss.detach().double().cpu().numpy(), ref, 1e-5, "forward")
    grad_tol = 1e-5 if dtype == torch.float32 else 1e-2
    assert_rel(x.grad.double().cpu().numpy(), dfl_backward(np.ones(8), cache), grad_tol, "grad")
    mean = distribution_focal_loss(x, label, weight=torch.ones(8, device=device, dtype=dtype),
                                   avg_factor=torch.tensor(4.0, device=device))
    assert mean.dtype == torch.float32 and mean.shape == ()
    assert_rel(mean.item(), ref.sum() / 4.0, 1e-5, "avg_factor")


# ---------------------------------------------------------------- goldens (mmdet 2.28.2)


def test_dfl_golden_float64(golden):
    g = golden("distribution_focal_loss")
    pred, label = g["pred"], g["label"]
    assert pred.shape[1] == int(g["reg_max"]) + 1
    loss, cache = dfl_forward(pred, label)
    assert_rel(loss, g["loss"], 1e-12, "reference loss")
    assert_rel(dfl_backward(np.ones(len(loss)), cache), g["grad_sum"], 1e-12, "reference grad")
    assert_rel(dfl_backward(g["d_out"], cache), g["d_pred"], 1e-12, "reference d_pred")
    t_loss, t_grad = torch_dfl(pred, label, g["d_out"], reduction="none")
    assert_rel(t_loss, g["loss"], 1e-12, "torch loss")
    assert_rel(t_grad, g["d_pred"], 1e-12, "torch d_pred")


def test_dfl_golden_float32(golden):
    g = golden("distribution_focal_loss")
    x = torch.tensor(g["pred_f32"], requires_grad=True)
    loss = distribution_focal_loss(x, torch.from_numpy(g["label_f32"]), reduction="none")
    assert loss.dtype == torch.float32
    loss.sum().backward()
    assert_rel(loss.detach().numpy(), g["loss_f32"], 1e-5, "torch float32 loss")
    assert_rel(x.grad.numpy(), g["grad_sum_f32"], 1e-5, "torch float32 grad")
    ref, cache = dfl_forward(g["pred_f32"], g["label_f32"])
    assert_rel(ref, g["loss_f32"], 1e-5, "reference loss")
    assert_rel(dfl_backward(np.ones(len(ref)), cache), g["grad_sum_f32"], 1e-5, "reference grad")
