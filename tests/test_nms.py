"""NMS, batched NMS and multiclass NMS: a loop reference, properties, NumPy == torch, goldens;
the fast path (``reference.nms_fast``) == the textbook reference (``reference.nms``)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import reference as R
import torch_impl as T
from reference.nms_fast import batched_nms_fast, multiclass_nms_fast, nms_fast
from reference.testing.strategies import multiclass_problems, nms_boundary_problems, nms_problems

F = importlib.import_module("reference.nms_fast")  # the module, for monkeypatching
FAST = {"nms": nms_fast, "batched_nms": batched_nms_fast, "multiclass_nms": multiclass_nms_fast}

# --- a tiny, obvious loop reference --------------------------------------------------------


def precision(boxes):
    return np.float32 if boxes.dtype in (np.float16, np.float32) else np.float64


def iou_table(boxes, dt):
    """mmcv's IoU of every pair, elementwise in precision ``dt`` (same operations, same order)."""
    b = boxes.astype(dt)
    p, q = b[:, None, :], b[None, :, :]  # (N, 1, 4), (1, N, 4)
    w = np.maximum(np.minimum(p[..., 2], q[..., 2]) - np.maximum(p[..., 0], q[..., 0]), dt(0))
    h = np.maximum(np.minimum(p[..., 3], q[..., 3]) - np.maximum(p[..., 1], q[..., 1]), dt(0))
    inter = w * h  # (N, N)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # (N,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / ((area[:, None] + area[None, :]) - inter)  # (N, N)


def loop_nms(boxes, scores, thr, groups=None):
    """Greedy NMS, one box at a time: keep a box unless a kept one (same group) has IoU > thr."""
    dt = precision(boxes)
    iou = iou_table(boxes, dt).tolist()  # exact values of dtype dt, as Python floats
    t = float(dt(thr))
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    keep = []
    for i in order:
        rivals = [j for j in keep if groups is None or groups[j] == groups[i]]
        if not any(iou[j][i] > t for j in rivals):  # NaN > t is False
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def loop_multiclass(multi_bboxes, multi_scores, score_thr, thr, max_num):
    """Candidates (n, c) with score > thr in row-major order, NMS per class, merge, cut."""
    n, c = multi_scores.shape[0], multi_scores.shape[1] - 1
    cands = [
        (i, k)
        for i in range(n)
        for k in range(c)
        if multi_scores[i, k] > multi_scores.dtype.type(score_thr)
    ]
    if multi_bboxes.shape[1] == 4:
        boxes = np.array([multi_bboxes[i] for i, _ in cands]).reshape(-1, 4)
    else:
        boxes = np.array([multi_bboxes[i, 4 * k : 4 * k + 4] for i, k in cands]).reshape(-1, 4)
    boxes = boxes.astype(multi_bboxes.dtype)
    scores = np.array([multi_scores[i, k] for i, k in cands], dtype=multi_scores.dtype)
    labels = np.array([k for _, k in cands], dtype=np.int64)
    keep = loop_nms(boxes, scores, thr, labels)
    if max_num > 0:
        keep = keep[:max_num]
    return boxes[keep].astype(np.float64), scores[keep].astype(np.float64), labels[keep]


def as_t(*xs):
    return [torch.from_numpy(np.ascontiguousarray(x)) for x in xs]


# --- nms -----------------------------------------------------------------------------------


@given(nms_problems())
@example(
    (
        np.array([[0, 0, 10, 10], [0, 0, 6, 10]], np.float32),
        np.array([0.9, 0.8], np.float32),
        np.zeros(2, np.int64),
        0.6,
    )
).via("IoU exactly 0.6 keeps both")
def test_nms_matches_loop_and_torch(problem):
    boxes, scores, _, thr = problem
    keep = R.nms(boxes, scores, thr)
    np.testing.assert_array_equal(keep, loop_nms(boxes, scores, thr))
    assert keep.dtype == np.int64
    tb, ts = as_t(boxes, scores)
    np.testing.assert_array_equal(T.nms(tb, ts, thr).numpy(), keep)


@given(nms_problems())
def test_nms_properties(problem):
    boxes, scores, _, thr = problem
    dt = precision(boxes)
    keep = R.nms(boxes, scores, thr)
    over = iou_table(boxes, dt) > dt(thr)  # (N, N); NaN compares False
    np.fill_diagonal(over, False)
    # kept boxes overlap pairwise by at most the threshold (or not at all: NaN)
    assert not over[np.ix_(keep, keep)].any()
    # by descending score, ties by lower index
    s = scores[keep].astype(np.float64)
    assert np.all(s[:-1] >= s[1:])
    assert all(keep[i] < keep[i + 1] for i in range(len(keep) - 1) if s[i] == s[i + 1])
    # every suppressed box has a kept box ranked before it that suppresses it
    for i in set(range(len(scores))) - set(keep.tolist()):
        assert any(over[j, i] and (scores[j], -j) > (scores[i], -i) for j in keep)
    # idempotent: NMS of the output is the output
    np.testing.assert_array_equal(R.nms(boxes[keep], scores[keep], thr), np.arange(len(keep)))


@given(
    st.integers(-6, 6),
    st.integers(-50, 50),
    st.integers(-50, 50),
    st.sampled_from([np.float32, np.float64]),
    st.booleans(),
)
def test_nms_exact_threshold_pair(log_scale, x, y, dtype, swap):
    """IoU exactly 0.6 (60 a^2 / 100 a^2, exact in binary) is not > 0.6: both kept;
    just below the threshold it is: the second one goes."""
    a = 2.0**log_scale
    boxes = np.array([[x, y, x + 10 * a, y + 10 * a], [x, y, x + 6 * a, y + 10 * a]], dtype)
    if swap:
        boxes = boxes[::-1].copy()
    scores = np.array([0.9, 0.8], dtype)
    for impl in (R.nms, lambda b, s, t: T.nms(*as_t(b, s), t).numpy()):
        np.testing.assert_array_equal(impl(boxes, scores, 0.6), [0, 1])
        below = float(np.nextafter(dtype(0.6), dtype(0)))
        np.testing.assert_array_equal(impl(boxes, scores, below), [0])


@given(st.integers(1, 12), st.sampled_from([np.float32, np.float64]))
def test_nms_equal_scores_keep_lower_index_first(n, dtype):
    boxes = np.array([[3.0 * i, 0, 3.0 * i + 2, 2] for i in range(n)], dtype)  # disjoint
    scores = np.full(n, 0.5, dtype)
    np.testing.assert_array_equal(R.nms(boxes, scores, 0.5), np.arange(n))
    np.testing.assert_array_equal(T.nms(*as_t(boxes, scores), 0.5).numpy(), np.arange(n))
    same = np.repeat(boxes[:1], n, axis=0)  # identical boxes: the lowest index survives
    np.testing.assert_array_equal(R.nms(same, scores, 0.5), [0])
    np.testing.assert_array_equal(T.nms(*as_t(same, scores), 0.5).numpy(), [0])


def test_nms_long_suppression_chain():
    """A chain where each box suppresses only the next: greedy keeps every other one.
    Longer than the Cluster-NMS iteration cap, so the fast path's fallback runs too."""
    n = 101
    boxes = np.array(
        [[i, 0.0, i + 10, 10] for i in range(n)]
    )  # IoU(i, i+1) = 0.818, (i, i+2) = 0.667
    scores = np.linspace(1, 0, n)
    keep = R.nms(boxes, scores, 0.7)
    np.testing.assert_array_equal(keep, np.arange(0, n, 2))
    np.testing.assert_array_equal(keep, loop_nms(boxes, scores, 0.7))
    assert n - 1 > F.MAX_CLUSTER_ITERS
    np.testing.assert_array_equal(nms_fast(boxes, scores, 0.7), keep)
    np.testing.assert_array_equal(T.nms(*as_t(boxes, scores), 0.7).numpy(), keep)


def test_nms_blocks_and_chunks(monkeypatch):
    """Small torch blocks (cross-block suppression) and small fast-path pair chunks give the
    same result as the loop reference."""
    tn = importlib.import_module("torch_impl.nms")  # the module (the package exports a function)
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 60, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 30, (300, 2))], 1).astype(np.float32)
    scores = rng.random(300).astype(np.float32)
    groups = rng.integers(0, 5, 300)
    expected = loop_nms(boxes, scores, 0.5)
    expected_b = loop_nms(boxes, scores, 0.5, groups)
    for block in (7, 64, 1000):
        monkeypatch.setattr(tn, "CPU_BLOCK", block)
        monkeypatch.setattr(F, "_PAIR_CHUNK", block)
        np.testing.assert_array_equal(R.nms(boxes, scores, 0.5), expected)
        np.testing.assert_array_equal(R.batched_nms(boxes, scores, groups, 0.5)[1], expected_b)
        np.testing.assert_array_equal(nms_fast(boxes, scores, 0.5), expected)
        np.testing.assert_array_equal(batched_nms_fast(boxes, scores, groups, 0.5)[1], expected_b)
        np.testing.assert_array_equal(T.nms(*as_t(boxes, scores), 0.5).numpy(), expected)
        _, keep = T.batched_nms(*as_t(boxes, scores, groups), 0.5)
        np.testing.assert_array_equal(keep.numpy(), expected_b)


# --- batched_nms ---------------------------------------------------------------------------


@given(nms_problems(), st.booleans())
def test_batched_nms_matches_loop_and_torch(problem, agnostic):
    boxes, scores, idxs, thr = problem
    dets, keep = R.batched_nms(boxes, scores, idxs, thr, class_agnostic=agnostic)
    np.testing.assert_array_equal(keep, loop_nms(boxes, scores, thr, None if agnostic else idxs))
    assert dets.shape == (len(keep), 5) and dets.dtype == np.float64
    np.testing.assert_array_equal(dets[:, :4], boxes[keep].astype(np.float64))
    np.testing.assert_array_equal(dets[:, 4], scores[keep].astype(np.float64))
    tdets, tkeep = T.batched_nms(*as_t(boxes, scores, idxs), thr, class_agnostic=agnostic)
    np.testing.assert_array_equal(tkeep.numpy(), keep)
    np.testing.assert_array_equal(tdets.double().numpy(), dets)
    assert tdets.dtype == torch.from_numpy(boxes).dtype
    # within a group, kept boxes overlap by at most the threshold
    dt = precision(boxes)
    over = (iou_table(boxes, dt) > dt(thr))[np.ix_(keep, keep)]  # (K, K)
    np.fill_diagonal(over, False)
    same = np.ones_like(over) if agnostic else idxs[keep][:, None] == idxs[keep][None, :]
    assert not (over & same).any()


# --- multiclass_nms ------------------------------------------------------------------------


@given(multiclass_problems())
def test_multiclass_matches_loop_and_torch(problem):
    multi_bboxes, multi_scores, score_thr, thr, max_num = problem
    dets, labels = R.multiclass_nms(multi_bboxes, multi_scores, score_thr, thr, max_num)
    boxes, scores, exp_labels = loop_multiclass(multi_bboxes, multi_scores, score_thr, thr, max_num)
    np.testing.assert_array_equal(labels, exp_labels)
    np.testing.assert_array_equal(dets[:, :4], boxes)
    np.testing.assert_array_equal(dets[:, 4], scores)
    assert dets.shape == (len(labels), 5) and labels.dtype == np.int64
    # strict score threshold, background column never used, sorted, max_num
    c = multi_scores.shape[1] - 1
    assert np.all(dets[:, 4] > multi_scores.dtype.type(score_thr))
    assert np.all((labels >= 0) & (labels < c))
    assert np.all(dets[:-1, 4] >= dets[1:, 4])
    if max_num > 0:
        assert len(labels) <= max_num
    tdets, tlabels = T.multiclass_nms(*as_t(multi_bboxes, multi_scores), score_thr, thr, max_num)
    np.testing.assert_array_equal(tlabels.numpy(), labels)
    np.testing.assert_array_equal(tdets.double().numpy(), dets)


def test_multiclass_ignores_background_and_is_strict():
    boxes = np.array([[0.0, 0, 10, 10], [20.0, 20, 30, 30]], np.float32)
    scores = np.array([[0.05, 0.3, 0.99], [0.06, 0.05, 0.99]], np.float32)  # last: background
    for impl in ("ref", "torch"):
        if impl == "ref":
            dets, labels = R.multiclass_nms(boxes, scores, 0.05, 0.5)
        else:
            dets, labels = (x.numpy() for x in T.multiclass_nms(*as_t(boxes, scores), 0.05, 0.5))
        np.testing.assert_array_equal(labels, [1, 0])  # 0.3 (box 0, class 1), 0.06 (box 1, class 0)
        np.testing.assert_allclose(dets[:, 4], [0.3, 0.06], rtol=1e-7)


def test_multiclass_max_num_and_ties():
    boxes = np.array([[4.0 * i, 0, 4.0 * i + 2, 2] for i in range(6)])
    scores = np.concatenate([np.full((6, 2), 0.5), np.zeros((6, 1))], axis=1)  # all tied
    dets, labels = R.multiclass_nms(boxes, scores, 0.1, 0.5, max_num=5)
    # ties go by the flattened (box, class) index: box 0 class 0, box 0 class 1, box 1 class 0...
    np.testing.assert_array_equal(labels, [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(dets[:, 0], [0, 0, 4, 4, 8])
    tdets, tlabels = T.multiclass_nms(*as_t(boxes, scores), 0.1, 0.5, max_num=5)
    np.testing.assert_array_equal(tlabels.numpy(), labels)
    np.testing.assert_array_equal(tdets.numpy(), dets)


# --- the fast path (reference.nms_fast) equals the textbook (reference.nms) -----------------


def assert_same(got, expected):
    """Bit for bit: values, shape and dtype."""
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@given(nms_boundary_problems(dtypes=(np.float16, np.float32, np.float64)), st.booleans())
@example(
    (
        np.array([[0, 0, 10, 10], [0, 0, 6, 10], [5, 5, 5, 5], [5, 5, 5, 5]], np.float32),
        np.array([0.5, 0.5, 0.9, 0.9], np.float32),
        np.array([0, 0, 1, 1]),
        0.6,
    ),
    False,
).via("IoU exactly 0.6, tied scores, two identical zero-area boxes (NaN IoU)")
@example(
    (np.zeros((0, 4), np.float64), np.zeros(0, np.float64), np.zeros(0, np.int64), 0.5), True
).via("empty")
def test_fast_nms_equals_textbook(problem, agnostic):
    boxes, scores, idxs, thr = problem
    assert_same(nms_fast(boxes, scores, thr), R.nms(boxes, scores, thr))
    dets, keep = R.batched_nms(boxes, scores, idxs, thr, class_agnostic=agnostic)
    fdets, fkeep = batched_nms_fast(boxes, scores, idxs, thr, class_agnostic=agnostic)
    assert_same(fkeep, keep)
    assert_same(fdets, dets)


@given(multiclass_problems(boundary=True))
@example(
    (
        np.array([[0, 0, 10, 10], [0, 0, 6, 10], [5, 5, 5, 5], [5, 5, 5, 5]], np.float32),
        np.array([[0.5, 0.05, 0], [0.5, 0.5, 0], [0.9, 0.9, 0], [0.9, 0.05, 0]], np.float32),
        0.05,
        0.6,
        3,
    )
).via("IoU exactly 0.6, scores at score_thr, tied scores, zero-area boxes, max_num cut")
def test_fast_multiclass_nms_equals_textbook(problem):
    multi_bboxes, multi_scores, score_thr, thr, max_num = problem
    dets, labels = R.multiclass_nms(multi_bboxes, multi_scores, score_thr, thr, max_num)
    fdets, flabels = multiclass_nms_fast(multi_bboxes, multi_scores, score_thr, thr, max_num)
    assert_same(flabels, labels)
    assert_same(fdets, dets)


# --- goldens -------------------------------------------------------------------------------

IMPLS = ["reference", "reference_fast", "torch"]


def call(impl, name, *args, **kwargs):
    if impl == "reference":
        return getattr(R, name)(*args, **kwargs)
    if impl == "reference_fast":
        return FAST[name](*args, **kwargs)
    tensors = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args]
    out = getattr(T, name)(*tensors, **kwargs)
    return tuple(o.numpy() for o in out) if isinstance(out, tuple) else out.numpy()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("suffix", ["", "_thr", "_zero_area"])
def test_golden_nms(golden, impl, suffix):
    d = golden("nms")
    keep = call(
        impl, "nms", d[f"boxes{suffix}"], d[f"scores{suffix}"], float(d[f"iou_threshold{suffix}"])
    )
    np.testing.assert_array_equal(keep, d[f"keep{suffix}"])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("agnostic", [False, True])
def test_golden_batched_nms(golden, impl, agnostic):
    d = golden("batched_nms")
    dets, keep = call(
        impl,
        "batched_nms",
        d["boxes"],
        d["scores"],
        d["idxs"],
        float(d["iou_threshold"]),
        class_agnostic=agnostic,
    )
    key = "_agnostic" if agnostic else ""
    np.testing.assert_array_equal(keep, d[f"keep{key}"])
    np.testing.assert_allclose(dets, d[f"dets{key}"], rtol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", ["", "max10", "thr", "per_class_boxes"])
def test_golden_multiclass_nms(golden, impl, case):
    d = golden("multiclass_nms")
    boxes, scores = d["multi_bboxes"], d["multi_scores"]
    score_thr, thr, max_num = float(d["score_thr"]), float(d["iou_threshold"]), int(d["max_num"])
    dets_key, labels_key = "dets", "labels"
    if case == "max10":
        max_num, dets_key, labels_key = int(d["max_num_small"]), "dets_max10", "labels_max10"
    elif case == "thr":
        boxes, scores = d["thr_bboxes"], d["thr_scores"]
        score_thr, thr = float(d["thr_score_thr"]), float(d["thr_iou_threshold"])
        max_num, dets_key, labels_key = int(d["thr_max_num"]), "thr_dets", "thr_labels"
    elif case == "per_class_boxes":  # the same boxes, given once per class
        boxes = np.tile(boxes, (1, scores.shape[1] - 1))
    dets, labels = call(impl, "multiclass_nms", boxes, scores, score_thr, thr, max_num)
    np.testing.assert_array_equal(labels, d[labels_key])
    np.testing.assert_allclose(dets, d[dets_key], rtol=1e-5)


# --- empty inputs, no mutation, bad input --------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_inputs(dtype):
    e4, e1 = np.zeros((0, 4), dtype), np.zeros(0, dtype)
    assert R.nms(e4, e1, 0.5).shape == (0,) and R.nms(e4, e1, 0.5).dtype == np.int64
    dets, keep = R.batched_nms(e4, e1, np.zeros(0, np.int64), 0.5)
    assert dets.shape == (0, 5) and keep.shape == (0,)
    for boxes in (e4, np.zeros((0, 12), dtype)):
        dets, labels = R.multiclass_nms(boxes, np.zeros((0, 4), dtype), 0.05, 0.5, 100)
        assert dets.shape == (0, 5) and labels.shape == (0,) and labels.dtype == np.int64
    # nothing above the score threshold
    dets, labels = R.multiclass_nms(np.ones((3, 4), dtype), np.zeros((3, 3), dtype), 0.05, 0.5)
    assert dets.shape == (0, 5) and labels.shape == (0,)
    # the fast path: the same shapes and dtypes
    assert nms_fast(e4, e1, 0.5).shape == (0,) and nms_fast(e4, e1, 0.5).dtype == np.int64
    dets, keep = batched_nms_fast(e4, e1, np.zeros(0, np.int64), 0.5)
    assert dets.shape == (0, 5) and dets.dtype == np.float64 and keep.dtype == np.int64
    for boxes in (e4, np.zeros((0, 12), dtype), np.ones((3, 4), dtype)):
        n = boxes.shape[0]
        dets, labels = multiclass_nms_fast(boxes, np.zeros((n, 4), dtype), 0.05, 0.5, 100)
        assert dets.shape == (0, 5) and dets.dtype == np.float64 and labels.dtype == np.int64
    t4, t1 = as_t(e4, e1)
    assert tuple(T.nms(t4, t1, 0.5).shape) == (0,)
    dets, keep = T.batched_nms(t4, t1, torch.zeros(0, dtype=torch.long), 0.5)
    assert tuple(dets.shape) == (0, 5) and tuple(keep.shape) == (0,)
    dets, labels = T.multiclass_nms(t4, torch.zeros(0, 4, dtype=t4.dtype), 0.05, 0.5, 100)
    assert tuple(dets.shape) == (0, 5) and tuple(labels.shape) == (0,)
    dets, labels = T.multiclass_nms(
        *as_t(np.ones((3, 4), dtype), np.zeros((3, 3), dtype)), 0.05, 0.5
    )
    assert tuple(dets.shape) == (0, 5) and labels.dtype == torch.long


def test_does_not_mutate_arguments():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 20, (30, 2))
    boxes = np.concatenate([xy, xy + 10], 1).astype(np.float32)
    scores, idxs = rng.random(30).astype(np.float32), rng.integers(0, 3, 30)
    multi = rng.random((30, 4)).astype(np.float32)
    arrays = (boxes, scores, idxs, multi)
    copies = [a.copy() for a in arrays]
    R.nms(boxes, scores, 0.5)
    R.batched_nms(boxes, scores, idxs, 0.5)
    R.multiclass_nms(boxes, multi, 0.1, 0.5, 10)
    R.multiclass_nms(np.tile(boxes, (1, 3)), multi, 0.1, 0.5, 10)
    nms_fast(boxes, scores, 0.5)
    batched_nms_fast(boxes, scores, idxs, 0.5)
    multiclass_nms_fast(boxes, multi, 0.1, 0.5, 10)
    multiclass_nms_fast(np.tile(boxes, (1, 3)), multi, 0.1, 0.5, 10)
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)
    tensors = as_t(*copies)
    tcopies = [t.clone() for t in tensors]
    T.nms(tensors[0], tensors[1], 0.5)
    T.batched_nms(tensors[0], tensors[1], tensors[2], 0.5)
    T.multiclass_nms(tensors[0], tensors[3], 0.1, 0.5, 10)
    for t, c in zip(tensors, tcopies):
        assert torch.equal(t, c)


B3 = np.array([[0.0, 0, 1, 1], [0, 0, 2, 2], [1, 1, 3, 3]])
S3 = np.array([0.3, 0.2, 0.1])


@pytest.mark.parametrize(
    "fn,args,match",
    [
        ("nms", (B3[:, :3], S3, 0.5), r"boxes must have shape \(N, 4\), got \(3, 3\)"),
        ("nms", (B3, S3[:2], 0.5), r"scores must have shape \(N=3,\), got \(2,\)"),
        ("nms", (B3, S3, 1.5), r"iou_threshold must be <= 1, got 1.5"),
        ("nms", (B3, S3, -0.1), r"iou_threshold must be >= 0, got -0.1"),
        ("nms", (B3 * np.nan, S3, 0.5), r"boxes must be finite"),
        ("nms", (B3, np.array([0.1, np.inf, 0]), 0.5), r"scores must be finite"),
        ("nms", (B3.astype(bool), S3, 0.5), r"boxes must be a real \(integer or floating\) array"),
        (
            "batched_nms",
            (B3, S3, np.array([0.0, 1, 2]), 0.5),
            r"idxs must be an integer array, got dtype float64",
        ),
        (
            "batched_nms",
            (B3, S3, np.array([0, 1]), 0.5),
            r"idxs must have shape \(N=3,\), got \(2,\)",
        ),
        (
            "multiclass_nms",
            (np.zeros((3, 5)), np.zeros((3, 3)), 0.05, 0.5),
            r"multi_bboxes must have shape \(3, 8\) \(boxes shared by all classes, or 4\*C",
        ),
        (
            "multiclass_nms",
            (B3, np.zeros((4, 3)), 0.05, 0.5),
            r"multi_bboxes must have shape \(4, 4\)",
        ),
        (
            "multiclass_nms",
            (B3, np.zeros(3), 0.05, 0.5),
            r"multi_scores must have shape \(\*, \*\)",
        ),
        (
            "multiclass_nms",
            (B3, np.zeros((3, 3)), None, 0.5),
            r"score_thr must be a number, got None",
        ),
        (
            "multiclass_nms",
            (B3, np.zeros((3, 3)), 0.05, 0.5, 2.5),
            r"max_num must be an integer, got 2.5",
        ),
    ],
)
@pytest.mark.parametrize("fast", [False, True], ids=["textbook", "fast"])
def test_reference_bad_input(fn, args, match, fast):
    with pytest.raises(ValueError, match=match):
        (FAST[fn] if fast else getattr(R, fn))(*args)


@pytest.mark.parametrize(
    "fn,args,match",
    [
        (
            "nms",
            (torch.zeros(3, 3), torch.zeros(3), 0.5),
            r"boxes must have shape \(N, 4\), got \(3, 3\)",
        ),
        (
            "nms",
            (np.zeros((3, 4)), torch.zeros(3), 0.5),
            r"boxes must be a torch.Tensor, got ndarray",
        ),
        (
            "nms",
            (torch.zeros(3, 4), torch.zeros(2), 0.5),
            r"scores must have shape \(N=3,\), got \(2,\)",
        ),
        ("nms", (torch.zeros(3, 4), torch.zeros(3), 2.0), r"iou_threshold must be <= 1, got 2.0"),
        (
            "nms",
            (torch.zeros(3, 4, dtype=torch.long), torch.zeros(3), 0.5),
            r"boxes must be a floating tensor",
        ),
        (
            "batched_nms",
            (torch.zeros(3, 4), torch.zeros(3), torch.zeros(3), 0.5),
            r"idxs must be an integer tensor, got dtype torch.float32",
        ),
        (
            "multiclass_nms",
            (torch.zeros(3, 5), torch.zeros(3, 3), 0.05, 0.5),
            r"multi_bboxes must have shape \(3, 8\)",
        ),
        (
            "multiclass_nms",
            (torch.zeros(3, 4), torch.zeros(3), 0.05, 0.5),
            r"multi_scores must have shape \(\*, \*\), got \(3,\)",
        ),
    ],
)
def test_torch_bad_input(fn, args, match):
    with pytest.raises(ValueError, match=match):
        getattr(T, fn)(*args)


@pytest.mark.parametrize("max_num", [1, 7, 100, 300])
@pytest.mark.parametrize("shared", [True, False])
def test_multiclass_nms_early_stop_equals_full_run_then_cut(max_num, shared):
    """Thousands of candidates, so the fast path's prefix shortcut runs and must grow: with
    max_num the result is exactly the full NMS cut to max_num (textbook, fast and torch)."""
    rng = np.random.default_rng(max_num)
    n, c = 700, 6
    xy = rng.uniform(0, 60, size=(n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 30, size=(n, 2))], 1).astype(np.float32)
    if not shared:
        boxes = np.tile(boxes, (1, c)) + rng.normal(scale=0.5, size=(n, 4 * c)).astype(np.float32)
    scores = rng.uniform(size=(n, c + 1)).astype(np.float32)
    full_d, full_l = R.multiclass_nms(boxes, scores, 0.05, 0.5, -1)
    assert full_d.shape[0] > max_num or max_num == 300
    d, lab = R.multiclass_nms(boxes, scores, 0.05, 0.5, max_num)
    np.testing.assert_array_equal(d, full_d[:max_num])
    np.testing.assert_array_equal(lab, full_l[:max_num])
    for cut in (max_num, -1):
        fd, fl = multiclass_nms_fast(boxes, scores, 0.05, 0.5, cut)
        np.testing.assert_array_equal(fd, full_d[: cut if cut > 0 else None])
        np.testing.assert_array_equal(fl, full_l[: cut if cut > 0 else None])
    td, tl = T.multiclass_nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.05, 0.5, max_num)
    np.testing.assert_array_equal(tl.numpy(), full_l[:max_num])
    np.testing.assert_allclose(td.numpy(), full_d[:max_num], rtol=1e-6)


@pytest.mark.parametrize("max_num", [3, 7, 50])
def test_multiclass_nms_early_stop_grows_the_prefix(max_num, monkeypatch):
    """1500 near-duplicate boxes with high scores fill the fast path's first prefix (one
    survivor per class); 1500 scattered small boxes with lower scores follow.
    The prefix must grow past the duplicates, and stop before the end."""
    rng = np.random.default_rng(3)
    dup = np.array([50.0, 50.0, 90.0, 90.0]) + rng.normal(scale=0.3, size=(1500, 4))
    xy = rng.uniform(0, 2000, size=(1500, 2))
    spread = np.concatenate([xy, xy + 4.0], 1)
    boxes = np.concatenate([dup, spread]).astype(np.float32)  # (3000, 4)
    scores = np.zeros((3000, 3), dtype=np.float32)  # 2 classes + background
    scores[:1500, :2] = rng.uniform(0.6, 1.0, size=(1500, 2))
    scores[1500:, :2] = rng.uniform(0.1, 0.5, size=(1500, 2))
    full_d, full_l = R.multiclass_nms(boxes, scores, 0.05, 0.6, -1)
    assert full_d.shape[0] > max_num
    d, lab = R.multiclass_nms(boxes, scores, 0.05, 0.6, max_num)
    np.testing.assert_array_equal(d, full_d[:max_num])
    np.testing.assert_array_equal(lab, full_l[:max_num])
    prefixes = []  # the prefix lengths the fast path tries
    keep_in_prefix = F._keep_in_prefix
    monkeypatch.setattr(
        F, "_keep_in_prefix", lambda c, o, p: prefixes.append(p) or keep_in_prefix(c, o, p)
    )
    fd, fl = multiclass_nms_fast(boxes, scores, 0.05, 0.6, max_num)
    np.testing.assert_array_equal(fd, full_d[:max_num])
    np.testing.assert_array_equal(fl, full_l[:max_num])
    assert len(prefixes) >= 2 and prefixes[-1] < 6000  # grew, and stopped before all candidates
    td, tl = T.multiclass_nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.05, 0.6, max_num)
    np.testing.assert_array_equal(tl.numpy(), full_l[:max_num])
    np.testing.assert_allclose(td.numpy(), full_d[:max_num], rtol=1e-6)
