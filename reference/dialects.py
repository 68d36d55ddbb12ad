r"""NumPy only: the *dialects* of GFL — the places where implementations disagree, as
named switches of the reference, and the implementations as sets of those switches.

Every switch is a keyword argument of the reference function where it acts
(``qfl_forward(..., abs_factor=False)``, ``bbox_overlaps(..., offset=1)``,
``grid_anchors(..., center_offset=0.5)``, …), with this project's value as its
default. A :class:`Dialect` names one value for each, plus the two *calling
conventions* that change how a function is called rather than what it computes
(what ``reg_max`` counts, which label is the background). :data:`DIALECTS`
holds the five that ``docs/semantics.md`` describes; the conformance kit
(:func:`reference.testing.check` with ``dialect=``, :func:`reference.testing.identify`)
checks a candidate against any of them.

>>> from reference.dialects import DIALECTS
>>> DIALECTS["nanodet"].center_offset
0.5
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .validation import check_choice, check_scalar

__all__ = ["Dialect", "DIALECTS", "MMDET2", "get_dialect", "ALL_PIECES", "BOX_NORMS"]

#: Every piece of the checking engine (the same names as ``reference.testing.PIECES``).
ALL_PIECES: tuple[str, ...] = (
    "integral", "qfl", "dfl", "giou_loss", "distance2bbox", "weight_reduce", "gfl_loss",
    "bbox_overlaps", "bbox2distance", "grid_anchors", "atss_assign", "nms", "batched_nms",
    "multiclass_nms", "gfl_targets", "gfl_predict",
)  # fmt: skip

#: The values of :attr:`Dialect.box_norm`.
BOX_NORMS = ("clamp", "none", "zero")

#: float32's machine epsilon, which mmdetection (late 2.x and 3.x) adds to every ``avg_factor``.
FLOAT32_EPS = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class Dialect:
    r"""One implementation's answer to every question on which implementations differ.

    Attributes
    ----------
    name : str
        ``"mmdet2"``, ``"mmdet3"``, ``"gfocal"``, ``"nanodet"`` or ``"ultralytics"``.
    source : str
        Where the behaviour was read (repository and files).
    pieces : tuple of str
        The pieces this dialect defines (the kit checks only these; ultralytics
        shares the Integral, DFL and box decoding with GFL, nothing else).
    reg_max_is_bin_count : bool
        Calling convention. False: ``reg_max`` is :math:`n`, the largest bin
        (:math:`n+1` bins). True (ultralytics): ``reg_max`` is the number of
        bins, so a candidate is passed :math:`n + 1`.
    background_first : bool
        Calling convention. False: objects are labels :math:`0..C-1` and the
        background is :math:`C`. True (GFocal, mmdetection 1.x): the background
        is 0 and objects are :math:`1..C`; a candidate is passed label + 1 for
        an object and 0 for the background.
    qfl_abs : bool
        The QFL factor of a positive is :math:`|y-\sigma|^\beta` (True) or
        :math:`(y-\sigma)^\beta` (False, GFocal: NaN for a negative base and a
        fractional :math:`\beta`, a negative loss for an odd one).
    iou_offset : int
        0, or 1 for the legacy "+1" convention of mmdetection 1.x (hence GFocal)
        in ``bbox_overlaps`` and the head's quality target: a box of ``x1 == x2``
        is one unit wide (one pixel on image boxes; one grid cell in GFocal's
        head, which divides boxes by the stride first). GFocal's GIoU *loss*
        also adds 1 (and adds its eps instead of flooring with it): no switch
        expresses that, and ``giou_loss`` is not a gfocal piece.
    decode_clamp_offset : int or None
        Decoded boxes are clamped to :math:`[0, w - \text{offset}]` (x) and
        :math:`[0, h - \text{offset}]` (y): 0, or 1 in GFocal; None: never
        clamped (ultralytics' ``dist2bbox``).
    target_eps : float
        ``bbox2distance`` clamps DFL targets to :math:`[0, n - \epsilon]`: 0.1
        (mmdetection, GFocal, nanodet) or 0.01 (ultralytics).
    dfl_clamps_target : bool
        DFL itself clamps its target into :math:`[0, n - \epsilon]` (ultralytics'
        ``DFLoss``) instead of requiring :math:`0 \le y < n`.
    atss_std_ddof : int
        The ATSS threshold's standard deviation: 1 (unbiased, ``torch.std``; every
        implementation here) or 0 (``np.std``, a common porting slip).
    center_offset : float
        The point of cell :math:`(i, j)` is :math:`((j + o) s, (i + o) s)`: 0, or
        0.5 in nanodet and ultralytics (``grid_cell_offset``).
    box_norm : {"clamp", "none", "zero"}
        The box losses' normaliser :math:`\sum w`: clamped below at 1 (mmdetection),
        not clamped (GFocal), or not clamped and, when :math:`\le 0`, all three
        losses are 0 (nanodet).
    qfl_label_weights : bool
        QFL is weighted by the label weights (0 at ignored and invalid anchors);
        GFocal passes none.
    avg_factor_eps : float
        Added to every ``avg_factor`` before dividing: 0, or float32's epsilon
        (mmdetection 3.x and late 2.x releases).
    """

    name: str
    source: str
    pieces: tuple[str, ...] = ALL_PIECES
    reg_max_is_bin_count: bool = False
    background_first: bool = False
    qfl_abs: bool = True
    iou_offset: int = 0
    decode_clamp_offset: int | None = 0
    target_eps: float = 0.1
    dfl_clamps_target: bool = False
    atss_std_ddof: int = 1
    center_offset: float = 0.0
    box_norm: str = "clamp"
    qfl_label_weights: bool = True
    avg_factor_eps: float = 0.0

    def __post_init__(self) -> None:
        """Every switch must hold one of its values: a ValueError names the field otherwise."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool | np.bool_):
                raise ValueError(f"{f.name} must be True or False, got {value!r}")
        for name in ("iou_offset", "atss_std_ddof"):
            check_choice(getattr(self, name), name, (0, 1))
        check_choice(self.decode_clamp_offset, "decode_clamp_offset", (0, 1, None))
        check_scalar(self.target_eps, "target_eps", low=0.0, high=1.0, low_open=True)
        check_scalar(self.center_offset, "center_offset", low=0.0, high=1.0)
        check_choice(self.box_norm, "box_norm", BOX_NORMS)
        check_scalar(self.avg_factor_eps, "avg_factor_eps", low=0.0)
        if not set(self.pieces) <= set(ALL_PIECES):
            raise ValueError(f"pieces must be among {ALL_PIECES}, got {self.pieces!r}")

    def differences(self, other: Dialect) -> dict[str, tuple[object, object]]:
        """The switches on which two dialects differ: ``{switch: (self's, other's)}``."""
        skip = {"name", "source", "pieces"}
        return {
            f.name: (getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if f.name not in skip and getattr(self, f.name) != getattr(other, f.name)
        }


#: This project's dialect (and SPEC's): mmdetection 2.x's GFLHead.
MMDET2 = Dialect(
    "mmdet2",
    "mmdetection 2.x: mmdet/models/dense_heads/gfl_head.py, mmdet/models/losses/gfocal_loss.py "
    "(this project, SPEC.md)",
)

DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        MMDET2,
        Dialect(
            "mmdet3",
            "mmdetection 3.x: mmdet/models/dense_heads/gfl_head.py, "
            "mmdet/models/losses/utils.py (weight_reduce_loss)",
            avg_factor_eps=FLOAT32_EPS,
        ),
        Dialect(
            "gfocal",
            "implus/GFocal (on mmdetection 1.x): mmdet/models/anchor_heads/gfl_head.py, "
            "mmdet/models/losses/gfocal_loss.py, mmdet/core/bbox/transforms.py",
            # the anchors (centred at (s - 1) / 2) and the ATSS assigner are mmdetection 1.x's,
            # read in a fork only; no switch expresses them, so they are not gfocal pieces
            pieces=("integral", "qfl", "dfl", "distance2bbox", "weight_reduce", "bbox_overlaps",
                    "bbox2distance"),
            background_first=True,
            qfl_abs=False,
            iou_offset=1,
            decode_clamp_offset=1,
            box_norm="none",
            qfl_label_weights=False,
        ),  # fmt: skip
        Dialect(
            "nanodet",
            "RangiLyu/nanodet: nanodet/model/head/gfl_head.py, nanodet/model/loss/gfocal_loss.py, "
            "nanodet/util/box_transform.py, nanodet/model/head/assigner/atss_assigner.py",
            center_offset=0.5,
            box_norm="zero",
        ),
        Dialect(
            "ultralytics",
            "ultralytics: ultralytics/utils/loss.py (DFLoss), ultralytics/utils/tal.py "
            "(bbox2dist, dist2bbox), ultralytics/nn/modules/block.py (DFL)",
            pieces=("integral", "dfl", "distance2bbox", "bbox2distance"),
            reg_max_is_bin_count=True,
            decode_clamp_offset=None,
            target_eps=0.01,
            center_offset=0.5,
            dfl_clamps_target=True,
        ),
    )
}


def get_dialect(dialect: str | Dialect) -> Dialect:
    """The :class:`Dialect` named ``dialect`` (a :class:`Dialect` is returned as it is)."""
    if isinstance(dialect, Dialect):
        return dialect
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {tuple(DIALECTS)}, got {dialect!r}")
    return DIALECTS[dialect]
