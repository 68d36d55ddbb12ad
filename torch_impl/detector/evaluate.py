"""COCO evaluation with pycocotools: mAP, AP50, AP75, AP by object size, per-class AP.

Detections are produced in original-image coordinates (``rescale=True``) and
scored by ``pycocotools.cocoeval.COCOeval`` against the data set's own ground
truth (the checked COCO file, or the synthetic annotations). Nothing here
computes an AP by hand.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.coco import sample_annotations, sample_image
from .data.transforms import collate

__all__ = ["METRIC_NAMES", "coco_evaluate", "evaluate_model", "run_inference"]

#: ``COCOeval.stats`` entries, in order.
METRIC_NAMES = (
    "mAP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)


def run_inference(
    model: torch.nn.Module,
    dataset: Any,
    cat_ids: Sequence[int],
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[list[dict], dict]:
    """Detect on every image of ``dataset``.

    Parameters
    ----------
    model : GFLDetector
    dataset : sequence of Sample
    cat_ids : sequence of int
        ``cat_ids[label]`` is the COCO category id of a label.
    batch_size : int
    device : torch.device or str
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    detections : list of dict
        COCO results: ``image_id``, ``category_id``, ``bbox [x, y, w, h]``
        (original-image pixels), ``score``.
    ground_truth : dict
        A COCO instances dict for the same images (the data set's checked
        file when it has one, otherwise built from its samples).
    """
    device = torch.device(device)
    model.eval()
    gt_from_file = dataset.coco_dict() if hasattr(dataset, "coco_dict") else None
    images, anns, dets = [], [], []
    indices = range(len(dataset))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(dataset), desc="evaluate", unit="img", dynamic_ncols=True)
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            samples = [dataset[i] for i in indices[start : start + batch_size]]
            batch = collate(samples)
            results = model.predict(batch.images.to(device), batch.img_metas, rescale=True)
            for s, (boxes, labels) in zip(samples, results):
                boxes, labels = boxes.float().cpu().numpy(), labels.cpu().numpy()
                for (x1, y1, x2, y2, score), label in zip(boxes, labels):
                    dets.append(
                        {
                            "image_id": int(s.image_id),
                            "category_id": int(cat_ids[int(label)]),
                            "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                            "score": float(score),
                        }
                    )
                if gt_from_file is None:
                    images.append(sample_image(s))
                    anns += sample_annotations(s, cat_ids, first_id=len(anns) + 1)
            if bar is not None:
                bar.update(len(samples))
    if bar is not None:
        bar.close()
    if gt_from_file is not None:
        gt = gt_from_file
    else:
        names = getattr(dataset, "class_names", [str(c) for c in cat_ids])
        gt = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": int(c), "name": str(n)} for c, n in zip(cat_ids, names)],
        }
    return dets, gt


def coco_evaluate(detections: list[dict], ground_truth: dict) -> tuple[dict, str]:
    """Score detections with ``pycocotools`` (bbox IoU type).

    Parameters
    ----------
    detections : list of dict
        COCO results (``image_id``, ``category_id``, ``bbox``, ``score``).
    ground_truth : dict
        COCO instances dict.

    Returns
    -------
    metrics : dict
        The twelve :data:`METRIC_NAMES` (None where COCO has no such object,
        e.g. no large objects), ``per_class`` AP and AP50 by category name,
        and counts.
    summary : str
        pycocotools' own table (its ``Average Precision/Recall`` lines).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = {"info": {}, "licenses": [], **ground_truth}
    known_images = {im["id"] for im in gt["images"]}
    bad = [d for d in detections if d["image_id"] not in known_images]
    if bad:
        raise ValueError(
            f"detections refer to {len(bad)} image id(s) not in the ground truth, "
            f"e.g. {bad[0]['image_id']}"
        )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if not detections:
            metrics = {k: 0.0 for k in METRIC_NAMES}
            metrics.update(
                per_class={},
                num_images=len(gt["images"]),
                num_gt=len(gt["annotations"]),
                num_detections=0,
            )
            return metrics, "no detections: every AP and AR is 0"
        coco_dt = coco_gt.loadRes(detections)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    metrics: dict[str, Any] = {}
    for name, v in zip(METRIC_NAMES, ev.stats):
        metrics[name] = None if v < 0 else round(float(v), 4)
    # Per class: precision is (iou thr T, recall R, class K, area A, max dets M); -1 = no gt.
    prec = ev.eval["precision"]
    per_class = {}
    for k, cid in enumerate(ev.params.catIds):
        name = coco_gt.cats[cid]["name"]
        p_all = prec[:, :, k, 0, -1]
        p50 = prec[0, :, k, 0, -1]
        ap = float(np.mean(p_all[p_all > -1])) if np.any(p_all > -1) else math.nan
        ap50 = float(np.mean(p50[p50 > -1])) if np.any(p50 > -1) else math.nan
        per_class[name] = {
            "AP": None if math.isnan(ap) else round(ap, 4),
            "AP50": None if math.isnan(ap50) else round(ap50, 4),
        }
    metrics.update(
        per_class=per_class,
        num_images=len(gt["images"]),
        num_gt=len(gt["annotations"]),
        num_detections=len(detections),
    )
    table = "\n".join(line for line in out.getvalue().splitlines() if "Average" in line)
    return metrics, table


def evaluate_model(
    model: torch.nn.Module,
    dataset: Any,
    cat_ids: Sequence[int],
    out_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict:
    """Inference + COCO scoring; with ``out_dir``, writes ``metrics.json`` and ``detections.json``.

    Returns
    -------
    dict
        The metrics of :func:`coco_evaluate`, plus ``"summary"`` (the text table).
    """
    dets, gt = run_inference(model, dataset, cat_ids, batch_size, device, progress)
    metrics, summary = coco_evaluate(dets, gt)
    metrics["summary"] = summary
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / "metrics.json", metrics)
        _write_json(out / "detections.json", dets)
    return metrics


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
