r"""The GFL head's training targets in NumPy: ATSS on every image, then per-anchor
labels, weights and boxes (mmdetection's ``GFLHead.get_targets``).

The first of the head's three steps (targets → :mod:`reference.head_loss` →
:mod:`reference.head_predict`); the twin of :mod:`torch_impl.head_targets`,
which assigns the whole batch at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .anchors import grid_anchors, valid_flags
from .atss import AssignResult
from .atss_fast import atss_assign_fast
from .config import GFLConfig
from .dialects import Dialect, get_dialect
from .img_meta import parse_img_metas
from .validation import as_float, as_int

__all__ = ["GFLTargets", "gfl_targets"]


class GFLTargets(NamedTuple):
    """Per-anchor training targets of a batch (levels concatenated, level 0 first).

    The twin of :class:`torch_impl.GFLTargets` (whose fields carry a batch axis
    throughout).

    Attributes
    ----------
    anchors : ndarray, shape (A, 4)
    strides : ndarray, shape (A,)  — the stride of each anchor's level
    num_level_anchors : list of int — anchors per level
    valid : ndarray of bool, shape (B, A) — valid flags (padding)
    labels : ndarray of int, shape (B, A) — gt label at positives, C elsewhere
    label_weights : ndarray, shape (B, A) — 1 for valid, non-ignored anchors
    bbox_targets : ndarray, shape (B, A, 4) — gt box at positives, 0 elsewhere
    pos : ndarray of bool, shape (B, A)
    num_total_samples : float — :math:`\\max(\\sum_i \\max(n^{pos}_i, 1), 1)`
    assign_results : list of AssignResult — ATSS on each image's valid anchors
    """

    anchors: np.ndarray
    strides: np.ndarray
    num_level_anchors: list[int]
    valid: np.ndarray
    labels: np.ndarray
    label_weights: np.ndarray
    bbox_targets: np.ndarray
    pos: np.ndarray
    num_total_samples: float
    assign_results: list[AssignResult]


def gfl_targets(
    featmap_sizes: Sequence[tuple[int, int]],
    gt_bboxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    img_metas: Sequence[dict],
    cfg: GFLConfig,
    gt_bboxes_ignore: Sequence[np.ndarray | None] | None = None,
    *,
    dialect: str | Dialect = "mmdet2",
) -> GFLTargets:
    r"""ATSS targets of every anchor of every image (mmdetection's ``get_targets``).

    Parameters
    ----------
    featmap_sizes : list of (H_l, W_l), one per level
    gt_bboxes : list of ndarray, shape (G_i, 4), one per image
    gt_labels : list of ndarray of int, shape (G_i,), values in ``[0, C)``
    img_metas : list of dict, one per image (``img_shape``, ``pad_shape``)
    cfg : GFLConfig
    gt_bboxes_ignore : list of ndarray (K_i, 4) or None, optional
        Boxes to ignore (used only when ``cfg.ignore_iof_thr > 0``).
    dialect : str or Dialect
        Where implementations differ (:mod:`reference.dialects`): here the
        anchors' ``center_offset`` and the ATSS ``std_ddof``.

    Returns
    -------
    GFLTargets

    See Also
    --------
    torch_impl.gfl_targets : the PyTorch twin.

    Notes
    -----
    Per image, ATSS runs on the valid anchors only (``allowed_border=-1``:
    inside flags are the valid flags). Positives get their gt's label and box
    and label weight 1; negatives label C and weight 1; ignored (−1) and
    invalid anchors label C and weight 0. The QFL normaliser counts an image
    without positives as 1:

    .. math:: N_{samples} = \max\Big(\sum_i \max(n^{pos}_i, 1),\ 1\Big).

    ATSS runs in its fast form, :func:`~reference.atss_fast.atss_assign_fast` (the same
    assignment, bit for bit, tested).
    """
    batch = len(gt_bboxes)
    metas = parse_img_metas(img_metas, batch)
    if len(gt_labels) != batch:
        raise ValueError(f"gt_labels must have one entry per image ({batch}), got {len(gt_labels)}")
    if gt_bboxes_ignore is not None and len(gt_bboxes_ignore) != batch:
        raise ValueError(
            f"gt_bboxes_ignore must have one entry per image ({batch}), got {len(gt_bboxes_ignore)}"
        )
    c, d = cfg.num_classes, get_dialect(dialect)
    level_anchors = grid_anchors(
        featmap_sizes, cfg.strides, cfg.octave_base_scale, center_offset=d.center_offset
    )
    num_level = [a.shape[0] for a in level_anchors]
    anchors = np.concatenate(level_anchors, axis=0)  # (A, 4)
    strides = np.concatenate(
        [np.full(n, s, dtype=np.float64) for n, s in zip(num_level, cfg.strides)]
    )
    a = anchors.shape[0]
    valid = np.zeros((batch, a), dtype=bool)
    labels = np.full((batch, a), c, dtype=np.int64)
    label_weights = np.zeros((batch, a))
    bbox_targets = np.zeros((batch, a, 4))
    results = []
    num_pos_total = 0
    for i in range(batch):
        gts = as_float(gt_bboxes[i], f"gt_bboxes[{i}]", ("G", 4), finite=True)
        gl = as_int(gt_labels[i], f"gt_labels[{i}]", (gts.shape[0],))
        if np.any((gl < 0) | (gl >= c)):
            raise ValueError(
                f"gt_labels[{i}] must lie in [0, num_classes) = [0, {c}), got {gl.tolist()}"
            )
        flags = np.concatenate(valid_flags(featmap_sizes, metas[i].pad_shape, cfg.strides))  # (A,)
        valid[i] = flags
        num_level_valid = [int(f.sum()) for f in np.split(flags, np.cumsum(num_level)[:-1])]
        ignore = None if gt_bboxes_ignore is None else gt_bboxes_ignore[i]
        res = atss_assign_fast(anchors[flags], num_level_valid, gts, gl, ignore, cfg.topk,
                               cfg.ignore_iof_thr, std_ddof=d.atss_std_ddof)  # fmt: skip
        results.append(res)
        idx = np.flatnonzero(flags)  # valid anchor → its index among all anchors
        pos_local = res.gt_inds > 0
        pos_idx = idx[pos_local]
        labels[i, pos_idx] = res.labels[pos_local]
        bbox_targets[i, pos_idx] = gts[res.gt_inds[pos_local] - 1]
        label_weights[i, idx[res.gt_inds >= 0]] = 1.0
        num_pos_total += max(int(pos_local.sum()), 1)
    pos = labels < c
    num_total_samples = float(max(num_pos_total, 1))
    return GFLTargets(
        anchors,
        strides,
        num_level,
        valid,
        labels,
        label_weights,
        bbox_targets,
        pos,
        num_total_samples,
        results,
    )
