"""Bad input: every public function of the differentiable pieces rejects wrong shapes,
dtypes and ranges with a ValueError that names the argument, what it expected and what
it got. ``reference`` also checks values (ranges, finiteness of loss inputs); ``torch_impl``
checks shapes and dtypes only, and lets NaN propagate as torch's own losses do."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import reference as R
import torch_impl as T

E = re.escape
NAN, INF = float("nan"), float("inf")


def z(*shape, dtype=np.float64):
    return np.zeros(shape, dtype=dtype)


def with_nan(a: np.ndarray, value: float = NAN) -> np.ndarray:
    a = a.astype(np.float64).copy()
    a.flat[0] = value
    return a


def tz(*shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype)


LAB4 = np.array([0, 1, 3, -1])  # for pred (4, 3): two positives (0, 1), two negatives
SCORE4 = np.full(4, 0.5)
DFL_PRED = z(3, 17)
DFL_LABEL = np.array([0.0, 3.5, 15.9])
BOX = np.array([[0.0, 0.0, 2.0, 2.0]] * 3)
PTS = np.ones((3, 2))


def integral_cache(n=10):
    return R.integral_forward(z(n, 68))[1]


# (id, thunk, regex that the message must match)
REFERENCE_CASES = [
    # ---- integral
    ("integral-pred-width", lambda: R.integral_forward(z(10, 64)),
     E("pred must have shape (N, 68) = (N, 4*(reg_max+1)) = (N, 68), got (10, 64)")),
    ("integral-pred-width-reg_max4", lambda: R.integral_forward(z(2, 68), reg_max=4),
     E("pred must have shape (N, 20) = (N, 4*(reg_max+1)) = (N, 20), got (2, 68)")),
    ("integral-pred-1d", lambda: R.integral_forward(z(68)),
     E("pred must have shape (N, 68)") + ".*" + E("got (68,)")),
    ("integral-pred-bool", lambda: R.integral_forward(z(2, 68, dtype=bool)),
     E("pred must be a real (integer or floating) array, got dtype bool")),
    ("integral-pred-complex", lambda: R.integral_forward(z(2, 68, dtype=complex)),
     E("pred must be a real (integer or floating) array, got dtype complex128")),
    ("integral-pred-str", lambda: R.integral_forward(np.full((2, 68), "a")),
     E("pred must be a real (integer or floating) array, got dtype <U1")),
    ("integral-reg_max-0", lambda: R.integral_forward(z(2, 4), reg_max=0),
     E("reg_max must be >= 1, got 0")),
    ("integral-reg_max-float", lambda: R.integral_forward(z(2, 68), reg_max=2.5),
     E("reg_max must be an integer, got 2.5")),
    ("integral-reg_max-str", lambda: R.integral_forward(z(2, 68), reg_max="16"),
     E("reg_max must be an integer, got '16'")),
    ("integral-reg_max-bool", lambda: R.integral_forward(z(2, 8), reg_max=True),
     E("reg_max must be an integer, got True")),
    ("integral-backward-d_out-shape", lambda: R.integral_backward(z(10, 3), integral_cache()),
     E("d_out must have shape (10, 4), got (10, 3)")),
    ("integral-backward-d_out-bool",
     lambda: R.integral_backward(z(10, 4, dtype=bool), integral_cache()),
     E("d_out must be a real (integer or floating) array, got dtype bool")),
    # ---- QFL
    ("qfl-pred-1d", lambda: R.qfl_forward(z(4), LAB4, SCORE4),
     E("pred must have shape (N, C), got (4,)")),
    ("qfl-pred-complex", lambda: R.qfl_forward(z(4, 3, dtype=complex), LAB4, SCORE4),
     E("pred must be a real (integer or floating) array, got dtype complex128")),
    ("qfl-pred-str", lambda: R.qfl_forward(np.full((4, 3), "x"), LAB4, SCORE4),
     E("pred must be a real (integer or floating) array, got dtype <U1")),
    ("qfl-label-float", lambda: R.qfl_forward(z(4, 3), LAB4.astype(float), SCORE4),
     E("label must be an integer array, got dtype float64")),
    ("qfl-label-bool", lambda: R.qfl_forward(z(4, 3), LAB4 > 0, SCORE4),
     E("label must be an integer array, got dtype bool")),
    ("qfl-label-rows", lambda: R.qfl_forward(z(4, 3), LAB4[:3], SCORE4),
     E("label must have shape (N=4,), got (3,)")),
    ("qfl-score-rows", lambda: R.qfl_forward(z(4, 3), LAB4, np.full(5, 0.5)),
     E("score must have shape (N=4,), got (5,)")),
    ("qfl-score-above-1", lambda: R.qfl_forward(z(4, 3), LAB4, np.array([1.5, .5, .5, .5])),
     E("score must lie in [0, 1] at positives, got [1.5]")),
    ("qfl-score-below-0", lambda: R.qfl_forward(z(4, 3), LAB4, np.array([.5, -.1, .5, .5])),
     E("score must lie in [0, 1] at positives, got [-0.1]")),
    ("qfl-pred-nan", lambda: R.qfl_forward(with_nan(z(4, 3)), LAB4, SCORE4),
     E("pred must be finite, got 1 non-finite value(s)")),
    ("qfl-pred-inf", lambda: R.qfl_forward(with_nan(z(4, 3), -INF), LAB4, SCORE4),
     E("pred must be finite, got 1 non-finite value(s)")),
    ("qfl-score-nan", lambda: R.qfl_forward(z(4, 3), LAB4, with_nan(SCORE4)),
     E("score must be finite, got 1 non-finite value(s)")),
    ("qfl-beta-negative", lambda: R.qfl_forward(z(4, 3), LAB4, SCORE4, beta=-1),
     E("beta must be >= 0, got -1")),
    ("qfl-beta-str", lambda: R.qfl_forward(z(4, 3), LAB4, SCORE4, beta="2"),
     E("beta must be a number, got '2'")),
    ("qfl-backward-d_loss-shape",
     lambda: R.qfl_backward(z(3), R.qfl_forward(z(4, 3), LAB4, SCORE4)[1]),
     E("d_loss must have shape (4,), got (3,)")),
    ("qfl-backward-d_loss-2d",
     lambda: R.qfl_backward(z(4, 1), R.qfl_forward(z(4, 3), LAB4, SCORE4)[1]),
     E("d_loss must have shape (4,), got (4, 1)")),
    # ---- DFL
    ("dfl-pred-one-bin", lambda: R.dfl_forward(z(3, 1), z(3)),
     E("pred must have shape (M, n+1) with n >= 1, got (3, 1)")),
    ("dfl-pred-1d", lambda: R.dfl_forward(z(17), z(3)),
     E("pred must have shape (M, *), got (17,)")),
    ("dfl-label-at-n", lambda: R.dfl_forward(DFL_PRED, np.array([0.0, 16.0, 1.0])),
     E("label must lie in [0, n) = [0, 16) for pred with n+1 = 17 bins, got [16.0]")),
    ("dfl-label-negative", lambda: R.dfl_forward(DFL_PRED, np.array([-0.5, 1.0, 1.0])),
     E("label must lie in [0, n) = [0, 16)") + ".*" + E("got [-0.5]")),
    ("dfl-label-above-n", lambda: R.dfl_forward(z(2, 5), np.array([20.0, 4.0])),
     E("label must lie in [0, n) = [0, 4) for pred with n+1 = 5 bins, got [20.0, 4.0]")),
    ("dfl-label-rows", lambda: R.dfl_forward(DFL_PRED, DFL_LABEL[:2]),
     E("label must have shape (3,), got (2,)")),
    ("dfl-label-nan", lambda: R.dfl_forward(DFL_PRED, with_nan(DFL_LABEL)),
     E("label must be finite, got 1 non-finite value(s)")),
    ("dfl-pred-inf", lambda: R.dfl_forward(with_nan(DFL_PRED, INF), DFL_LABEL),
     E("pred must be finite, got 1 non-finite value(s)")),
    ("dfl-label-bool", lambda: R.dfl_forward(DFL_PRED, DFL_LABEL > 1),
     E("label must be a real (integer or floating) array, got dtype bool")),
    ("dfl-pred-complex", lambda: R.dfl_forward(DFL_PRED.astype(complex), DFL_LABEL),
     E("pred must be a real (integer or floating) array, got dtype complex128")),
    ("dfl-backward-d_loss-shape",
     lambda: R.dfl_backward(z(4), R.dfl_forward(DFL_PRED, DFL_LABEL)[1]),
     E("d_loss must have shape (3,), got (4,)")),
    # ---- GIoU
    ("giou-pred-width", lambda: R.giou_loss_forward(z(3, 3), BOX),
     E("pred must have shape (M, 4), got (3, 3)")),
    ("giou-target-rows", lambda: R.giou_loss_forward(BOX, BOX[:2]),
     E("target must have shape (M=3, 4), got (2, 4)")),
    ("giou-target-nan", lambda: R.giou_loss_forward(BOX, with_nan(BOX)),
     E("target must be finite, got 1 non-finite value(s)")),
    ("giou-pred-inf", lambda: R.giou_loss_forward(with_nan(BOX, INF), BOX),
     E("pred must be finite, got 1 non-finite value(s)")),
    ("giou-eps-negative", lambda: R.giou_loss_forward(BOX, BOX, eps=-1),
     E("eps must be >= 0, got -1")),
    ("giou-pred-bool", lambda: R.giou_loss_forward(BOX > 0, BOX),
     E("pred must be a real (integer or floating) array, got dtype bool")),
    ("giou-backward-d_loss-shape",
     lambda: R.giou_loss_backward(z(2), R.giou_loss_forward(BOX, BOX)[1]),
     E("d_loss must have shape (3,), got (2,)")),
    # ---- distance2bbox
    ("d2b-points-width", lambda: R.distance2bbox_forward(z(3, 3), BOX),
     E("points must have shape (M, 2), got (3, 3)")),
    ("d2b-distance-rows", lambda: R.distance2bbox_forward(PTS, BOX[:2]),
     E("distance must have shape (M=3, 4), got (2, 4)")),
    ("d2b-distance-str", lambda: R.distance2bbox_forward(PTS, np.full((3, 4), "1")),
     E("distance must be a real (integer or floating) array, got dtype <U1")),
    ("d2b-max_shape-3", lambda: R.distance2bbox_forward(PTS, BOX, (1, 2, 3)),
     E("max_shape must be (h, w), got (1, 2, 3)")),
    ("d2b-max_shape-str", lambda: R.distance2bbox_forward(PTS, BOX, "ab"),
     E("max_shape must be (h, w), got 'ab'")),
    ("d2b-max_shape-negative", lambda: R.distance2bbox_forward(PTS, BOX, (-1, 5)),
     E("max_shape must be (h, w) with h, w >= 0, got (-1, 5)")),
    ("d2b-backward-d_boxes-shape",
     lambda: R.distance2bbox_backward(z(3, 2), R.distance2bbox_forward(PTS, BOX)[1]),
     E("d_boxes must have shape (3, 4), got (3, 2)")),
    # ---- weight_reduce
    ("reduce-reduction", lambda: R.weight_reduce_forward(z(3), reduction="avg"),
     E("reduction must be one of ('none', 'mean', 'sum'), got 'avg'")),
    ("reduce-avg_factor-with-sum",
     lambda: R.weight_reduce_forward(z(3), reduction="sum", avg_factor=2.0),
     E('avg_factor can not be used with reduction="sum"')),
    ("reduce-avg_factor-zero", lambda: R.weight_reduce_forward(z(3), avg_factor=0),
     E("avg_factor must be > 0, got 0")),
    ("reduce-avg_factor-negative", lambda: R.weight_reduce_forward(z(3), avg_factor=-2.0),
     E("avg_factor must be > 0, got -2.0")),
    ("reduce-avg_factor-str", lambda: R.weight_reduce_forward(z(3), avg_factor="7"),
     E("avg_factor must be a number, got '7'")),
    ("reduce-weight-shape", lambda: R.weight_reduce_forward(z(2), z(3)),
     E("weight must be broadcastable to loss's shape (2,), got (3,)")),
    ("reduce-weight-enlarges", lambda: R.weight_reduce_forward(z(3), z(2, 3)),
     E("weight must be broadcastable to loss's shape (3,), got (2, 3)")),
    ("reduce-loss-bool", lambda: R.weight_reduce_forward(z(3, dtype=bool)),
     E("loss must be a real (integer or floating) array, got dtype bool")),
    ("reduce-loss-nan", lambda: R.weight_reduce_forward(with_nan(z(3))),
     E("loss must be finite, got 1 non-finite value(s)")),
    ("reduce-weight-inf", lambda: R.weight_reduce_forward(z(3), with_nan(z(3), INF)),
     E("weight must be finite, got 1 non-finite value(s)")),
    ("reduce-backward-mean-d_out-shape",
     lambda: R.weight_reduce_backward(z(1), R.weight_reduce_forward(z(3))[1]),
     E("d_out must have shape (), got (1,)")),
    ("reduce-backward-none-d_out-shape",
     lambda: R.weight_reduce_backward(z(2), R.weight_reduce_forward(z(3), reduction="none")[1]),
     E("d_out must have shape (3,), got (2,)")),
    # ---- bbox_overlaps
    ("overlaps-mode", lambda: R.bbox_overlaps(BOX, BOX, mode="diou"),
     E("mode must be one of ('iou', 'giou', 'iof'), got 'diou'")),
    ("overlaps-bboxes1-width", lambda: R.bbox_overlaps(z(3, 5), BOX),
     E("bboxes1 must have shape (M, 4), got (3, 5)")),
    ("overlaps-bboxes2-1d", lambda: R.bbox_overlaps(BOX, z(4)),
     E("bboxes2 must have shape (N, 4), got (4,)")),
    ("overlaps-aligned-rows", lambda: R.bbox_overlaps(BOX, BOX[:2], is_aligned=True),
     E("bboxes2 must have shape (M=3, 4) (is_aligned: as many rows as bboxes1), got (2, 4)")),
    ("overlaps-eps-negative", lambda: R.bbox_overlaps(BOX, BOX, eps=-1e-6),
     E("eps must be >= 0, got -1e-06")),
    ("overlaps-bool", lambda: R.bbox_overlaps(BOX > 0, BOX),
     E("bboxes1 must be a real (integer or floating) array, got dtype bool")),
    # ---- bbox2distance
    ("b2d-points-width", lambda: R.bbox2distance(z(3, 3), BOX),
     E("points must have shape (M, 2), got (3, 3)")),
    ("b2d-bbox-rows", lambda: R.bbox2distance(PTS, BOX[:2]),
     E("bbox must have shape (M=3, 4), got (2, 4)")),
    ("b2d-max_dis-zero", lambda: R.bbox2distance(PTS, BOX, max_dis=0),
     E("max_dis must be > 0, got 0")),
    ("b2d-max_dis-negative", lambda: R.bbox2distance(PTS, BOX, max_dis=-1.0),
     E("max_dis must be > 0, got -1.0")),
    ("b2d-max_dis-str", lambda: R.bbox2distance(PTS, BOX, max_dis="16"),
     E("max_dis must be a number, got '16'")),
    ("b2d-eps-negative", lambda: R.bbox2distance(PTS, BOX, max_dis=16, eps=-0.1),
     E("eps must be >= 0, got -0.1")),
    ("b2d-eps-not-below-max_dis", lambda: R.bbox2distance(PTS, BOX, max_dis=0.05),
     E("eps must be < max_dis = 0.05, got 0.1")),
    ("b2d-points-complex", lambda: R.bbox2distance(PTS.astype(complex), BOX),
     E("points must be a real (integer or floating) array, got dtype complex128")),
]

TL4 = torch.tensor([0, 1, 3, -1])
TS4 = torch.full((4,), 0.5)
TBOX = torch.from_numpy(BOX).float()
TPTS = torch.ones(3, 2)
TDFL = tz(3, 17)
TDFL_LABEL = torch.tensor([0.0, 3.5, 15.9])
FLOAT_MSG = "must be a floating tensor (float16, bfloat16, float32 or float64), got dtype "

TORCH_CASES = [
    # ---- integral / Integral / Scale
    ("integral-pred-width", lambda: T.integral(tz(10, 64)),
     E("pred must have shape (N, 68) = (N, 4*(reg_max+1)) = (N, 68), got (10, 64)")),
    ("integral-pred-int", lambda: T.integral(tz(2, 68, dtype=torch.int64)),
     E("pred " + FLOAT_MSG + "torch.int64")),
    ("integral-pred-bool", lambda: T.integral(tz(2, 68, dtype=torch.bool)),
     E("pred " + FLOAT_MSG + "torch.bool")),
    ("integral-pred-complex", lambda: T.integral(tz(2, 68, dtype=torch.complex64)),
     E("pred " + FLOAT_MSG + "torch.complex64")),
    ("integral-pred-numpy", lambda: T.integral(z(2, 68)),
     E("pred must be a torch.Tensor, got ndarray")),
    ("integral-reg_max-0", lambda: T.integral(tz(2, 4), reg_max=0),
     E("reg_max must be >= 1, got 0")),
    ("Integral-reg_max-0", lambda: T.Integral(reg_max=0), E("reg_max must be >= 1, got 0")),
    ("Integral-pred-width", lambda: T.Integral(4)(tz(2, 68)),
     E("pred must have shape (N, 20) = (N, 4*(reg_max+1)) = (N, 20), got (2, 68)")),
    ("Scale-str", lambda: T.Scale("a"), E("scale must be a number, got 'a'")),
    # ---- quality_focal_loss
    ("qfl-pred-1d", lambda: T.quality_focal_loss(tz(4), TL4, TS4),
     E("pred must have shape (N, C), got (4,)")),
    ("qfl-pred-numpy", lambda: T.quality_focal_loss(z(4, 3), TL4, TS4),
     E("pred must be a torch.Tensor, got ndarray")),
    ("qfl-label-float", lambda: T.quality_focal_loss(tz(4, 3), TL4.float(), TS4),
     E("label must be an integer tensor, got dtype torch.float32")),
    ("qfl-label-bool", lambda: T.quality_focal_loss(tz(4, 3), TL4 > 0, TS4),
     E("label must be an integer tensor, got dtype torch.bool")),
    ("qfl-label-rows", lambda: T.quality_focal_loss(tz(4, 3), TL4[:3], TS4),
     E("label must have shape (N=4,), got (3,)")),
    ("qfl-score-int", lambda: T.quality_focal_loss(tz(4, 3), TL4, TL4),
     E("score " + FLOAT_MSG + "torch.int64")),
    ("qfl-score-rows", lambda: T.quality_focal_loss(tz(4, 3), TL4, TS4[:2]),
     E("score must have shape (N=4,), got (2,)")),
    ("qfl-weight-shape", lambda: T.quality_focal_loss(tz(4, 3), TL4, TS4, weight=tz(5)),
     E("weight must be broadcastable to loss's shape (4,), got (5,)")),
    ("qfl-weight-int", lambda: T.quality_focal_loss(tz(4, 3), TL4, TS4, weight=TL4),
     E("weight " + FLOAT_MSG + "torch.int64")),
    ("qfl-reduction", lambda: T.quality_focal_loss(tz(4, 3), TL4, TS4, reduction="avg"),
     E("reduction must be one of ('none', 'mean', 'sum'), got 'avg'")),
    ("qfl-avg_factor-with-sum",
     lambda: T.quality_focal_loss(tz(4, 3), TL4, TS4, reduction="sum", avg_factor=2.0),
     E('avg_factor can not be used with reduction="sum"')),
    ("qfl-avg_factor-zero", lambda: T.quality_focal_loss(tz(4, 3), TL4, TS4, avg_factor=0),
     E("avg_factor must be > 0, got 0")),
    ("qfl-avg_factor-vector",
     lambda: T.quality_focal_loss(tz(4, 3), TL4, TS4, avg_factor=torch.ones(2)),
     E("avg_factor must be a number or a 0-d real tensor, got a tensor of shape (2,) and "
       "dtype torch.float32")),
    ("qfl-beta-negative", lambda: T.quality_focal_loss(tz(4, 3), TL4, TS4, beta=-1.0),
     E("beta must be >= 0, got -1.0")),
    # ---- distribution_focal_loss
    ("dfl-pred-one-bin", lambda: T.distribution_focal_loss(tz(3, 1), tz(3)),
     E("pred must have shape (M, n+1) with n >= 1, got (3, 1)")),
    ("dfl-pred-1d", lambda: T.distribution_focal_loss(tz(17), tz(3)),
     E("pred must have shape (M, *), got (17,)")),
    ("dfl-label-int", lambda: T.distribution_focal_loss(TDFL, TDFL_LABEL.long()),
     E("label " + FLOAT_MSG + "torch.int64")),
    ("dfl-label-rows", lambda: T.distribution_focal_loss(TDFL, TDFL_LABEL[:2]),
     E("label must have shape (M=3,), got (2,)")),
    ("dfl-weight-list", lambda: T.distribution_focal_loss(TDFL, TDFL_LABEL, weight=[1.0] * 3),
     E("weight must be a torch.Tensor, got list")),
    ("dfl-avg_factor-bool-tensor",
     lambda: T.distribution_focal_loss(TDFL, TDFL_LABEL, avg_factor=torch.tensor(True)),
     E("avg_factor must be a number or a 0-d real tensor, got a tensor of shape () and "
       "dtype torch.bool")),
    # ---- giou_loss
    ("giou-pred-width", lambda: T.giou_loss(tz(3, 3), TBOX),
     E("pred must have shape (M, 4), got (3, 3)")),
    ("giou-target-rows", lambda: T.giou_loss(TBOX, TBOX[:2]),
     E("target must have shape (M=3, 4), got (2, 4)")),
    ("giou-target-int", lambda: T.giou_loss(TBOX, TBOX.long()),
     E("target " + FLOAT_MSG + "torch.int64")),
    ("giou-eps-negative", lambda: T.giou_loss(TBOX, TBOX, eps=-1.0),
     E("eps must be >= 0, got -1.0")),
    ("giou-reduction", lambda: T.giou_loss(TBOX, TBOX, reduction="max"),
     E("reduction must be one of ('none', 'mean', 'sum'), got 'max'")),
    # ---- weight_reduce_loss
    ("reduce-loss-numpy", lambda: T.weight_reduce_loss(z(3)),
     E("loss must be a torch.Tensor, got ndarray")),
    ("reduce-loss-int", lambda: T.weight_reduce_loss(torch.ones(3, dtype=torch.int32)),
     E("loss " + FLOAT_MSG + "torch.int32")),
    ("reduce-reduction", lambda: T.weight_reduce_loss(tz(3), reduction="avg"),
     E("reduction must be one of ('none', 'mean', 'sum'), got 'avg'")),
    ("reduce-avg_factor-with-sum",
     lambda: T.weight_reduce_loss(tz(3), reduction="sum", avg_factor=torch.tensor(2.0)),
     E('avg_factor can not be used with reduction="sum"')),
    ("reduce-avg_factor-negative", lambda: T.weight_reduce_loss(tz(3), avg_factor=-1),
     E("avg_factor must be > 0, got -1")),
    ("reduce-weight-shape", lambda: T.weight_reduce_loss(tz(2), tz(3)),
     E("weight must be broadcastable to loss's shape (2,), got (3,)")),
    # ---- boxes
    ("d2b-points-width", lambda: T.distance2bbox(tz(3, 3), TBOX),
     E("points must have shape (M, 2), got (3, 3)")),
    ("d2b-distance-rows", lambda: T.distance2bbox(TPTS, TBOX[:2]),
     E("distance must have shape (M=3, 4), got (2, 4)")),
    ("d2b-distance-int", lambda: T.distance2bbox(TPTS, TBOX.int()),
     E("distance " + FLOAT_MSG + "torch.int32")),
    ("d2b-max_shape", lambda: T.distance2bbox(TPTS, TBOX, (1, 2, 3)),
     E("max_shape must be (h, w), got (1, 2, 3)")),
    ("b2d-bbox-rows", lambda: T.bbox2distance(TPTS, TBOX[:2]),
     E("bbox must have shape (M=3, 4), got (2, 4)")),
    ("b2d-points-numpy", lambda: T.bbox2distance(PTS, TBOX),
     E("points must be a torch.Tensor, got ndarray")),
    ("b2d-max_dis-zero", lambda: T.bbox2distance(TPTS, TBOX, max_dis=0),
     E("max_dis must be > 0, got 0")),
    ("b2d-eps-not-below-max_dis", lambda: T.bbox2distance(TPTS, TBOX, max_dis=0.1),
     E("eps must be < max_dis = 0.1, got 0.1")),
    ("overlaps-mode", lambda: T.bbox_overlaps(TBOX, TBOX, mode="diou"),
     E("mode must be one of ('iou', 'giou', 'iof'), got 'diou'")),
    ("overlaps-aligned-rows", lambda: T.bbox_overlaps(TBOX, TBOX[:2], is_aligned=True),
     E("bboxes2 must have shape (M=3, 4) (is_aligned: as many rows as bboxes1), got (2, 4)")),
    ("overlaps-bboxes1-int", lambda: T.bbox_overlaps(TBOX.long(), TBOX),
     E("bboxes1 " + FLOAT_MSG + "torch.int64")),
    ("overlaps-eps-negative", lambda: T.bbox_overlaps(TBOX, TBOX, eps=-1.0),
     E("eps must be >= 0, got -1.0")),
]


@pytest.mark.parametrize(("thunk", "message"), [pytest.param(f, m, id=i)
                                                for i, f, m in REFERENCE_CASES])
def test_reference_rejects_bad_input(thunk, message):
    with pytest.raises(ValueError, match=message):
        thunk()


@pytest.mark.parametrize(("thunk", "message"), [pytest.param(f, m, id=i)
                                                for i, f, m in TORCH_CASES])
def test_torch_impl_rejects_bad_shapes_and_dtypes(thunk, message):
    with pytest.raises(ValueError, match=message):
        thunk()


def test_reference_ignores_the_score_of_negatives_when_checking_its_range():
    score = np.array([0.5, 0.5, 7.0, -3.0])  # rows 2 and 3 are negatives (label 3 = C, -1)
    loss, _ = R.qfl_forward(z(4, 3), LAB4, score)
    assert loss.shape == (4,)


def test_dfl_reference_accepts_the_largest_head_target_and_zero():
    loss, _ = R.dfl_forward(z(2, 17), np.array([0.0, 15.9]))
    assert np.all(np.isfinite(loss))
    loss, _ = R.dfl_forward(z(1, 17), np.array([np.nextafter(16.0, 0.0)]))  # just below n
    assert np.all(np.isfinite(loss))


def test_torch_impl_does_not_look_at_values():
    """No host sync on the training path: NaN propagates, out-of-range scores pass."""
    pred = torch.zeros(4, 3)
    pred[0, 0] = NAN
    assert torch.isnan(T.quality_focal_loss(pred, TL4, TS4))
    out = T.quality_focal_loss(tz(4, 3), TL4, torch.tensor([1.5, -0.2, 0.5, 0.5]))
    assert torch.isfinite(out)
    box = TBOX.clone()
    box[0, 0] = NAN
    assert torch.isnan(T.giou_loss(box, TBOX))
    dfl = TDFL.clone()
    dfl[1, 3] = INF
    assert not torch.isfinite(T.distribution_focal_loss(dfl, TDFL_LABEL))
