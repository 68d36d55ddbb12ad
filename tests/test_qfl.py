"""Quality Focal Loss: NumPy reference vs torch, finite differences, identities and
mmdetection goldens."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from helpers import assert_rel, check_reduced_loss_matches_torch
from hypothesis import assume, example, given
from hypothesis import strategies as st

from reference import qfl_backward, qfl_forward, weight_reduce_backward, weight_reduce_forward
from reference import qfl_fast as QF
from reference.gradcheck import check_backward
from reference.testing.strategies import (
    WIDE_LOGIT,
    finite_floats,
    logits,
    qfl_betas,
    qfl_inputs,
    wide_qfl_inputs,
)
from torch_impl import quality_focal_loss

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
seeds = st.integers(0, 2**32 - 1)


def soft_target(label: np.ndarray, score: np.ndarray, c: int) -> np.ndarray:
    """The obvious soft target: score at (i, label_i) of a positive row, 0 elsewhere."""
    y = np.zeros((len(label), c))
    for i, (lab, s) in enumerate(zip(label, score)):
        if 0 <= lab < c:
            y[i, lab] = s
    return y


def bce(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The obvious BCE of sigmoid(x) against y: -y log σ(x) - (1 - y) log(1 - σ(x))."""
    return y * np.logaddexp(0.0, -x) + (1.0 - y) * np.logaddexp(0.0, x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


def torch_qfl(pred, label, score, d_out, **kw):
    x = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    loss = quality_focal_loss(x, torch.from_numpy(label), torch.from_numpy(score), **kw)
    loss.backward(torch.as_tensor(d_out, dtype=torch.float64))
    return loss.detach().numpy(), x.grad.numpy()


# ---------------------------------------------------------------- agreement

C5 = 5
EXTREME_PRED = np.array([[WIDE_LOGIT, -WIDE_LOGIT, 0.0, 50.0, -50.0]] * 4)
EXTREME_LABEL = np.array([0, 1, 2, C5])
EXTREME_SCORE = np.array([1.0, 0.0, 0.5, 0.3])


@given(inputs=wide_qfl_inputs(), beta=qfl_betas, seed=seeds)
@example(inputs=(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0)), beta=2.0, seed=0)
@example(inputs=(EXTREME_PRED, EXTREME_LABEL, EXTREME_SCORE), beta=2.0, seed=0)
@example(inputs=(EXTREME_PRED, EXTREME_LABEL, EXTREME_SCORE), beta=1.0, seed=1)
@example(inputs=(EXTREME_PRED, EXTREME_LABEL, EXTREME_SCORE), beta=0.0, seed=2)
@example(inputs=(np.array([[40.0, -5.0, -6.0]]), np.array([0]), np.array([0.999])), beta=2.0,
         seed=0)  # a well-predicted positive: its small loss must not cancel against 40
def test_qfl_numpy_matches_torch_float64_per_anchor(inputs, beta, seed):
    pred, label, score = inputs
    d_out = np.random.default_rng(seed).normal(size=pred.shape[0])
    loss, cache = qfl_forward(pred, label, score, beta=beta)
    d_pred = qfl_backward(d_out, cache)
    t_loss, t_grad = torch_qfl(pred, label, score, d_out, beta=beta, reduction="none")
    assert loss.shape == t_loss.shape == (pred.shape[0],)
    assert d_pred.shape == t_grad.shape == pred.shape
    for a in (loss, d_pred, t_loss, t_grad):
        assert np.all(np.isfinite(a))
    assert_rel(loss, t_loss, 1e-10, "forward")
    assert_rel(d_pred, t_grad, 1e-10, "gradient")


@given(
    inputs=wide_qfl_inputs(),
    beta=qfl_betas,
    seed=seeds,
    reduction=st.sampled_from(["mean", "sum", "none"]),
    use_weight=st.booleans(),
    avg=st.one_of(st.none(), finite_floats(0.5, 50.0)),
    avg_as_tensor=st.booleans(),
)
def test_qfl_reduced_matches_reference_composed_with_weight_reduce(
    inputs, beta, seed, reduction, use_weight, avg, avg_as_tensor
):
    check_reduced_loss_matches_torch(
        qfl_forward, qfl_backward, torch_qfl, inputs,
        seed, reduction, use_weight, avg, avg_as_tensor, beta=beta,
    )  # fmt: skip


# ---------------------------------------------------------------- finite differences


@given(inputs=qfl_inputs(max_n=4, max_c=4, logit_range=12.0), beta=qfl_betas, seed=seeds)
@example(
    inputs=(np.array([[0.0, 2.0], [-3.0, 1.0]]), np.array([0, 2]), np.array([0.0, 0.7])),
    beta=2.0,
    seed=0,
)
def test_qfl_backward_matches_central_differences(inputs, beta, seed):
    pred, label, score = inputs
    c = pred.shape[1]
    pos = (label >= 0) & (label < c)
    # |y - σ|^β is not smooth where σ = y: stay 1e-2 away (σ(0) = 0.5 is a drawn score)
    sig_at_label = sigmoid(pred[np.arange(len(label)), np.clip(label, 0, c - 1)])
    assume(np.all(np.abs(sig_at_label - score)[pos] > 1e-2))
    d_out = np.random.default_rng(seed).normal(size=pred.shape[0])
    _, cache = qfl_forward(pred, label, score, beta)
    # gradients of saturated logits are below the resolution of a central difference
    grad = qfl_backward(d_out, cache)
    assume(grad.size == 0 or np.max(np.abs(grad)) > 1e-2)
    err = check_backward(
        lambda p: qfl_forward(p, label, score, beta), qfl_backward, pred, d_out=d_out, h=1e-5
    )
    assert err <= 1e-7


# ---------------------------------------------------------------- identities


@given(inputs=wide_qfl_inputs(), seed=seeds)
@example(inputs=(np.array([[0.0]] * 5 + [[9.0]]), np.zeros(6, np.int64),
                 np.array([0.0] * 5 + [0.99999])), seed=0)  # found
def test_qfl_with_beta_zero_is_bce_with_the_soft_target(inputs, seed):
    """β = 0: the loss is BCE(σ, y) summed over classes and its gradient σ - y."""
    pred, label, score = inputs
    y = soft_target(label, score, pred.shape[1])
    loss, cache = qfl_forward(pred, label, score, beta=0.0)
    # softplus(x) - x y cancels when σ(x) ≈ y (9.0001 - 8.9999 at x = 9, y = 0.99999):
    # an absolute error of ~1e-16 |x| on a small loss, as in torch's BCE (found)
    expected = bce(pred, y).sum(axis=1)
    slack = 1e-15 * (1.0 + np.abs(pred)).sum(axis=1)
    assert np.all(np.abs(loss - expected) <= 1e-12 * np.abs(expected) + slack)
    g = np.random.default_rng(seed).normal(size=pred.shape[0])
    d_pred = qfl_backward(g, cache)
    np.testing.assert_allclose(d_pred, g[:, None] * (sigmoid(pred) - y), rtol=1e-12, atol=1e-15)


@given(pred=logits((1, 4), -30.0, 30.0), beta=qfl_betas, label=st.sampled_from([4, -1, 9]))
def test_qfl_negative_entries_closed_form(pred, beta, label):
    """A negative entry (label C = 4, -1 or > C) is σ^β softplus(x); its gradient (the
    factor is not detached) is σ^β·σ + β·softplus(x)·σ^β·(1 - σ)."""
    loss, cache = qfl_forward(pred, np.array([label]), np.array([0.3]), beta)
    s = sigmoid(pred)
    sp = np.logaddexp(0.0, pred)
    np.testing.assert_allclose(loss, (s**beta * sp).sum(axis=1), rtol=1e-12)
    expected = s**beta * s + beta * sp * s**beta * (1.0 - s)
    np.testing.assert_allclose(qfl_backward(np.ones(1), cache), expected, rtol=1e-12)


@given(pred=logits((3, 4), -30.0, 30.0), k=st.integers(0, 3), beta=qfl_betas, seed=seeds)
def test_qfl_positive_with_score_zero_equals_the_negative_term(pred, k, beta, seed):
    g = np.random.default_rng(seed).normal(size=3)
    loss_pos, cache_pos = qfl_forward(pred, np.full(3, k), np.zeros(3), beta)
    loss_neg, cache_neg = qfl_forward(pred, np.full(3, 4), np.full(3, 0.8), beta)
    np.testing.assert_array_equal(loss_pos, loss_neg)
    # two algebraically equal formulas (general vs y = 0 closed form): equal to rounding
    np.testing.assert_allclose(qfl_backward(g, cache_pos), qfl_backward(g, cache_neg),
                               rtol=1e-13, atol=1e-15)


@given(inputs=qfl_inputs(), other=finite_floats(-5.0, 5.0))
def test_qfl_negatives_score_is_ignored(inputs, other):
    """Scores of negatives (label C, -1 or > C) do not matter, even outside [0, 1];
    in torch not even a NaN leaks into the loss or the gradient."""
    pred, label, score = inputs
    neg = ~((label >= 0) & (label < pred.shape[1]))
    changed = np.where(neg, other, score)
    np.testing.assert_array_equal(qfl_forward(pred, label, changed)[0],
                                  qfl_forward(pred, label, score)[0])
    x = torch.tensor(pred, requires_grad=True)
    nan_score = torch.from_numpy(np.where(neg, np.nan, score))
    t_loss = quality_focal_loss(x, torch.from_numpy(label), nan_score, reduction="sum")
    t_loss.backward()
    assert torch.isfinite(t_loss) and torch.all(torch.isfinite(x.grad))


@given(inputs=wide_qfl_inputs(), beta=qfl_betas)
def test_qfl_is_non_negative_and_zero_at_a_perfect_prediction(inputs, beta):
    pred, label, score = inputs
    loss, _ = qfl_forward(pred, label, score, beta)
    assert np.all(loss >= 0.0)
    # σ(±1e4) is exactly 1 / 0: a saturated perfect answer for hard targets costs nothing
    c = pred.shape[1]
    hard = np.round(score)
    perfect = np.where(soft_target(label, hard, c) > 0, WIDE_LOGIT, -WIDE_LOGIT)
    np.testing.assert_array_equal(qfl_forward(perfect, label, hard, beta)[0], 0.0)


# ---------------------------------------------------------------- empty input and torch


def test_qfl_empty_input():
    loss, cache = qfl_forward(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0))
    assert loss.shape == (0,) and loss.dtype == np.float64
    assert qfl_backward(np.zeros(0), cache).shape == (0, 4)
    x = torch.zeros((0, 4), requires_grad=True)
    label, score = torch.zeros(0, dtype=torch.long), torch.zeros(0)
    assert quality_focal_loss(x, label, score, reduction="none").shape == (0,)
    for reduction in ("mean", "sum"):
        out = quality_focal_loss(x, label, score, reduction=reduction)
        assert out.shape == () and out.item() == 0.0
    out = quality_focal_loss(x, label, score, avg_factor=torch.tensor(3.0))
    out.backward()
    assert out.item() == 0.0 and x.grad.shape == (0, 4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_qfl_half_inputs_give_a_float32_loss(dtype, device):
    rng = np.random.default_rng(0)
    pred = rng.normal(scale=3.0, size=(6, 4))
    label = np.array([0, 3, 4, -1, 1, 2])
    score = rng.uniform(size=6)
    x = torch.tensor(pred, dtype=dtype, device=device, requires_grad=True)
    s = torch.tensor(score, dtype=dtype, device=device)
    lab = torch.tensor(label, device=device)
    loss = quality_focal_loss(x, lab, s, reduction="none")
    assert loss.dtype == torch.float32 and loss.device == x.device and loss.shape == (6,)
    loss.sum().backward()
    assert x.grad.dtype == dtype and x.grad.device == x.device
    # the reference on the rounded inputs: the loss is computed in float32
    ref, cache = qfl_forward(x.detach().double().cpu().numpy(), label, s.double().cpu().numpy())
    assert_rel(loss.detach().double().cpu().numpy(), ref, 1e-5, "forward")
    grad_tol = 1e-5 if dtype == torch.float32 else 1e-2  # the gradient is rounded to dtype
    assert_rel(x.grad.double().cpu().numpy(), qfl_backward(np.ones(6), cache), grad_tol, "grad")
    mean = quality_focal_loss(x, lab, s, avg_factor=torch.tensor(4.0, device=device))
    assert mean.dtype == torch.float32 and mean.shape == ()
    assert_rel(mean.item(), ref.sum() / 4.0, 1e-5, "avg_factor")


@pytest.mark.parametrize(("x", "s"), [(6.0, 0.99), (10.0, 0.9), (12.0, 0.999), (40.0, 0.999)])
def test_qfl_float32_keeps_the_small_loss_of_a_well_predicted_positive(x, s):
    """The positive's loss is tiny next to its negative term softplus(x) σ^β ≈ x: computing
    it as a difference of the two loses it in float32 (it once came out as 0 at x = 12)."""
    pred = np.array([[x, -5.0, -6.0]], dtype=np.float32)
    score = np.array([s], dtype=np.float32)
    label = np.array([0])
    loss = quality_focal_loss(torch.from_numpy(pred), torch.from_numpy(label),
                              torch.from_numpy(score), reduction="none")
    ref, _ = qfl_forward(pred, label, score)  # float64 on the float32 inputs
    assert 0.0 < ref[0] < 0.02
    assert_rel(loss.double().numpy(), ref, 1e-4, "float32 loss")


def test_qfl_avg_factor_as_tensor_equals_float():
    rng = np.random.default_rng(1)
    pred = torch.from_numpy(rng.normal(size=(5, 3)))
    label, score = torch.tensor([0, 1, 3, 2, -1]), torch.from_numpy(rng.uniform(size=5))
    a = quality_focal_loss(pred, label, score, avg_factor=2.5)
    b = quality_focal_loss(pred, label, score, avg_factor=torch.tensor(2.5, dtype=torch.float64))
    assert a.shape == b.shape == () and a.item() == b.item()
    none = quality_focal_loss(pred, label, score, reduction="none", avg_factor=2.5)
    torch.testing.assert_close(none, quality_focal_loss(pred, label, score, reduction="none"))


# ---------------------------------------------------------------- goldens (mmdet 2.28.2)


def test_qfl_golden_float64(golden):
    g = golden("quality_focal_loss")
    pred, label, score = g["pred"], g["label"], g["score"]
    assert pred.shape[1] == int(g["num_classes"])
    loss, cache = qfl_forward(pred, label, score, float(g["beta"]))
    assert_rel(loss, g["loss"], 1e-12, "reference loss")
    assert_rel(qfl_backward(np.ones(len(loss)), cache), g["grad_sum"], 1e-12, "reference grad")
    assert_rel(qfl_backward(g["d_out"], cache), g["d_pred"], 1e-12, "reference d_pred")
    t_loss, t_grad = torch_qfl(pred, label, score, g["d_out"], reduction="none")
    assert_rel(t_loss, g["loss"], 1e-12, "torch loss")
    assert_rel(t_grad, g["d_pred"], 1e-12, "torch d_pred")
    assert_rel(qfl_forward(pred, label, score, 0.0)[0], g["loss_beta0"], 1e-12, "beta 0")


def test_qfl_golden_float32(golden):
    g = golden("quality_focal_loss")
    label = g["label"]
    x = torch.tensor(g["pred_f32"], requires_grad=True)
    loss = quality_focal_loss(x, torch.from_numpy(label), torch.from_numpy(g["score_f32"]),
                              reduction="none")
    assert loss.dtype == torch.float32
    loss.sum().backward()
    assert_rel(loss.detach().numpy(), g["loss_f32"], 1e-5, "torch float32 loss")
    assert_rel(x.grad.numpy(), g["grad_sum_f32"], 1e-5, "torch float32 grad")
    ref, cache = qfl_forward(g["pred_f32"], label, g["score_f32"])
    assert_rel(ref, g["loss_f32"], 1e-5, "reference loss")
    assert_rel(qfl_backward(np.ones(len(ref)), cache), g["grad_sum_f32"], 1e-5, "reference grad")


def test_qfl_golden_avg_factor_follows_the_contract_not_mmdet(golden):
    """mean with avg_factor divides by avg_factor exactly (mmdet adds float32's eps)."""
    g = golden("quality_focal_loss")
    avg = float(g["avg_factor"])
    loss, q_cache = qfl_forward(g["pred"], g["label"], g["score"])
    out, r_cache = weight_reduce_forward(loss, g["weight"], "mean", avg)
    d_pred = qfl_backward(weight_reduce_backward(np.array(1.0), r_cache), q_cache)
    assert_rel(out, g["loss_mean_avg_spec"], 1e-12, "reference value")
    assert_rel(d_pred, g["grad_mean_avg_spec"], 1e-12, "reference gradient")
    t_out, t_grad = torch_qfl(g["pred"], g["label"], g["score"], 1.0,
                              weight=torch.from_numpy(g["weight"]), avg_factor=avg)
    assert_rel(t_out, g["loss_mean_avg_spec"], 1e-12, "torch value")
    assert_rel(t_grad, g["grad_mean_avg_spec"], 1e-12, "torch gradient")
    # and the quirk is really there: mmdet's value differs by its eps (~1.7e-8 relative)
    quirk = abs(float(g["loss_mean_avg_mmdet"]) / float(out) - 1.0)
    assert 1e-9 < quirk < 1e-7


# ---------------------------------------------------------------- the fast path (qfl_fast)


LAYOUTS = ["row-major", "class-major", "strided", "class-major strided"]


def in_layout(pred: np.ndarray, layout: str) -> np.ndarray:
    """The same (N, C) values, laid out row-major, class-major (the head's: a transposed
    (C, N) array), or as a strided view of either (every other column of a wider array)."""
    if layout.endswith("strided"):
        wide = np.zeros((pred.shape[0], 2 * pred.shape[1]))
        wide[:, ::2] = pred
        if layout.startswith("class-major"):
            wide = np.ascontiguousarray(wide.T).T
        return wide[:, ::2]
    if layout == "class-major":
        return np.ascontiguousarray(pred.T).T
    return pred


@given(inputs=wide_qfl_inputs(max_n=24), beta=qfl_betas, seed=seeds,
       abs_factor=st.booleans(), layout=st.sampled_from(LAYOUTS),
       block=st.sampled_from([1, 3, 16, QF.BLOCK_ENTRIES]))  # fmt: skip
@example(inputs=(EXTREME_PRED, EXTREME_LABEL, EXTREME_SCORE), beta=2.0, seed=0,
         abs_factor=True, layout="class-major", block=2)  # fmt: skip
@example(inputs=(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0)), beta=2.0, seed=0,
         abs_factor=True, layout="class-major", block=2)  # fmt: skip
def test_fast_qfl_equals_textbook(inputs, beta, seed, abs_factor, layout, block):
    """The same loss and gradient, bit for bit, in every memory layout and for blocks of any
    size (a block of 1 entry: one row or part of one column each); each backward takes the
    other forward's cache."""
    pred, label, score = inputs
    pred = in_layout(pred, layout)
    d_out = np.random.default_rng(seed).normal(size=pred.shape[0])
    saved, QF.BLOCK_ENTRIES = QF.BLOCK_ENTRIES, block
    try:
        with np.errstate(invalid="ignore"):  # GFocal's (y - σ)^β: NaN for a fractional β
            loss, cache = qfl_forward(pred, label, score, beta, abs_factor=abs_factor)
            f_loss, f_cache = QF.qfl_forward_fast(pred, label, score, beta, abs_factor=abs_factor)
            d_pred = qfl_backward(d_out, cache)
            f_d_pred = QF.qfl_backward_fast(d_out, f_cache)
            crossed = qfl_backward(d_out, f_cache), QF.qfl_backward_fast(d_out, cache)
    finally:
        QF.BLOCK_ENTRIES = saved
    np.testing.assert_array_equal(f_loss, loss)
    for field in ("pos_rows", "pos_cols", "pos_pred", "pos_score", "beta", "abs_factor"):
        np.testing.assert_array_equal(getattr(f_cache, field), getattr(cache, field))
    assert cache.d_pred is None and f_cache.sig is f_cache.softplus is f_cache.sig_beta is None
    for grad in (f_d_pred, *crossed):
        np.testing.assert_array_equal(grad, d_pred)
    assert not np.shares_memory(f_cache.d_pred, pred)


@pytest.mark.parametrize("bad", [
    dict(pred=np.array([[np.nan, 0.0]])),
    dict(pred=np.zeros((1, 2), dtype=bool)),
    dict(label=np.array([0.5])),
    dict(score=np.array([1.5])),
    dict(beta=-1.0),
    dict(abs_factor=1),
])  # fmt: skip
def test_fast_qfl_raises_what_the_textbook_raises(bad):
    args = dict(pred=np.zeros((1, 2)), label=np.array([0]), score=np.array([0.5]), beta=2.0,
                abs_factor=True) | bad  # fmt: skip
    with pytest.raises(ValueError) as textbook:
        qfl_forward(**args)
    with pytest.raises(ValueError, match=re.escape(str(textbook.value))):
        QF.qfl_forward_fast(**args)
    _, cache = QF.qfl_forward_fast(np.zeros((2, 3)), np.array([0, 3]), np.array([0.5, 0.0]))
    with pytest.raises(ValueError, match=r"d_loss must have shape \(2,\), got \(3,\)"):
        QF.qfl_backward_fast(np.ones(3), cache)


# ---------------------------------------------------------------- the head's fused form


@given(inputs=wide_qfl_inputs(), beta=qfl_betas, seed=seeds)
@example(inputs=(EXTREME_PRED, EXTREME_LABEL, EXTREME_SCORE), beta=2.0, seed=0)
@example(inputs=(np.array([[40.0, -5.0, -6.0]]), np.array([0]), np.array([0.999])), beta=2.0,
         seed=0)
def test_fused_dense_negatives_plus_positive_terms_equal_quality_focal_loss(inputs, beta, seed):
    """The head's form of QFL (``torch_impl.qfl._DenseNegatives`` for every entry but the
    positives' label entries, ``_positive_term`` on those, gathered) equals
    :func:`quality_focal_loss` with weights, value and gradient, in float64, with extra
    slots that are not positives pointing at the same entries (as the head's candidate
    slots do) and a retained graph run backward twice."""
    from torch_impl.qfl import _DenseNegatives, _positive_term

    pred, label, score = inputs
    n, c = pred.shape
    rng = np.random.default_rng(seed)
    w = torch.from_numpy(rng.uniform(0.0, 2.0, n))
    lab, s = torch.from_numpy(label), torch.from_numpy(score)
    x = torch.tensor(pred, requires_grad=True)
    expect = quality_focal_loss(x, lab, s, weight=w, beta=beta, reduction="sum")
    (d_expect,) = torch.autograd.grad(expect, x)

    keep = (lab >= 0) & (lab < c)  # (N,)
    rows, cols = torch.arange(n), lab.clamp(0, c - 1)  # (N,) the label entries
    extra = torch.from_numpy(rng.integers(0, max(n, 1), size=2 * n))  # slots not kept
    if n:
        rows, cols = torch.cat([rows, rows[extra]]), torch.cat([cols, cols[extra]])
    keep = torch.cat([keep, torch.zeros(len(rows) - n, dtype=torch.bool)])
    y = torch.tensor(pred, requires_grad=True)
    if seed % 2:  # a non-contiguous x (the head's channels-last maps)
        y = torch.tensor(pred.T.copy()).T.requires_grad_()
    neg, at = _DenseNegatives.apply(y, (rows, cols), keep, w[:, None], beta)
    s_all = torch.cat([s, s[extra]]) if n else s
    w_all = torch.cat([w, w[extra]]) if n else w
    zero = torch.zeros((), dtype=torch.float64)
    pos = torch.where(keep, w_all * _positive_term(at, torch.where(keep, s_all, zero), beta), zero)
    total = neg + pos.sum()
    assert_rel(total.detach().numpy(), expect.detach().numpy(), 1e-12, "value")
    total.backward(retain_graph=True)
    assert_rel(y.grad.numpy(), d_expect.numpy(), 1e-10, "gradient")
    if n:  # (torch warns about the layout of an empty gradient accumulated twice)
        total.backward()  # a retained graph: the gradient is computed afresh and accumulates
        assert_rel(y.grad.numpy(), 2 * d_expect.numpy(), 1e-10, "gradient, twice")
