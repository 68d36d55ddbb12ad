"""``docs/semantics.md`` cannot drift from the code.

The page's two tables are parsed. Every row whose implementations' cells differ, and every
section of its "Details", has a *witness* in :data:`TABLE_WITNESSES` / :data:`PROSE_WITNESSES`:
a test here that builds an input on which the dialects' reference outputs differ, computed
through the switches (``DIALECTS[...]``), and asserts by how much; or, for a row with no switch,
a :class:`NoSwitch` that the dialect does not define the pieces concerned. Adding a row or a
section without a witness fails, as does a witness for a row that is gone, or an "in code" cell
naming a switch that does not exist.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from head_fixtures import dialect_workload

import reference as R
from reference.dialects import DIALECTS, FLOAT32_EPS, MMDET2, Dialect
from reference.numerics import sigmoid, softplus

DOC = Path(__file__).resolve().parents[1] / "docs" / "semantics.md"
SIZES = [(4, 4), (2, 2)]  # the feature maps of dialect_workload


# ================================================================ the page, parsed


class Table(NamedTuple):
    key: str  # the dialects other than mmdet2 that it compares: "gfocal/nanodet", "ultralytics"
    columns: list[str]  # the dialect of each implementation column, mmdet2 first
    rows: dict[str, dict[str, str]]  # row label → {dialect: cell}
    in_code: dict[str, str]  # row label → its "in code" cell


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_tables(text: str) -> list[Table]:
    """The markdown pipe tables of ``text`` whose header names dialects (``mmdet2``, …)."""
    blocks, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    tables = []
    for header, _sep, *body in blocks:
        head = _cells(header)
        dialects = [
            next((n for n in re.findall(r"`(\w+)`", h) if n in DIALECTS), None) for h in head
        ]
        impl = [i for i, d in enumerate(dialects) if d]
        if not impl:
            continue
        code = head.index("in code")
        rows, in_code = {}, {}
        for line in body:
            cells = _cells(line)
            assert len(cells) == len(head), f"a row of {len(cells)} cells: {line}"
            rows[cells[0]] = {dialects[i]: cells[i] for i in impl}
            in_code[cells[0]] = cells[code]
        others = [dialects[i] for i in impl if dialects[i] != "mmdet2"]
        assert dialects[impl[0]] == "mmdet2", "this project's column comes first"
        tables.append(Table("/".join(others), [dialects[i] for i in impl], rows, in_code))
    return tables


def gist(cell: str) -> str:
    """A cell's claim without its notes: cut at the first ``" ("``, ``";"`` or ``", "`` outside
    math and code, bold removed, lower case (``"unbiased, `ddof=1` (...)"`` → ``"unbiased"``)."""
    cell = cell.replace("**", "")
    math = code = False
    for i, ch in enumerate(cell):
        if ch == "`":
            code = not code
        elif ch == "$" and not code:
            math = not math
        elif not (math or code) and (cell[i:].startswith((" (", ", ")) or ch == ";"):
            cell = cell[:i]
            break
    return cell.strip().lower()


def differs(cells: dict[str, str]) -> bool:
    """Whether the implementations' cells of a row disagree: "same…" is this project's claim,
    "not checked…" no claim."""
    ours = gist(cells["mmdet2"])
    claims = {ours if gist(c).startswith("same") else gist(c) for c in cells.values()}
    return len({c for c in claims if not c.startswith("not checked")}) > 1


def details_sections(text: str) -> list[str]:
    """The ``###`` headings under ``## Details``."""
    part = text.split("\n## Details\n", 1)[1].split("\n## ", 1)[0]
    return [line[4:].strip() for line in part.splitlines() if line.startswith("### ")]


TEXT = DOC.read_text()
TABLES = parse_tables(TEXT)


# ================================================================ helpers


def qfl(dialect, pred, label, score, beta):
    with np.errstate(invalid="ignore"):
        return R.qfl_forward(pred, label, score, beta, abs_factor=DIALECTS[dialect].qfl_abs)[0]


def loss(dialect, kind="padded", **replace):
    """gfl_loss_forward of the dialect (optionally with some switches replaced) on a workload."""
    d = DIALECTS[dialect]
    if replace:
        d = dataclasses.replace(d, name=f"{dialect}*", **replace)
    cfg, cls, reg, gtb, gtl, metas = dialect_workload(kind)
    losses, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg, dialect=d)
    return {k: float(v) for k, v in losses.items()}, cache


def far_distances(dialect, reg_max=16):
    """bbox2distance of a point far inside a huge box, with the dialect's target_eps."""
    box = np.array([[-100.0, -100.0, 100.0, 100.0]])
    return R.bbox2distance(np.zeros((1, 2)), box, reg_max, eps=DIALECTS[dialect].target_eps)[0]


# ================================================================ the witnesses: table rows


def test_reg_max_is_the_largest_bin_in_the_mmdetection_family():
    """n + 1 bins 0..n, 4(n + 1) channels; nanodet-m's 7 is 8 bins. One-hot logits on the
    last bin decode to n."""
    for name in ("mmdet2", "mmdet3", "gfocal", "nanodet"):
        assert DIALECTS[name].reg_max_is_bin_count is False
    for n in (16, 7):
        pred = np.full((1, 4 * (n + 1)), -50.0)
        pred[0, n :: n + 1] = 50.0
        np.testing.assert_allclose(R.integral_forward(pred, n)[0], np.full((1, 4), float(n)),
                                   rtol=1e-12)  # fmt: skip


def test_ultralytics_reg_max_16_is_this_projects_15():
    """ultralytics' ``DFL`` module (``softmax(x.view(b, 4, reg_max)) @ arange(reg_max)``) with
    its default reg_max = 16 bins is this project's Integral with reg_max = 15; the 64 channels
    are not a reg_max = 16 input here."""
    assert DIALECTS["ultralytics"].reg_max_is_bin_count is True
    x = np.random.default_rng(0).normal(scale=3.0, size=(5, 64))
    p = np.exp(x.reshape(5, 4, 16) - x.reshape(5, 4, 16).max(-1, keepdims=True))
    ultralytics = (p / p.sum(-1, keepdims=True)) @ np.arange(16.0)  # (5, 4)
    np.testing.assert_allclose(R.integral_forward(x, 15)[0], ultralytics, rtol=1e-13)
    with pytest.raises(ValueError, match="68"):
        R.integral_forward(x, 16)


def test_dfl_targets_are_clamped_below_n_by_each_dialects_eps():
    """mmdetection, GFocal and nanodet: n - 0.1; ultralytics: n - 0.01 (its reg_max - 1 - 0.01),
    and its DFL clamps a label itself where this project's raises."""
    n = 16
    for name in ("mmdet2", "mmdet3", "gfocal", "nanodet"):
        np.testing.assert_array_equal(far_distances(name, n), np.full(4, n - 0.1))
        assert not DIALECTS[name].dfl_clamps_target
    np.testing.assert_array_equal(far_distances("ultralytics", n), np.full(4, n - 0.01))
    assert DIALECTS["ultralytics"].dfl_clamps_target
    # the same logits, each dialect's largest target: 1.3237 (mmdet2) vs 1.2337 (ultralytics)
    pred = np.array([[0.3, -1.0, 2.0, 0.5, 1.5]])  # n = 4
    ours = R.dfl_forward(pred, far_distances("mmdet2", 4)[:1])[0][0]
    theirs = R.dfl_forward(pred, np.array([4.0]), clamp_eps=DIALECTS["ultralytics"].target_eps)[0]
    assert ours == pytest.approx(1.323740114059538, rel=1e-12)
    assert theirs[0] == pytest.approx(1.2337401140595377, rel=1e-12)
    # labels 3.9 and 3.99 share the bins 3 and 4: the gap is (3.99 - 3.9) (x_4 - x_3)
    assert ours - theirs[0] == pytest.approx(0.09 * (pred[0, 4] - pred[0, 3]), rel=1e-9)
    with pytest.raises(ValueError, match="label must lie"):
        R.dfl_forward(pred, np.array([4.0]))


def test_qfl_factor_has_no_abs_in_gfocal():
    """One positive, σ(1) = 0.731 above its target 0.25: β = 1.5 gives NaN in GFocal and
    0.35476... here; β = 1 gives the opposite loss; β = 2 the same. nanodet is ours."""
    x, lab, y = np.array([[1.0]]), np.array([0]), np.array([0.25])
    assert np.isnan(qfl("gfocal", x, lab, y, 1.5)[0])
    assert qfl("mmdet2", x, lab, y, 1.5)[0] == pytest.approx(0.3547620132779249, rel=1e-13)
    assert qfl("gfocal", x, lab, y, 1.0)[0] == -qfl("mmdet2", x, lab, y, 1.0)[0]
    assert qfl("gfocal", x, lab, y, 1.0)[0] == pytest.approx(-0.5114911561092567, rel=1e-13)
    assert qfl("gfocal", x, lab, y, 2.0)[0] == qfl("mmdet2", x, lab, y, 2.0)[0]
    for beta in (1.0, 1.5, 2.0):
        assert qfl("nanodet", x, lab, y, beta)[0] == qfl("mmdet2", x, lab, y, beta)[0]
    below = np.array([0.9])  # σ below the target: no dialect can tell
    assert qfl("gfocal", x, lab, below, 1.5)[0] == qfl("mmdet2", x, lab, below, 1.5)[0]


def test_qfl_factor_is_differentiated_in_every_dialect():
    """The gradient at a positive carries BCE·d(factor)/dσ·σ(1 - σ) besides factor·(σ - y):
    detaching the factor would change it by exactly that term (β = 2: 2(σ - y)BCE σ(1 - σ))."""
    x, lab, y = np.array([[1.0]]), np.array([0]), np.array([0.25])
    s, b = sigmoid(x[0, 0]), softplus(x[0, 0]) - x[0, 0] * y[0]
    detached = (y[0] - s) ** 2 * (s - y[0])
    through = detached + b * 2.0 * (s - y[0]) * s * (1.0 - s)
    for name, d in DIALECTS.items():
        if "qfl" not in d.pieces:
            continue
        _, cache = R.qfl_forward(x, lab, y, 2.0, abs_factor=d.qfl_abs)
        grad = R.qfl_backward(np.ones(1), cache)[0, 0]
        assert grad == pytest.approx(through, rel=1e-12), name
        assert abs(grad - detached) > 0.1


def test_gfocal_labels_are_ours_plus_one_with_background_zero():
    """GFocal's labels are this project's + 1, background 0; passed less one (the convention),
    the background becomes -1, a negative here, and QFL agrees bit for bit. Passed unconverted,
    every positive is scored on the next class and the last class's objects become
    background (only a score of 0 hides the shift)."""
    assert DIALECTS["gfocal"].background_first
    assert not any(DIALECTS[n].background_first for n in ("mmdet2", "mmdet3", "nanodet"))
    pred = np.random.default_rng(1).normal(size=(4, 3))
    ours = np.array([0, 2, 3, 1])  # C = 3 is the background
    score = np.array([0.6, 0.9, 0.0, 0.3])
    gfocal = np.where(ours == 3, 0, ours + 1)
    np.testing.assert_array_equal(qfl("gfocal", pred, gfocal - 1, score, 2.0),
                                  qfl("mmdet2", pred, ours, score, 2.0))  # fmt: skip
    wrong = qfl("mmdet2", pred, gfocal, score, 2.0) - qfl("mmdet2", pred, ours, score, 2.0)
    assert np.all(np.abs(wrong[[0, 1, 3]]) > 0.1)
    assert wrong[2] == 0.0  # the background as class 0, score 0: a positive that costs the same
    assert wrong[1] == pytest.approx(  # label 3 = C: no longer a positive at all
        sigmoid(pred[1, 2]) ** 2 * softplus(pred[1, 2])
        - abs(0.9 - sigmoid(pred[1, 2])) ** 2 * (softplus(pred[1, 2]) - 0.9 * pred[1, 2]),
        rel=1e-12,
    )


def test_quality_target_iou_has_plus_one_widths_in_gfocal():
    """A predicted 2 x 2 box in its 2 x 4 target (grid units): IoU 4/8 = 0.5 here and in
    nanodet, 9/15 = 0.6 with GFocal's +1; the +1 makes every union at least 1, so GFocal's
    eps (1e-7) and ours (1e-6) give the same IoU."""
    pred, target = np.array([[0.0, 0.0, 2.0, 2.0]]), np.array([[0.0, 0.0, 2.0, 4.0]])

    def iou(name, eps=1e-6):
        off = DIALECTS[name].iou_offset
        return R.bbox_overlaps(pred, target, is_aligned=True, eps=eps, offset=off)[0]

    assert iou("mmdet2") == iou("nanodet") == 0.5
    assert iou("gfocal") == 0.6 == iou("gfocal", eps=1e-7)
    point = np.array([[3.0, 3.0, 3.0, 3.0]])
    assert R.bbox_overlaps(point, point, eps=1e-7, offset=DIALECTS["gfocal"].iou_offset)[0, 0] == 1
    # in the head, the IoU target moves QFL (and nothing else)
    base, _ = loss("gfocal", iou_offset=0)
    plus, _ = loss("gfocal")
    assert plus["loss_bbox"] == base["loss_bbox"] and plus["loss_dfl"] == base["loss_dfl"]
    assert abs(plus["loss_cls"] - base["loss_cls"]) > 1e-3


def test_qfl_label_weights_are_not_passed_in_gfocal():
    """The workload's 4 padding anchors (label weight 0) are negatives; without label weights
    (GFocal) QFL adds their σ^β·softplus over the classes, divided by num_total_samples."""
    cfg, cls, reg, gtb, gtl, metas = dialect_workload()
    t = R.gfl_targets(SIZES, gtb, gtl, metas, cfg, dialect="gfocal")
    x = R.flatten_levels(cls, "cls", 2).reshape(-1, 2)
    invalid = t.label_weights.reshape(-1) == 0
    assert invalid.sum() == 4 and not np.any(t.pos.reshape(-1)[invalid])
    extra = np.sum(sigmoid(x[invalid]) ** 2 * softplus(x[invalid])) / t.num_total_samples
    without, _ = loss("gfocal")
    weighted, _ = loss("gfocal", qfl_label_weights=True)
    assert without["loss_cls"] - weighted["loss_cls"] == pytest.approx(extra, rel=1e-10)
    assert extra > 0.1
    assert DIALECTS["nanodet"].qfl_label_weights and DIALECTS["mmdet2"].qfl_label_weights


def test_atss_threshold_std_is_unbiased_and_a_biased_port_differs():
    """Two candidates with IoUs 1 and 0.25: the unbiased threshold (1.155) takes neither; a
    ``np.std`` port's (exactly 1.0) takes the first. A single candidate: no positive. GFocal's
    assigner is not checked: not one of its pieces."""
    gt = np.array([[0.0, 0.0, 16.0, 16.0]])
    two = np.array([[0.0, 0.0, 16.0, 16.0], [0.0, 0.0, 16.0, 4.0]])
    for name, d in DIALECTS.items():
        if "atss_assign" in d.pieces:
            assert R.atss_assign(two, [2], gt, std_ddof=d.atss_std_ddof).gt_inds.tolist() == [0, 0]
            one = R.atss_assign(two[:1], [1], gt, std_ddof=d.atss_std_ddof)
            assert one.gt_inds.tolist() == [0], name
    assert R.atss_assign(two, [2], gt, std_ddof=0).gt_inds.tolist() == [1, 0]
    assert "atss_assign" not in DIALECTS["gfocal"].pieces


def test_point_of_cell_is_half_a_cell_on_in_nanodet_ultralytics():
    """A 2 x 3 level of stride 8: points (8j, 8i) here, (8j + 4, 8i + 4) in nanodet, (j + 0.5,
    i + 0.5) grid units in ultralytics. GFocal's anchors are not checked."""

    def points(name):
        (a,) = R.grid_anchors([(2, 3)], [8], center_offset=DIALECTS[name].center_offset)
        return R.anchors.anchor_centers(a)

    jj, ii = np.tile(np.arange(3.0), 2), np.repeat(np.arange(2.0), 3)
    np.testing.assert_array_equal(points("mmdet2"), np.stack([8 * jj, 8 * ii], 1))
    np.testing.assert_array_equal(points("nanodet") - points("mmdet2"), np.full((6, 2), 4.0))
    np.testing.assert_array_equal(points("ultralytics") / 8, np.stack([jj + 0.5, ii + 0.5], 1))
    assert "grid_anchors" not in DIALECTS["gfocal"].pieces


def test_box_loss_normaliser_clamps_at_one_only_in_mmdetection():
    """Positives whose weights sum to Σw = 0.0025 < 1: mmdetection divides by 1, GFocal and
    nanodet by Σw (about 400 times larger box losses); no positives: mmdetection's box losses
    are 0, GFocal's 0/0 = NaN, nanodet's every loss 0."""
    ours, _ = loss("mmdet2", "faint")
    theirs, cache = loss("gfocal", "faint")
    total = float(cache.avg_factor)
    assert total == pytest.approx(0.0024612971784624483, rel=1e-9)
    for key in ("loss_bbox", "loss_dfl"):
        assert theirs[key] == pytest.approx(ours[key] / total, rel=1e-12)
    nano, cache = loss("nanodet", "faint")
    clamped, _ = loss("nanodet", "faint", box_norm="clamp")
    assert nano["loss_bbox"] == pytest.approx(clamped["loss_bbox"] / float(cache.avg_factor))
    assert float(cache.avg_factor) < 1 and nano["loss_cls"] == clamped["loss_cls"]
    empty = {name: loss(name, "no_gt")[0] for name in ("mmdet2", "gfocal", "nanodet")}
    assert empty["mmdet2"]["loss_bbox"] == empty["mmdet2"]["loss_dfl"] == 0.0
    assert np.isnan(empty["gfocal"]["loss_bbox"]) and np.isnan(empty["gfocal"]["loss_dfl"])
    assert empty["nanodet"] == {"loss_cls": 0.0, "loss_bbox": 0.0, "loss_dfl": 0.0}
    assert empty["mmdet2"]["loss_cls"] == pytest.approx(5.397034746207887, rel=1e-12)


def test_decode_clamp_is_one_pixel_tighter_in_gfocal():
    """A box overflowing a 24 x 32 image: x2 = 32, y2 = 24 here and in nanodet, 31 and 23 in
    GFocal."""
    points, dist = np.array([[16.0, 12.0]]), np.array([[20.0, 20.0, 20.0, 20.0]])

    def decode(name):
        off = DIALECTS[name].decode_clamp_offset
        return R.distance2bbox_forward(points, dist, (24, 32), clamp_offset=off)[0][0].tolist()

    assert decode("mmdet2") == decode("nanodet") == [0.0, 0.0, 32.0, 24.0]
    assert decode("gfocal") == [0.0, 0.0, 31.0, 23.0]


def test_ultralytics_decode_never_clamps():
    """The same overflowing box: clamped to the 24 x 32 image here, left as it is by
    ultralytics' ``dist2bbox`` (``clamp_offset=None``), even when given the image's size."""
    points, dist = np.array([[16.0, 12.0]]), np.array([[20.0, 20.0, 20.0, 20.0]])

    def decode(name):
        off = DIALECTS[name].decode_clamp_offset
        return R.distance2bbox_forward(points, dist, (24, 32), clamp_offset=off)[0][0].tolist()

    assert decode("mmdet2") == [0.0, 0.0, 32.0, 24.0]
    assert decode("ultralytics") == [-4.0, -8.0, 36.0, 32.0]


def test_dfl_reduction_of_ultralytics_weighs_by_target_scores():
    """Both normalisations from the reference's pieces, on the same per-side DFL of 3
    positives. This project: Σ_p w_p Σ_sides DFL / 4 / max(Σw, 1), w the detached max class
    score. ultralytics: Σ_p t_p mean_sides DFL / Σt, t the summed target scores. The sum over
    sides with avg_factor 4 *is* the mean over sides: with equal weights (Σ ≥ 1) the two agree;
    they differ through the weights."""
    rng = np.random.default_rng(3)
    pred = rng.normal(size=(12, 17))  # 3 positives x 4 sides, n = 16
    target = rng.uniform(0.0, 15.9, size=12)
    per_side, _ = R.dfl_forward(pred, target)  # (12,)
    w = np.array([0.9, 0.6, 0.8])  # max class scores
    t = np.array([0.3, 0.1, 0.7])  # target scores (task-aligned, normalised)

    def ours(weight):
        out, _ = R.weight_reduce_forward(per_side, np.repeat(weight, 4), "mean", 4.0)
        return float(out) / max(weight.sum(), 1.0)

    def ultralytics(weight):
        mean_sides = per_side.reshape(3, 4).mean(axis=1)
        out, _ = R.weight_reduce_forward(mean_sides, weight, "mean", float(weight.sum()))
        return float(out)

    assert ours(w) == pytest.approx(ultralytics(w), rel=1e-13)  # the same weights: equal
    expected_gap = (per_side.reshape(3, 4).mean(1) @ w) / w.sum() - (
        per_side.reshape(3, 4).mean(1) @ t
    ) / t.sum()
    assert ours(w) - ultralytics(t) == pytest.approx(expected_gap, rel=1e-12)
    assert abs(expected_gap) > 1e-2


def test_mmdet3_adds_float32_eps_to_every_avg_factor():
    """The same workload: loss_cls shrinks by N/(N + eps) (N = num_total_samples), loss_bbox
    by 1/(1 + eps), loss_dfl by 4/(4 + eps): a relative 1e-7 at most."""
    assert DIALECTS["mmdet3"].avg_factor_eps == FLOAT32_EPS == 2.0**-23
    ours, cache = loss("mmdet2")
    theirs, _ = loss("mmdet3")
    n = 4.0  # the workload's positives: num_total_samples
    eps = FLOAT32_EPS
    for key, factor in (("loss_cls", n), ("loss_bbox", 1.0), ("loss_dfl", 4.0)):
        assert theirs[key] == pytest.approx(ours[key] * factor / (factor + eps), rel=1e-14)
        assert 0 < 1 - theirs[key] / ours[key] <= 1.2e-7


def test_images_without_ground_truth():
    """mmdetection (and here): every valid anchor is trained towards 0 by QFL, box losses 0
    with zero gradients, an image without positives counts 1 in num_total_samples. nanodet:
    every loss 0 when no image has a positive, not when one has."""
    cfg, cls, reg, gtb, gtl, metas = dialect_workload("no_gt")
    losses, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg)
    d_cls, d_reg = R.gfl_loss_backward(cache)
    assert losses["loss_cls"] > 5 and losses["loss_bbox"] == losses["loss_dfl"] == 0.0
    assert all(np.all(g == 0) for g in d_reg)
    valid = R.gfl_targets(SIZES, gtb, gtl, metas, cfg).label_weights.reshape(-1) > 0
    flat = R.flatten_levels(d_cls, "d_cls", 2).reshape(-1, 2)
    assert np.all(flat[valid] > 0) and np.all(flat[~valid] == 0)  # pushes every logit down
    nano, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg, dialect="nanodet")
    assert nano == {"loss_cls": 0.0, "loss_bbox": 0.0, "loss_dfl": 0.0}
    assert all(np.all(g == 0) for g in sum(R.gfl_loss_backward(cache), []))
    # a batch of an image with objects and one without: 4 + 1 samples; nanodet's loss is not 0
    _, cls1, reg1, gtb1, gtl1, _ = dialect_workload("padded")
    both = [np.concatenate([a, b]) for a, b in zip(cls1, cls)]
    both_reg = [np.concatenate([a, b]) for a, b in zip(reg1, reg)]
    args = (both, both_reg, gtb1 + gtb, gtl1 + gtl, metas * 2, cfg)
    t = R.gfl_targets(SIZES, *args[2:])
    assert t.pos.sum() == 4 and t.num_total_samples == 5.0
    nano, _ = R.gfl_loss_forward(*args, dialect="nanodet")
    assert all(v > 0 for v in nano.values())


# ================================================================ the mapping


class NoSwitch(NamedTuple):
    """A row without a switch: the dialect does not define these pieces (``Dialect.pieces``)."""

    dialect: str
    pieces: tuple[str, ...]


#: table → row → its witness. A table is named by the dialects it sets against this project.
TABLE_WITNESSES = {
    "gfocal/nanodet": {
        "`reg_max`": test_reg_max_is_the_largest_bin_in_the_mmdetection_family,
        "DFL target clamp": test_dfl_targets_are_clamped_below_n_by_each_dialects_eps,
        "factor of a QFL positive": test_qfl_factor_has_no_abs_in_gfocal,
        "factor differentiated through?": test_qfl_factor_is_differentiated_in_every_dialect,
        "class labels": test_gfocal_labels_are_ours_plus_one_with_background_zero,
        "quality target of a positive": test_quality_target_iou_has_plus_one_widths_in_gfocal,
        "QFL weights": test_qfl_label_weights_are_not_passed_in_gfocal,
        "std in the ATSS threshold": test_atss_threshold_std_is_unbiased_and_a_biased_port_differs,
        "point of cell $(i, j)$": test_point_of_cell_is_half_a_cell_on_in_nanodet_ultralytics,
        "box-loss normaliser": test_box_loss_normaliser_clamps_at_one_only_in_mmdetection,
        "decode clamp at inference": test_decode_clamp_is_one_pixel_tighter_in_gfocal,
    },
    "ultralytics": {
        "`reg_max`": test_ultralytics_reg_max_16_is_this_projects_15,
        "DFL target clamp": test_dfl_targets_are_clamped_below_n_by_each_dialects_eps,
        "classification loss": NoSwitch("ultralytics", ("qfl", "gfl_loss")),
        "assigner": NoSwitch("ultralytics", ("atss_assign", "gfl_targets")),
        "point of cell $(i, j)$": test_point_of_cell_is_half_a_cell_on_in_nanodet_ultralytics,
        "DFL reduction": test_dfl_reduction_of_ultralytics_weighs_by_target_scores,
        "box loss": NoSwitch("ultralytics", ("giou_loss", "gfl_loss")),
        "decode": test_ultralytics_decode_never_clamps,
    },
}  # fmt: skip
WITNESSED = {(table, row): w for table, rows in TABLE_WITNESSES.items() for row, w in rows.items()}

#: Each section of "Details" → the witnesses of its claims.
PROSE_WITNESSES = {
    "What `reg_max` means": (
        test_reg_max_is_the_largest_bin_in_the_mmdetection_family,
        test_ultralytics_reg_max_16_is_this_projects_15,
    ),
    "The clamp of DFL targets": (test_dfl_targets_are_clamped_below_n_by_each_dialects_eps,),
    "`abs` in QFL": (
        test_qfl_factor_has_no_abs_in_gfocal,
        test_qfl_factor_is_differentiated_in_every_dialect,
    ),
    "Label conventions": (test_gfocal_labels_are_ours_plus_one_with_background_zero,),
    "The ATSS threshold's standard deviation": (
        test_atss_threshold_std_is_unbiased_and_a_biased_port_differs,
    ),
    "How the box losses are normalised": (
        test_box_loss_normaliser_clamps_at_one_only_in_mmdetection,
        test_mmdet3_adds_float32_eps_to_every_avg_factor,
        test_dfl_reduction_of_ultralytics_weighs_by_target_scores,
    ),
    "Images without ground truth": (test_images_without_ground_truth,),
}


def test_the_page_has_the_two_tables():
    assert [t.key for t in TABLES] == ["gfocal/nanodet", "ultralytics"]
    assert TABLES[0].columns == ["mmdet2", "gfocal", "nanodet"]
    assert TABLES[1].columns == ["mmdet2", "ultralytics"]


ROWS = {(t.key, label): cells for t in TABLES for label, cells in t.rows.items()}


def test_every_row_whose_cells_differ_has_a_witness():
    missing = [row for row, cells in ROWS.items() if differs(cells) and row not in WITNESSED]
    assert not missing, f"rows of docs/semantics.md without a witness in TABLE_WITNESSES: {missing}"
    gone = [row for row in WITNESSED if row not in ROWS]
    assert not gone, f"TABLE_WITNESSES names rows docs/semantics.md no longer has: {gone}"


def test_every_row_whose_cells_agree_has_a_witness_of_what_they_share():
    missing = [row for row, cells in ROWS.items() if not differs(cells) and row not in WITNESSED]
    assert not missing, f"rows of docs/semantics.md without a witness in TABLE_WITNESSES: {missing}"


def test_every_details_section_has_a_witness():
    assert details_sections(TEXT) == list(PROSE_WITNESSES)


def test_the_witnesses_are_tests_of_this_module():
    module = globals()
    for witness in [*WITNESSED.values(), *sum(PROSE_WITNESSES.values(), ())]:
        if isinstance(witness, NoSwitch):
            continue
        assert witness.__name__.startswith("test_") and module[witness.__name__] is witness


@pytest.mark.parametrize(
    "row", [row for row, w in WITNESSED.items() if isinstance(w, NoSwitch)], ids=str
)
def test_a_row_without_a_switch_is_outside_the_dialects_pieces(row):
    witness = WITNESSED[row]
    table = next(t for t in TABLES if t.key == row[0])
    assert table.in_code[row[1]].startswith("no switch")
    d = DIALECTS[witness.dialect]
    assert not set(witness.pieces) & set(d.pieces), (row, d.pieces)
    assert {"integral", "dfl", "distance2bbox", "bbox2distance"} <= set(d.pieces)


def test_the_in_code_column_names_switches_that_exist():
    """Every ``Dialect.field`` names a field, every ``function(..., arg=...)`` a keyword
    argument of :mod:`reference`'s function; a switch row names at least one of them."""
    fields = {f.name for f in dataclasses.fields(Dialect)}
    for table in TABLES:
        for label, cell in table.in_code.items():
            named = re.findall(r"`Dialect\.(\w+)`", cell)
            calls = re.findall(r"`(\w+)\(\.\.\., (\w+)=\.\.\.\)`", cell)
            assert set(named) <= fields, (label, named)
            for fn, arg in calls:
                assert arg in inspect.signature(getattr(R, fn)).parameters, (label, fn, arg)
            assert named or calls or cell.startswith("no switch"), (table.key, label, cell)


def test_the_pages_example_prints_what_it_says():
    assert f"# {MMDET2.differences(DIALECTS['nanodet'])}" in TEXT
    assert "tests/test_semantics.py" in TEXT


def test_gist_and_differs():
    assert gist("unbiased, `ddof=1` (`torch.std` default)") == "unbiased"
    assert gist("$\\max(\\sum w, 1)$, $w$ the positives'") == "$\\max(\\sum w, 1)$"
    assert gist("same; 16") == "same" and gist("**no** `abs`, (x)") == "no `abs`"
    assert not differs({"mmdet2": "yes (not detached)", "gfocal": "yes", "nanodet": "yes"})
    assert not differs({"mmdet2": "a", "gfocal": "not checked (b)", "nanodet": "same meaning"})
    assert differs({"mmdet2": "$[0, w]$", "gfocal": "$[0, w - 1]$"})
