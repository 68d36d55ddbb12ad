"""The checking engine (``reference.testing.check``): the project's own implementations
pass every property, NumPy and torch alike; a report names the property, the smallest
failing input, and what was expected and obtained; calls are deterministic and quiet.

Tests of :mod:`reference.testing`. (The catalogue of wrong implementations that the
engine must catch is tested in ``test_mistakes.py``.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reference as R
import torch_impl as T
from reference.testing import PIECES, check

REFERENCE_CANDIDATES = {
    "integral": dict(forward=R.integral_forward, backward=R.integral_backward),
    "qfl": dict(forward=R.qfl_forward, backward=R.qfl_backward),
    "dfl": dict(forward=R.dfl_forward, backward=R.dfl_backward),
    "giou_loss": dict(forward=R.giou_loss_forward, backward=R.giou_loss_backward),
    "distance2bbox": dict(forward=R.distance2bbox_forward, backward=R.distance2bbox_backward),
    "weight_reduce": dict(forward=R.weight_reduce_forward, backward=R.weight_reduce_backward),
    "gfl_loss": dict(forward=R.gfl_loss_forward, backward=R.gfl_loss_backward),
}


def reference_candidate(piece: str) -> dict:
    return REFERENCE_CANDIDATES.get(piece) or dict(fn=getattr(R, piece))


def test_the_pieces_are_the_ones_the_issue_names():
    assert set(PIECES) >= {
        "integral", "qfl", "dfl", "giou_loss", "distance2bbox", "weight_reduce",
        "bbox2distance", "bbox_overlaps", "grid_anchors", "atss_assign", "nms",
        "batched_nms", "multiclass_nms", "gfl_targets", "gfl_loss", "gfl_predict",
    }  # fmt: skip


@pytest.mark.parametrize("piece", PIECES)
def test_the_reference_passes_every_property(piece):
    report = check(piece, **reference_candidate(piece))
    assert report.passed, str(report)
    assert report.checked and not report.unjudged


# torch_impl's functions, called like the reference (per-element outputs), differentiated
# by autograd: the engine converts NumPy inputs to float64 tensors.
TORCH_CANDIDATES = {
    "integral": dict(forward=lambda pred, reg_max: T.integral(pred, reg_max)),
    "qfl": dict(forward=lambda pred, label, score, beta: T.quality_focal_loss(
        pred, label, score, beta=beta, reduction="none")),
    "dfl": dict(forward=lambda pred, label: T.distribution_focal_loss(
        pred, label, reduction="none")),
    "giou_loss": dict(forward=lambda pred, target: T.giou_loss(pred, target, reduction="none")),
    "distance2bbox": dict(forward=T.distance2bbox),
    "bbox_overlaps": dict(fn=T.bbox_overlaps),
    "bbox2distance": dict(fn=T.bbox2distance),
    "nms": dict(fn=T.nms),
    "batched_nms": dict(fn=T.batched_nms),
    "multiclass_nms": dict(fn=T.multiclass_nms),
    "weight_reduce": dict(forward=T.weight_reduce_loss),
    "grid_anchors": dict(fn=lambda sizes, strides, scale: T.grid_anchors(
        sizes, strides, scale, dtype=torch.float64)),
    "atss_assign": dict(fn=T.atss_assign),
    "gfl_targets": dict(fn=T.gfl_targets),
    "gfl_predict": dict(fn=T.gfl_predict),
    "gfl_loss": dict(forward=T.gfl_loss),
}  # fmt: skip


def test_every_piece_has_a_torch_candidate():
    assert set(TORCH_CANDIDATES) == set(PIECES)


@pytest.mark.parametrize("piece", sorted(TORCH_CANDIDATES))
def test_torch_impl_passes_as_a_torch_candidate(piece):
    report = check(piece, array_type="torch", **TORCH_CANDIDATES[piece])
    assert report.passed, str(report)


def test_torch_is_detected_from_the_annotation():
    def integral(pred: torch.Tensor, reg_max: int) -> torch.Tensor:
        return T.integral(pred, reg_max)

    assert check("integral", forward=integral).passed


def wrong_sign_backward(d_out, cache):
    return -R.integral_backward(d_out, cache)


def test_a_wrong_backward_is_reported_with_the_smallest_input():
    report = check("integral", forward=R.integral_forward, backward=wrong_sign_backward)
    assert not report.passed
    names = [f.prop for f in report.failures]
    assert "backward matches finite differences of your forward" in names
    assert "backward matches the reference backward" in names
    assert "forward matches the reference" not in names
    failure = report.failures[0]
    assert failure.inputs["pred"].shape[0] == 1  # shrunk to a single row
    text = str(report)
    assert "smallest failing input" in text and "expected" in text and "got" in text
    with pytest.raises(AssertionError, match="backward matches finite differences"):
        report.raise_if_failed()


def test_reports_are_deterministic_and_quiet(capsys):
    a = str(check("integral", forward=R.integral_forward, backward=wrong_sign_backward))
    b = str(check("integral", forward=R.integral_forward, backward=wrong_sign_backward))
    assert a == b
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_what_a_check_draws_does_not_depend_on_what_else_is_imported(monkeypatch):
    """Hypothesis also draws literals found in the process's own modules; the engine pins that
    pool to empty, so a notebook, a test session and an edited source file all see the same
    inputs (and the same counterexamples)."""
    providers = pytest.importorskip("hypothesis.internal.conjecture.providers")
    if not hasattr(providers, "_get_local_constants"):
        pytest.skip("this Hypothesis draws no local constants")

    def inputs_drawn() -> list[bytes]:
        seen = []

        def recording(pred, reg_max):
            seen.append(pred.tobytes())
            return R.integral_forward(pred, reg_max)

        check("integral", forward=recording, backward=R.integral_backward)
        return seen

    alone = inputs_drawn()
    crowded = providers.Constants(floats={0.5, -3.25, 7.0, 11.5}, integers={0, 1, 3, 7})
    monkeypatch.setattr(providers, "_get_local_constants", lambda: crowded)
    providers.CONSTANTS_CACHE.cache.clear()
    assert inputs_drawn() == alone
    providers.CONSTANTS_CACHE.cache.clear()


def test_a_candidate_that_raises_gets_a_report_not_a_traceback():
    def broken(pred, reg_max):
        raise RuntimeError("not done yet")

    report = check("integral", forward=broken, backward=R.integral_backward)
    assert not report.passed
    assert "your forward raised RuntimeError: not done yet" in str(report)


def test_a_wrong_shape_is_named():
    def rows_summed(pred, reg_max):
        out, cache = R.integral_forward(pred, reg_max)
        return out.sum(axis=1), cache

    report = check("integral", forward=rows_summed, backward=R.integral_backward)
    assert "the forward's output has shape" in str(report)


def test_a_candidate_that_mutates_its_input_is_told():
    def in_place(pred, reg_max):
        out = R.integral_forward(pred, reg_max)
        pred -= pred.max(initial=0.0)
        return out

    report = check("integral", forward=in_place, backward=R.integral_backward)
    assert "changed its argument 1 in place" in str(report)


def test_wrong_arguments_to_check_are_value_errors():
    with pytest.raises(ValueError, match="piece must be one of"):
        check("softmax", fn=np.exp)
    with pytest.raises(ValueError, match="'nms' is a plain function: pass fn="):
        check("nms", forward=R.nms)
    with pytest.raises(ValueError, match="'integral' is a forward/backward pair"):
        check("integral", fn=R.integral_forward)
    with pytest.raises(ValueError, match="array_type must be"):
        check("nms", fn=R.nms, array_type="jax")


def test_values_are_shown_exactly_and_tuples_read_as_tuples():
    from reference.testing.report import show

    assert show((8,)) == "(8,)" and show((8, 16)) == "(8, 16)" and show([(1, 1)]) == "[(1, 1)]"
    assert show(0.1) == "0.1" and show(np.float32(0.5)) == "0.5"
    assert show(np.array([1.0, 2.5])).endswith("# shape (2), float64")


def test_a_wrong_dtype_is_named():
    def integral_in_float32(pred, reg_max):
        out, cache = R.integral_forward(pred, reg_max)
        return out.astype(np.float32), cache

    report = check("integral", forward=integral_in_float32, backward=R.integral_backward)
    assert "the forward's output has dtype float32, expected float64" in str(report)

    def nms_as_floats(boxes, scores, iou_threshold):
        return R.nms(boxes, scores, iou_threshold).astype(np.float64)

    report = check("nms", fn=nms_as_floats)
    assert "has dtype float64, expected integers" in str(report)


def test_a_torch_candidate_called_with_arrays_gets_a_hint():
    report = check("integral", forward=lambda pred, reg_max: T.integral(pred, reg_max))
    assert "pass array_type='torch'" in str(report)


def test_goldens_travel_with_the_package():
    from reference.testing.goldens import golden_names, load

    assert {"integral", "nms", "gfl_loss_a", "gfl_predict"} <= set(golden_names())
    assert load("integral")["pred"].shape == (8, 68)
    with pytest.raises(ValueError, match="name must be one of"):
        load("softmax")
