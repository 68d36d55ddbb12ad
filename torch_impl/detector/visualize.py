"""Pictures: detections on validation images, GFL's learned side distributions, loss curves.

Everything renders with matplotlib's Agg backend into PNG files.

The distribution picture is what makes GFL different from other detectors:
each side of a box is not one number but a probability distribution over
``reg_max + 1`` distances from the anchor point. A sharp distribution is a
confident edge; a flat or two-peaked one is an edge the network is unsure
about (occlusion, blur, clutter). :func:`plot_distributions` draws the four
distributions beside each box, each pointing the way its side extends.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torch_impl import distance2bbox, integral

from .data.synthetic import Sample
from .data.transforms import collate

__all__ = [
    "detection_distributions",
    "plot_distributions",
    "plot_loss_curves",
    "plot_predictions",
]

SIDES = ("left", "top", "right", "bottom")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _colour(label: int) -> tuple[float, float, float]:
    palette = [
        (0.90, 0.10, 0.10),
        (0.10, 0.45, 0.95),
        (0.10, 0.75, 0.20),
        (1.00, 0.75, 0.00),
        (0.75, 0.20, 0.85),
        (0.00, 0.80, 0.80),
        (1.00, 0.50, 0.10),
        (0.55, 0.35, 0.15),
        (0.95, 0.40, 0.70),
        (0.50, 0.50, 0.50),
    ]
    return palette[int(label) % len(palette)]


def _draw_boxes(ax, sample: Sample, dets: np.ndarray, labels: np.ndarray, class_names, thr: float):
    from matplotlib.patches import Rectangle

    h, w = sample.meta["img_shape"]
    ax.imshow(sample.image[:h, :w], interpolation="nearest")
    for x1, y1, x2, y2 in sample.boxes:
        ax.add_patch(
            Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="white", lw=0.8, ls=(0, (2, 2)))
        )
    fs = max(5.0, min(8.0, 0.06 * w))
    for (x1, y1, x2, y2, score), label in zip(dets, labels):
        if score < thr:
            continue
        c = _colour(label)
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=c, lw=1.4))
        ax.text(
            x1,
            y1 - 1,
            f"{class_names[int(label)]} {score:.2f}",
            color="white",
            fontsize=fs,
            va="bottom",
            ha="left",
            bbox={"facecolor": c, "alpha": 0.8, "pad": 0.6, "lw": 0},
            clip_on=True,
        )
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_predictions(
    samples: Sequence[Sample],
    results: Sequence[tuple[Any, Any]],
    class_names: Sequence[str],
    path: str | os.PathLike,
    score_thr: float = 0.3,
    ncols: int = 4,
    title: str | None = None,
) -> Path:
    """A grid of images with predicted boxes, class names and scores (ground truth dashed white).

    Parameters
    ----------
    samples : sequence of Sample
    results : sequence of (dets (K, 5), labels (K,))
        In the samples' (network input) pixels, i.e. ``rescale=False``.
    class_names : sequence of str
    path : path
        Where to write the PNG.
    score_thr : float
        Detections below this score are not drawn.
    ncols : int

    Returns
    -------
    Path
    """
    plt = _plt()
    n = len(samples)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.2 * nrows), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.axis("off")
            continue
        dets, labels = (np.asarray(_np(x)) for x in results[k])
        _draw_boxes(ax, samples[k], dets.reshape(-1, 5), labels.reshape(-1), class_names, score_thr)
        shown = int((dets.reshape(-1, 5)[:, 4] >= score_thr).sum())
        ax.set_title(
            f"image {samples[k].image_id}: {shown} det / {len(samples[k].boxes)} gt", fontsize=8
        )
    fig.suptitle(
        title or f"Predictions (score ≥ {score_thr:g}); ground truth dashed white", fontsize=11
    )
    fig.tight_layout()
    return _save(fig, path)


def _np(x: Any) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@torch.no_grad()
def detection_distributions(
    model: torch.nn.Module, samples: Sequence[Sample], device: torch.device | str = "cpu"
) -> list[list[dict]]:
    """Detections of each sample together with the distributions that produced them.

    Each detection of ``model.predict`` comes from one anchor point; this finds
    that point (the decoded candidate equal to the detection's box, with the
    detection's class score) and returns its four softmax distributions.

    Returns
    -------
    list (per sample) of list of dict
        ``box (4,)``, ``score``, ``label``, ``stride``, ``point (2,)`` (the
        anchor point, input pixels), ``probs (4, n+1)`` (left, top, right,
        bottom; bin ``i`` is ``i * stride`` pixels).
    """
    model.eval()
    head = model.head
    n = head.cfg.reg_max
    batch = collate(samples)
    cls_scores, bbox_preds = head(model.features(batch.images.to(device)))
    results = head.predict(cls_scores, bbox_preds, batch.img_metas, rescale=False)
    out: list[list[dict]] = []
    for i, (dets, labels) in enumerate(results):
        h, w = batch.img_metas[i]["img_shape"]
        boxes, scores, logits, points, strides = [], [], [], [], []
        for lvl, s in enumerate(head.cfg.strides):
            hh, ww = cls_scores[lvl].shape[-2:]
            ys, xs = torch.meshgrid(
                torch.arange(hh, dtype=torch.float32) * s,
                torch.arange(ww, dtype=torch.float32) * s,
                indexing="ij",
            )
            pts = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).to(device)  # (HW, 2), y outer
            reg = bbox_preds[lvl][i].permute(1, 2, 0).reshape(-1, 4 * (n + 1)).float()
            boxes.append(distance2bbox(pts, integral(reg, n) * s, max_shape=(h, w)))
            scores.append(
                cls_scores[lvl][i].permute(1, 2, 0).reshape(-1, head.num_classes).float().sigmoid()
            )
            logits.append(reg)
            points.append(pts)
            strides.append(torch.full((pts.shape[0],), float(s), device=device))
        boxes_t, scores_t = torch.cat(boxes), torch.cat(scores)
        logits_t, points_t, strides_t = torch.cat(logits), torch.cat(points), torch.cat(strides)
        items = []
        for det, label in zip(dets.float(), labels):
            err = (boxes_t - det[:4]).abs().sum(1) + (scores_t[:, int(label)] - det[4]).abs() * 100
            j = int(err.argmin())
            probs = torch.softmax(logits_t[j].reshape(4, n + 1), dim=1)
            items.append(
                {
                    "box": det[:4].cpu().numpy(),
                    "score": float(det[4]),
                    "label": int(label),
                    "stride": float(strides_t[j]),
                    "point": points_t[j].cpu().numpy(),
                    "probs": probs.cpu().numpy(),
                }
            )
        out.append(items)
    return out


def _entropy(probs: np.ndarray) -> float:
    p = np.clip(probs, 1e-12, 1.0)
    return float(-(p * np.log(p)).sum(1).mean())


def plot_distributions(
    samples: Sequence[Sample],
    infos: Sequence[Sequence[dict]],
    class_names: Sequence[str],
    path: str | os.PathLike,
    num: int = 6,
    score_thr: float = 0.3,
) -> Path:
    """For a few detections, the box and its four learned side distributions beside it.

    Half of the detections shown are the most confident edges (lowest mean
    entropy), half the least confident, so the picture shows what GFL's
    uncertainty looks like. Each bar chart points the way its side extends:
    the left distribution grows leftwards, the top one upwards, and so on;
    the dashed line is the expected distance (the predicted edge), the green
    line the ground-truth edge when a ground-truth box overlaps.

    Parameters
    ----------
    samples : sequence of Sample
    infos : sequence of list of dict
        :func:`detection_distributions` of the same samples.
    class_names : sequence of str
    path : path
    num : int
        Detections to draw.
    score_thr : float
        Only detections at least this confident are candidates.

    Returns
    -------
    Path
    """
    plt = _plt()
    cands = [(k, d) for k, items in enumerate(infos) for d in items if d["score"] >= score_thr]
    cands.sort(key=lambda kd: _entropy(kd[1]["probs"]))
    used: set[int] = set()  # one detection per image
    sharp = _pick(cands, num // 2, used)
    flat = _pick(cands[::-1], num - num // 2, used)[::-1]
    chosen = sharp + flat
    ncols = 3
    nrows = max(1, -(-len(chosen) // ncols))
    fig = plt.figure(figsize=(4.2 * ncols, 4.3 * nrows + 0.6))
    outer = fig.add_gridspec(
        nrows,
        ncols,
        wspace=0.22,
        hspace=0.3,
        left=0.03,
        right=0.98,
        bottom=0.03,
        top=1 - 0.75 / (4.3 * nrows + 0.6),
    )
    if not chosen:
        fig.text(0.5, 0.5, f"no detection with score ≥ {score_thr:g}", ha="center")
    for slot, (k, d) in enumerate(chosen):
        _draw_detection_panel(fig, outer[slot // ncols, slot % ncols], samples[k], d, class_names)
    fig.suptitle(
        "GFL side distributions (white dot: anchor point; bars: P(distance); "
        "dashed: expected edge; green: ground truth)\n"
        "first row(s): most confident edges · last: least confident",
        fontsize=10,
    )
    return _save(fig, path)


#: The side charts around a detection's crop, in a 3 × 3 grid: ``(side, grid cell, bars
#: horizontal, axis reversed)``; the left one grows leftwards, the right one rightwards, the
#: top one upwards, the bottom one downwards.
_SIDE_CHARTS = (
    (0, (1, 0), False, True),
    (2, (1, 2), False, False),
    (1, (0, 1), True, True),
    (3, (2, 1), True, False),
)


def _draw_detection_panel(fig, cell, sample: Sample, d: dict, class_names: Sequence[str]) -> None:
    """One detection of :func:`plot_distributions`: its crop, and a chart per side around it."""
    from matplotlib.gridspec import GridSpecFromSubplotSpec

    gs = GridSpecFromSubplotSpec(
        3,
        3,
        cell,
        width_ratios=[1, 2.2, 1],
        height_ratios=[1, 2.2, 1],
        wspace=0.05,
        hspace=0.05,
    )
    px, py = d["point"]
    s, probs = d["stride"], d["probs"]
    bins = np.arange(probs.shape[1]) * s
    expect = (probs * bins).sum(1)
    gt = _matching_gt(sample, d["box"])
    gt_dist = None if gt is None else np.array([px - gt[0], py - gt[1], gt[2] - px, gt[3] - py])
    c = _colour(d["label"])
    _draw_crop(fig.add_subplot(gs[1, 1]), sample, d, gt, c)
    title = f"{class_names[d['label']]} {d['score']:.2f} · entropy {_entropy(probs):.2f}"
    top_bin = int(max(np.nonzero(probs.max(0) > 0.01)[0].max(initial=1) + 2, 4))
    top_bin = min(top_bin, probs.shape[1])
    for side, (row, col), horizontal, flip in _SIDE_CHARTS:
        a = fig.add_subplot(gs[row, col])
        _draw_side_chart(
            a,
            side,
            probs[side, :top_bin],
            bins[:top_bin],
            s,
            expect=expect[side],
            gt_edge=None if gt_dist is None else gt_dist[side],
            colour=c,
            horizontal=horizontal,
            flip=flip,
        )
        if side == 1:
            a.set_title(title, fontsize=8, color=c, pad=3)


def _draw_crop(ax, sample: Sample, d: dict, gt: np.ndarray | None, colour) -> None:
    """The detection's box (and the ground truth's, dashed) and anchor point, cropped around."""
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = d["box"]
    px, py = d["point"]
    h, w = sample.meta["img_shape"]
    pad = 0.35 * max(x2 - x1, y2 - y1) + 4
    cx0, cy0 = max(0, min(x1, px) - pad), max(0, min(y1, py) - pad)
    cx1, cy1 = min(w, max(x2, px) + pad), min(h, max(y2, py) + pad)
    ax.imshow(sample.image[:h, :w], interpolation="nearest")
    if gt is not None:
        ax.add_patch(
            Rectangle(
                gt[:2],
                gt[2] - gt[0],
                gt[3] - gt[1],
                fill=False,
                ec="lime",
                lw=1.0,
                ls=(0, (2, 2)),
            )
        )
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=1.6))
    ax.plot([px], [py], "o", ms=4, mfc="white", mec="black")
    ax.set_xlim(cx0, cx1)
    ax.set_ylim(cy1, cy0)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_side_chart(
    a,
    side: int,
    p: np.ndarray,
    xs: np.ndarray,
    s: float,
    *,
    expect: float,
    gt_edge: float | None,
    colour,
    horizontal: bool,
    flip: bool,
) -> None:
    """Side ``side``'s probabilities ``p`` of the distances ``xs`` (stride ``s``) as bars,
    the expected distance dashed and the ground truth's green."""
    along, across = ("y", "x") if horizontal else ("x", "y")  # distances run along `along`
    (a.barh if horizontal else a.bar)(xs, p, 0.8 * s, color=colour, alpha=0.85)
    line = a.axhline if horizontal else a.axvline
    line(expect, color="black", ls="--", lw=0.8)
    if gt_edge is not None:
        line(gt_edge, color="green", lw=1.0)
    getattr(a, f"set_{along}lim")(-0.6 * s, xs[-1] + 0.6 * s)
    if flip:
        getattr(a, f"invert_{along}axis")()
    getattr(a, f"set_{across}lim")(0, 1)
    getattr(a, f"set_{across}ticks")([])
    a.tick_params(labelsize=5, pad=1)
    getattr(a, f"set_{along}label")(SIDES[side] + " px", fontsize=5, labelpad=1)
    for spine in ("top", "right"):
        a.spines[spine].set_visible(False)


def _pick(cands: list, n: int, used: set[int]) -> list:
    out = []
    for k, d in cands:
        if len(out) == n:
            break
        if k not in used:
            out.append((k, d))
            used.add(k)
    return out


def _matching_gt(sample: Sample, box: np.ndarray) -> np.ndarray | None:
    if len(sample.boxes) == 0:
        return None
    b = np.asarray(sample.boxes, np.float64)
    lt = np.maximum(b[:, :2], box[:2])
    rb = np.minimum(b[:, 2:], box[2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    union = np.prod(b[:, 2:] - b[:, :2], 1) + np.prod(box[2:] - box[:2]) - inter
    iou = inter / np.maximum(union, 1e-9)
    j = int(iou.argmax())
    return b[j] if iou[j] >= 0.3 else None


def plot_loss_curves(history: Sequence[dict] | str | os.PathLike, path: str | os.PathLike) -> Path:
    """The three GFL losses and their sum over training (raw and smoothed), and the learning rate.

    Parameters
    ----------
    history : sequence of dict or path
        Records with ``iter``, ``loss_cls``, ``loss_bbox``, ``loss_dfl``,
        ``loss`` and ``lr`` (or the ``train_log.jsonl`` holding them).
    path : path
    """
    if isinstance(history, str | os.PathLike):
        with open(history) as f:
            history = [json.loads(line) for line in f if line.strip()]
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    if not history:
        axes[0].text(0.5, 0.5, "no training steps logged", ha="center")
    else:
        it = np.array([r["iter"] for r in history]) + 1
        for ax, keys, title in (
            (axes[0], ("loss_cls", "loss_bbox", "loss_dfl"), "GFL losses (weighted)"),
            (axes[1], ("loss",), "total loss"),
        ):
            for key in keys:
                v = np.array([r[key] for r in history], float)
                (line,) = ax.plot(it, v, alpha=0.25, lw=0.8)
                ax.plot(it, _smooth(v), color=line.get_color(), lw=1.8, label=key)
            ax.set_xlabel("iteration")
            ax.set_title(title)
            ax.grid(alpha=0.3)
            ax.legend()
        axes[2].plot(it, [r["lr"] for r in history], color="black")
        axes[2].set_title("learning rate")
        axes[2].set_xlabel("iteration")
        axes[2].grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _smooth(v: np.ndarray, frac: float = 0.03) -> np.ndarray:
    """Exponential moving average with a bias correction (no lag at the start)."""
    alpha = min(1.0, max(2.0 / (frac * len(v) + 1), 0.02))
    out = np.empty_like(v)
    acc, norm = 0.0, 0.0
    for k, x in enumerate(v):
        acc = (1 - alpha) * acc + alpha * x
        norm = (1 - alpha) * norm + alpha
        out[k] = acc / norm
    return out


def _save(fig, path: str | os.PathLike) -> Path:
    plt = _plt()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
