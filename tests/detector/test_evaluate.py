"""COCO evaluation (pycocotools) and the pictures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_model import TINY  # the detector these tests share

from torch_impl import GFLConfig
from torch_impl.detector.data import CLASS_NAMES, CocoDetection, SyntheticDetection, export_coco
from torch_impl.detector.evaluate import METRIC_NAMES, coco_evaluate, evaluate_model, run_inference
from torch_impl.detector.model import GFLDetector
from torch_impl.detector.visualize import (
    detection_distributions,
    plot_distributions,
    plot_loss_curves,
    plot_predictions,
)

FEW = GFLConfig(num_classes=6, nms_pre=20, max_per_img=20)  # few candidates: fast NMS




def _gt(n_images=3):
    ds = SyntheticDetection(n_images, 64, seed=7)
    images, anns = [], []
    for i in range(n_images):
        s = ds[i]
        images.append({"id": s.image_id, "width": 64, "height": 64})
        for b, lab, area in zip(s.boxes, s.labels, s.areas):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": s.image_id,
                    "category_id": int(lab) + 1,
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                    "area": float(area),
                    "iscrowd": 0,
                }
            )
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(CLASS_NAMES)]
    return {"images": images, "annotations": anns, "categories": cats}


def _as_dets(gt, shift=0.0, score=0.9):
    return [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": [a["bbox"][0] + shift, a["bbox"][1], a["bbox"][2], a["bbox"][3]],
            "score": score,
        }
        for a in gt["annotations"]
    ]


def test_perfect_detections_score_one():
    gt = _gt()
    m, summary = coco_evaluate(_as_dets(gt), gt)
    assert m["mAP"] == pytest.approx(1.0) and m["AP50"] == pytest.approx(1.0)
    assert set(METRIC_NAMES) <= set(m)
    assert m["AP_large"] is None  # no object above 96² px: COCO says -1, we say None
    assert "Average Precision" in summary
    present = {CLASS_NAMES[a["category_id"] - 1] for a in gt["annotations"]}
    for name in present:
        assert m["per_class"][name]["AP"] == pytest.approx(1.0)
    assert m["num_gt"] == len(gt["annotations"]) == m["num_detections"]


def test_shifted_detections_lose_strict_ap_only():
    gt = _gt(6)
    m, _ = coco_evaluate(_as_dets(gt, shift=1.5), gt)  # a 1.5 px error
    assert m["AP50"] > 0.9
    assert m["AP75"] < m["AP50"] and m["mAP"] < m["AP50"]


def test_no_detections_and_unknown_images():
    gt = _gt()
    m, summary = coco_evaluate([], gt)
    assert m["mAP"] == 0.0 and m["num_detections"] == 0 and "no detections" in summary
    bad = _as_dets(gt)[:1]
    bad[0]["image_id"] = 999
    with pytest.raises(ValueError, match="not in the ground truth"):
        coco_evaluate(bad, gt)


def test_run_inference_and_evaluate_model(tmp_path):
    torch.manual_seed(0)
    model = GFLDetector(TINY, FEW)
    with torch.no_grad():  # make an untrained head fire everywhere so there are detections
        model.head.gfl_cls.bias.fill_(2.0)
    ds = SyntheticDetection(5, 64, seed=3)
    dets, gt = run_inference(model, ds, [1, 2, 3, 4, 5, 6], batch_size=2)
    assert len(gt["images"]) == 5
    assert len(gt["annotations"]) == sum(len(ds[i].labels) for i in range(5))
    assert dets and set(dets[0]) == {"image_id", "category_id", "bbox", "score"}
    m = evaluate_model(model, ds, [1, 2, 3, 4, 5, 6], tmp_path, batch_size=2)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["mAP"] == m["mAP"] and 0 <= m["mAP"] <= 1
    assert len(json.loads((tmp_path / "detections.json").read_text())) == m["num_detections"]


def test_coco_dataset_is_scored_in_original_pixels(tmp_path):
    """Letterboxed COCO images: detections come back in the file's pixels."""
    ds = SyntheticDetection(3, 64, seed=4)
    path = export_coco(ds, tmp_path, CLASS_NAMES)
    coco = CocoDetection(path, tmp_path / "images", image_size=96)  # scale 1.5
    torch.manual_seed(0)
    model = GFLDetector(TINY, FEW)
    with torch.no_grad():
        model.head.gfl_cls.bias.fill_(2.0)
    dets, gt = run_inference(model, coco, coco.cat_ids)
    assert gt == coco.coco_dict()
    xs = np.array([d["bbox"][0] + d["bbox"][2] for d in dets])
    assert xs.max() <= 64 + 1e-3  # in the 64 px originals, not the 96 px inputs


def test_pictures(tmp_path):
    torch.manual_seed(0)
    model = GFLDetector(TINY)
    with torch.no_grad():
        model.head.gfl_cls.bias.fill_(0.0)
    ds = SyntheticDetection(4, 64, seed=3)
    samples = [ds[i] for i in range(4)]
    infos = detection_distributions(model, samples)
    assert len(infos) == 4 and infos[0]
    d = infos[0][0]
    assert d["probs"].shape == (4, 17)
    np.testing.assert_allclose(d["probs"].sum(1), 1.0, rtol=1e-5)
    # the anchor point + expected distances rebuild the detected box
    s = d["stride"]
    expect = (d["probs"] * np.arange(17) * s).sum(1)
    rebuilt = np.array(
        [
            d["point"][0] - expect[0],
            d["point"][1] - expect[1],
            d["point"][0] + expect[2],
            d["point"][1] + expect[3],
        ]
    )
    np.testing.assert_allclose(np.clip(rebuilt, 0, 64), d["box"], atol=1e-3)
    results = [
        ([[*x["box"], x["score"]] for x in items], [x["label"] for x in items]) for items in infos
    ]
    p1 = plot_predictions(samples, results, CLASS_NAMES, tmp_path / "pred.png")
    p2 = plot_distributions(samples, infos, CLASS_NAMES, tmp_path / "dist.png")
    hist = [
        {
            "iter": i,
            "loss_cls": 1 / (i + 1),
            "loss_bbox": 1.0,
            "loss_dfl": 0.5,
            "loss": 2.5,
            "lr": 0.01,
        }
        for i in range(30)
    ]
    p3 = plot_loss_curves(hist, tmp_path / "loss.png")
    for p in (p1, p2, p3):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
