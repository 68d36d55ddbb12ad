r"""The engine in a dialect: which switches each piece depends on, the reference with a
dialect's switches, the inputs that tell dialects apart, and the calling conventions.

A :class:`~reference.dialects.Dialect` changes a check in three ways:

1. **the reference**: the piece's reference function is called with the dialect's
   switches (``qfl_forward(..., abs_factor=False)`` for GFocal);
2. **the inputs**: where a dialect accepts more than this project (ultralytics'
   DFL clamps any target), the inputs include what only it accepts; where it
   does less (ultralytics' decode never clamps), they leave that out;
3. **the calling conventions**: the candidate is called as its own project calls
   it (GFocal's QFL labels are 1..C with background 0; ultralytics' Integral
   takes the number of bins), translated from this project's arguments, so every
   property and identity is written once.

:data:`PIECE_SWITCHES` says which :class:`~reference.dialects.Dialect` fields a
piece depends on: two dialects that agree on them define the same piece, which
is how :func:`reference.testing.identify` runs one check for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
from hypothesis import strategies as st

from reference.dialects import Dialect

Args = dict[str, Any]

#: The :class:`~reference.dialects.Dialect` fields that change each piece.
PIECE_SWITCHES: dict[str, tuple[str, ...]] = {
    "integral": ("reg_max_is_bin_count",),
    "qfl": ("qfl_abs", "background_first"),
    "dfl": ("dfl_clamps_target", "target_eps"),
    "giou_loss": (),
    "distance2bbox": ("decode_clamp_offset",),
    "weight_reduce": ("avg_factor_eps",),
    "gfl_loss": ("background_first", "qfl_abs", "iou_offset", "target_eps", "atss_std_ddof",
                 "center_offset", "box_norm", "qfl_label_weights", "avg_factor_eps"),
    "bbox_overlaps": ("iou_offset",),
    "bbox2distance": ("target_eps",),
    "grid_anchors": ("center_offset",),
    "atss_assign": ("atss_std_ddof",),
    "nms": (),
    "batched_nms": (),
    "multiclass_nms": (),
    "gfl_targets": ("center_offset", "atss_std_ddof"),
    "gfl_predict": ("center_offset", "decode_clamp_offset"),
}  # fmt: skip


def switches_of(piece: str, dialect: Dialect) -> tuple[object, ...]:
    """The values of the switches ``piece`` depends on (equal tuples: the same piece)."""
    return tuple(getattr(dialect, name) for name in PIECE_SWITCHES[piece])


def reference_kwargs(piece: str, d: Dialect) -> dict[str, Any]:
    """The keyword arguments that put the reference function of ``piece`` in dialect ``d``."""
    table: dict[str, dict[str, Any]] = {
        "qfl": {"abs_factor": d.qfl_abs},
        "dfl": {"clamp_eps": d.target_eps if d.dfl_clamps_target else None},
        "distance2bbox": {"clamp_offset": d.decode_clamp_offset},
        "weight_reduce": {"eps": d.avg_factor_eps},
        "gfl_loss": {"dialect": d},
        "bbox_overlaps": {"offset": d.iou_offset},
        "bbox2distance": {"eps": d.target_eps},
        "grid_anchors": {"center_offset": d.center_offset},
        "atss_assign": {"std_ddof": d.atss_std_ddof},
        "gfl_targets": {"dialect": d},
        "gfl_predict": {"dialect": d},
    }
    return table.get(piece, {})


def in_dialect(spec: Any, d: Dialect, inputs: st.SearchStrategy[Args]) -> Any:
    """``spec`` (a PairSpec or PlainSpec) with the reference and the inputs of dialect ``d``."""
    kwargs = reference_kwargs(spec.name, d)
    if hasattr(spec, "ref_forward"):
        return replace(spec, ref_forward=partial(spec.ref_forward, **kwargs), inputs=inputs)
    return replace(spec, reference=partial(spec.reference, **kwargs), inputs=inputs)


# --- inputs ------------------------------------------------------------------------------


@st.composite
def targets_past_the_clamp(draw, base: st.SearchStrategy[Args], eps: float) -> Args:
    """DFL inputs where some targets lie at or past the clamp ``n - eps``, or below 0."""
    args = draw(base)
    label = args["label"].copy()
    n = args["pred"].shape[1] - 1
    outside = [-0.5, -1e-3, n - eps, n - eps / 2, float(n), n + 0.5]
    for i in range(label.size):
        if draw(st.booleans()):
            label[i] = draw(st.sampled_from(outside))
    return dict(args, label=label)


def dialect_inputs(piece: str, d: Dialect, inputs: st.SearchStrategy[Args]) -> st.SearchStrategy:
    """The inputs of ``piece`` in dialect ``d`` (this project's, where nothing changes)."""
    if piece == "dfl" and d.dfl_clamps_target:
        return st.one_of(inputs, targets_past_the_clamp(inputs, d.target_eps))
    if piece == "distance2bbox" and d.decode_clamp_offset is None:
        return inputs.map(lambda a: dict(a, max_shape=None))  # it never clamps
    if piece == "bbox_overlaps" and d.iou_offset:
        # mmdetection 1.x's bbox_overlaps has no "giou" mode and gives empty inputs the
        # shape (0, 1): it defines IoU and IoF of non-empty sets only
        return inputs.filter(
            lambda a: a["mode"] != "giou" and len(a["bboxes1"]) and len(a["bboxes2"])
        )
    if piece == "distance2bbox" and d.decode_clamp_offset:
        # an image of 1 pixel leaves [0, 0]: both bounds at once, no derivative to judge
        return inputs.filter(lambda a: a["max_shape"] is None or min(a["max_shape"]) > 1)
    return inputs


# --- calling conventions ----------------------------------------------------------------


def _like(value: Any, array: np.ndarray) -> Any:
    """``array`` in the type of ``value`` (a torch tensor stays a tensor)."""
    if hasattr(value, "detach"):
        import torch

        return torch.from_numpy(array)
    return array


def _background_first(label: Any, num_classes: int) -> Any:
    """Labels 0..C-1 → 1..C, every negative (C, -1, > C) → 0 (mmdetection 1.x)."""
    lab = np.asarray(label.detach().cpu().numpy() if hasattr(label, "detach") else label)
    pos = (lab >= 0) & (lab < num_classes)
    return _like(label, np.where(pos, lab + 1, 0).astype(np.int64))


def translator(piece: str, d: Dialect) -> Callable[[tuple], tuple] | None:
    """How this project's positional arguments become the candidate's, in dialect ``d``."""
    if piece == "integral" and d.reg_max_is_bin_count:
        return lambda args: (args[0], args[1] + 1, *args[2:])
    if piece == "qfl" and d.background_first:
        return lambda args: (args[0], _background_first(args[1], np.shape(args[0])[1]), *args[2:])
    return None


def convention_notes(piece: str, d: Dialect) -> list[str]:
    """What the candidate is passed differently in dialect ``d``, in words (for reports)."""
    notes = []
    if piece == "integral" and d.reg_max_is_bin_count:
        notes.append("reg_max is passed as the number of bins (this project's n + 1)")
    if piece == "qfl" and d.background_first:
        notes.append("labels are passed 1..C for objects and 0 for the background")
    return notes


def dfl_integer_targets(label: np.ndarray, n: int) -> np.ndarray:
    """Integer targets ``0..n-1`` from any labels (for the cross-entropy identity)."""
    return np.clip(np.floor(label), 0, n - 1).astype(np.int64)
