r"""The GFL head in PyTorch: the module, its batched loss and its inference.

The loss follows :mod:`reference.head` (whose docstrings carry the math);
this version assigns the whole batch at once with
:func:`~torch_impl.atss.atss_assign_batched` and never reads a tensor's value
on the host, so a training step on a GPU does not wait for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from reference.anchors import valid_flags as _valid_flags_np
from reference.config import GFLConfig
from reference.img_meta import parse_img_metas

from .anchors import anchor_centers, grid_anchors
from .atss import atss_assign_batched
from .boxes import _decode, _overlaps, bbox2distance
from .distributed import reduce_mean
from .integral import Scale, _integral
from .losses import distribution_focal_loss, giou_loss, quality_focal_loss
from .nms import multiclass_nms
from .validation import check_tensor


def _check_level_maps(
    cls_scores: Sequence[torch.Tensor], bbox_preds: Sequence[torch.Tensor], cfg: GFLConfig
) -> int:
    """Validate the per-level head outputs; return the batch size."""
    n_levels = len(cfg.strides)
    for name, maps in (("cls_scores", cls_scores), ("bbox_preds", bbox_preds)):
        if isinstance(maps, torch.Tensor) or len(maps) != n_levels:
            raise ValueError(
                f"{name} must be a list of {n_levels} tensors (one per stride in cfg.strides), "
                f"got {type(maps).__name__} of length {len(maps)}"
            )
    k = cfg.reg_max + 1
    dims: dict[str, int] = {}
    for lvl in range(n_levels):
        check_tensor(
            cls_scores[lvl],
            f"cls_scores[{lvl}]",
            ("B", cfg.num_classes, f"H{lvl}", f"W{lvl}"),
            dims,
        )
        check_tensor(
            bbox_preds[lvl],
            f"bbox_preds[{lvl}]",
            ("B", 4 * k, f"H{lvl}", f"W{lvl}"),
            dims,
            note=f"(4*(reg_max+1) = {4 * k} channels)",
        )
    return dims["B"]


def _flatten_levels(maps: Sequence[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """Per-level ``(B, ch, H, W)`` → ``(B, A, ch)``, levels concatenated, y outer."""
    b, ch = maps[0].shape[:2]
    return torch.cat([m.permute(0, 2, 3, 1).reshape(b, -1, ch) for m in maps], dim=1).to(dtype)


def _pad_boxes(
    boxes: Sequence[torch.Tensor], name: str, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a list of ``(G_i, 4)`` boxes to ``(B, G, 4)`` with a validity mask ``(B, G)``."""
    for i, b in enumerate(boxes):
        check_tensor(b, f"{name}[{i}]", (None, 4))
    counts = [int(b.shape[0]) for b in boxes]  # shapes are host metadata: no sync
    g = max(counts, default=0)
    padded = torch.zeros(len(boxes), g, 4, dtype=dtype, device=device)
    for i, b in enumerate(boxes):  # copies only; the assignment itself is batched
        padded[i, : counts[i]] = b.to(device=device, dtype=dtype)
    valid = torch.arange(g, device=device)[None, :] < torch.tensor(counts, device=device)[:, None]
    return padded, valid


def gfl_loss(
    cls_scores: Sequence[torch.Tensor],
    bbox_preds: Sequence[torch.Tensor],
    gt_bboxes: Sequence[torch.Tensor],
    gt_labels: Sequence[torch.Tensor],
    img_metas: Sequence[dict],
    cfg: GFLConfig,
    gt_bboxes_ignore: Sequence[torch.Tensor | None] | None = None,
) -> dict[str, torch.Tensor]:
    r"""The GFL head's loss for a whole batch (see :func:`reference.gfl_loss_forward`).

    Parameters
    ----------
    cls_scores : list of Tensor, shape (B, C, H_l, W_l)
    bbox_preds : list of Tensor, shape (B, 4(n+1), H_l, W_l)
    gt_bboxes : list of Tensor, shape (G_i, 4)
    gt_labels : list of Tensor of int, shape (G_i,)
    img_metas : list of dict
    cfg : GFLConfig
    gt_bboxes_ignore : list of Tensor (K_i, 4) or None, optional
        Used only when ``cfg.ignore_iof_thr > 0``.

    Returns
    -------
    dict of 0-d Tensor
        ``loss_cls``, ``loss_bbox``, ``loss_dfl``: summed over levels, loss
        weights applied, float32 (float64 for float64 inputs).

    Notes
    -----
    * The whole batch is assigned in one call, gts padded to the largest count.
    * Positives are a subset of the ATSS candidates, so there are at most
      :math:`P_{max} = B \cdot G \cdot \text{topk} \cdot L` of them. The box
      branch gathers :math:`P_{max}` rows with ``topk`` over the positive
      mask — a static shape, so no ``nonzero()`` and no host sync; rows that
      are not positives get weight 0.
    * Under ``torch.distributed`` both normalisers are averaged over ranks
      (``reduce_mean``), so DDP's gradient averaging reproduces the
      single-process gradient of the whole batch — as long as neither
      normaliser's rank mean falls below 1, where mmdetection's clamp
      ``max(·, 1)`` (applied after the mean) takes over.
    * The loss runs with autocast disabled, in float32 at least.
    """
    if not isinstance(cfg, GFLConfig):
        raise ValueError(f"cfg must be a GFLConfig, got {type(cfg).__name__}")
    batch = _check_level_maps(cls_scores, bbox_preds, cfg)
    if len(gt_bboxes) != batch or len(gt_labels) != batch:
        raise ValueError(
            f"gt_bboxes and gt_labels must have one entry per image ({batch}), "
            f"got {len(gt_bboxes)} and {len(gt_labels)}"
        )
    metas = parse_img_metas(img_metas, batch)
    device = cls_scores[0].device
    work = torch.float64 if cls_scores[0].dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=device.type, enabled=False):
        return _gfl_loss(
            cls_scores,
            bbox_preds,
            gt_bboxes,
            gt_labels,
            metas,
            cfg,
            gt_bboxes_ignore,
            batch,
            device,
            work,
        )


def _gfl_loss(
    cls_scores, bbox_preds, gt_bboxes, gt_labels, metas, cfg, gt_bboxes_ignore, batch, device, work
):
    c, k, n_lvl = cfg.num_classes, cfg.reg_max + 1, len(cfg.strides)
    featmap_sizes = [tuple(m.shape[-2:]) for m in cls_scores]
    level_anchors = grid_anchors(
        featmap_sizes, cfg.strides, cfg.octave_base_scale, device=device, dtype=work
    )
    num_level = [int(a.shape[0]) for a in level_anchors]
    anchors = torch.cat(level_anchors)  # (A, 4)
    strides = torch.cat(
        [
            torch.full((n,), float(s), dtype=work, device=device)
            for n, s in zip(num_level, cfg.strides)
        ]
    )  # (A,)
    valid = torch.from_numpy(
        np.stack(
            [
                np.concatenate(_valid_flags_np(featmap_sizes, m.pad_shape, cfg.strides))
                for m in metas
            ]
        )
    ).to(device)  # (B, A), built on the host from shapes only

    # --- targets: one batched ATSS call -------------------------------------
    gt_pad, gt_valid = _pad_boxes(gt_bboxes, "gt_bboxes", device, work)  # (B, G, 4), (B, G)
    labels_pad = torch.zeros(gt_valid.shape, dtype=torch.long, device=device)  # (B, G)
    for i, lab in enumerate(gt_labels):
        check_tensor(lab, f"gt_labels[{i}]", (gt_bboxes[i].shape[0],), kind="int")
        labels_pad[i, : lab.shape[0]] = lab.to(device)
    assign_valid = valid
    if cfg.ignore_iof_thr > 0 and gt_bboxes_ignore is not None:
        if len(gt_bboxes_ignore) != batch:
            raise ValueError(
                f"gt_bboxes_ignore must have one entry per image ({batch}), "
                f"got {len(gt_bboxes_ignore)}"
            )
        ignore = [torch.zeros(0, 4) if b is None else b for b in gt_bboxes_ignore]
        ign_pad, ign_valid = _pad_boxes(ignore, "gt_bboxes_ignore", device, work)  # (B, K, 4)
        if ign_pad.shape[1] > 0:
            iof = _overlaps(anchors.expand(batch, -1, -1), ign_pad, "iof", False, 1e-6)  # (B, A, K)
            iof = iof.masked_fill(~ign_valid[:, None, :], -1.0)
            assign_valid = valid & ~(iof.amax(dim=2) > cfg.ignore_iof_thr)
    res = atss_assign_batched(
        anchors, num_level, gt_pad, labels_pad, gt_valid, assign_valid, cfg.topk
    )
    pos = res.gt_inds > 0  # (B, A)
    labels = torch.where(pos, res.labels, torch.full_like(res.labels, c))  # (B, A)
    label_weights = assign_valid.to(work)  # invalid and ignored anchors weigh 0
    if gt_pad.shape[1] > 0:
        gt_index = (res.gt_inds - 1).clamp(min=0)  # (B, A)
        bbox_targets = torch.gather(gt_pad, 1, gt_index[..., None].expand(-1, -1, 4))  # (B, A, 4)
    else:  # no gt in the whole batch
        bbox_targets = torch.zeros(batch, anchors.shape[0], 4, dtype=work, device=device)
    num_total_samples = reduce_mean(pos.sum(1).clamp(min=1).sum().to(work)).clamp(min=1)

    cls = _flatten_levels(cls_scores, work)  # (B, A, C)
    reg = _flatten_levels(bbox_preds, work)  # (B, A, 4(n+1))
    a = cls.shape[1]

    # --- box branch on (at most P_max) positives ------------------------------
    p_max = min(batch * a, gt_pad.shape[1] * batch * cfg.topk * n_lvl)
    sel = torch.topk(pos.reshape(-1).to(torch.uint8), p_max, sorted=False).indices  # (P,)
    sel_pos = pos.reshape(-1)[sel]  # (P,) True for real positives
    anchor_of = sel % a
    s = strides[anchor_of][:, None]  # (P, 1)
    centres = anchor_centers(anchors[anchor_of]) / s  # (P, 2), in grid units
    target_boxes = bbox_targets.reshape(-1, 4)[sel] / s  # (P, 4)
    zero = torch.zeros((), dtype=work, device=device)
    weight = torch.where(
        sel_pos, cls.reshape(-1, c)[sel].detach().sigmoid().amax(dim=1), zero
    )  # (P,)
    reg_sel = reg.reshape(-1, 4 * k)[sel]  # (P, 4(n+1))
    pred_boxes = _decode(centres, _integral(reg_sel, cfg.reg_max))  # (P, 4), no clamp
    avg_factor = reduce_mean(weight.sum()).clamp(min=1)
    loss_bbox = giou_loss(pred_boxes, target_boxes, weight=weight, avg_factor=avg_factor)
    dfl_target = bbox2distance(centres, target_boxes, cfg.reg_max).reshape(-1)  # (4P,)
    loss_dfl = distribution_focal_loss(
        reg_sel.reshape(-1, k),
        dfl_target,
        weight=weight.repeat_interleave(4),
        avg_factor=4.0 * avg_factor,
    )  # (4P, n+1) rows: l, t, r, b of each selected anchor

    # --- classification branch on every anchor -------------------------------
    iou = _overlaps(pred_boxes.detach(), target_boxes, "iou", True, 1e-6)
    score = torch.zeros(batch * a, dtype=work, device=device)
    score = score.index_put((sel,), torch.where(sel_pos, iou, zero))  # (B*A,)
    loss_cls = quality_focal_loss(
        cls.reshape(-1, c),
        labels.reshape(-1),
        score,
        weight=label_weights.reshape(-1),
        beta=cfg.qfl_beta,
        avg_factor=num_total_samples,
    )
    return {
        "loss_cls": cfg.loss_cls_weight * loss_cls,
        "loss_bbox": cfg.loss_bbox_weight * loss_bbox,
        "loss_dfl": cfg.loss_dfl_weight * loss_dfl,
    }


def gfl_predict(
    cls_scores: Sequence[torch.Tensor],
    bbox_preds: Sequence[torch.Tensor],
    img_metas: Sequence[dict],
    cfg: GFLConfig,
    rescale: bool = False,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    r"""Detections of every image (see :func:`reference.gfl_predict`).

    Parameters
    ----------
    cls_scores : list of Tensor, shape (B, C, H_l, W_l)
    bbox_preds : list of Tensor, shape (B, 4(n+1), H_l, W_l)
    img_metas : list of dict
    cfg : GFLConfig
    rescale : bool

    Returns
    -------
    list of (dets (K, 5), labels (K,)), one per image
        In the inputs' dtype (float32 for float16/bfloat16 inputs).

    Notes
    -----
    Scoring, the ``nms_pre`` cut (a stable sort: ties keep the lower anchor
    index), the Integral and decoding run for the whole batch at once; NMS
    then runs image by image (each image keeps a different number of boxes).
    """
    if not isinstance(cfg, GFLConfig):
        raise ValueError(f"cfg must be a GFLConfig, got {type(cfg).__name__}")
    batch = _check_level_maps(cls_scores, bbox_preds, cfg)
    metas = parse_img_metas(img_metas, batch)
    device = cls_scores[0].device
    work = torch.float64 if cls_scores[0].dtype == torch.float64 else torch.float32
    c, k = cfg.num_classes, cfg.reg_max + 1
    featmap_sizes = [tuple(m.shape[-2:]) for m in cls_scores]
    level_anchors = grid_anchors(
        featmap_sizes, cfg.strides, cfg.octave_base_scale, device=device, dtype=work
    )
    boxes_all, scores_all = [], []
    with torch.no_grad(), torch.autocast(device_type=device.type, enabled=False):
        for lvl, stride in enumerate(cfg.strides):
            scores = cls_scores[lvl].permute(0, 2, 3, 1).reshape(batch, -1, c).to(work).sigmoid()
            reg = bbox_preds[lvl].permute(0, 2, 3, 1).reshape(batch, -1, 4 * k).to(work)
            pts = anchor_centers(level_anchors[lvl]).expand(batch, -1, -1)  # (B, n, 2)
            if 0 < cfg.nms_pre < scores.shape[1]:
                order = torch.sort(scores.amax(dim=2), dim=1, descending=True, stable=True).indices
                keep = order[:, : cfg.nms_pre]  # (B, nms_pre)
                scores = torch.gather(scores, 1, keep[..., None].expand(-1, -1, c))
                reg = torch.gather(reg, 1, keep[..., None].expand(-1, -1, 4 * k))
                pts = torch.gather(pts, 1, keep[..., None].expand(-1, -1, 2))
            boxes_all.append(_decode(pts, _integral(reg, cfg.reg_max) * stride))  # (B, n, 4)
            scores_all.append(scores)
        boxes = torch.cat(boxes_all, dim=1)  # (B, N, 4)
        scores = torch.cat(scores_all, dim=1)  # (B, N, C)
        bg = torch.zeros(*scores.shape[:2], 1, dtype=work, device=device)
        scores = torch.cat([scores, bg], dim=2)  # (B, N, C+1)
        results = []
        for i, meta in enumerate(metas):
            h, w = meta.img_shape
            upper = torch.tensor([w, h, w, h], dtype=work, device=device)
            b = torch.minimum(boxes[i].clamp(min=0), upper)
            if rescale:
                b = b / torch.as_tensor(meta.scale_factor, dtype=work, device=device)
            results.append(
                multiclass_nms(b, scores[i], cfg.score_thr, cfg.nms_iou_threshold, cfg.max_per_img)
            )
    return results


class GFLHead(nn.Module):
    r"""The GFL head: two conv towers, a classifier and a distribution regressor per level.

    Parameters
    ----------
    num_classes : int
        C, the number of foreground classes.
    in_channels : int
        Channels of every input feature map.
    feat_channels : int
        Channels inside the towers.
    stacked_convs : int
        Number of (3×3 conv, GroupNorm, ReLU) blocks in each tower.
    cfg : GFLConfig, optional
        Defaults to ``GFLConfig(num_classes=num_classes)``; ``reg_max`` and
        ``strides`` come from it.
    norm_groups : int
        GroupNorm groups (32 as in mmdetection); must divide ``feat_channels``.

    Notes
    -----
    Initialisation as mmdetection: every conv weight :math:`\mathcal N(0, 0.01^2)`,
    biases 0, except the classifier's bias :math:`-\log((1-\pi)/\pi)` with
    prior :math:`\pi = 0.01`, so that every class starts at probability 0.01.
    The towers' convs have no bias (GroupNorm follows them).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        stacked_convs: int = 4,
        cfg: GFLConfig | None = None,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        cfg = GFLConfig(num_classes=num_classes) if cfg is None else cfg
        if not isinstance(cfg, GFLConfig):
            raise ValueError(f"cfg must be a GFLConfig or None, got {type(cfg).__name__}")
        if cfg.num_classes != num_classes:
            raise ValueError(
                f"num_classes must equal cfg.num_classes ({cfg.num_classes}), got {num_classes}"
            )
        for name, v in (("in_channels", in_channels), ("feat_channels", feat_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if (
            isinstance(stacked_convs, bool)
            or not isinstance(stacked_convs, int)
            or stacked_convs < 0
        ):
            raise ValueError(f"stacked_convs must be an int >= 0, got {stacked_convs!r}")
        if stacked_convs and feat_channels % norm_groups:
            raise ValueError(
                f"feat_channels must be divisible by norm_groups ({norm_groups}), "
                f"got {feat_channels}"
            )
        self.cfg = cfg
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.reg_max = cfg.reg_max
        self.cls_convs = self._tower(in_channels, feat_channels, stacked_convs, norm_groups)
        self.reg_convs = self._tower(in_channels, feat_channels, stacked_convs, norm_groups)
        chn = feat_channels if stacked_convs else in_channels
        self.gfl_cls = nn.Conv2d(chn, num_classes, 3, padding=1)
        self.gfl_reg = nn.Conv2d(chn, 4 * (cfg.reg_max + 1), 3, padding=1)
        self.scales = nn.ModuleList(Scale(1.0) for _ in cfg.strides)
        self.reset_parameters()

    @staticmethod
    def _tower(in_ch: int, feat_ch: int, depth: int, groups: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [
                nn.Conv2d(in_ch if i == 0 else feat_ch, feat_ch, 3, padding=1, bias=False),
                nn.GroupNorm(groups, feat_ch),
                nn.ReLU(inplace=True),
            ]
        return nn.Sequential(*layers)

    def reset_parameters(self, prior_prob: float = 0.01) -> None:
        """Normal(0, 0.01) conv weights; the classifier bias set for ``prior_prob``."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.gfl_cls.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(
        self, feats: Sequence[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-level outputs.

        Parameters
        ----------
        feats : list of Tensor, shape (B, in_channels, H_l, W_l), one per stride

        Returns
        -------
        cls_scores : list of Tensor, shape (B, C, H_l, W_l)
            Logits (apply a sigmoid for scores).
        bbox_preds : list of Tensor, shape (B, 4(n+1), H_l, W_l)
            Distribution logits of left, top, right, bottom, in stride units
            after the level's learnable ``Scale``.
        """
        if isinstance(feats, torch.Tensor) or len(feats) != len(self.scales):
            raise ValueError(
                f"feats must be a list of {len(self.scales)} tensors (one per stride), "
                f"got {type(feats).__name__} of length {len(feats)}"
            )
        dims: dict[str, int] = {}
        cls_scores, bbox_preds = [], []
        for lvl, (x, scale) in enumerate(zip(feats, self.scales)):
            check_tensor(x, f"feats[{lvl}]", ("B", self.in_channels, None, None), dims)
            cls_scores.append(self.gfl_cls(self.cls_convs(x)))
            bbox_preds.append(scale(self.gfl_reg(self.reg_convs(x))))
        return cls_scores, bbox_preds

    def loss(
        self,
        cls_scores: Sequence[torch.Tensor],
        bbox_preds: Sequence[torch.Tensor],
        gt_bboxes: Sequence[torch.Tensor],
        gt_labels: Sequence[torch.Tensor],
        img_metas: Sequence[dict],
        gt_bboxes_ignore: Sequence[torch.Tensor | None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The three losses (see :func:`gfl_loss`); optimise their sum."""
        return gfl_loss(
            cls_scores, bbox_preds, gt_bboxes, gt_labels, img_metas, self.cfg, gt_bboxes_ignore
        )

    def predict(
        self,
        cls_scores: Sequence[torch.Tensor],
        bbox_preds: Sequence[torch.Tensor],
        img_metas: Sequence[dict],
        rescale: bool = False,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Detections per image (see :func:`gfl_predict`)."""
        return gfl_predict(cls_scores, bbox_preds, img_metas, self.cfg, rescale)


__all__ = ["GFLHead", "gfl_loss", "gfl_predict"]
