"""The plain (non-differentiable) pieces the engine knows: inputs, how to compare,
and identities of the candidate alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

import reference as R

from . import strategies as S
from .compare import as_array, assert_close, assert_equal, check_lengths
from .engine import Candidate, Property, PropertyFailed, to_numpy
from .pair_pieces import _named

Args = dict[str, Any]


@dataclass(frozen=True)
class PlainSpec:
    """A plain function: inputs (named, SPEC's order), the reference, how to compare."""

    name: str
    inputs: st.SearchStrategy[Args]
    reference: Callable[..., Any]
    compare: Callable[[Any, Any], None]
    identities: tuple[tuple[str, Callable[[Candidate, Args], None]], ...] = ()
    max_examples: int | None = None


def plain_properties(spec: PlainSpec) -> list[Property]:
    def matches(cand: Candidate, args: Args) -> None:
        expected = spec.reference(*args.values())
        got = to_numpy(cand.call("function", cand.fn, *args.values()))
        spec.compare(expected, got)

    n = spec.max_examples
    return [Property("output matches the reference", spec.inputs, matches, n)] + [
        Property(name, spec.inputs, f, n) for name, f in spec.identities
    ]


# --- comparisons -------------------------------------------------------------------------


def close(expected: Any, got: Any) -> None:
    assert_close(expected, got, "the output", float64=False)


def equal(expected: Any, got: Any) -> None:
    assert_equal(expected, got, "the kept indices")


def close_list(expected: list, got: Any) -> None:
    check_lengths(expected, got, "the output")
    for lvl, (e, g) in enumerate(zip(expected, got)):
        assert_close(e, g, f"the output's entry {lvl}", float64=False)


def dets_and_labels(expected: tuple, got: Any, what: str = "") -> None:
    """``(dets (K, 5), labels (K,))``: the same detections, in the same order."""
    if not isinstance(got, tuple | list) or len(got) != 2:
        raise PropertyFailed(f"{what}the output must be a pair (dets, labels), got {got!r}")
    assert_equal(expected[1], got[1], f"{what}the labels (or kept indices)")
    assert_close(expected[0], got[0], f"{what}the detections (x1, y1, x2, y2, score)", 1e-6, 1e-6,
                 float64=False)  # fmt: skip


def per_image_dets(expected: list, got: Any) -> None:
    check_lengths(expected, got, "the detections (one entry per image)")
    for i, (e, g) in enumerate(zip(expected, got)):
        dets_and_labels(e, g, f"image {i}: ")


def assign_result(expected: Any, got: Any) -> None:
    for field in ("gt_inds", "labels"):
        if getattr(expected, field) is None:
            continue
        if not hasattr(got, field):
            raise PropertyFailed(f"the result must have a field {field!r} (an AssignResult)")
        assert_equal(getattr(expected, field), to_numpy(getattr(got, field)), f"{field}")
    # max_overlaps is compared at the positives only: elsewhere this project stores 0 and
    # mmdetection (and nanodet) -1e8, a quirk no user reads (docs/semantics.md)
    pos = np.asarray(expected.gt_inds) > 0
    got_overlaps = as_array(to_numpy(got.max_overlaps), "max_overlaps")
    if got_overlaps.shape != pos.shape:
        raise PropertyFailed("max_overlaps has the wrong shape", pos.shape, got_overlaps.shape)
    assert_close(expected.max_overlaps[pos], got_overlaps[pos], "max_overlaps at the positives",
                 float64=False)  # fmt: skip


def targets(expected: Any, got: Any) -> None:
    for field in ("labels", "label_weights", "pos", "valid"):
        if not hasattr(got, field):
            raise PropertyFailed(f"the result must have a field {field!r} (a GFLTargets)")
        assert_equal(getattr(expected, field), to_numpy(getattr(got, field)), field)
    assert_close(expected.bbox_targets, to_numpy(got.bbox_targets), "bbox_targets",
                 float64=False)  # fmt: skip
    assert_close(expected.num_total_samples, to_numpy(got.num_total_samples),
                 "num_total_samples", float64=False)  # fmt: skip


# --- inputs ------------------------------------------------------------------------------


@st.composite
def overlaps_args(draw) -> Args:
    aligned = draw(st.booleans())
    mode = draw(st.sampled_from(["iou", "giou", "iof"]))
    if aligned:
        b1, b2 = draw(S.box_pairs())
    else:
        b1, b2 = draw(S.boxes()), draw(S.boxes())
    return {"bboxes1": b1, "bboxes2": b2, "mode": mode, "is_aligned": aligned}


@st.composite
def b2d_args(draw) -> Args:
    points, bbox = draw(S.points_in_boxes())
    max_dis = draw(st.one_of(st.none(), st.sampled_from([4.0, 16.0, 64.0])))
    return {"points": points, "bbox": bbox, "max_dis": max_dis}


@st.composite
def anchors_args(draw) -> Args:
    sizes, strides = draw(S.featmap_levels())
    return {"featmap_sizes": sizes, "strides": strides,
            "octave_base_scale": draw(st.sampled_from([8, 4, 1]))}  # fmt: skip


@st.composite
def atss_args(draw) -> Args:
    p = draw(S.atss_problems())
    return {"anchors": p["anchors"], "num_level_anchors": p["num_level_anchors"],
            "gt_bboxes": p["gt_bboxes"][0], "gt_labels": p["gt_labels"][0],
            "gt_bboxes_ignore": p["gt_bboxes_ignore"][0], "topk": p["topk"],
            "ignore_iof_thr": p["ignore_iof_thr"]}  # fmt: skip


NMS_ARGS = S.nms_boundary_problems().map(
    lambda p: {"boxes": p[0], "scores": p[1], "iou_threshold": p[3]}
)
BATCHED_ARGS = S.nms_boundary_problems().map(
    lambda p: {"boxes": p[0], "scores": p[1], "idxs": p[2], "iou_threshold": p[3]}
)
MULTICLASS_ARGS = _named(S.multiclass_problems(boundary=True), "multi_bboxes", "multi_scores",
                         "score_thr", "iou_threshold", "max_num")  # fmt: skip


@st.composite
def head_args(draw, predict: bool) -> Args:
    cfg, cls, reg, gtb, gtl, metas = draw(S.head_workloads(max_batch=2, max_classes=4))
    if predict:
        cfg = R.GFLConfig(num_classes=cfg.num_classes, strides=cfg.strides, nms_pre=20,
                          score_thr=0.3, max_per_img=15)  # fmt: skip
        return {"cls_scores": cls, "bbox_preds": reg, "img_metas": metas, "cfg": cfg}
    sizes = [tuple(c.shape[2:]) for c in cls]
    return {"featmap_sizes": sizes, "gt_bboxes": gtb, "gt_labels": gtl, "img_metas": metas,
            "cfg": cfg}  # fmt: skip


# --- identities --------------------------------------------------------------------------


def iou_with_itself_is_one(cand: Candidate, args: Args) -> None:
    b = args["bboxes1"]
    got = as_array(to_numpy(cand.call("function", cand.fn, b, b, "iou", True)), "the IoU")
    assert_close(np.ones(b.shape[0]), got, "the IoU of each box with itself")


def nms_keeps_no_overlapping_pair(cand: Candidate, args: Args) -> None:
    """No two kept boxes overlap by more than the threshold, and they come by score."""
    keep = as_array(to_numpy(cand.call("function", cand.fn, *args.values())), "the kept indices")
    boxes, scores = args["boxes"].astype(np.float64), args["scores"].astype(np.float64)
    if keep.size and keep.dtype.kind not in "iu":
        raise PropertyFailed(f"kept indices must be integers, got dtype {keep.dtype}")
    if np.any(np.diff(scores[keep]) > 0):
        raise PropertyFailed("the kept boxes must come by descending score", None, scores[keep])
    iou = R.bbox_overlaps(boxes[keep], boxes[keep])
    np.fill_diagonal(iou, 0.0)
    if np.any(iou > args["iou_threshold"] + 1e-6):
        raise PropertyFailed("two kept boxes overlap by more than iou_threshold", None, iou)


PLAIN_SPECS: dict[str, PlainSpec] = {
    s.name: s
    for s in (
        PlainSpec("bbox_overlaps", overlaps_args(), R.bbox_overlaps, close,
                  (("a box has IoU 1 with itself", iou_with_itself_is_one),)),
        PlainSpec("bbox2distance", b2d_args(), R.bbox2distance, close),
        PlainSpec("grid_anchors", anchors_args(), R.grid_anchors, close_list),
        PlainSpec("atss_assign", atss_args(), R.atss_assign, assign_result),
        PlainSpec("nms", NMS_ARGS, R.nms, equal,
                  (("kept boxes come by score and never overlap above the threshold",
                    nms_keeps_no_overlapping_pair),)),
        PlainSpec("batched_nms", BATCHED_ARGS, R.batched_nms, dets_and_labels),
        PlainSpec("multiclass_nms", MULTICLASS_ARGS, R.multiclass_nms, dets_and_labels),
        PlainSpec("gfl_targets", head_args(predict=False), R.gfl_targets, targets,
                  max_examples=10),
        PlainSpec("gfl_predict", head_args(predict=True), R.gfl_predict, per_image_dets,
                  max_examples=10),
    )
}  # fmt: skip
