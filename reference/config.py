"""Shared by both packages: the one configuration of the GFL head
(:mod:`torch_impl` re-exports :class:`GFLConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GFLConfig"]


@dataclass(frozen=True)
class GFLConfig:
    """Hyper-parameters of the GFL head (mmdetection's ``gfl_r50_fpn_1x_coco``).

    Attributes
    ----------
    num_classes : int
        Number of foreground classes C; background is label C.
    reg_max : int
        n: each side's distance is a distribution over bins 0..n.
    strides : tuple of int
        One stride per FPN level.
    octave_base_scale : int
        Anchor side = ``octave_base_scale * stride``.
    topk : int
        ATSS candidates per level and gt.
    ignore_iof_thr : float
        IoF above which an anchor overlapping an ignore box is ignored (-1: off).
    qfl_beta : float
        The modulating exponent of Quality Focal Loss.
    loss_cls_weight, loss_bbox_weight, loss_dfl_weight : float
        Weights of QFL, GIoU and DFL.
    nms_pre : int
        Per level, keep at most this many anchors before NMS (<= 0: all).
    score_thr : float
        Detections need a score strictly above this.
    nms_iou_threshold : float
        NMS suppresses boxes whose IoU with a kept box is strictly greater.
    max_per_img : int
        Detections kept per image (<= 0: all).
    """

    num_classes: int = 80
    reg_max: int = 16
    strides: tuple[int, ...] = (8, 16, 32, 64, 128)
    octave_base_scale: int = 8
    topk: int = 9
    ignore_iof_thr: float = -1.0
    qfl_beta: float = 2.0
    loss_cls_weight: float = 1.0
    loss_bbox_weight: float = 2.0
    loss_dfl_weight: float = 0.25
    nms_pre: int = 1000
    score_thr: float = 0.05
    nms_iou_threshold: float = 0.6
    max_per_img: int = 100

    def __post_init__(self) -> None:
        from .validation import check_scalar

        check_scalar(self.num_classes, "num_classes", low=1, integer=True)
        check_scalar(self.reg_max, "reg_max", low=1, integer=True)
        check_scalar(self.octave_base_scale, "octave_base_scale", low=0, low_open=True)
        check_scalar(self.topk, "topk", low=1, integer=True)
        check_scalar(self.qfl_beta, "qfl_beta", low=0.0)
        check_scalar(self.score_thr, "score_thr")
        check_scalar(self.nms_iou_threshold, "nms_iou_threshold", low=0.0, high=1.0)
        check_scalar(self.nms_pre, "nms_pre", integer=True)
        check_scalar(self.max_per_img, "max_per_img", integer=True)
        if len(self.strides) == 0 or any(
            isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in self.strides
        ):
            raise ValueError(
                f"strides must be a non-empty tuple of positive ints, got {self.strides!r}"
            )
        object.__setattr__(self, "strides", tuple(self.strides))
