"""The dialect switches (:mod:`reference.dialects`): each default is the behaviour from before
the switch existed (bit for bit, and the torch twin's); each other value equals a tiny obvious
reference written here, also at its decision boundaries; the changed gradients pass finite
differences and equal torch autograd of the other implementation's expression; bad values
raise a ValueError naming the argument.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from head_fixtures import dialect_workload, torch_loss
from helpers import assert_rel
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_atss import loop_atss
from test_dfl import grad_floor as dfl_grad_floor

import reference as R
import torch_impl as T
from reference.anchors import anchor_centers
from reference.atss import candidate_stats
from reference.dialects import (
    ALL_PIECES,
    BOX_NORMS,
    DIALECTS,
    FLOAT32_EPS,
    MMDET2,
    Dialect,
    get_dialect,
)
from reference.gradcheck import check_backward, numerical_vjp, rel_error
from reference.testing import PIECES
from reference.testing.strategies import (
    atss_problems,
    boxes,
    clamp_boundary_decodes,
    dfl_inputs,
    featmap_levels,
    finite_floats,
    points_and_distances,
    points_in_boxes,
    qfl_betas,
    qfl_inputs,
    reduce_inputs,
    wide_qfl_inputs,
)

seeds = st.integers(0, 2**32 - 1)
MODES = ["iou", "giou", "iof"]
LOSS_DIALECTS = ["mmdet2", "mmdet3", "gfocal", "nanodet"]  # the ones whose head loss we know


def sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


def bce(x, y):
    """The obvious BCE of sigmoid(x) against y."""
    return y * np.logaddexp(0.0, -x) + (1.0 - y) * np.logaddexp(0.0, x)


# ================================================================ the records


def test_the_dialects_and_their_differences_from_this_project():
    assert list(DIALECTS) == ["mmdet2", "mmdet3", "gfocal", "nanodet", "ultralytics"]
    for name, d in DIALECTS.items():
        assert d.name == name and get_dialect(name) is d and get_dialect(d) is d
        assert set(d.pieces) <= set(ALL_PIECES)
    assert MMDET2 is DIALECTS["mmdet2"]
    assert MMDET2.differences(Dialect("defaults", "")) == {}  # every default is this project's
    assert set(ALL_PIECES) == set(PIECES)
    diff = {name: set(MMDET2.differences(d)) for name, d in DIALECTS.items()}
    assert diff == {
        "mmdet2": set(),
        "mmdet3": {"avg_factor_eps"},
        "gfocal": {"background_first", "qfl_abs", "iou_offset", "decode_clamp_offset",
                   "box_norm", "qfl_label_weights"},
        "nanodet": {"center_offset", "box_norm"},
        "ultralytics": {"reg_max_is_bin_count", "target_eps", "dfl_clamps_target",
                        "center_offset", "decode_clamp_offset"},
    }  # fmt: skip
    assert MMDET2.differences(DIALECTS["mmdet3"]) == {"avg_factor_eps": (0.0, FLOAT32_EPS)}
    assert FLOAT32_EPS == 2.0**-23


#: Each switch of a Dialect → (the function it is a keyword of, that keyword, the keyword's value
#: for a Dialect value). ``None``: it acts only through ``dialect=`` (or is a calling convention).
SWITCHES = {
    "qfl_abs": (R.qfl_forward, "abs_factor", lambda v: v),
    "iou_offset": (R.bbox_overlaps, "offset", lambda v: v),
    "decode_clamp_offset": (R.distance2bbox_forward, "clamp_offset", lambda v: v),
    "target_eps": (R.bbox2distance, "eps", lambda v: v),
    "dfl_clamps_target": (R.dfl_forward, "clamp_eps", lambda v: 0.01 if v else None),
    "atss_std_ddof": (R.atss_assign, "std_ddof", lambda v: v),
    "center_offset": (R.grid_anchors, "center_offset", lambda v: v),
    "avg_factor_eps": (R.weight_reduce_forward, "eps", lambda v: v),
    "box_norm": None,
    "qfl_label_weights": None,
    "reg_max_is_bin_count": None,
    "background_first": None,
}


def test_every_switch_is_a_keyword_whose_default_is_this_projects_value():
    names = {f.name for f in dataclasses.fields(Dialect)} - {"name", "source", "pieces"}
    assert set(SWITCHES) == names, "a new Dialect field needs an entry in SWITCHES"
    for field, where in SWITCHES.items():
        if where is None:
            continue
        fn, kw, value = where
        param = inspect.signature(fn).parameters[kw]
        assert param.default == value(getattr(MMDET2, field)), (field, fn.__name__, kw)
        if kw != "eps" or fn is not R.bbox2distance:  # bbox2distance's eps predates dialects
            assert param.kind is inspect.Parameter.KEYWORD_ONLY, (fn.__name__, kw)
    for fn in (R.gfl_targets, R.gfl_loss_forward, R.gfl_predict):
        param = inspect.signature(fn).parameters["dialect"]
        assert param.default == "mmdet2" and param.kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize(
    "field,value",
    [("box_norm", "Zero"), ("box_norm", None), ("qfl_abs", 1), ("qfl_label_weights", "no"),
     ("iou_offset", 2), ("decode_clamp_offset", -1), ("atss_std_ddof", 2), ("target_eps", 0.0),
     ("target_eps", 1.5), ("center_offset", -0.5), ("center_offset", float("nan")),
     ("avg_factor_eps", -1e-7), ("pieces", ("qfl", "focal")), ("background_first", None)],
)  # fmt: skip
def test_a_dialect_with_a_bad_switch_value_names_the_switch(field, value):
    with pytest.raises(ValueError, match=field):
        Dialect("bad", "", **{field: value})
    assert set(BOX_NORMS) == {"clamp", "none", "zero"}


def test_an_unknown_dialect_name_raises_naming_the_argument():
    cfg, cls, reg, gtb, gtl, metas = dialect_workload()
    with pytest.raises(ValueError, match="dialect must be one of"):
        get_dialect("mmdet4")
    for call in (
        lambda: R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg, dialect="GFocal"),
        lambda: R.gfl_targets([(4, 4), (2, 2)], gtb, gtl, metas, cfg, dialect="yolo"),
        lambda: R.gfl_predict(cls, reg, metas, cfg, dialect=""),
    ):
        with pytest.raises(ValueError, match="dialect must be one of"):
            call()


# ================================================================ QFL: abs_factor


def naive_qfl(pred, label, score, beta, absolute):
    """QFL one entry at a time: σ^β·BCE(x, 0) at a negative entry, |y-σ|^β·BCE(x, y) (or
    (y-σ)^β without the abs: GFocal) at a positive's own class."""
    n, c = pred.shape
    out = np.zeros(n)
    for i in range(n):
        for j in range(c):
            x, s = pred[i, j], sigmoid(pred[i, j])
            if label[i] == j:
                u = score[i] - s
                out[i] += np.power(abs(u) if absolute else u, beta) * bce(x, score[i])
            else:
                out[i] += s**beta * bce(x, 0.0)
    return out


def t_bce(x, y):
    """BCE with logits as softplus(x) - x y: ``F.binary_cross_entropy_with_logits`` loses
    relative precision below x = -10 (1e-10 at x = -13), where the loss is tiny."""
    return F.softplus(x) - x * y


def torch_gfocal_qfl(pred, label, score, beta, d_out):
    """GFocal's ``quality_focal_loss`` (mmdetection 2.x's without ``.abs()``), by autograd."""
    x = torch.tensor(pred, requires_grad=True)
    sig = x.sigmoid()
    loss = t_bce(x, 0.0) * sig.pow(beta)
    lab, c = torch.from_numpy(label), pred.shape[1]
    pos = ((lab >= 0) & (lab < c)).nonzero().squeeze(1)
    pos_label, y = lab[pos], torch.from_numpy(score)[pos]
    pt = y - sig[pos, pos_label]
    loss[pos, pos_label] = t_bce(x[pos, pos_label], y) * pt.pow(beta)
    loss = loss.sum(dim=1)
    loss.backward(torch.from_numpy(d_out))
    return loss.detach().numpy(), x.grad.numpy()


EQUAL = (np.array([[0.0, 1.0]]), np.array([0]), np.array([0.5]))  # σ(0) = 0.5 = y exactly
ABOVE = (np.array([[2.0, -1.0], [0.5, 3.0]]), np.array([0, 1]), np.array([0.25, 0.5]))  # σ > y
no_abs_betas = st.sampled_from([1.0, 2.0, 1.5, 3.0, 0.0])


@given(inputs=wide_qfl_inputs(), beta=qfl_betas, seed=seeds)
@settings(max_examples=60)
def test_qfl_abs_factor_true_is_the_default_and_the_torch_twin(inputs, beta, seed):
    pred, label, score = inputs
    g = np.random.default_rng(seed).normal(size=pred.shape[0])
    loss, cache = R.qfl_forward(pred, label, score, beta)
    loss_t, cache_t = R.qfl_forward(pred, label, score, beta, abs_factor=True)
    np.testing.assert_array_equal(loss, loss_t)
    np.testing.assert_array_equal(R.qfl_backward(g, cache), R.qfl_backward(g, cache_t))
    # at the kink σ = y the twins' sigmoids may round apart (σ(-2^-52) = 0.5 - 2^-54 here, 0.5
    # in torch), and |y - σ|^β's one-sided slopes with them: compare away from it
    gap = np.abs(cache.sig[cache.pos_rows, cache.pos_cols] - cache.pos_score)
    assume(np.all((gap == 0) | (gap > 1e-9)))
    x = torch.tensor(pred, requires_grad=True)
    t_loss = T.quality_focal_loss(x, torch.from_numpy(label), torch.from_numpy(score),
                                  beta=beta, reduction="none")  # fmt: skip
    t_loss.backward(torch.from_numpy(g))
    assert_rel(loss, t_loss.detach().numpy(), 1e-10, "forward")
    assert_rel(R.qfl_backward(g, cache), x.grad.numpy(), 1e-10, "gradient")


@given(inputs=qfl_inputs(max_n=6, max_c=4), beta=st.one_of(no_abs_betas, finite_floats(0.0, 3.0)),
       absolute=st.booleans())  # fmt: skip
@example(inputs=EQUAL, beta=1.0, absolute=False)
@example(inputs=ABOVE, beta=1.5, absolute=False)
def test_qfl_either_factor_matches_the_obvious_loop(inputs, beta, absolute):
    pred, label, score = inputs
    with np.errstate(invalid="ignore"):  # (y - σ)^β with y < σ and a fractional β: NaN
        loss, _ = R.qfl_forward(pred, label, score, beta, abs_factor=absolute)
        expected = naive_qfl(pred, label, score, beta, absolute)
    np.testing.assert_allclose(loss, expected, rtol=1e-11, atol=1e-14, equal_nan=True)
    assert absolute is False or np.all(np.isfinite(loss))


@given(inputs=wide_qfl_inputs(), beta=st.sampled_from([2.0, 4.0, 0.0]), seed=seeds)
@settings(max_examples=60)
def test_qfl_an_even_beta_is_blind_to_the_abs(inputs, beta, seed):
    pred, label, score = inputs
    g = np.random.default_rng(seed).normal(size=pred.shape[0])
    loss_a, cache_a = R.qfl_forward(pred, label, score, beta)
    loss_n, cache_n = R.qfl_forward(pred, label, score, beta, abs_factor=False)
    np.testing.assert_allclose(loss_n, loss_a, rtol=1e-15)  # pow of -u and of u: one ulp apart
    np.testing.assert_allclose(R.qfl_backward(g, cache_n), R.qfl_backward(g, cache_a),
                               rtol=1e-14, atol=1e-300)  # fmt: skip


def test_qfl_abs_factor_at_the_boundaries():
    """σ = y exactly; σ above y with β = 1 (a negative loss), 1.5 (NaN) and 2 (the same)."""
    with np.errstate(invalid="ignore"):
        for beta in (1.0, 1.5, 2.0):  # σ = y: the positive entry costs 0 either way
            other = R.qfl_forward(EQUAL[0][:, 1:], np.array([1]), EQUAL[2], beta)[0]  # class 1
            for absolute in (True, False):
                assert R.qfl_forward(*EQUAL, beta, abs_factor=absolute)[0] == other
        one = (ABOVE[0][:1, :1], ABOVE[1][:1], ABOVE[2][:1])
        with_abs = R.qfl_forward(*one, 1.0)[0]
        without = R.qfl_forward(*one, 1.0, abs_factor=False)[0]
        assert without[0] == -with_abs[0] < 0.0  # (y - σ)·BCE with σ(2) = 0.88 > 0.25
        frac = R.qfl_forward(*ABOVE, 1.5, abs_factor=False)[0]
        assert np.all(np.isnan(frac))
        below = (np.array([[-2.0]]), np.array([0]), np.array([0.75]))  # σ < y: the same
        assert R.qfl_forward(*below, 1.5, abs_factor=False)[0] == R.qfl_forward(*below, 1.5)[0]


@st.composite
def qfl_no_abs_problems(draw):
    """``(pred, label, score, beta)``; with a fractional β every positive has y > σ + 0.01
    (elsewhere (y - σ)^β is NaN), else any score."""
    pred, label, score = draw(qfl_inputs(max_n=4, max_c=4, logit_range=12.0))
    beta = draw(st.sampled_from([1.0, 2.0, 1.5, 3.0]))
    if beta == 1.5:
        c = pred.shape[1]
        s = sigmoid(pred[np.arange(len(label)), np.clip(label, 0, c - 1)])
        frac = draw(hnp.arrays(np.float64, label.shape, elements=finite_floats(0.01, 1.0)))
        score = np.minimum(s + 0.01 + frac * (1.0 - s), 1.0)
        assume(np.all((score - s)[(label >= 0) & (label < c)] > 0.005))
    return pred, label, score, beta


@given(problem=qfl_no_abs_problems(), seed=seeds)
@settings(max_examples=80)
@example(problem=(*EQUAL, 1.0), seed=0)  # σ = y, β = 1: the derivative of (y - σ) is -1, not 0
@example(problem=(*EQUAL, 2.0), seed=0)
def test_qfl_without_abs_backward_matches_central_differences(problem, seed):
    pred, label, score, beta = problem
    d_out = np.random.default_rng(seed).normal(size=pred.shape[0])
    _, cache = R.qfl_forward(pred, label, score, beta, abs_factor=False)
    grad = R.qfl_backward(d_out, cache)
    assume(grad.size == 0 or np.max(np.abs(grad)) > 1e-2)  # saturated: below an FD's resolution
    err = check_backward(
        lambda p: R.qfl_forward(p, label, score, beta, abs_factor=False),
        R.qfl_backward,
        pred,
        d_out=d_out,
        h=1e-5,
    )
    assert err <= 1e-7


@given(inputs=qfl_inputs(logit_range=20.0), beta=no_abs_betas, seed=seeds)
@settings(max_examples=80)
@example(inputs=EQUAL, beta=1.0, seed=0)
@example(inputs=ABOVE, beta=1.5, seed=0)
@example(inputs=ABOVE, beta=3.0, seed=0)
@example(inputs=(np.array([[-13.0]]), np.array([0]), np.array([0.0])), beta=1.0, seed=0)  # found
def test_qfl_without_abs_equals_torch_autograd_of_gfocals_expression(inputs, beta, seed):
    pred, label, score = inputs
    d_out = np.random.default_rng(seed).normal(size=pred.shape[0])
    with np.errstate(invalid="ignore"):
        loss, cache = R.qfl_forward(pred, label, score, beta, abs_factor=False)
        d_pred = R.qfl_backward(d_out, cache)
    t_loss, t_grad = torch_gfocal_qfl(pred, label, score, beta, d_out)
    for ours, theirs in ((loss, t_loss), (d_pred, t_grad)):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))  # NaN at σ > y, β = 1.5
        ok = ~np.isnan(ours)
        assert_rel(ours[ok], theirs[ok], 1e-10)


@pytest.mark.parametrize("bad", ["no", 0, 1, None, 2.0])
def test_qfl_abs_factor_must_be_a_bool(bad):
    with pytest.raises(ValueError, match="abs_factor must be True or False"):
        R.qfl_forward(*EQUAL, 2.0, abs_factor=bad)
    R.qfl_forward(*EQUAL, 2.0, abs_factor=np.bool_(False))


# ================================================================ DFL: clamp_eps


def naive_dfl(pred, label, eps):
    """DFL one row at a time, the label first clamped into [0, n - eps]."""
    n = pred.shape[1] - 1
    out = []
    for row, y in zip(pred, label):
        y = min(max(float(y), 0.0), n - eps)
        left = int(np.floor(y))
        logp = row - (row.max() + np.log(np.sum(np.exp(row - row.max()))))
        out.append(-((left + 1 - y) * logp[left] + (y - left) * logp[left + 1]))
    return np.array(out)


def torch_ultralytics_dfl(pred, label, eps, d_out):
    """ultralytics' ``DFLoss`` per side (its ``reg_max`` is our n + 1), by autograd."""
    x = torch.tensor(pred, requires_grad=True)
    bins = pred.shape[1]  # ultralytics' reg_max
    target = torch.from_numpy(label).clamp(0, bins - 1 - eps)
    tl = target.long()
    tr = tl + 1
    wl = tr - target
    wr = 1 - wl
    loss = (
        F.cross_entropy(x, tl, reduction="none") * wl
        + F.cross_entropy(x, tr, reduction="none") * wr
    )
    loss.backward(torch.from_numpy(d_out))
    return loss.detach().numpy(), x.grad.numpy()


@st.composite
def wild_dfl_inputs(draw, max_m: int = 8):
    """``(pred (M, n+1), label (M,), eps)``: labels anywhere in [-3, n + 3], often exactly on
    0, n - eps, n or an integer."""
    pred, _ = draw(dfl_inputs(max_m=max_m, max_reg_max=8))
    m, n = pred.shape[0], pred.shape[1] - 1
    eps = draw(st.sampled_from([0.01, 0.1, 0.5, 1.0]))
    el = st.one_of(finite_floats(-3.0, n + 3.0), st.sampled_from([0.0, n - eps, float(n), 1.0]))
    return pred, draw(hnp.arrays(np.float64, (m,), elements=el)), eps


@given(inputs=dfl_inputs(), seed=seeds)
@settings(max_examples=60)
@example(inputs=(np.array([[0.0, 0.0, 0.0, 18.0, -2.0]]), np.array([3.0])), seed=0)  # saturated
def test_dfl_clamp_eps_none_is_the_default_and_the_torch_twin(inputs, seed):
    pred, label = inputs
    n = pred.shape[1] - 1
    g = np.random.default_rng(seed).normal(size=label.shape)
    loss, cache = R.dfl_forward(pred, label)
    loss_n, cache_n = R.dfl_forward(pred, label, clamp_eps=None)
    np.testing.assert_array_equal(loss, loss_n)
    np.testing.assert_array_equal(R.dfl_backward(g, cache), R.dfl_backward(g, cache_n))
    x = torch.tensor(pred, requires_grad=True)
    t_loss = T.distribution_focal_loss(x, torch.from_numpy(label), reduction="none")
    t_loss.backward(torch.from_numpy(g))
    assert_rel(loss, t_loss.detach().numpy(), 1e-10, "forward")
    assert_rel(R.dfl_backward(g, cache), x.grad.numpy(), 1e-10, "gradient", dfl_grad_floor(g))
    inside = label <= n - 0.01  # the clamp changes nothing there
    loss_c, _ = R.dfl_forward(pred[inside], label[inside], clamp_eps=0.01)
    np.testing.assert_array_equal(loss_c, loss[inside])


@given(inputs=wild_dfl_inputs(), seed=seeds)
@settings(max_examples=80)
def test_dfl_clamp_eps_is_ultralytics_dfloss(inputs, seed):
    pred, label, eps = inputs
    d_out = np.random.default_rng(seed).normal(size=label.shape)
    loss, cache = R.dfl_forward(pred, label, clamp_eps=eps)
    np.testing.assert_allclose(loss, naive_dfl(pred, label, eps), rtol=1e-12, atol=1e-14)
    t_loss, t_grad = torch_ultralytics_dfl(pred, label, eps, d_out)
    assert_rel(loss, t_loss, 1e-10, "forward")
    assert_rel(R.dfl_backward(d_out, cache), t_grad, 1e-10, "gradient", dfl_grad_floor(d_out))


@given(inputs=wild_dfl_inputs(max_m=4), seed=seeds)
@settings(max_examples=40)
def test_dfl_clamp_eps_backward_matches_central_differences(inputs, seed):
    pred, label, eps = inputs
    d_out = np.random.default_rng(seed).normal(size=label.shape)
    _, cache = R.dfl_forward(pred, label, clamp_eps=eps)
    grad = R.dfl_backward(d_out, cache)
    assume(grad.size == 0 or np.max(np.abs(grad)) > 1e-2)  # saturated: below an FD's resolution
    err = check_backward(lambda p: R.dfl_forward(p, label, clamp_eps=eps), R.dfl_backward, pred,
                         d_out=d_out, h=1e-5)  # fmt: skip
    assert err <= 1e-7


def test_dfl_clamp_eps_at_the_boundaries():
    n = 4
    pred = np.tile(np.array([[0.3, -1.0, 2.0, 0.5, 1.5]]), (7, 1))
    label = np.array([n - 0.01, n, n + 100.0, -1.0, 0.0, n - 0.005, 3.5])
    loss, cache = R.dfl_forward(pred, label, clamp_eps=0.01)
    assert loss[0] == loss[1] == loss[2] == loss[5]  # n - 0.01, n, beyond n, inside the eps
    assert loss[3] == loss[4]  # below 0 is 0
    assert cache.left.tolist() == [3, 3, 3, 0, 0, 3, 3]
    np.testing.assert_allclose(cache.w_right[:3], 0.99, rtol=1e-13)
    np.testing.assert_array_equal(loss[[0, 4, 6]], R.dfl_forward(pred[:3], label[[0, 4, 6]])[0])
    with pytest.raises(ValueError, match=r"label must lie in \[0, n\) = \[0, 4\)"):
        R.dfl_forward(pred[:1], np.array([float(n)]))  # without the switch: an error
    with pytest.raises(ValueError, match="label must lie"):
        R.dfl_forward(pred[:1], np.array([-0.5]))


@pytest.mark.parametrize("bad", [0.0, -0.01, 1.5, float("nan"), float("inf"), "0.01", True])
def test_dfl_clamp_eps_must_lie_in_0_1(bad):
    with pytest.raises(ValueError, match="clamp_eps"):
        R.dfl_forward(np.zeros((1, 5)), np.array([1.0]), clamp_eps=bad)


# ================================================================ bbox_overlaps: offset


def naive_overlap(a, b, mode, o, eps=1e-6):
    """IoU / GIoU / IoF of two boxes, sides ``x2 - x1 + o`` (o = 1: mmdetection 1.x's)."""
    iw = max(min(a[2], b[2]) - max(a[0], b[0]) + o, 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]) + o, 0.0)
    inter = iw * ih
    area_a = (a[2] - a[0] + o) * (a[3] - a[1] + o)
    area_b = (b[2] - b[0] + o) * (b[3] - b[1] + o)
    union = max(area_a if mode == "iof" else area_a + area_b - inter, eps)
    if mode != "giou":
        return inter / union
    ew = max(max(a[2], b[2]) - min(a[0], b[0]) + o, 0.0)
    eh = max(max(a[3], b[3]) - min(a[1], b[1]) + o, 0.0)
    enclose = max(ew * eh, eps)
    return inter / union - (enclose - union) / enclose


@given(b1=boxes(), b2=boxes(), mode=st.sampled_from(MODES))
@settings(max_examples=60)
def test_bbox_overlaps_offset_zero_is_the_default_and_the_torch_twin(b1, b2, mode):
    out = R.bbox_overlaps(b1, b2, mode)
    np.testing.assert_array_equal(out, R.bbox_overlaps(b1, b2, mode, offset=0))
    t = T.bbox_overlaps(torch.from_numpy(b1), torch.from_numpy(b2), mode).numpy()
    np.testing.assert_allclose(out, t, rtol=1e-12, atol=1e-15)


@given(b1=boxes(min_size=0.0), b2=boxes(min_size=0.0), mode=st.sampled_from(MODES))
def test_bbox_overlaps_offset_one_matches_the_obvious_loop(b1, b2, mode):
    out = R.bbox_overlaps(b1, b2, mode, offset=1)
    expected = np.array([[naive_overlap(a, b, mode, 1) for b in b2] for a in b1]).reshape(out.shape)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-15)
    n = min(len(b1), len(b2))
    aligned = R.bbox_overlaps(b1[:n], b2[:n], mode, is_aligned=True, offset=1)
    np.testing.assert_array_equal(aligned, np.diagonal(out[:n, :n]))


def test_bbox_overlaps_offset_one_at_the_boundaries():
    """Zero-width boxes are one pixel wide, touching boxes share a column, a 1-pixel gap
    still separates."""
    point = np.array([[5.0, 5.0, 5.0, 5.0]])
    line = np.array([[0.0, 0.0, 0.0, 9.0]])
    for box in (point, line):
        for mode in MODES:
            assert R.bbox_overlaps(box, box, mode, offset=1)[0, 0] == 1.0
        assert R.bbox_overlaps(box, box, offset=0)[0, 0] == 0.0  # 0 / max(0, eps)
    a, touching, apart = (np.array([[0.0, 0.0, 10.0, 10.0]]), np.array([[10.0, 0.0, 20.0, 10.0]]),
                          np.array([[11.0, 0.0, 20.0, 10.0]]))  # fmt: skip
    assert R.bbox_overlaps(a, touching, offset=1)[0, 0] == 11.0 / 231.0 == 1.0 / 21.0
    assert R.bbox_overlaps(a, touching, offset=0)[0, 0] == 0.0
    assert R.bbox_overlaps(a, apart, offset=1)[0, 0] == 0.0
    # ... but in pixels the gap is none: the enclosing box (21 x 11) is the union (121 + 110)
    assert R.bbox_overlaps(a, apart, "giou", offset=1)[0, 0] == 0.0
    assert R.bbox_overlaps(a, apart, "giou", offset=0)[0, 0] == -10.0 / 200.0
    # with the +1 every union is at least 1, so the union's eps never matters
    for eps in (1e-6, 1e-7, 0.5):
        assert R.bbox_overlaps(point, point, offset=1, eps=eps)[0, 0] == 1.0


@pytest.mark.parametrize("bad", [2, -1, 0.5, "1", None])
def test_bbox_overlaps_offset_must_be_0_or_1(bad):
    with pytest.raises(ValueError, match="offset must be one of"):
        R.bbox_overlaps(np.zeros((1, 4)), np.zeros((1, 4)), offset=bad)


# ================================================================ bbox2distance: eps


@given(pb=points_in_boxes(), max_dis=st.sampled_from([4.0, 16.0]),
       eps=st.sampled_from([0.01, 0.1, 0.5]))  # fmt: skip
def test_bbox2distance_eps_clamps_below_max_dis_minus_eps(pb, max_dis, eps):
    points, bbox = pb
    out = R.bbox2distance(points, bbox, max_dis, eps=eps)
    raw = R.bbox2distance(points, bbox)
    np.testing.assert_array_equal(out, np.minimum(np.maximum(raw, 0.0), max_dis - eps))
    if eps == 0.1:
        np.testing.assert_array_equal(out, R.bbox2distance(points, bbox, max_dis))
    far = R.bbox2distance(np.zeros((1, 2)), np.array([[-100.0, -100.0, 100.0, 100.0]]), 16, eps=eps)
    np.testing.assert_array_equal(far, np.full((1, 4), 16 - eps))
    assert R.dfl_forward(np.zeros((4, 17)), far[0])[0].shape == (4,)  # a valid DFL target


# ================================================================ distance2bbox: clamp_offset


def torch_gfocal_d2b(points, distance, max_shape, d_out):
    """GFocal's ``distance2bbox`` (x clamped to [0, w - 1], y to [0, h - 1]), by autograd."""
    p = torch.from_numpy(points)
    d = torch.tensor(distance, requires_grad=True)
    x1, y1 = p[:, 0] - d[:, 0], p[:, 1] - d[:, 1]
    x2, y2 = p[:, 0] + d[:, 2], p[:, 1] + d[:, 3]
    if max_shape is not None:
        x1 = x1.clamp(min=0, max=max_shape[1] - 1)
        y1 = y1.clamp(min=0, max=max_shape[0] - 1)
        x2 = x2.clamp(min=0, max=max_shape[1] - 1)
        y2 = y2.clamp(min=0, max=max_shape[0] - 1)
    out = torch.stack([x1, y1, x2, y2], -1)
    out.backward(torch.from_numpy(d_out))
    return out.detach().numpy(), d.grad.numpy()


@given(pd=clamp_boundary_decodes(), seed=seeds)
@settings(max_examples=60)
def test_distance2bbox_clamp_offset_zero_is_the_default_and_the_torch_twin(pd, seed):
    points, distance, max_shape = pd
    g = np.random.default_rng(seed).normal(size=distance.shape)
    out, cache = R.distance2bbox_forward(points, distance, max_shape)
    out0, cache0 = R.distance2bbox_forward(points, distance, max_shape, clamp_offset=0)
    np.testing.assert_array_equal(out, out0)
    np.testing.assert_array_equal(cache.pass_mask, cache0.pass_mask)
    d = torch.tensor(distance, requires_grad=True)
    t_out = T.distance2bbox(torch.from_numpy(points), d, max_shape)
    t_out.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(out, t_out.detach().numpy())
    np.testing.assert_array_equal(R.distance2bbox_backward(g, cache), d.grad.numpy())


@given(pd=clamp_boundary_decodes(), seed=seeds, clamp=st.booleans())
@settings(max_examples=80)
def test_distance2bbox_clamp_offset_one_is_gfocals_clamp(pd, seed, clamp):
    """clamp_boundary_decodes puts coordinates exactly on 0, w and h: with max_shape (h + 1,
    w + 1) and the offset, w and h are the bounds (the gradient passes on a bound itself)."""
    points, distance, (h, w) = pd
    max_shape = (h + 1, w + 1) if clamp else None
    g = np.random.default_rng(seed).normal(size=distance.shape)
    out, cache = R.distance2bbox_forward(points, distance, max_shape, clamp_offset=1)
    t_out, t_grad = torch_gfocal_d2b(points, distance, max_shape, g)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(R.distance2bbox_backward(g, cache), t_grad)
    if max_shape is not None:
        assert np.all(out[:, 0::2] <= w) and np.all(out[:, 1::2] <= h)


@given(pd=points_and_distances(max_n=3), max_shape=st.tuples(st.integers(2, 200),
       st.integers(2, 200)), seed=seeds)  # fmt: skip
@settings(max_examples=40)
@example(pd=(np.zeros((1, 2)), np.array([[1.0, 1.0, 1.0, 3.0]])), max_shape=(3, 3), seed=0)
def test_distance2bbox_clamp_offset_one_backward_matches_central_differences(pd, max_shape, seed):
    points, distance = pd
    h, w = max_shape
    raw = R.distance2bbox_forward(points, distance)[0]
    upper = np.array([w, h, w, h]) - 1.0
    assume(np.all((np.abs(raw) > 1e-3) & (np.abs(raw - upper) > 1e-3)))  # away from the kinks
    # piecewise linear: no truncation error, so the large step is the accurate one (test_boxes)
    err = check_backward(
        lambda d: R.distance2bbox_forward(points, d, max_shape, clamp_offset=1),
        R.distance2bbox_backward, distance, seed=seed, h=1e-4,
    )  # fmt: skip
    assert err <= 1e-7


def test_distance2bbox_clamp_offset_at_the_bounds():
    """x2 = w: kept (gradient passes) with offset 0, clamped to w - 1 (no gradient) with 1;
    x2 = w - 1: kept by both; no max_shape: no clamp at all."""
    points = np.array([[10.0, 10.0], [10.0, 10.0]])
    distance = np.array([[10.0, 10.0, 22.0, 5.0], [1.0, 1.0, 21.0, 13.0]])  # x2 = 32 and 31
    max_shape = (23, 32)
    out0, c0 = R.distance2bbox_forward(points, distance, max_shape)
    out1, c1 = R.distance2bbox_forward(points, distance, max_shape, clamp_offset=1)
    np.testing.assert_array_equal(out0, [[0.0, 0.0, 32.0, 15.0], [9.0, 9.0, 31.0, 23.0]])
    np.testing.assert_array_equal(out1, [[0.0, 0.0, 31.0, 15.0], [9.0, 9.0, 31.0, 22.0]])
    np.testing.assert_array_equal(c0.pass_mask, np.ones((2, 4), bool))
    np.testing.assert_array_equal(c1.pass_mask, [[True, True, False, True],
                                                 [True, True, True, False]])  # fmt: skip
    free = R.distance2bbox_forward(points, distance, clamp_offset=1)[0]
    np.testing.assert_array_equal(free, R.distance2bbox_forward(points, distance)[0])


@pytest.mark.parametrize("max_shape", [None, (10, 10)])
@pytest.mark.parametrize("bad", [2, -1, 0.5, "1"])
def test_distance2bbox_clamp_offset_must_be_0_or_1(bad, max_shape):
    with pytest.raises(ValueError, match="clamp_offset must be one of"):
        R.distance2bbox_forward(np.zeros((1, 2)), np.ones((1, 4)), max_shape, clamp_offset=bad)


# ================================================================ weight_reduce: eps


@given(inputs=reduce_inputs(), seed=seeds)
@settings(max_examples=60)
def test_weight_reduce_eps_zero_is_the_default_and_the_torch_twin(inputs, seed):
    loss, weight, reduction, avg = inputs
    out, cache = R.weight_reduce_forward(loss, weight, reduction, avg)
    out0, cache0 = R.weight_reduce_forward(loss, weight, reduction, avg, eps=0.0)
    np.testing.assert_array_equal(out, out0)
    np.testing.assert_array_equal(cache.scale, cache0.scale)
    w = None if weight is None else torch.from_numpy(weight)
    t = T.weight_reduce_loss(torch.from_numpy(loss), w, reduction, avg)
    np.testing.assert_allclose(out, t.numpy(), rtol=1e-12, atol=1e-15)


@given(inputs=reduce_inputs(), eps=st.sampled_from([FLOAT32_EPS, 0.5, 3.0]), seed=seeds)
@settings(max_examples=80)
def test_weight_reduce_eps_is_added_to_avg_factor_only(inputs, eps, seed):
    """mmdetection 3.x: ``loss.sum() / (avg_factor + eps)`` for ``mean`` with an avg_factor;
    nothing changes otherwise. Gradient: by finite differences and torch autograd."""
    loss, weight, reduction, avg = inputs
    out, cache = R.weight_reduce_forward(loss, weight, reduction, avg, eps=eps)
    if reduction != "mean" or avg is None:
        np.testing.assert_array_equal(out, R.weight_reduce_forward(loss, weight, reduction, avg)[0])
        return
    w = np.ones_like(loss) if weight is None else np.broadcast_to(weight, loss.shape)
    assert out == pytest.approx((loss * w).sum() / (avg + eps), rel=1e-13, abs=1e-300)
    g = np.random.default_rng(seed).normal()
    expected = g * w / (avg + eps)  # atol: subnormal weights round apart (found)
    np.testing.assert_allclose(R.weight_reduce_backward(np.array(g), cache), expected,
                               rtol=1e-15, atol=1e-300)  # fmt: skip
    x = torch.tensor(loss, requires_grad=True)
    t_out = (x * torch.from_numpy(np.array(w))).sum() / (avg + eps)
    t_out.backward(torch.tensor(g, dtype=torch.float64))
    assert_rel(R.weight_reduce_backward(np.array(g), cache), x.grad.numpy(), 1e-14)
    err = check_backward(
        lambda v: R.weight_reduce_forward(v, weight, reduction, avg, eps=eps),
        R.weight_reduce_backward, loss, seed=seed,
    )  # fmt: skip
    assert err <= 1e-7


def test_weight_reduce_eps_at_the_boundaries():
    one = np.array([1.0])
    out, cache = R.weight_reduce_forward(one, None, "mean", 1.0, eps=FLOAT32_EPS)
    assert out == 1.0 / (1.0 + FLOAT32_EPS) and 1.0 - out == pytest.approx(FLOAT32_EPS, rel=1e-6)
    assert R.weight_reduce_forward(one, None, "mean", 1.0)[0] == 1.0
    empty, cache = R.weight_reduce_forward(np.zeros(0), None, "mean", 2.0, eps=FLOAT32_EPS)
    assert empty == 0.0 and R.weight_reduce_backward(np.array(1.0), cache).shape == (0,)
    mean = R.weight_reduce_forward(np.array([1.0, 3.0]), None, "mean", eps=0.5)[0]  # no avg_factor
    assert mean == 2.0


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("bad", [-FLOAT32_EPS, float("nan"), float("inf"), "eps", None])
def test_weight_reduce_eps_must_be_a_non_negative_number(bad, reduction):
    with pytest.raises(ValueError, match="eps must be"):
        R.weight_reduce_forward(np.ones(3), None, reduction, eps=bad)


# ================================================================ grid_anchors: center_offset


@given(levels=featmap_levels(max_side=12), offset=st.sampled_from([0.5, 0.25, 1.0, 0.0]))
def test_grid_anchors_center_offset_moves_every_point_by_o_s(levels, offset):
    sizes, strides = levels
    ref = R.grid_anchors(sizes, strides, center_offset=offset)
    default = R.grid_anchors(sizes, strides)
    twin = T.grid_anchors(sizes, strides, dtype=torch.float64)
    for (h, w), s, r, d, t in zip(sizes, strides, ref, default, twin):
        np.testing.assert_array_equal(d, t.numpy())
        ii, jj = np.divmod(np.arange(h * w), w)  # row-major: i outer
        centres = np.stack([(jj + offset) * s, (ii + offset) * s], axis=1).astype(np.float64)
        np.testing.assert_array_equal(anchor_centers(r), centres)
        np.testing.assert_array_equal(r - d, np.full((h * w, 4), offset * s))
        if offset == 1.0 and h > 1 and w > 1:  # one cell further: the next row and column
            grid_r, grid_d = r.reshape(h, w, 4), d.reshape(h, w, 4)
            np.testing.assert_array_equal(grid_r[:-1, :-1], grid_d[1:, 1:])


@pytest.mark.parametrize("bad", [-0.5, 1.5, float("nan"), "0.5", None, True])
def test_grid_anchors_center_offset_must_lie_in_0_1(bad):
    with pytest.raises(ValueError, match="center_offset"):
        R.grid_anchors([(2, 2)], [8], center_offset=bad)


# ================================================================ ATSS: std_ddof


@given(ious=hnp.arrays(np.float64, st.tuples(st.integers(0, 4), st.integers(0, 12)),
                       elements=finite_floats(0.0, 1.0)))  # fmt: skip
def test_candidate_stats_is_mean_plus_np_std_with_ddof(ious):
    g, k = ious.shape
    for ddof in (1, 0):
        thr = candidate_stats(ious, ddof)
        assert thr.shape == (g,)
        if k <= ddof:
            assert np.all(thr == np.inf)
        else:
            expected = ious.mean(axis=1) + ious.std(axis=1, ddof=ddof)
            np.testing.assert_allclose(thr, expected, rtol=1e-12, atol=1e-15)
    if k >= 2:
        assert np.all(candidate_stats(ious, 0) <= candidate_stats(ious, 1))
    if k == 1:  # a single candidate: no threshold with ddof 1, its own IoU with ddof 0
        np.testing.assert_array_equal(candidate_stats(ious, 0), ious[:, 0])


@given(atss_problems())
@settings(max_examples=60)
def test_atss_std_ddof_one_is_the_default_and_the_torch_twin(p):
    gts, labels = p["gt_bboxes"][0], p["gt_labels"][0]
    args = (p["anchors"], p["num_level_anchors"], gts, labels)
    res = R.atss_assign(*args, topk=p["topk"])
    res1 = R.atss_assign(*args, topk=p["topk"], std_ddof=1)
    t = torch.from_numpy
    twin = T.atss_assign(t(p["anchors"]), p["num_level_anchors"], t(gts), t(labels), None,
                         p["topk"])  # fmt: skip
    for field in ("gt_inds", "labels", "max_overlaps"):
        np.testing.assert_array_equal(getattr(res, field), getattr(res1, field))
        np.testing.assert_array_equal(getattr(res, field), getattr(twin, field).numpy())


@given(atss_problems())
@settings(max_examples=100)
def test_atss_std_ddof_zero_matches_the_loop_reference(p):
    """The biased threshold is lower: every positive stays positive, some anchors join."""
    args = (p["anchors"], p["num_level_anchors"], p["gt_bboxes"][0])
    biased = R.atss_assign(*args, topk=p["topk"], std_ddof=0)
    loop, _, _ = loop_atss(*args, p["topk"], ddof=0)
    np.testing.assert_array_equal(biased.gt_inds, loop)
    unbiased = R.atss_assign(*args, topk=p["topk"])
    assert np.all(biased.gt_inds[unbiased.gt_inds > 0] > 0)


def test_atss_std_ddof_with_one_candidate_and_on_the_threshold():
    gt = np.array([[0.0, 0.0, 16.0, 16.0]])
    # one candidate in total: no std with ddof 1 (no positive); with ddof 0 the threshold is
    # the candidate's own IoU, which it meets
    one = np.array([[2.0, 2.0, 14.0, 14.0]])
    assert R.atss_assign(one, [1], gt).gt_inds.tolist() == [0]
    assert R.atss_assign(one, [1], gt, std_ddof=0).gt_inds.tolist() == [1]
    # two candidates, IoU 1 and 0.25: mean 0.625, biased std 0.375 (exact): threshold 1.0,
    # met by the first exactly; unbiased std 0.53: threshold 1.16, met by none
    two = np.array([[0.0, 0.0, 16.0, 16.0], [0.0, 0.0, 16.0, 4.0]])
    np.testing.assert_array_equal(R.bbox_overlaps(two, gt)[:, 0], [1.0, 0.25])
    assert candidate_stats(np.array([[1.0, 0.25]]), 0)[0] == 1.0
    assert R.atss_assign(two, [2], gt, std_ddof=0).gt_inds.tolist() == [1, 0]
    assert R.atss_assign(two, [2], gt).gt_inds.tolist() == [0, 0]


@pytest.mark.parametrize("bad", [2, -1, 0.5, "1", None])
def test_atss_std_ddof_must_be_0_or_1(bad):
    with pytest.raises(ValueError, match="std_ddof must be one of"):
        R.atss_assign(np.zeros((1, 4)), [1], np.zeros((0, 4)), std_ddof=bad)


# ================================================================ the head: dialect=


def test_the_heads_default_dialect_is_mmdet2_and_the_torch_twin():
    cfg, cls, reg, gtb, gtl, metas = dialect_workload()
    sizes = [(4, 4), (2, 2)]
    losses, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg)
    grads = R.gfl_loss_backward(cache)
    for d in ("mmdet2", MMDET2, dataclasses.replace(MMDET2, name="copy")):
        other, c2 = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg, dialect=d)
        assert other == losses
        for a, b in zip(sum(grads, []), sum(R.gfl_loss_backward(c2), [])):
            np.testing.assert_array_equal(a, b)
        t1 = R.gfl_targets(sizes, gtb, gtl, metas, cfg)
        t2 = R.gfl_targets(sizes, gtb, gtl, metas, cfg, dialect=d)
        for f in ("anchors", "labels", "label_weights", "bbox_targets"):
            np.testing.assert_array_equal(getattr(t1, f), getattr(t2, f))
        p1, p2 = R.gfl_predict(cls, reg, metas, cfg), R.gfl_predict(cls, reg, metas, cfg, dialect=d)
        for (d1, l1), (d2, l2) in zip(p1, p2):
            np.testing.assert_array_equal(d1, d2)
            np.testing.assert_array_equal(l1, l2)
    t_losses, t_cls, t_reg = torch_loss(cfg, cls, reg, gtb, gtl, metas)
    for key, value in losses.items():
        assert value == pytest.approx(float(t_losses[key]), rel=1e-10)
    for a, b in zip(grads[0] + grads[1], t_cls + t_reg):
        assert rel_error(a, b) <= 1e-10


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_gfl_targets_follow_the_dialects_anchor_point_and_ddof(dialect):
    d = DIALECTS[dialect]
    cfg, cls, reg, gtb, gtl, metas = dialect_workload()
    sizes = [(4, 4), (2, 2)]
    t = R.gfl_targets(sizes, gtb, gtl, metas, cfg, dialect=dialect)
    levels = R.grid_anchors(
        sizes, cfg.strides, cfg.octave_base_scale, center_offset=d.center_offset
    )
    np.testing.assert_array_equal(t.anchors, np.concatenate(levels))
    valid = t.valid[0]
    counts = [int(v.sum()) for v in np.split(valid, [16])]
    res = R.atss_assign(t.anchors[valid], counts, gtb[0], gtl[0], std_ddof=d.atss_std_ddof)
    np.testing.assert_array_equal(t.assign_results[0].gt_inds, res.gt_inds)


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_gfl_predict_follows_the_dialects_anchor_point_and_decode_clamp(dialect):
    """One confident anchor (row 1, column 1 of a 2 x 2 level of stride 8) whose distributions
    sit on bins (1, 1, 4, 4): the box is ((j + o) s - 8, (i + o) s - 8, (j + o) s + 32, ...)
    clamped to [0, w - c] x [0, h - c], o and c the dialect's."""
    d = DIALECTS[dialect]
    cfg = R.GFLConfig(num_classes=1, reg_max=4, strides=(8,), octave_base_scale=2)
    cls = np.full((1, 1, 2, 2), -10.0)
    cls[0, 0, 1, 1] = 3.0
    reg = np.zeros((1, 20, 2, 2))
    for side, b in enumerate((1, 1, 4, 4)):
        reg[0, 5 * side + b] = 40.0  # softmax ≈ one-hot (the rest: e^-40)
    metas = [{"img_shape": (16, 20)}]
    ((dets, labels),) = R.gfl_predict([cls], [reg], metas, cfg, dialect=dialect)
    o, c = d.center_offset, d.decode_clamp_offset
    cx = cy = (1 + o) * 8
    expected = np.array([cx - 8, cy - 8, cx + 32, cy + 32])
    if c is not None:  # None: never clamped (ultralytics)
        expected = np.clip(expected, 0, [20 - c, 16 - c, 20 - c, 16 - c])
    assert dets.shape == (1, 5) and labels.tolist() == [0]
    np.testing.assert_allclose(dets[0, :4], expected, rtol=0, atol=1e-9)
    assert dets[0, 4] == pytest.approx(sigmoid(3.0), rel=1e-15)


def torch_head_loss(cfg, cls, reg, t, d: Dialect):
    """The GFL head loss of dialect ``d`` in a few lines of torch, on the reference's targets
    ``t`` (constants): mmdetection 2.x's loss, with QFL's factor ``(y - σ)^β`` (no abs), no label
    weights, an IoU target with +1 widths, float32's eps in every avg_factor and the box losses'
    normaliser (clamped at 1, not clamped, or every loss 0 when it is 0) as ``d`` says.
    Returns (losses, cls grads, reg grads) of autograd."""
    b, c, k = cls[0].shape[0], cfg.num_classes, cfg.reg_max + 1
    xs = [torch.tensor(m, requires_grad=True) for m in cls]
    zs = [torch.tensor(m, requires_grad=True) for m in reg]
    x = torch.cat([m.permute(0, 2, 3, 1).reshape(b, -1, c) for m in xs], 1).reshape(-1, c)
    z = torch.cat([m.permute(0, 2, 3, 1).reshape(b, -1, 4 * k) for m in zs], 1).reshape(-1, 4 * k)
    a = t.anchors.shape[0]
    pos = torch.from_numpy(np.flatnonzero(t.pos.reshape(-1)))
    s = torch.from_numpy(t.strides[pos.numpy() % a])[:, None]
    anchors = torch.from_numpy(t.anchors[pos.numpy() % a])
    centre = (anchors[:, :2] + anchors[:, 2:]) / 2 / s
    target = torch.from_numpy(t.bbox_targets.reshape(-1, 4))[pos] / s
    w = x[pos].detach().sigmoid().max(dim=1).values
    dist = T.integral(z[pos], cfg.reg_max)
    box = torch.cat([centre - dist[:, :2], centre + dist[:, 2:]], 1)
    eps = d.avg_factor_eps
    loss_giou = (T.giou_loss(box, target, reduction="none") * w).sum() / (1.0 + eps)
    y = torch.cat([centre - target[:, :2], target[:, 2:] - centre], 1)
    y = y.clamp(0, cfg.reg_max - d.target_eps).reshape(-1)
    left = y.floor().long()
    logp = z[pos].reshape(-1, k).log_softmax(1)
    dfl = -(logp.gather(1, left[:, None])[:, 0] * (left + 1 - y)
            + logp.gather(1, left[:, None] + 1)[:, 0] * (y - left))  # fmt: skip
    loss_dfl = (dfl * w.repeat_interleave(4)).sum() / (4.0 + eps)
    o = d.iou_offset  # the quality target: IoU of the detached box, widths + o
    p_, q_ = box.detach(), target
    wh = torch.minimum(p_[:, 2:], q_[:, 2:]) - torch.maximum(p_[:, :2], q_[:, :2]) + o
    inter = wh.clamp(min=0).prod(dim=1)
    area = [(u[:, 2] - u[:, 0] + o) * (u[:, 3] - u[:, 1] + o) for u in (p_, q_)]
    score = torch.zeros(x.shape[0], dtype=torch.float64)
    score[pos] = inter / (area[0] + area[1] - inter).clamp(min=1e-6)
    sig, labels = x.sigmoid(), torch.from_numpy(t.labels.reshape(-1))
    q = t_bce(x, 0.0) * sig.pow(cfg.qfl_beta)
    u = score[pos] - sig[pos, labels[pos]]
    factor = (u.abs() if d.qfl_abs else u).pow(cfg.qfl_beta)
    q[pos, labels[pos]] = t_bce(x[pos, labels[pos]], score[pos]) * factor
    lw = torch.from_numpy(t.label_weights.reshape(-1)) if d.qfl_label_weights else 1.0
    loss_cls = (q.sum(1) * lw).sum() / (t.num_total_samples + eps)
    total = w.sum()
    norm = {"clamp": total.clamp(min=1), "none": total}.get(d.box_norm, total)
    scale = 1.0
    if d.box_norm == "zero" and total.item() <= 0:
        norm, scale = torch.tensor(1.0, dtype=torch.float64), 0.0
    losses = {
        "loss_cls": scale * cfg.loss_cls_weight * loss_cls,
        "loss_bbox": scale * cfg.loss_bbox_weight * loss_giou / norm,
        "loss_dfl": scale * cfg.loss_dfl_weight * loss_dfl / norm,
    }
    sum(losses.values()).backward()

    def grad(m):
        return np.zeros(m.shape) if m.grad is None else m.grad.numpy()

    losses = {k: float(v.detach()) for k, v in losses.items()}
    return losses, [grad(m) for m in xs], [grad(m) for m in zs]


#: (dialect, workload kind, QFL β): every dialect on positives with padding, on faint positives
#: (Σw < 1: the normalisers part) and without positives; β = 1 makes GFocal's missing abs count.
HEAD_CASES = [(d, kind, 2.0) for d in LOSS_DIALECTS for kind in ("padded", "faint", "no_gt")] + [
    ("gfocal", "padded", 1.0), ("mmdet2", "padded", 1.0), ("gfocal", "faint", 1.5)
]  # fmt: skip


@pytest.mark.parametrize("dialect,kind,beta", HEAD_CASES)
def test_gfl_loss_of_each_dialect_equals_torch_autograd_of_its_expression(dialect, kind, beta):
    d = DIALECTS[dialect]
    cfg, cls, reg, gtb, gtl, metas = dialect_workload(kind, beta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN losses (gfocal, no positives) are said, not warned
        losses, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg, dialect=dialect)
        d_cls, d_reg = R.gfl_loss_backward(cache)
    t = R.gfl_targets([(4, 4), (2, 2)], gtb, gtl, metas, cfg, dialect=dialect)
    t_losses, t_cls, t_reg = torch_head_loss(cfg, cls, reg, t, d)
    for key, value in losses.items():
        np.testing.assert_allclose(value, t_losses[key], rtol=1e-10, atol=1e-300, equal_nan=True)
    for ours, theirs in zip(d_cls + d_reg, t_cls + t_reg):
        assert rel_error(ours, theirs) <= 1e-10


def directional_vjp(f, arrays, seed, count=3):
    """Central differences of ``f`` along ``count`` random directions of ``arrays`` (the
    derivatives ``<grad f, v>``), with :func:`reference.gradcheck.numerical_vjp` on the step
    sizes. Returns ``(directions, derivatives)``."""
    rng = np.random.default_rng(seed)
    vs = [[rng.normal(size=a.shape) for a in arrays] for _ in range(count)]

    def along(steps):
        return f([a + sum(s * v[i] for s, v in zip(steps, vs)) for i, a in enumerate(arrays)])

    return vs, numerical_vjp(along, np.zeros(count), np.array(1.0))


@pytest.mark.parametrize("dialect,kind,beta", [c for c in HEAD_CASES if c[1] != "no_gt"])
def test_gfl_loss_of_each_dialect_passes_finite_differences(dialect, kind, beta):
    """loss_cls along the class logits, loss_bbox + loss_dfl along the box logits (the box
    weights and the IoU targets are detached: each loss is checked where it is differentiated)."""
    cfg, cls, reg, gtb, gtl, metas = dialect_workload(kind, beta)
    _, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg, dialect=dialect)
    d_cls, _ = R.gfl_loss_backward(cache, 1.0, 0.0, 0.0)
    _, d_reg = R.gfl_loss_backward(cache, 0.0, 1.0, 1.0)

    def loss(c, r, keys):
        out = R.gfl_loss_forward(c, r, gtb, gtl, metas, cfg, dialect=dialect)[0]
        return np.array(sum(out[k] for k in keys))

    vs, num = directional_vjp(lambda c: loss(c, reg, ["loss_cls"]), cls, seed=1)
    analytic = [sum(np.sum(g * v) for g, v in zip(d_cls, vi)) for vi in vs]
    assert rel_error(np.array(analytic), num) <= 1e-7
    vs, num = directional_vjp(lambda r: loss(cls, r, ["loss_bbox", "loss_dfl"]), reg, seed=2)
    analytic = [sum(np.sum(g * v) for g, v in zip(d_reg, vi)) for vi in vs]
    assert rel_error(np.array(analytic), num) <= 1e-7


def test_gfl_loss_passes_the_dfl_target_eps_down():
    """A dialect's target_eps clamps the DFL targets in the head too: only loss_dfl moves."""
    cfg, cls, reg, gtb, gtl, metas = dialect_workload()
    far = [np.array([[-40.0, -40.0, 72.0, 64.0]])]  # distances beyond reg_max = 4 (level 1)
    base, _ = R.gfl_loss_forward(cls, reg, far, [np.array([0])], metas, cfg)
    eps01 = dataclasses.replace(MMDET2, name="eps", target_eps=0.01)
    moved, _ = R.gfl_loss_forward(cls, reg, far, [np.array([0])], metas, cfg, dialect=eps01)
    assert moved["loss_cls"] == base["loss_cls"] and moved["loss_bbox"] == base["loss_bbox"]
    assert moved["loss_dfl"] != base["loss_dfl"]
