"""GIoU loss: NumPy reference vs torch, finite differences, identities, decision
boundaries (identical, touching, nested, disjoint boxes) and mmdetection goldens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_rel, check_reduced_loss_matches_torch
from hypothesis import assume, example, given
from hypothesis import strategies as st

from reference import (
    bbox_overlaps,
    giou_loss_backward,
    giou_loss_forward,
)
from reference.gradcheck import check_backward, rel_error
from reference.testing.strategies import box_pairs, boxes, finite_floats
from torch_impl import bbox_overlaps as t_bbox_overlaps
from torch_impl import giou_loss

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
seeds = st.integers(0, 2**32 - 1)


def area(b: np.ndarray) -> np.ndarray:
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def torch_giou(pred, target, d_out, **kw):
    x = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    loss = giou_loss(x, torch.from_numpy(target), **kw)
    loss.backward(torch.as_tensor(d_out, dtype=torch.float64))
    return loss.detach().numpy(), x.grad.numpy()


# decision boundaries: identical, tied coordinates, touching, nested, disjoint
SQUARE = np.array([[0.0, 0.0, 10.0, 10.0]])
BOUNDARY_PRED = np.array(
    [
        [0.0, 0.0, 10.0, 10.0],  # identical
        [0.0, 0.0, 10.0, 20.0],  # x1, y1, x2 tied
        [10.0, 0.0, 20.0, 10.0],  # touching along x = 10: IoU 0, E = U, loss 1
        [-5.0, -5.0, 15.0, 15.0],  # contains the target
        [2.0, 2.0, 4.0, 4.0],  # inside the target
        [100.0, 100.0, 101.0, 101.0],  # far away
    ]
)
BOUNDARY_TARGET = np.repeat(SQUARE, len(BOUNDARY_PRED), axis=0)
# found: identical boxes have a zero gradient; torch's leaves rounding residue of 2e-17
IDENTICAL = np.array([[0.0, 0.0, 45.5, 1.0], [0.0, 0.0, 1.0, 1.0]])
# found: E = U mathematically, but U rounds above E, so GIoU exceeds IoU by 1 ulp
EQUAL_E_U = (np.array([[1.0, 0.0, 2.0, 21.91776585]]), np.array([[0.0, 0.0, 2.0, 21.91776585]]))


def grad_floor(d_out) -> float:
    """The scale below which a GIoU gradient is rounding noise.

    A non-zero gradient of 2 - I/U - U/E is about |d_out| / extent >= 2.5e-3 |d_out| for
    the boxes drawn here (extents <= 400); a zero one (identical boxes) comes out of torch
    as residue of ~1e-16 |d_out| / size. 1e-4 |d_out| lies safely between the two.
    """
    return 1e-4 * max(float(np.max(np.abs(d_out), initial=0.0)), 1e-8)


# ---------------------------------------------------------------- agreement


@given(pairs=box_pairs(), seed=seeds)
@example(pairs=(np.zeros((0, 4)), np.zeros((0, 4))), seed=0)
@example(pairs=(BOUNDARY_PRED, BOUNDARY_TARGET), seed=0)
@example(pairs=(IDENTICAL, IDENTICAL.copy()), seed=0)
def test_giou_numpy_matches_torch_float64_per_pair(pairs, seed):
    """Also at exact ties: both split a max/min gradient in halves, and pass it at clamp 0."""
    pred, target = pairs
    d_out = np.random.default_rng(seed).normal(size=pred.shape[0])
    loss, cache = giou_loss_forward(pred, target)
    d_pred = giou_loss_backward(d_out, cache)
    t_loss, t_grad = torch_giou(pred, target, d_out, reduction="none")
    assert loss.shape == t_loss.shape == (pred.shape[0],)
    assert d_pred.shape == t_grad.shape == pred.shape
    for a in (loss, d_pred, t_loss, t_grad):
        assert np.all(np.isfinite(a))
    assert_rel(loss, t_loss, 1e-10, "forward")
    assert_rel(d_pred, t_grad, 1e-10, "gradient", floor=grad_floor(d_out))


@given(
    pairs=box_pairs(),
    seed=seeds,
    reduction=st.sampled_from(["mean", "sum", "none"]),
    use_weight=st.booleans(),
    avg=st.one_of(st.none(), finite_floats(0.5, 50.0)),
    avg_as_tensor=st.booleans(),
)
@example(pairs=(IDENTICAL, IDENTICAL.copy()), seed=0, reduction="sum", use_weight=True,
         avg=None, avg_as_tensor=False)
def test_giou_reduced_matches_reference_composed_with_weight_reduce(
    pairs, seed, reduction, use_weight, avg, avg_as_tensor
):
    check_reduced_loss_matches_torch(
        giou_loss_forward, giou_loss_backward, torch_giou, pairs,
        seed, reduction, use_weight, avg, avg_as_tensor, grad_floor,
    )  # fmt: skip


# ---------------------------------------------------------------- finite differences


def far_from_kinks(p: np.ndarray, t: np.ndarray, margin: float = 1e-3) -> bool:
    """True when no max/min of GIoU is near a tie and no clamp near its switch point:
    coordinates of pred and target (x1 vs X1, ...), the intersection's width and height
    (zero crossing) and the union / enclosure against eps."""
    inter = np.minimum(p[:, 2:], t[:, 2:]) - np.maximum(p[:, :2], t[:, :2])
    enclose = np.maximum(p[:, 2:], t[:, 2:]) - np.minimum(p[:, :2], t[:, :2])
    union = area(p) + area(t) - np.prod(np.clip(inter, 0, None), axis=1)
    return bool(
        np.all(np.abs(p - t) > margin)
        and np.all(np.abs(inter) > margin)
        and np.all(enclose > margin)
        and np.all(union > 1e-6 + margin)
        and np.all(np.prod(enclose, axis=1) > 1e-6 + margin)
    )


small_boxes = boxes(n=3, lo=0.0, hi=20.0, min_size=0.5, max_size=10.0)


@given(pred=small_boxes, target=small_boxes, k=st.integers(1, 3), seed=seeds)
@example(pred=BOUNDARY_PRED[3:6] + 0.25, target=BOUNDARY_TARGET[3:6], k=3, seed=0)
def test_giou_backward_matches_central_differences(pred, target, k, seed):
    pred, target = pred[:k], target[:k]
    assume(far_from_kinks(pred, target))
    err = check_backward(lambda p: giou_loss_forward(p, target), giou_loss_backward, pred,
                         seed=seed, h=1e-5)
    assert err <= 1e-7


# ---------------------------------------------------------------- identities


@given(pairs=box_pairs())
@example(pairs=(BOUNDARY_PRED, BOUNDARY_TARGET))
@example(pairs=EQUAL_E_U)
def test_giou_loss_lies_in_zero_two_and_giou_is_at_most_iou(pairs):
    pred, target = pairs
    loss, _ = giou_loss_forward(pred, target)
    assert np.all((loss >= 0.0) & (loss <= 2.0))
    iou = bbox_overlaps(pred, target, "iou", is_aligned=True)
    giou = bbox_overlaps(pred, target, "giou", is_aligned=True)
    np.testing.assert_allclose(1.0 - loss, giou, rtol=0, atol=1e-14)
    assert np.all(giou <= iou + 1e-14) and np.all(giou >= -1.0)
    t_iou = t_bbox_overlaps(torch.from_numpy(pred), torch.from_numpy(target), "iou", True)
    t_giou = t_bbox_overlaps(torch.from_numpy(pred), torch.from_numpy(target), "giou", True)
    assert torch.all(t_giou <= t_iou + 1e-14)
    t_loss = giou_loss(torch.from_numpy(pred), torch.from_numpy(target), reduction="none")
    assert torch.all((t_loss >= 0) & (t_loss <= 2))


@given(pairs=box_pairs(), s=finite_floats(0.1, 10.0), shift=st.tuples(
    finite_floats(-100.0, 100.0), finite_floats(-100.0, 100.0)), seed=seeds)
@example(pairs=(SQUARE / 10, SQUARE / 10), s=0.1, shift=(0.0, 0.0), seed=0)  # found
@example(pairs=(np.array([[0.0, 0.0, 1.0, 0.5]]), np.array([[0.0, 1e-99, 1.0, 0.5]])), s=1.0,
         shift=(0.0, 1.0), seed=0)  # found: the shift rounds 1e-99 away, making a tie
def test_giou_is_invariant_to_scaling_and_translating_both_boxes(pairs, s, shift, seed):
    """L(s·p + v, s·t + v) = L(p, t); away from ties the gradient scales by 1/s (eps is
    inactive here: every area is at least 0.25 s² >> 1e-6)."""
    pred, target = pairs
    g = np.random.default_rng(seed).normal(size=pred.shape[0])
    v = np.tile(np.asarray(shift), 2)
    loss, cache = giou_loss_forward(pred, target)
    loss2, cache2 = giou_loss_forward(s * pred + v, s * target + v)
    np.testing.assert_allclose(loss2, loss, rtol=1e-9, atol=1e-9)
    # the gradient jumps at a tie (half to each side), and rounding can make or break one
    assume(far_from_kinks(pred, target))
    d1, d2 = giou_loss_backward(g, cache), giou_loss_backward(g, cache2)
    assert rel_error(d2 * s, d1, floor=grad_floor(g)) <= 1e-7


@given(pairs=box_pairs())
def test_giou_loss_is_symmetric(pairs):
    pred, target = pairs
    np.testing.assert_allclose(giou_loss_forward(pred, target)[0],
                               giou_loss_forward(target, pred)[0], rtol=1e-14, atol=1e-15)


def test_giou_loss_at_decision_boundaries():
    loss, cache = giou_loss_forward(BOUNDARY_PRED, BOUNDARY_TARGET)
    expected = [
        0.0,  # identical
        1.0 - 0.5,  # IoU 1/2, E = U
        1.0,  # touching: IoU 0 and no gap
        1.0 - 100.0 / 400.0,  # contains the target: GIoU = IoU = A_t / A_p
        1.0 - 4.0 / 100.0,  # inside the target: IoU = A_p / A_t
        2.0 - 101.0 / 101.0**2,  # disjoint: 2 - U/E
    ]
    np.testing.assert_allclose(loss, expected, rtol=1e-14, atol=1e-15)
    t_loss = giou_loss(torch.from_numpy(BOUNDARY_PRED), torch.from_numpy(BOUNDARY_TARGET),
                       reduction="none")
    np.testing.assert_allclose(t_loss.numpy(), expected, rtol=1e-14, atol=1e-15)
    # identical boxes: loss 0 and not NaN anywhere in the gradient
    assert np.all(np.isfinite(giou_loss_backward(np.ones(len(loss)), cache)))


@given(b=boxes(n=4))
def test_giou_loss_of_a_box_with_itself_is_zero(b):
    np.testing.assert_allclose(giou_loss_forward(b, b)[0], 0.0, atol=1e-15)
    t = torch.from_numpy(b)
    np.testing.assert_allclose(giou_loss(t, t, reduction="none").numpy(), 0.0, atol=1e-15)


@given(t=boxes(n=1, min_size=1.0), grow=st.tuples(*[finite_floats(0.1, 20.0)] * 4))
def test_giou_of_a_containing_box_is_its_iou(t, grow):
    """pred ⊇ target: E = U = A_p and I = A_t, so the loss is 1 - A_t / A_p."""
    p = t + np.array(grow) * np.array([-1.0, -1.0, 1.0, 1.0])
    loss, _ = giou_loss_forward(p, t)
    np.testing.assert_allclose(loss, 1.0 - area(t) / area(p), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- empty input and torch


def test_giou_empty_input():
    loss, cache = giou_loss_forward(np.zeros((0, 4)), np.zeros((0, 4)))
    assert loss.shape == (0,) and loss.dtype == np.float64
    assert giou_loss_backward(np.zeros(0), cache).shape == (0, 4)
    x = torch.zeros((0, 4), requires_grad=True)
    assert giou_loss(x, torch.zeros(0, 4), reduction="none").shape == (0,)
    out = giou_loss(x, torch.zeros(0, 4))
    out.backward()
    assert out.item() == 0.0 and x.grad.shape == (0, 4)
    assert giou_loss(x, torch.zeros(0, 4), avg_factor=torch.tensor(1.0)).item() == 0.0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_giou_half_inputs_give_a_float32_loss(dtype, device):
    rng = np.random.default_rng(0)
    target = np.round(np.sort(rng.uniform(0, 60, size=(6, 2, 2)), axis=1).reshape(6, 4)) + [
        0, 0, 1, 1]
    pred = target + np.round(rng.uniform(-5, 5, size=(6, 4)))
    x = torch.tensor(pred, dtype=dtype, device=device, requires_grad=True)
    t = torch.tensor(target, dtype=dtype, device=device)
    loss = giou_loss(x, t, reduction="none")
    assert loss.dtype == torch.float32 and loss.device == x.device and loss.shape == (6,)
    loss.sum().backward()
    assert x.grad.dtype == dtype and x.grad.device == x.device
    ref, cache = giou_loss_forward(x.detach().double().cpu().numpy(), t.double().cpu().numpy())
    assert_rel(loss.detach().double().cpu().numpy(), ref, 1e-5, "forward")
    grad_tol = 1e-5 if dtype == torch.float32 else 1e-2
    assert_rel(x.grad.double().cpu().numpy(), giou_loss_backward(np.ones(6), cache), grad_tol)


# ---------------------------------------------------------------- goldens (mmdet 2.28.2)


def test_giou_golden_float64(golden):
    g = golden("giou_loss")
    pred, target, eps = g["pred"], g["target"], float(g["eps"])
    loss, cache = giou_loss_forward(pred, target, eps)
    assert_rel(loss, g["loss"], 1e-12, "reference loss")
    assert_rel(giou_loss_backward(np.ones(len(loss)), cache), g["grad_sum"], 1e-12, "ref grad")
    assert_rel(giou_loss_backward(g["d_out"], cache), g["d_pred"], 1e-12, "reference d_pred")
    t_loss, t_grad = torch_giou(pred, target, g["d_out"], reduction="none", eps=eps)
    assert_rel(t_loss, g["loss"], 1e-12, "torch loss")
    assert_rel(t_grad, g["d_pred"], 1e-12, "torch d_pred")


def test_giou_golden_identical_boxes(golden):
    g = golden("giou_loss")
    b = g["pred_identical"]
    np.testing.assert_allclose(giou_loss_forward(b, b)[0], g["loss_identical"], atol=1e-15)
    t = torch.from_numpy(b)
    np.testing.assert_allclose(giou_loss(t, t, reduction="none").numpy(), g["loss_identical"],
                               atol=1e-15)
