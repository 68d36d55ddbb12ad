"""ATSS: a loop reference, NumPy == torch == batched torch, properties, goldens, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import event, example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference as R
import torch_impl as T
from reference.atss import nearest_k, resolve_positives
from reference.atss_fast import atss_assign_fast, nearest_k_fast, resolve_positives_fast
from reference.testing.strategies import atss_problems, gt_boxes

GOLDEN_ATSS = [
    "atss_random",
    "atss_no_gt",
    "atss_one_gt",
    "atss_identical_gts",
    "atss_inside_boundary",
]


# --- a tiny, obvious loop reference --------------------------------------------------------


def loop_iou(a, g):
    """bbox_overlaps(mode="iou", eps=1e-6) of two boxes, in the same operation order."""
    area1 = (a[2] - a[0]) * (a[3] - a[1])
    area2 = (g[2] - g[0]) * (g[3] - g[1])
    w = max(min(a[2], g[2]) - max(a[0], g[0]), 0.0)
    h = max(min(a[3], g[3]) - max(a[1], g[1]), 0.0)
    overlap = w * h
    return overlap / max(area1 + area2 - overlap, 1e-6)


def loop_iof(a, g):
    area1 = (a[2] - a[0]) * (a[3] - a[1])
    w = max(min(a[2], g[2]) - max(a[0], g[0]), 0.0)
    h = max(min(a[3], g[3]) - max(a[1], g[1]), 0.0)
    return w * h / max(area1, 1e-6)


def loop_atss(anchors, counts, gts, topk, ignore=(), ignore_iof_thr=-1.0, ddof=1):
    """ATSS one anchor and one gt at a time. Returns ``(gt_inds, thresholds, candidates)``.
    ``ddof``: the std's (1 unbiased, as every implementation; 0 the ``std_ddof=0`` dialect
    switch)."""
    anchors = [[float(v) for v in a] for a in anchors]
    gts = [[float(v) for v in g] for g in gts]
    n_a, n_g = len(anchors), len(gts)
    gt_inds = [0] * n_a
    if n_a == 0 or n_g == 0:
        return gt_inds, [], []
    ignored = [
        ignore_iof_thr > 0 and any(loop_iof(a, b) > ignore_iof_thr for b in ignore) for a in anchors
    ]
    for a in range(n_a):
        if ignored[a]:
            gt_inds[a] = -1
    centre = [((a[0] + a[2]) / 2.0, (a[1] + a[3]) / 2.0) for a in anchors]
    best = {}  # anchor -> (iou, gt)
    thresholds, candidates = [], []
    for g, box in enumerate(gts):
        gx, gy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
        cands, start = [], 0
        for n in counts:
            usable = [a for a in range(start, start + n) if not ignored[a]]
            dist = {
                a: (centre[a][0] - gx) * (centre[a][0] - gx)
                + (centre[a][1] - gy) * (centre[a][1] - gy)
                for a in usable
            }
            cands += sorted(usable, key=lambda a: (dist[a], a))[:topk]
            start += n
        cands.sort()  # sums run in anchor order
        ious = [loop_iou(anchors[a], box) for a in cands]
        if len(cands) <= ddof:
            thr = math.inf
        else:
            mean = sum(ious) / len(ious)
            var = sum((u - mean) * (u - mean) for u in ious) / (len(ious) - ddof)
            thr = mean + math.sqrt(var)
        thresholds.append(thr)
        candidates.append(cands)
        for a, u in zip(cands, ious):
            cx, cy = centre[a]
            inside = min(cx - box[0], cy - box[1], box[2] - cx, box[3] - cy)
            if u >= thr and inside > 0.01 and (a not in best or u > best[a][0]):
                best[a] = (u, g)
    for a, (_, g) in best.items():
        gt_inds[a] = g + 1
    return gt_inds, thresholds, candidates


# --- helpers -------------------------------------------------------------------------------


def valid_mask(p, i):
    flags = R.valid_flags(p["featmap_sizes"], p["pad_shapes"][i], p["strides"])
    return np.concatenate(flags) if flags else np.zeros(0, bool)


def level_counts(mask, counts):
    return [int(m.sum()) for m in np.split(mask, np.cumsum(counts)[:-1])]


def run_torch(anchors, counts, gts, labels, ignore=None, thr=-1.0, topk=9):
    t = torch.from_numpy
    return T.atss_assign(
        t(anchors), counts, t(gts), t(labels), None if ignore is None else t(ignore), topk, thr
    )


def assert_same(res_np, res_t):
    np.testing.assert_array_equal(res_t.gt_inds.numpy(), res_np.gt_inds)
    np.testing.assert_array_equal(res_t.labels.numpy(), res_np.labels)
    np.testing.assert_allclose(res_t.max_overlaps.numpy(), res_np.max_overlaps, rtol=1e-12, atol=0)


# --- cross-implementation agreement ---------------------------------------------------------


@given(atss_problems(max_images=3))
def test_numpy_torch_batched_agree(p):
    """Per image on its valid anchors, NumPy == torch (float64) == batched torch, bit for bit."""
    anchors, counts, topk = p["anchors"], p["num_level_anchors"], p["topk"]
    batch = len(p["gt_bboxes"])
    g_max = max(g.shape[0] for g in p["gt_bboxes"])
    gt_pad = np.full((batch, g_max, 4), 7.0)  # padding gts: arbitrary boxes, masked out
    lab_pad = np.full((batch, g_max), 99, np.int64)
    gt_valid = np.zeros((batch, g_max), bool)
    valid = np.stack([valid_mask(p, i) for i in range(batch)])  # (B, A)
    expected = []
    for i, (gts, labels) in enumerate(zip(p["gt_bboxes"], p["gt_labels"])):
        g = gts.shape[0]
        gt_pad[i, :g], lab_pad[i, :g], gt_valid[i, :g] = gts, labels, True
        sub, sub_counts = anchors[valid[i]], level_counts(valid[i], counts)
        res = R.atss_assign(sub, sub_counts, gts, labels, topk=topk)
        assert res.num_gts == g
        assert_same(res, run_torch(sub, sub_counts, gts, labels, topk=topk))
        expected.append(res)
        event(f"positives: {'yes' if (res.gt_inds > 0).any() else 'no'}")
        event(f"padding: {'yes' if not valid[i].all() else 'no'}")
    t = torch.from_numpy
    out = T.atss_assign_batched(
        t(anchors), counts, t(gt_pad), t(lab_pad), t(gt_valid), t(valid), topk
    )
    np.testing.assert_array_equal(out.num_gts.numpy(), gt_valid.sum(1))
    for i, res in enumerate(expected):
        for field in ("gt_inds", "labels", "max_overlaps"):
            got = getattr(out, field)[i].numpy()
            np.testing.assert_array_equal(got[valid[i]], getattr(res, field))
            invalid_fill = -1 if field == "labels" else 0
            assert (got[~valid[i]] == invalid_fill).all()


@given(atss_problems())
def test_ignore_boxes_agree(p):
    """With ignore boxes, NumPy == torch; batched torch with the ignored anchors marked invalid
    gives the same assignment, except that it reports those anchors as 0 instead of -1."""
    anchors, counts, topk = p["anchors"], p["num_level_anchors"], p["topk"]
    gts, labels, ign, thr = (
        p["gt_bboxes"][0],
        p["gt_labels"][0],
        p["gt_bboxes_ignore"][0],
        p["ignore_iof_thr"],
    )
    res = R.atss_assign(anchors, counts, gts, labels, ign, topk, thr)
    assert_same(res, run_torch(anchors, counts, gts, labels, ign, thr, topk))
    loop, _, _ = loop_atss(anchors, counts, gts, topk, ign, thr)
    np.testing.assert_array_equal(res.gt_inds, loop)
    event(f"ignored: {'yes' if (res.gt_inds < 0).any() else 'no'}")
    event(f"positives: {'yes' if (res.gt_inds > 0).any() else 'no'}")
    if gts.shape[0] == 0:
        return
    ignored = res.gt_inds == -1
    t = torch.from_numpy
    out = T.atss_assign_batched(
        t(anchors),
        counts,
        t(gts[None]),
        t(labels[None]),
        torch.ones(1, gts.shape[0], dtype=torch.bool),
        t(~ignored[None]),
        topk,
    )
    np.testing.assert_array_equal(out.gt_inds[0].numpy(), np.where(ignored, 0, res.gt_inds))


# --- properties against the loop reference --------------------------------------------------


@given(atss_problems())
@example(
    {
        "featmap_sizes": ((1, 2),),
        "strides": (8,),
        "anchors": np.array([[-32.0, -32, 32, 32], [-24, -32, 40, 32]]),
        "num_level_anchors": [2],
        "topk": 9,
        "pad_shapes": [(8.0, 16.0)],
        "gt_bboxes": [np.array([[-4.0, -4, 12, 4]])],
        "gt_labels": [np.array([3])],
        "gt_bboxes_ignore": [np.zeros((0, 4))],
        "ignore_iof_thr": 0.5,
    }
).via("two equal IoUs")
def test_matches_loop_reference_and_properties(p):
    anchors, counts, topk = p["anchors"], p["num_level_anchors"], p["topk"]
    gts, labels = p["gt_bboxes"][0], p["gt_labels"][0]
    res = R.atss_assign(anchors, counts, gts, labels, topk=topk)
    gt_inds, thresholds, candidates = loop_atss(anchors, counts, gts, topk)
    np.testing.assert_array_equal(res.gt_inds, gt_inds)
    pos = np.flatnonzero(res.gt_inds > 0)
    for a in pos:
        g = res.gt_inds[a] - 1
        box, anchor = gts[g], anchors[a]
        cx, cy = (anchor[0] + anchor[2]) / 2, (anchor[1] + anchor[3]) / 2
        assert min(cx - box[0], cy - box[1], box[2] - cx, box[3] - cy) > 0.01  # centre inside
        assert a in candidates[g]
        assert res.max_overlaps[a] == loop_iou(anchor, box) >= thresholds[g]  # IoU >= mean + std
        assert res.labels[a] == labels[g]
        for other in range(len(gts)):  # no gt for which it is also positive has a higher IoU
            u = loop_iou(anchor, gts[other])
            if other != g and a in candidates[other] and u >= thresholds[other]:
                cx_in = (
                    min(
                        cx - gts[other][0],
                        cy - gts[other][1],
                        gts[other][2] - cx,
                        gts[other][3] - cy,
                    )
                    > 0.01
                )
                assert (
                    not cx_in or u < res.max_overlaps[a] or (u == res.max_overlaps[a] and other > g)
                )
    neg = res.gt_inds <= 0
    assert (res.max_overlaps[neg] == 0).all() and (res.labels[neg] == -1).all()


@given(atss_problems(), st.randoms(use_true_random=False))
def test_permuting_gts_permutes_assignment(p, rnd):
    anchors, counts, topk = p["anchors"], p["num_level_anchors"], p["topk"]
    gts, labels = p["gt_bboxes"][0], p["gt_labels"][0]
    perm = list(range(gts.shape[0]))
    rnd.shuffle(perm)
    perm = np.array(perm, dtype=np.int64)
    res = R.atss_assign(anchors, counts, gts, labels, topk=topk)
    res_p = R.atss_assign(anchors, counts, gts[perm], labels[perm], topk=topk)
    np.testing.assert_array_equal(res_p.gt_inds > 0, res.gt_inds > 0)
    np.testing.assert_array_equal(res_p.max_overlaps, res.max_overlaps)
    for a in np.flatnonzero(res.gt_inds > 0):
        g, g_p = res.gt_inds[a] - 1, perm[res_p.gt_inds[a] - 1]
        # the same gt, or another one with exactly the same IoU (the tie goes by index)
        assert g == g_p or loop_iou(anchors[a], gts[g_p]) == res.max_overlaps[a]


@given(gt_boxes(1, 32.0), st.floats(-20, 20), st.booleans())
def test_two_candidates_threshold_above_both(gt, shift, equal):
    """With two candidates, mean + std exceeds the larger IoU unless they are equal."""
    a = np.array([[-32.0, -32, 32, 32], [-32.0 + 8, -32, 40, 32]])
    if equal:  # a gt symmetric about x = 4: both anchors have the same IoU
        half = (gt[0, 2] - gt[0, 0]) / 2
        gt = np.array([[4.0 - half, gt[0, 1], 4.0 + half, gt[0, 3]]])
    else:
        gt = gt + np.array([shift, 0.0, shift, 0.0])
    res = R.atss_assign(a, [2], gt, np.array([0]))
    ious = [loop_iou(x, gt[0]) for x in a]
    if ious[0] != ious[1]:
        assert (res.gt_inds == 0).all()  # no positives, nothing breaks
        assert (res.max_overlaps == 0).all() and (res.labels == -1).all()
    else:
        for k in range(2):
            cx = (a[k, 0] + a[k, 2]) / 2
            inside = min(cx - gt[0, 0], -gt[0, 1], gt[0, 2] - cx, gt[0, 3]) > 0.01
            assert res.gt_inds[k] == (1 if inside else 0)
    assert_same(res, run_torch(a, [2], gt, np.array([0])))


# --- goldens -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GOLDEN_ATSS)
@pytest.mark.parametrize("impl", ["reference", "torch64", "torch32", "batched32"])
def test_golden(golden, name, impl):
    d = golden(name)
    counts = d["num_level_anchors"].tolist()
    topk = int(d["topk"])
    if impl == "reference":
        res = R.atss_assign(d["anchors"], counts, d["gt_bboxes"], d["gt_labels"], topk=topk)
        gt_inds, labels, overlaps, rtol = res.gt_inds, res.labels, res.max_overlaps, 1e-12
        assert res.num_gts == int(d["num_gts"])
    else:
        dt = torch.float64 if impl == "torch64" else torch.float32
        a, g = torch.tensor(d["anchors"], dtype=dt), torch.tensor(d["gt_bboxes"], dtype=dt)
        lab = torch.tensor(d["gt_labels"])
        if impl == "batched32":
            valid = torch.ones(1, g.shape[0], dtype=torch.bool)
            res = T.atss_assign_batched(a, counts, g[None], lab[None], valid, topk=topk)
            res = T.AssignResult(res.num_gts[0], res.gt_inds[0], res.max_overlaps[0], res.labels[0])
        else:
            res = T.atss_assign(a, counts, g, lab, topk=topk)
        assert int(res.num_gts) == int(d["num_gts"])
        assert res.max_overlaps.dtype == dt
        gt_inds, labels = res.gt_inds.numpy(), res.labels.numpy()
        overlaps, rtol = res.max_overlaps.double().numpy(), (1e-12 if dt == torch.float64 else 1e-5)
    np.testing.assert_array_equal(gt_inds, d["gt_inds"])
    np.testing.assert_array_equal(labels, d["labels"])
    pos = d["gt_inds"] > 0
    np.testing.assert_allclose(overlaps[pos], d["max_overlaps"][pos], rtol=rtol)
    assert (overlaps[~pos] == 0).all()  # contract: 0 where not positive (mmdet: -1e8)


def test_golden_boundary_cases(golden):
    """The two hand-built boundary anchors and the identical-gt tie."""
    d = golden("atss_inside_boundary")
    res = R.atss_assign(d["anchors"], d["num_level_anchors"].tolist(), d["gt_bboxes"])
    centres = (d["anchors"][:, :2] + d["anchors"][:, 2:]) / 2
    a_in = np.flatnonzero((centres[:, 0] == 16) & (centres[:, 1] == 32))[0]
    a_out = np.flatnonzero((centres[:, 0] == 80) & (centres[:, 1] == 96))[0]
    assert res.gt_inds[a_in] == 1 and res.gt_inds[a_out] != 2
    assert res.labels is None
    d = golden("atss_identical_gts")
    res = R.atss_assign(d["anchors"], d["num_level_anchors"].tolist(), d["gt_bboxes"])
    assert (res.gt_inds == 1).any() and not (res.gt_inds == 2).any()


# --- empty inputs --------------------------------------------------------------------------


@pytest.mark.parametrize("with_labels", [True, False])
def test_empty_inputs(with_labels):
    a = np.concatenate(R.grid_anchors([(2, 2), (1, 1)], (8, 16)))
    lab = np.zeros(0, np.int64) if with_labels else None
    for anchors, counts, gts in [
        (a, [4, 1], np.zeros((0, 4))),
        (np.zeros((0, 4)), [0, 0], np.array([[0.0, 0, 8, 8]])),
        (np.zeros((0, 4)), [], np.zeros((0, 4))),
    ]:
        labels = None if lab is None else np.zeros(gts.shape[0], np.int64)
        res = R.atss_assign(anchors, counts, gts, labels)
        assert res.gt_inds.shape == res.max_overlaps.shape == (anchors.shape[0],)
        assert (res.gt_inds == 0).all() and res.gt_inds.dtype == np.int64
        assert (res.labels is None) == (labels is None)
        tres = T.atss_assign(
            torch.from_numpy(anchors),
            counts,
            torch.from_numpy(gts),
            None if labels is None else torch.from_numpy(labels),
        )
        assert tuple(tres.gt_inds.shape) == (anchors.shape[0],)
        assert (tres.labels is None) == (labels is None)
    # no gts: every anchor negative, even those an ignore box covers
    res = R.atss_assign(
        a, [4, 1], np.zeros((0, 4)), None, np.array([[-40.0, -40, 40, 40]]), ignore_iof_thr=0.1
    )
    assert (res.gt_inds == 0).all()
    # a batch padded to zero gts
    out = T.atss_assign_batched(
        torch.from_numpy(a),
        [4, 1],
        torch.zeros(2, 0, 4, dtype=torch.float64),
        torch.zeros(2, 0, dtype=torch.long),
        torch.zeros(2, 0, dtype=torch.bool),
    )
    assert tuple(out.gt_inds.shape) == (2, 5) and (out.gt_inds == 0).all()
    assert out.num_gts.tolist() == [0, 0]


def test_batched_has_no_data_dependent_shapes():
    """On the meta device tensors have no values: any ``.item()``, ``nonzero()``, boolean-mask
    index or ``if tensor`` would fail, so running there shows the batched path never syncs."""
    levels = R.grid_anchors([(4, 5), (2, 3), (1, 2)], (8, 16, 32))
    counts = [lv.shape[0] for lv in levels]
    for dtype in (torch.float32, torch.float64, torch.float16):
        a = torch.tensor(np.concatenate(levels), dtype=dtype, device="meta")
        gts = torch.empty(2, 3, 4, dtype=dtype, device="meta")
        labels = torch.empty(2, 3, dtype=torch.long, device="meta")
        gt_valid = torch.empty(2, 3, dtype=torch.bool, device="meta")
        anchor_valid = torch.empty(2, a.shape[0], dtype=torch.bool, device="meta")
        out = T.atss_assign_batched(a, counts, gts, labels, gt_valid, anchor_valid)
        assert tuple(out.gt_inds.shape) == tuple(out.labels.shape) == (2, a.shape[0])
        assert out.max_overlaps.dtype == dtype and tuple(out.num_gts.shape) == (2,)


def test_torch_half_precision_runs_in_float32():
    d = {
        "anchors": np.concatenate(R.grid_anchors([(4, 4), (2, 2)], (8, 16))),
        "gts": np.array([[2.0, 2, 20, 26], [8.0, 4, 30, 20]]),
    }
    ref = R.atss_assign(d["anchors"], [16, 4], d["gts"])
    for dtype in (torch.float16, torch.bfloat16):
        a, g = (torch.tensor(d[k], dtype=dtype) for k in ("anchors", "gts"))  # exact in 8 bits
        res = T.atss_assign(a, [16, 4], g)
        assert res.max_overlaps.dtype == dtype
        np.testing.assert_array_equal(res.gt_inds.numpy(), ref.gt_inds)


def test_single_candidate_gets_no_positive():
    """One anchor in total: the gt has no std and no positives (as mmdetection)."""
    a = np.array([[-32.0, -32, 32, 32]])
    res = R.atss_assign(a, [1], np.array([[-30.0, -30, 30, 30]]), np.array([2]))
    assert res.gt_inds.tolist() == [0] and res.labels.tolist() == [-1]
    tres = T.atss_assign(
        torch.from_numpy(a), [1], torch.tensor([[-30.0, -30, 30, 30]], dtype=torch.float64)
    )
    assert tres.gt_inds.tolist() == [0]


def test_level_smaller_than_topk_and_empty_level():
    a = np.concatenate(R.grid_anchors([(3, 3), (0, 2), (1, 2)], (8, 16, 32)))
    gts = np.array([[-10.0, 4, 23, 63], [10.0, -5, 60, 54]])
    res = R.atss_assign(a, [9, 0, 2], gts, np.array([0, 1]))
    assert_same(res, run_torch(a, [9, 0, 2], gts, np.array([0, 1])))
    assert res.gt_inds.tolist() == loop_atss(a, [9, 0, 2], gts, 9)[0]
    assert res.gt_inds.tolist() == [0, 0, 0, 0, 0, 2, 1, 1, 2, 0, 0]


# --- no mutation, bad input ----------------------------------------------------------------


def test_does_not_mutate_arguments():
    a = np.concatenate(R.grid_anchors([(4, 4), (2, 2)], (8, 16)))
    gts, labels = np.array([[1.0, 2, 20, 25], [10.0, 5, 30, 30]]), np.array([1, 2])
    ign = np.array([[0.0, 0, 8, 8]])
    copies = [x.copy() for x in (a, gts, labels, ign)]
    R.atss_assign(a, [16, 4], gts, labels, ign, ignore_iof_thr=0.1)
    for x, c in zip((a, gts, labels, ign), copies):
        np.testing.assert_array_equal(x, c)
    t = [torch.from_numpy(x.copy()) for x in (a, gts, labels, ign)]
    tc = [x.clone() for x in t]
    T.atss_assign(t[0], [16, 4], t[1], t[2], t[3], ignore_iof_thr=0.1)
    T.atss_assign_batched(t[0], [16, 4], t[1][None], t[2][None], torch.ones(1, 2, dtype=torch.bool))
    for x, c in zip(t, tc):
        assert torch.equal(x, c)


A4 = np.concatenate(R.grid_anchors([(2, 2)], (8,)))
GT = np.array([[0.0, 0, 10, 10]])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"anchors": np.zeros((4, 3))}, r"anchors must have shape \(A, 4\), got \(4, 3\)"),
        ({"gt_bboxes": np.zeros((2, 5))}, r"gt_bboxes must have shape \(G, 4\), got \(2, 5\)"),
        ({"num_level_anchors": [3]}, r"num_level_anchors must sum to the number of anchors A=4"),
        ({"num_level_anchors": [5, -1]}, r"num_level_anchors must be >= 0, got \[5, -1\]"),
        ({"gt_labels": np.array([0.5])}, r"gt_labels must be an integer array, got dtype float64"),
        ({"gt_labels": np.array([1, 2])}, r"gt_labels must have shape \(G=1,\), got \(2,\)"),
        ({"topk": 0}, r"topk must be >= 1, got 0"),
        ({"topk": 2.5}, r"topk must be an integer, got 2.5"),
        ({"gt_bboxes": np.array([[0.0, np.nan, 1, 1]])}, r"gt_bboxes must be finite"),
        ({"gt_bboxes_ignore": np.zeros(4)}, r"gt_bboxes_ignore must have shape \(\*, 4\)"),
        ({"ignore_iof_thr": "x"}, r"ignore_iof_thr must be a number, got 'x'"),
    ],
)
@pytest.mark.parametrize("assign", [R.atss_assign, atss_assign_fast], ids=["textbook", "fast"])
def test_reference_bad_input(kwargs, match, assign):
    args = {"anchors": A4, "num_level_anchors": [4], "gt_bboxes": GT, "gt_labels": None}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        assign(**args)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"anchors": torch.zeros(4, 3)}, r"anchors must have shape \(A, 4\), got \(4, 3\)"),
        ({"anchors": np.zeros((4, 4))}, r"anchors must be a torch.Tensor, got ndarray"),
        (
            {"gt_bboxes": torch.zeros(1, 4, dtype=torch.long)},
            r"gt_bboxes must be a floating tensor",
        ),
        (
            {"gt_labels": torch.zeros(1)},
            r"gt_labels must be an integer tensor, got dtype torch.float32",
        ),
        ({"num_level_anchors": [2, 1]}, r"num_level_anchors must sum to the number of anchors A=4"),
        ({"topk": -1}, r"topk must be >= 1, got -1"),
    ],
)
def test_torch_bad_input(kwargs, match):
    args = {
        "anchors": torch.from_numpy(A4).float(),
        "num_level_anchors": [4],
        "gt_bboxes": torch.tensor(GT).float(),
        "gt_labels": None,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        T.atss_assign(**args)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"gt_bboxes": torch.zeros(1, 4)}, r"gt_bboxes must have shape \(B, G, 4\), got \(1, 4\)"),
        (
            {"gt_valid": torch.ones(1, 1)},
            r"gt_valid must be a bool tensor, got dtype torch.float32",
        ),
        (
            {"gt_valid": torch.ones(2, 1, dtype=torch.bool)},
            r"gt_valid must have shape \(B=1, G=1\), got \(2, 1\)",
        ),
        (
            {"anchor_valid": torch.ones(1, 5, dtype=torch.bool)},
            r"anchor_valid must have shape \(B=1, A=4\), got \(1, 5\)",
        ),
        (
            {"gt_labels": torch.zeros(1, 2, dtype=torch.long)},
            r"gt_labels must have shape \(B=1, G=1\), got \(1, 2\)",
        ),
    ],
)
def test_batched_bad_input(kwargs, match):
    args = {
        "anchors": torch.from_numpy(A4).float(),
        "num_level_anchors": [4],
        "gt_bboxes": torch.tensor(GT).float()[None],
        "gt_labels": None,
        "gt_valid": torch.ones(1, 1, dtype=torch.bool),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        T.atss_assign_batched(**args)


# --- the fast path (reference.atss_fast) equals the textbook -------------------------------


@st.composite
def distance_rows(draw):
    """``(d2 (G, n), k)``: squared distances with many exact ties (few distinct values),
    now and then an inf or a NaN, and ``0 <= k <= n``."""
    g, n = draw(st.integers(0, 4)), draw(st.integers(0, 12))
    values = st.one_of(st.sampled_from([0.0, 1.0, 2.0, 4.0]), st.floats(0.0, 100.0),
                       st.sampled_from([np.inf, np.nan]))  # fmt: skip
    d2 = draw(hnp.arrays(np.float64, (g, n), elements=values))
    return d2, draw(st.integers(0, n))


@given(distance_rows())
@example((np.array([[1.0, 0.0, 1.0, 1.0, 0.0]]), 3)).via("a tie at the k-th distance")
@example((np.array([[np.nan, 0.0, np.nan]]), 2)).via("a NaN at the k-th place")
def test_fast_nearest_k_equals_textbook(problem):
    d2, k = problem
    fast = nearest_k_fast(d2, k)
    np.testing.assert_array_equal(fast, nearest_k(d2, k))
    assert fast.dtype == np.int64 and fast.shape == (d2.shape[0], k)


@st.composite
def positive_tables(draw):
    """``(pos, cand, ious, num_anchors)`` as ATSS builds them: each gt's K candidates are
    distinct anchors; IoUs on a coarse grid (exact ties between gts)."""
    g, k, a = draw(st.integers(0, 4)), draw(st.integers(0, 6)), draw(st.integers(6, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cand = np.zeros((g, k), np.int64)
    for row in cand:
        row[:] = np.sort(rng.choice(a, k, replace=False))
    ious = draw(hnp.arrays(np.float64, (g, k), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0])))
    pos = draw(hnp.arrays(bool, (g, k)))
    return pos, cand, ious, a


@given(positive_tables())
def test_fast_resolve_positives_equals_textbook(problem):
    for fast, textbook in zip(resolve_positives_fast(*problem), resolve_positives(*problem)):
        np.testing.assert_array_equal(fast, textbook)
        assert fast.dtype == textbook.dtype


@given(atss_problems(), st.sampled_from([1, 0]))
def test_fast_atss_assign_equals_textbook(p, ddof):
    args = (p["anchors"], p["num_level_anchors"], p["gt_bboxes"][0], p["gt_labels"][0],
            p["gt_bboxes_ignore"][0], p["topk"], p["ignore_iof_thr"])  # fmt: skip
    res, fast = R.atss_assign(*args, std_ddof=ddof), atss_assign_fast(*args, std_ddof=ddof)
    assert fast.num_gts == res.num_gts
    for a, b in zip(fast[1:], res[1:]):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


@pytest.mark.parametrize("name", GOLDEN_ATSS)
def test_fast_golden(golden, name):
    d = golden(name)
    counts, topk = d["num_level_anchors"].tolist(), int(d["topk"])
    res = atss_assign_fast(d["anchors"], counts, d["gt_bboxes"], d["gt_labels"], topk=topk)
    np.testing.assert_array_equal(res.gt_inds, d["gt_inds"])
    np.testing.assert_array_equal(res.labels, d["labels"])
    pos = d["gt_inds"] > 0
    np.testing.assert_allclose(res.max_overlaps[pos], d["max_overlaps"][pos], rtol=1e-12)
