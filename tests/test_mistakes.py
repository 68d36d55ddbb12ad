"""The mistakes the checking engine must catch (``reference.testing.mistakes``).

Every catalogued wrong implementation fails ``check`` with a small, shrunk
counterexample and a report that names the broken property; the catalogue
covers the mistakes the issue lists; and the textbook versions of the
skeletons the mistakes are built on pass, so that each failure is the
mistake's doing.
"""

from __future__ import annotations

import numpy as np
import pytest

from reference.testing import PIECES, check
from reference.testing import mistakes as M
from reference.testing.mistakes import MISTAKES, Mistake, mistake
from reference.testing.pair_pieces import PAIR_SPECS

NAMES = [m.name for m in MISTAKES]


def rows(value: object) -> int:
    """Rows of an array, entries of a list or tuple, 0 for anything else."""
    if isinstance(value, np.ndarray):
        return int(value.shape[0]) if value.ndim else 0
    if isinstance(value, list | tuple):
        return len(value)
    return 0


# How big a counterexample is, per piece, and the most a shrunk one may be (each far
# below what the piece's strategy draws: 8-12 rows, 28 boxes, 84 anchors, 10 gts).
SIZE = {
    "integral": (lambda a: rows(a["pred"]), 1),
    "qfl": (lambda a: rows(a["pred"]), 1),
    "dfl": (lambda a: rows(a["pred"]), 1),
    "giou_loss": (lambda a: rows(a["pred"]), 1),
    "distance2bbox": (lambda a: rows(a["points"]), 1),
    "weight_reduce": (lambda a: rows(a["loss"]), 2),
    "bbox_overlaps": (lambda a: max(rows(a["bboxes1"]), rows(a["bboxes2"])), 1),
    "bbox2distance": (lambda a: rows(a["points"]), 1),
    "grid_anchors": (lambda a: sum(h * w for h, w in a["featmap_sizes"]), 1),
    "atss_assign": (lambda a: rows(a["anchors"]), 16),
    "nms": (lambda a: rows(a["boxes"]), 3),
    "batched_nms": (lambda a: rows(a["boxes"]), 4),
    "multiclass_nms": (lambda a: rows(a["multi_bboxes"]), 2),
    "gfl_loss": (lambda a: sum(rows(g) for g in a["gt_bboxes"]), 2),
}


def test_the_catalogue_is_large_and_well_formed():
    assert len(MISTAKES) >= 15
    assert len(set(NAMES)) == len(NAMES), "mistake names must be unique"
    for m in MISTAKES:
        assert isinstance(m, Mistake)
        assert m.piece in PIECES, f"{m.name}: no piece {m.piece!r}"
        assert m.piece in SIZE, f"{m.name}: tests/test_mistakes.py has no size for {m.piece!r}"
        assert len(m.description.split()) >= 12, f"{m.name}: say what is wrong, and why"
        assert m.array_type in ("numpy", "torch")
        if m.piece in PAIR_SPECS:
            assert m.forward is not None and m.fn is None
            assert m.backward is not None or m.array_type == "torch"
        else:
            assert m.fn is not None and m.forward is None and m.backward is None


def test_the_catalogue_covers_the_mistakes_the_issue_names():
    assert {
        "qfl_log_eps", "integral_softmax_over_sides", "bbox2distance_clamped_to_max_dis",
        "bbox2distance_not_clamped", "dfl_weights_swapped", "qfl_without_abs",
        "gfl_loss_quality_not_detached", "qfl_factor_gradient_dropped", "iou_plus_one",
        "giou_loss_without_enclosing_box", "nms_suppresses_at_threshold",
        "nms_not_sorted_by_score", "atss_biased_std", "atss_candidates_over_all_levels",
        "atss_without_centre_test", "weight_reduce_ignores_avg_factor",
        "distance2bbox_clamp_keeps_gradient",
    } <= set(NAMES)  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_each_mistake_is_caught_with_a_small_counterexample(name):
    m = mistake(name)
    report = m.check()
    assert not report.passed and report.failures, f"{name} was not caught:\n{report}"
    assert not report.unjudged, str(report)
    text = str(report)
    for failure in report.failures:
        assert failure.prop in report.checked
        assert f"✗ {failure.prop}" in text
        assert failure.inputs, f"{name}: a failure without its input"
    size, bound = SIZE[m.piece]
    smallest = min(size(f.inputs) for f in report.failures)
    assert smallest <= bound, f"{name}: the smallest counterexample has size {smallest}\n{text}"


def test_a_mistake_is_told_apart_from_its_fix():
    """The skeletons the ATSS and head-loss mistakes swap one step of pass with the textbook
    steps: what fails is the mistake."""

    def atss(anchors, num_level_anchors, gt_bboxes, gt_labels=None, gt_bboxes_ignore=None,
             topk=9, ignore_iof_thr=-1.0):  # fmt: skip
        return M._atss(anchors, num_level_anchors, gt_bboxes, gt_labels, gt_bboxes_ignore, topk,
                       ignore_iof_thr)  # fmt: skip

    def head(cls_scores, bbox_preds, gt_bboxes, gt_labels, img_metas, cfg):
        return M._torch_head_loss(cls_scores, bbox_preds, gt_bboxes, gt_labels, img_metas, cfg,
                                  quality_of=M._detached_iou, weight_of=M._detached_max_score)

    for report in (check("atss_assign", fn=atss),
                   check("gfl_loss", forward=head, array_type="torch")):  # fmt: skip
        assert report.passed, str(report)


def test_a_mistake_hands_its_candidate_to_check():
    m = mistake("nms_suppresses_at_threshold")
    assert m.candidate() == {"fn": M.nms_suppresses_at_threshold, "array_type": "numpy"}
    torch_mistake = mistake("qfl_without_abs")
    assert torch_mistake.candidate() == {"forward": M.qfl_without_abs, "array_type": "torch"}
    with pytest.raises(ValueError, match="name must be one of"):
        mistake("nms_without_sorting")
