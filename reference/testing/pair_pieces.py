"""The differentiable pieces the engine knows: inputs, reference pair and identities.

Each identity is a property of the candidate alone (no reference involved), so
that a student sees which mathematical fact their code breaks.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import reference as R
from reference.numerics import bce_with_logits, log_softmax

from . import strategies as S
from .compare import as_array, assert_close, flat
from .engine import Candidate, Property, PropertyFailed
from .in_dialect import dfl_integer_targets
from .pairs import Args, PairSpec, candidate_forward, candidate_gradient

# --- inputs: the strategies of tests/, as named arguments in SPEC's order ----------------


def _named(strategy: st.SearchStrategy, *names: str) -> st.SearchStrategy[Args]:
    return strategy.map(lambda values: dict(zip(names, values)))


# Half the inputs moderate (|x| <= 20), half wide (|x| <= WIDE_LOGIT, past exp's overflow at
# 709): every stability mistake meets its overflow in a few examples.
INTEGRAL = st.one_of(S.integral_inputs(), S.integral_inputs(lo=-S.WIDE_LOGIT, hi=S.WIDE_LOGIT))
INTEGRAL_ARGS = _named(INTEGRAL, "pred", "reg_max")
QFL_ARGS = st.tuples(st.one_of(S.qfl_inputs(), S.wide_qfl_inputs()), S.qfl_betas).map(
    lambda v: {"pred": v[0][0], "label": v[0][1], "score": v[0][2], "beta": v[1]}
)
DFL_ARGS = _named(st.one_of(S.dfl_inputs(), S.dfl_inputs(lo=-S.WIDE_LOGIT, hi=S.WIDE_LOGIT)),
                  "pred", "label")  # fmt: skip
GIOU_ARGS = _named(S.box_pairs(), "pred", "target")
# Half the inputs with coordinates exactly on a clamp bound (where the gradient must pass).
D2B_ARGS = st.one_of(
    st.tuples(S.points_and_distances(), st.one_of(st.none(), S.max_shapes)).map(
        lambda v: {"points": v[0][0], "distance": v[0][1], "max_shape": v[1]}
    ),
    _named(S.clamp_boundary_decodes(), "points", "distance", "max_shape"),
)
REDUCE_ARGS = _named(S.reduce_inputs(), "loss", "weight", "reduction", "avg_factor")


@st.composite
def head_loss_args(draw) -> Args:
    """A small head workload (reg_max 4, up to 2 images and 3 classes), SPEC's argument order."""
    cfg, cls, reg, gtb, gtl, metas = draw(S.head_workloads(max_batch=2, max_classes=3, reg_max=4))
    return {"cls_scores": cls, "bbox_preds": reg, "gt_bboxes": gtb, "gt_labels": gtl,
            "img_metas": metas, "cfg": cfg}  # fmt: skip


# --- identities ----------------------------------------------------------------------------


def integral_sides_in_range(cand: Candidate, args: Args) -> None:
    out, _ = candidate_forward(INTEGRAL_SPEC, cand, args)
    out = np.asarray(flat(out))
    n = args["reg_max"]
    if out.size and not ((out >= -1e-12) & (out <= n + 1e-12)).all():
        raise PropertyFailed(f"an expected distance must lie in [0, reg_max] = [0, {n}]",
                             f"values in [0, {n}]", out)  # fmt: skip


def integral_gradient_sums_to_zero(cand: Candidate, args: Args) -> None:
    """Adding a constant to one side's logits changes nothing, so each side's gradient sums to 0."""
    pred = args["pred"]
    d_out = np.random.default_rng(3).normal(size=(pred.shape[0], 4))
    grad = as_array(candidate_gradient(INTEGRAL_SPEC, cand, args, d_out.reshape(-1))[0], "grad")
    if grad.shape != pred.shape:
        raise PropertyFailed("the gradient must have pred's shape", pred.shape, grad.shape)
    sums = grad.reshape(pred.shape[0], 4, args["reg_max"] + 1).sum(axis=2)  # (N, 4)
    scale = np.abs(grad).max(initial=0.0) + 1.0
    if not np.allclose(sums, 0.0, atol=1e-9 * scale):
        raise PropertyFailed("each side's gradient must sum to zero (softmax is shift-invariant)",
                             np.zeros_like(sums), sums)  # fmt: skip


def qfl_beta0_is_bce(cand: Candidate, args: Args) -> None:
    """With beta = 0 the modulating factor is 1: QFL is BCE summed over the classes."""
    args = dict(args, beta=0.0)
    pred, label, score = args["pred"], args["label"], args["score"]
    c = pred.shape[1]
    target = np.zeros_like(pred)
    pos = (label >= 0) & (label < c)
    target[np.flatnonzero(pos), label[pos]] = score[pos]
    expected = bce_with_logits(pred, target).sum(axis=1)
    got, _ = candidate_forward(QFL_SPEC, cand, args)
    assert_close(expected, got, "QFL with beta = 0 (must be BCE summed over classes)")


def qfl_negative_score_ignored(cand: Candidate, args: Args) -> None:
    """The score of a negative row (label C, -1 or > C) is never read."""
    c = args["pred"].shape[1]
    neg = ~((args["label"] >= 0) & (args["label"] < c))
    other = dict(args, score=np.where(neg, 1.0 - args["score"], args["score"]))
    a, _ = candidate_forward(QFL_SPEC, cand, args)
    b, _ = candidate_forward(QFL_SPEC, cand, other)
    assert_close(a, b, "QFL after changing only the negatives' scores")


def dfl_integer_target_is_cross_entropy(cand: Candidate, args: Args) -> None:
    """A target exactly on bin k puts all weight on k: DFL is -log softmax(pred)[k]."""
    pred = args["pred"]
    k = dfl_integer_targets(args["label"], pred.shape[1] - 1)  # an integer target in [0, n)
    expected = -log_softmax(pred, axis=1)[np.arange(pred.shape[0]), k]
    got, _ = candidate_forward(DFL_SPEC, cand, dict(args, label=k.astype(np.float64)))
    assert_close(expected, got, "DFL at an integer target (must be cross-entropy)")


def giou_of_identical_boxes_is_zero(cand: Candidate, args: Args) -> None:
    got, _ = candidate_forward(GIOU_SPEC, cand, dict(args, pred=args["target"]))
    assert_close(np.zeros(args["target"].shape[0]), got, "the GIoU loss of a box with itself",
                 atol=1e-9)  # fmt: skip


def d2b_width_is_left_plus_right(cand: Candidate, args: Args) -> None:
    """Without a clamp, a decoded box is ``l + r`` wide and ``t + b`` high."""
    args = dict(args, max_shape=None)
    boxes, _ = candidate_forward(D2B_SPEC, cand, args)
    boxes = np.asarray(flat(boxes)).reshape(-1, 4)
    d = args["distance"]
    got = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
    assert_close(np.stack([d[:, 0] + d[:, 2], d[:, 1] + d[:, 3]], axis=1), got,
                 "(width, height) of the decoded boxes")  # fmt: skip


def _reduce_args(loss: np.ndarray, weight: np.ndarray | None, reduction: str) -> Args:
    return {"loss": loss, "weight": weight, "reduction": reduction, "avg_factor": None}


def reduce_sum_is_mean_times_count(cand: Candidate, args: Args) -> None:
    loss, weight = args["loss"], args["weight"]
    total, _ = candidate_forward(REDUCE_SPEC, cand, _reduce_args(loss, weight, "sum"))
    mean, _ = candidate_forward(REDUCE_SPEC, cand, _reduce_args(loss, weight, "mean"))
    count = max(loss.size, 1)
    expected = float(np.asarray(flat(mean))[0]) * count if loss.size else 0.0
    what = "the 'sum' reduction (must be the 'mean' times the number of elements)"
    assert_close(np.asarray(expected), np.asarray(flat(total)).reshape(()), what)


def reduce_mean_with_avg_factor_is_sum_over_it(cand: Candidate, args: Args) -> None:
    """With ``avg_factor`` a, ``"mean"`` is the weighted sum divided by a (not by the count)."""
    loss, weight = args["loss"], args["weight"]
    a = args["avg_factor"] if args["avg_factor"] is not None else 2.5
    eps = cand.dialect.avg_factor_eps  # mmdetection 3.x divides by avg_factor + eps
    total, _ = candidate_forward(REDUCE_SPEC, cand, _reduce_args(loss, weight, "sum"))
    mean, _ = candidate_forward(REDUCE_SPEC, cand, dict(_reduce_args(loss, weight, "mean"),
                                                        avg_factor=a))  # fmt: skip
    what = f"the 'mean' reduction with avg_factor={a!r} (must be the 'sum' divided by it"
    what += f" + {eps!r})" if eps else ")"
    assert_close(np.asarray(float(np.asarray(flat(total))[0]) / (a + eps)),
                 np.asarray(flat(mean)).reshape(()), what)  # fmt: skip


def head_box_gradient_sums_to_zero(cand: Candidate, args: Args) -> None:
    """Each side's distribution logits enter only through a softmax: their gradients sum to 0."""
    cfg = args["cfg"]
    d_out = np.array([1.0, 1.0, 1.0])
    _, d_reg = candidate_gradient(HEAD_LOSS_SPEC, cand, args, d_out)
    for lvl, g in enumerate(d_reg):
        g = np.asarray(g)
        b, _, h, w = g.shape
        sums = g.reshape(b, 4, cfg.reg_max + 1, h, w).sum(axis=2)  # (B, 4, H, W)
        if not np.allclose(sums, 0.0, atol=1e-9 * (np.abs(g).max(initial=0.0) + 1.0)):
            raise PropertyFailed(f"bbox_preds[{lvl}]: each side's gradient must sum to zero",
                                 np.zeros_like(sums), sums)  # fmt: skip


# --- the specs ----------------------------------------------------------------------------


def _loss_vector(out: Any) -> Any:
    """The head's dict of three losses as one vector (cls, bbox, dfl), tensors kept."""
    if not isinstance(out, dict):
        raise PropertyFailed(f"the forward must return a dict of losses, got {type(out).__name__}")
    missing = {"loss_cls", "loss_bbox", "loss_dfl"} - set(out)
    if missing:
        raise PropertyFailed(f"the losses dict lacks {sorted(missing)}")
    values = [out[k] for k in ("loss_cls", "loss_bbox", "loss_dfl")]
    if any(hasattr(v, "detach") for v in values):
        import torch

        return torch.stack([torch.as_tensor(v).reshape(()) for v in values])
    return np.array([float(v) for v in values])


INTEGRAL_SPEC = PairSpec(
    "integral", INTEGRAL_ARGS, R.integral_forward, R.integral_backward, ("pred",)
)
QFL_SPEC = PairSpec("qfl", QFL_ARGS, R.qfl_forward, R.qfl_backward, ("pred",))
DFL_SPEC = PairSpec("dfl", DFL_ARGS, R.dfl_forward, R.dfl_backward, ("pred",))
GIOU_SPEC = PairSpec(
    "giou_loss", GIOU_ARGS, R.giou_loss_forward, R.giou_loss_backward, ("pred",)
)
D2B_SPEC = PairSpec(
    "distance2bbox", D2B_ARGS, R.distance2bbox_forward, R.distance2bbox_backward, ("distance",)
)
REDUCE_SPEC = PairSpec(
    "weight_reduce", REDUCE_ARGS, R.weight_reduce_forward, R.weight_reduce_backward, ("loss",)
)
# The head: loss_cls is differentiated w.r.t. the class logits only, the box losses w.r.t.
# the box logits only (the weights and the IoU target are detached), so the finite
# differences move one block at a time.
HEAD_LOSS_SPEC = PairSpec(
    "gfl_loss", head_loss_args(), R.gfl_loss_forward, R.gfl_loss_backward,
    ("cls_scores", "bbox_preds"),
    forward_out=_loss_vector,
    backward_call=lambda b, d, cache: list(b(cache, *[float(x) for x in np.reshape(d, -1)])),
    max_examples=8,
    fd_blocks=((np.array([1.0, 0.0, 0.0]), (0,)), (np.array([0.0, 1.0, 1.0]), (1,))),
)  # fmt: skip

_IDENTITIES = [
    (INTEGRAL_SPEC, [("each expected distance lies in [0, reg_max]", integral_sides_in_range),
                     ("each side's gradient sums to zero", integral_gradient_sums_to_zero)]),
    (QFL_SPEC, [("beta = 0 gives BCE summed over the classes", qfl_beta0_is_bce),
                ("the score of a negative is ignored", qfl_negative_score_ignored)]),
    (DFL_SPEC, [("an integer target gives cross-entropy", dfl_integer_target_is_cross_entropy)]),
    (GIOU_SPEC, [("a box against itself has loss 0", giou_of_identical_boxes_is_zero)]),
    (D2B_SPEC, [("a decoded box is l + r wide and t + b high", d2b_width_is_left_plus_right)]),
    (REDUCE_SPEC, [("'sum' is 'mean' times the count", reduce_sum_is_mean_times_count),
                   ("'mean' with an avg_factor is 'sum' divided by it",
                    reduce_mean_with_avg_factor_is_sum_over_it)]),
    (HEAD_LOSS_SPEC, [("each side's box-logit gradients sum to zero",
                       head_box_gradient_sums_to_zero)]),
]  # fmt: skip

#: The differentiable pieces by name, each with its identities.
PAIR_SPECS: dict[str, PairSpec] = {
    spec.name: replace(
        spec,
        identities=tuple(Property(n, spec.inputs, f, spec.max_examples) for n, f in ids),
    )
    for spec, ids in _IDENTITIES
}
