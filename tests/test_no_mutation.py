"""No function mutates its arguments: every input (and upstream gradient) is copied,
forward and backward are run, and the originals are compared with the copies. Outputs
never alias an input, and a backward can be called twice with the same result (it does
not consume its cache)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

import reference as R
import torch_impl as T
from reference.testing.strategies import (
    box_pairs,
    boxes,
    dfl_inputs,
    integral_inputs,
    max_shapes,
    points_and_distances,
    points_in_boxes,
    qfl_inputs,
    reduce_inputs,
)

seeds = st.integers(0, 2**32 - 1)


def run_reference(forward, backward, args: tuple, kwargs: dict, seed: int) -> None:
    """Forward and backward on ``args``; assert that nothing was written into them."""
    before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    out, cache = forward(*args, **kwargs)
    for a in args:
        if isinstance(a, np.ndarray):
            assert not np.shares_memory(out, a), "the output aliases an input"
    d_out = np.random.default_rng(seed).normal(size=np.shape(out))
    d_out_before = d_out.copy()
    grad = backward(d_out, cache)
    again = backward(d_out, cache)
    np.testing.assert_array_equal(grad, again)  # the cache was not consumed
    assert not np.shares_memory(grad, d_out)
    np.testing.assert_array_equal(d_out, d_out_before)
    for a, b in zip(args, before):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype


def run_torch(fn, args: tuple, kwargs: dict, grad_arg: int | None = 0) -> None:
    """Call ``fn`` on tensors made from ``args`` (and backward when ``grad_arg`` is set)."""
    tensors = [torch.from_numpy(np.array(a, copy=True)) if isinstance(a, np.ndarray) else a
               for a in args]
    if grad_arg is not None:
        tensors[grad_arg].requires_grad_(True)
    before = [t.detach().clone() if isinstance(t, torch.Tensor) else t for t in tensors]
    out = fn(*tensors, **kwargs)
    if grad_arg is not None:
        out.sum().backward()
    for t, b in zip(tensors, before):
        if isinstance(t, torch.Tensor):
            assert torch.equal(t.detach(), b) and t.dtype == b.dtype


@given(inputs=integral_inputs(max_n=2), seed=seeds)
def test_integral_does_not_mutate(inputs, seed):
    pred, reg_max = inputs
    run_reference(R.integral_forward, R.integral_backward, (pred,), {"reg_max": reg_max}, seed)
    run_torch(T.integral, (pred,), {"reg_max": reg_max})


@given(inputs=qfl_inputs(max_n=4, max_c=4), beta=st.sampled_from([0.0, 2.0]), seed=seeds)
def test_qfl_does_not_mutate(inputs, beta, seed):
    pred, label, score = inputs
    run_reference(R.qfl_forward, R.qfl_backward, (pred, label, score), {"beta": beta}, seed)
    weight = np.ones(len(label))
    run_torch(T.quality_focal_loss, (pred, label, score, weight), {"beta": beta})


@given(inputs=dfl_inputs(max_m=3), seed=seeds)
def test_dfl_does_not_mutate(inputs, seed):
    pred, label = inputs
    run_reference(R.dfl_forward, R.dfl_backward, (pred, label), {}, seed)
    run_torch(T.distribution_focal_loss, (pred, label, np.ones(len(label))), {"avg_factor": 2.0})


@given(pairs=box_pairs(), seed=seeds)
def test_giou_does_not_mutate(pairs, seed):
    pred, target = pairs
    run_reference(R.giou_loss_forward, R.giou_loss_backward, (pred, target), {}, seed)
    run_torch(T.giou_loss, (pred, target), {"reduction": "sum"})


@given(pd=points_and_distances(), max_shape=st.one_of(st.none(), max_shapes), seed=seeds)
def test_distance2bbox_does_not_mutate(pd, max_shape, seed):
    points, distance = pd
    run_reference(R.distance2bbox_forward, R.distance2bbox_backward, (points, distance),
                  {"max_shape": max_shape}, seed)
    run_torch(T.distance2bbox, (points, distance), {"max_shape": max_shape}, grad_arg=1)


@given(inputs=reduce_inputs(), seed=seeds)
def test_weight_reduce_does_not_mutate(inputs, seed):
    loss, weight, reduction, avg = inputs
    kwargs = {"weight": weight, "reduction": reduction, "avg_factor": avg}
    run_reference(R.weight_reduce_forward, R.weight_reduce_backward, (loss,), kwargs, seed)
    args = (loss,) if weight is None else (loss, weight)
    run_torch(T.weight_reduce_loss, args, {"reduction": reduction, "avg_factor": avg})


@given(pb=points_in_boxes(), max_dis=st.one_of(st.none(), st.just(16.0)),
       b2=boxes(), mode=st.sampled_from(["iou", "giou", "iof"]))
def test_plain_box_functions_do_not_mutate(pb, max_dis, b2, mode):
    points, bbox = pb
    p0, b0, c0 = points.copy(), bbox.copy(), b2.copy()
    dist = R.bbox2distance(points, bbox, max_dis)
    over = R.bbox_overlaps(bbox, b2, mode)
    aligned = R.bbox_overlaps(bbox, bbox[::-1], mode, is_aligned=True)
    for out in (dist, over, aligned):
        for a in (points, bbox, b2):
            assert not np.shares_memory(out, a)
    np.testing.assert_array_equal(points, p0)
    np.testing.assert_array_equal(bbox, b0)
    np.testing.assert_array_equal(b2, c0)
    run_torch(T.bbox2distance, (points, bbox), {"max_dis": max_dis}, grad_arg=None)
    run_torch(T.bbox_overlaps, (bbox, b2), {"mode": mode}, grad_arg=None)
    run_torch(T.bbox_overlaps, (bbox, bbox[::-1]), {"mode": mode, "is_aligned": True},
              grad_arg=None)
