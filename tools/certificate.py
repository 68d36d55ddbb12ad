"""The three-way certificate of every differentiable piece (``make check``).

For each piece, on seeded random float64 inputs, it prints:

* ``|np-torch| out`` / ``|np-torch| grad``: the largest absolute difference
  between the NumPy reference and torch_impl, for the output and for the
  gradient (hand backward vs autograd, same random upstream gradient);
* ``FD rel``: :func:`reference.gradcheck.rel_error` of the hand backward
  against central differences;
* ``identities``: closed-form identities that must hold.

A row passes when the differences are ≤ 1e-10, ``FD rel`` ≤ 1e-7 and every
identity holds. The script exits non-zero if any row fails.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import reference as R
import torch_impl as T
from reference.gradcheck import numerical_vjp, rel_error
from reference.numerics import bce_with_logits, log_softmax, sigmoid

TOL_AGREE = 1e-10
TOL_FD = 1e-7


@dataclass
class Row:
    name: str
    out_diff: float
    grad_diff: float
    fd_rel: float
    identities: list[tuple[str, bool]]

    @property
    def ok(self) -> bool:
        return (
            self.out_diff <= TOL_AGREE
            and self.grad_diff <= TOL_AGREE
            and self.fd_rel <= TOL_FD
            and all(ok for _, ok in self.identities)
        )


def three_way(
    name: str,
    np_fwd: Callable[[np.ndarray], tuple[np.ndarray, object]],
    np_bwd: Callable[[np.ndarray, object], np.ndarray],
    torch_fn: Callable[[torch.Tensor], torch.Tensor],
    x: np.ndarray,
    identities: list[tuple[str, bool]],
    seed: int,
) -> Row:
    out, cache = np_fwd(x)
    d_out = np.random.default_rng(seed).normal(size=np.shape(out))
    grad = np_bwd(d_out, cache)
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch_fn(xt)
    out_t.backward(torch.tensor(d_out))
    out_diff = float(np.max(np.abs(out - out_t.detach().numpy()), initial=0.0))
    grad_diff = float(np.max(np.abs(grad - xt.grad.numpy()), initial=0.0))
    fd = rel_error(grad, numerical_vjp(lambda p: np_fwd(p)[0], x, d_out))
    return Row(name, out_diff, grad_diff, fd, identities)


def integral_row(rng: np.random.Generator, n: int) -> Row:
    """The Integral: shift-invariant (softmax), and the expectation lies in [0, n]."""
    pred = rng.normal(scale=2.0, size=(6, 4 * (n + 1)))
    out, _ = R.integral_forward(pred)
    shifted, _ = R.integral_forward(pred + np.repeat(rng.normal(size=(6, 4)), n + 1, axis=1))
    return three_way(
        "integral",
        R.integral_forward,
        R.integral_backward,
        T.integral,
        pred,
        [
            ("shift-invariant", np.allclose(out, shifted, atol=1e-12)),
            ("in [0, n]", bool(np.all((out >= 0) & (out <= n)))),
        ],
        1,
    )


def qfl_row(rng: np.random.Generator) -> Row:
    """QFL: beta = 0 is BCE, a score of 0 is a negative, the loss is non-negative."""
    c = 5
    pred = rng.normal(scale=3.0, size=(12, c))
    label = rng.integers(-1, c + 2, size=12)
    label[:3] = [0, 2, 4]
    score = rng.uniform(size=12)
    score[2] = 0.0
    loss, _ = R.qfl_forward(pred, label, score)
    loss_b0, _ = R.qfl_forward(pred, label, score, beta=0.0)
    target = np.zeros_like(pred)
    pos = (label >= 0) & (label < c)
    target[np.flatnonzero(pos), label[pos]] = score[pos]
    neg_row, _ = R.qfl_forward(pred[2:3], np.array([c]), np.array([0.0]))
    return three_way(
        "quality_focal_loss",
        lambda p: R.qfl_forward(p, label, score),
        R.qfl_backward,
        lambda p: T.quality_focal_loss(
            p, torch.tensor(label), torch.tensor(score), reduction="none"
        ),
        pred,
        [
            (
                "beta=0 is BCE",
                np.allclose(loss_b0, bce_with_logits(pred, target).sum(1), atol=1e-12),
            ),
            ("score 0 = negative", np.allclose(loss[2], neg_row[0], atol=1e-12)),
            ("loss >= 0", bool(np.all(loss >= 0))),
        ],
        2,
    )


def dfl_row(rng: np.random.Generator, n: int) -> Row:
    """DFL: an integer target is the cross-entropy of that bin."""
    pred = rng.normal(scale=2.0, size=(8, n + 1))
    label = np.array([0.0, 3.0, 7.0, n - 0.1, 0.5, 12.25, 15.0, 0.001])
    loss, _ = R.dfl_forward(pred, label)
    ints = label == np.floor(label)
    ce = -log_softmax(pred, axis=1)[np.arange(8), label.astype(int)]
    return three_way(
        "distribution_focal_loss",
        lambda p: R.dfl_forward(p, label),
        R.dfl_backward,
        lambda p: T.distribution_focal_loss(p, torch.tensor(label), reduction="none"),
        pred,
        [("integer target is CE", np.allclose(loss[ints], ce[ints], atol=1e-12))],
        3,
    )


def giou_row(rng: np.random.Generator) -> Row:
    """GIoU loss: GIoU <= IoU, the loss in [0, 2], identical boxes give 0."""
    target = np.concatenate([rng.uniform(0, 50, (8, 2)), np.zeros((8, 2))], 1)
    target[:, 2:] = target[:, :2] + rng.uniform(5, 40, (8, 2))
    pred = target + rng.normal(scale=6.0, size=(8, 4))
    pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1.0)
    loss, _ = R.giou_loss_forward(pred, target)
    iou = R.bbox_overlaps(pred, target, "iou", is_aligned=True)
    giou = R.bbox_overlaps(pred, target, "giou", is_aligned=True)
    same, _ = R.giou_loss_forward(target, target)
    return three_way(
        "giou_loss",
        lambda p: R.giou_loss_forward(p, target),
        R.giou_loss_backward,
        lambda p: T.giou_loss(p, torch.tensor(target), reduction="none"),
        pred,
        [
            ("GIoU <= IoU", bool(np.all(giou <= iou + 1e-15))),
            ("loss in [0, 2]", bool(np.all((loss >= 0) & (loss <= 2)))),
            ("identical boxes: 0", np.allclose(same, 0.0, atol=1e-12)),
        ],
        4,
    )


def distance2bbox_row(rng: np.random.Generator) -> Row:
    """distance2bbox (with the clamp): the inverse of bbox2distance."""
    points = rng.uniform(0, 60, (8, 2))
    dist = rng.uniform(0.5, 30, (8, 4))
    max_shape = (50, 60)
    boxes_in = np.concatenate(
        [points - rng.uniform(1, 5, (8, 2)), points + rng.uniform(1, 5, (8, 2))], 1
    )
    back, _ = R.distance2bbox_forward(points, R.bbox2distance(points, boxes_in))
    return three_way(
        "distance2bbox",
        lambda d: R.distance2bbox_forward(points, d, max_shape),
        R.distance2bbox_backward,
        lambda d: T.distance2bbox(torch.tensor(points), d, max_shape),
        dist,
        [("inverse of bbox2distance", np.allclose(back, boxes_in, atol=1e-12))],
        5,
    )


def weight_reduce_row(rng: np.random.Generator) -> Row:
    """weight_reduce ("mean" with avg_factor): mean = sum / avg_factor; an empty mean is 0."""
    loss = rng.uniform(0, 3, size=10)
    weight = rng.uniform(size=10)
    total, _ = R.weight_reduce_forward(loss, weight, "sum")
    mean, _ = R.weight_reduce_forward(loss, weight, "mean", avg_factor=7.0)
    return three_way(
        "weight_reduce (mean, avg_factor)",
        lambda l: R.weight_reduce_forward(l, weight, "mean", 7.0),
        R.weight_reduce_backward,
        lambda l: T.weight_reduce_loss(l, torch.tensor(weight), "mean", 7.0),
        loss,
        [
            ("mean = sum / avg_factor", np.isclose(mean, total / 7.0, rtol=1e-14)),
            ("empty mean is 0", float(R.weight_reduce_forward(np.zeros(0))[0]) == 0.0),
        ],
        6,
    )


def check_numerics() -> None:
    """Sanity of the numerics the losses rest on: finite sigmoid and BCE at huge logits."""
    big = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    assert np.all(np.isfinite(sigmoid(big))) and np.all(np.isfinite(bce_with_logits(big, 0.5)))


def rows() -> list[Row]:
    """Every piece's row, in order, from one seeded generator (the draws are sequential)."""
    rng = np.random.default_rng(2020)
    n = 16  # reg_max
    result = [
        integral_row(rng, n),
        qfl_row(rng),
        dfl_row(rng, n),
        giou_row(rng),
        distance2bbox_row(rng),
        weight_reduce_row(rng),
    ]
    check_numerics()
    return result


def main() -> int:
    table = rows()
    head = f"{'piece':34} {'|np-torch| out':>15} {'|np-torch| grad':>16} {'FD rel':>10}  identities"
    print(head)
    print("-" * len(head) + "-" * 30)
    for r in table:
        ids = ", ".join(f"{n} {'✓' if ok else '✗'}" for n, ok in r.identities)
        mark = "PASS" if r.ok else "FAIL"
        print(
            f"{r.name:34} {r.out_diff:15.2e} {r.grad_diff:16.2e} {r.fd_rel:10.2e}  {ids}  [{mark}]"
        )
    failed = [r.name for r in table if not r.ok]
    print()
    print(f"thresholds: |np-torch| <= {TOL_AGREE:g}, FD rel <= {TOL_FD:g}")
    if failed:
        print("FAILED: " + ", ".join(failed))
        return 1
    print(f"all {len(table)} pieces pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
