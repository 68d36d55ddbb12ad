"""The synthetic set, transforms, collate, the COCO loader/exporter and its bad inputs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from torch_impl.detector.data import (
    CLASS_NAMES,
    CocoDetection,
    DataWarning,
    SyntheticDetection,
    collate,
    export_coco,
    hflip,
    letterbox,
    sample_annotations,
    sample_image,
)

# --------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_and_order_free():
    a = SyntheticDetection(6, 64, seed=3)
    b = SyntheticDetection(6, 64, seed=3)
    late = b[5]  # generated first here, last in the other
    for i in range(6):
        sa = a[i]
        assert sa.image.dtype == np.uint8 and sa.image.shape == (64, 64, 3)
    assert np.array_equal(a[5].image, late.image)
    assert np.array_equal(a[5].boxes, late.boxes)
    assert np.array_equal(a[5].labels, late.labels)
    other_seed = SyntheticDetection(6, 64, seed=4)[5]
    other_split = SyntheticDetection(6, 64, seed=3, split="val")[5]
    assert not np.array_equal(other_seed.image, late.image)
    assert not np.array_equal(other_split.image, late.image)


def test_synthetic_annotations_are_valid_and_varied():
    ds = SyntheticDetection(150, 128, seed=0)
    sizes, labels, n_obj, overlaps = [], [], [], 0
    for i in range(len(ds)):
        s = ds[i]
        assert s.boxes.dtype == np.float32 and s.labels.dtype == np.int64
        assert s.boxes.shape == (len(s.labels), 4) and s.areas.shape == (len(s.labels),)
        assert np.all(s.boxes[:, :2] >= 0) and np.all(s.boxes[:, 2:] <= 128)
        assert np.all(s.boxes[:, 2:] > s.boxes[:, :2])
        assert np.all((s.labels >= 0) & (s.labels < len(CLASS_NAMES)))
        assert np.all(s.areas > 0)
        assert s.image_id == i + 1
        sizes += list(np.maximum(s.boxes[:, 2] - s.boxes[:, 0], s.boxes[:, 3] - s.boxes[:, 1]))
        labels += list(s.labels)
        n_obj.append(len(s.labels))
        b = s.boxes
        if len(b) > 1:
            lt = np.maximum(b[:, None, :2], b[None, :, :2])
            rb = np.minimum(b[:, None, 2:], b[None, :, 2:])
            inter = np.prod(np.clip(rb - lt, 0, None), -1)
            overlaps += int((np.triu(inter, 1) > 0).sum())
    assert min(sizes) <= 10 and max(sizes) >= 56  # ~8 px to half the image
    assert set(labels) == set(range(len(CLASS_NAMES)))
    assert max(n_obj) >= 6 and overlaps > 20
    # the background differs between images (not one flat colour)
    means = np.array([ds[i].image.reshape(-1, 3).mean(0) for i in range(20)])
    assert means.std(0).min() > 10


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError, match="image_size"):
        SyntheticDetection(3, image_size=8)
    with pytest.raises(ValueError, match="split"):
        SyntheticDetection(3, split="holdout")
    with pytest.raises(IndexError):
        SyntheticDetection(3, 64)[3]


# --------------------------------------------------------------------------- transforms


def test_letterbox_scales_and_pads():
    img = np.full((50, 100, 3), 200, np.uint8)
    boxes = np.array([[10, 5, 60, 45]], np.float32)
    out, b, meta = letterbox(img, boxes, 64)
    assert out.shape == (64, 64, 3)
    assert meta["img_shape"] == (32, 64) and meta["pad_shape"] == (64, 64)
    assert meta["ori_shape"] == (50, 100)
    np.testing.assert_allclose(b, [[6.4, 3.2, 38.4, 28.8]], rtol=1e-6)
    assert out[40:].max() == 0 and out[:32].min() > 0
    with pytest.raises(ValueError, match="image must be"):
        letterbox(np.zeros((4, 4), np.uint8), boxes, 64)


def test_hflip_mirrors_boxes_and_is_an_involution():
    s = SyntheticDetection(2, 64, seed=1)[1]
    f = hflip(s)
    np.testing.assert_array_equal(f.image, s.image[:, ::-1])
    np.testing.assert_allclose(f.boxes[:, 0], 64 - s.boxes[:, 2])
    ff = hflip(f)
    np.testing.assert_array_equal(ff.image, s.image)
    np.testing.assert_allclose(ff.boxes, s.boxes)


def test_collate():
    ds = SyntheticDetection(3, 64, seed=2)
    b = collate([ds[i] for i in range(3)])
    assert b.images.shape == (3, 3, 64, 64) and b.images.dtype.is_floating_point is False
    assert [t.shape[0] for t in b.gt_bboxes] == [len(ds[i].labels) for i in range(3)]
    assert b.image_ids == [1, 2, 3]
    small = SyntheticDetection(1, 32)[0]
    with pytest.raises(ValueError, match="share one image shape"):
        collate([ds[0], small])
    with pytest.raises(ValueError, match="non-empty"):
        collate([])


# --------------------------------------------------------------------------- COCO


@pytest.fixture
def coco_dir(tmp_path: Path):
    ds = SyntheticDetection(4, 64, seed=5)
    path = export_coco(ds, tmp_path, CLASS_NAMES)
    return ds, path, tmp_path / "images"


def test_sample_annotations_are_coco_records_in_original_pixels():
    s = SyntheticDetection(1, 64, 0, "val")[0]
    halved = s._replace(boxes=s.boxes * 2, meta={**s.meta, "scale_factor": (2.0,) * 4})
    cat_ids = [10, 20, 30, 40, 50, 60]
    recs = sample_annotations(halved, cat_ids, first_id=7)
    assert [r["id"] for r in recs] == list(range(7, 7 + len(s.boxes)))
    for r, box, label, area in zip(recs, s.boxes, s.labels, s.areas):
        x1, y1, x2, y2 = box.tolist()
        assert r["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
        assert r["category_id"] == cat_ids[label] and r["image_id"] == s.image_id
        assert r["area"] == pytest.approx(float(area)) and r["iscrowd"] == 0


def test_sample_image_is_the_coco_record_of_the_original_image():
    s = SyntheticDetection(1, 64, 0, "val")[0]
    assert sample_image(s) == {"id": s.image_id, "width": 64, "height": 64}
    resized = s._replace(meta={**s.meta, "img_shape": (32, 24), "ori_shape": (64, 48)})
    record = sample_image(resized, "a.png")
    assert record == {"id": s.image_id, "file_name": "a.png", "width": 48, "height": 64}
    assert list(record) == ["id", "file_name", "width", "height"]  # COCO's order
    no_original = {k: v for k, v in resized.meta.items() if k != "ori_shape"}
    assert sample_image(s._replace(meta=no_original))["width"] == 24  # img_shape then


def test_export_and_load_round_trip(coco_dir):
    ds, path, images = coco_dir
    data = json.loads(path.read_text())
    assert [c["name"] for c in data["categories"]] == list(CLASS_NAMES)
    coco = CocoDetection(path, images, image_size=64)
    assert len(coco) == 4 and coco.class_names == CLASS_NAMES
    for i in range(4):
        a, b = ds[i], coco[i]
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_allclose(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert b.image_id == a.image_id
    big = CocoDetection(path, images, image_size=96)[1]
    np.testing.assert_allclose(big.boxes, ds[1].boxes * 1.5, rtol=1e-6)
    assert big.meta["scale_factor"] == (1.5, 1.5, 1.5, 1.5)


def _write(tmp_path: Path, data) -> Path:
    p = tmp_path / "bad.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def _base(coco_dir):
    _, path, _ = coco_dir
    return json.loads(path.read_text())


def test_malformed_json(coco_dir, tmp_path):
    _, _, images = coco_dir
    with pytest.raises(ValueError, match="not valid JSON.*line 1"):
        CocoDetection(_write(tmp_path, '{"images": [,]}'), images)
    with pytest.raises(ValueError, match="missing the key 'annotations'"):
        CocoDetection(_write(tmp_path, {"images": [], "categories": []}), images)
    with pytest.raises(ValueError, match="'images' must be a list"):
        CocoDetection(_write(tmp_path, {"images": {}, "annotations": [], "categories": []}), images)
    with pytest.raises(ValueError, match="top level must be a JSON object"):
        CocoDetection(_write(tmp_path, "[1, 2]"), images)
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        CocoDetection(tmp_path / "nope.json", images)


def test_bad_records(coco_dir, tmp_path):
    _, _, images = coco_dir
    d = _base(coco_dir)
    d["images"][0].pop("width")
    with pytest.raises(ValueError, match=r"images\[0\] must be an object"):
        CocoDetection(_write(tmp_path, d), images)
    d = _base(coco_dir)
    d["images"].append(dict(d["images"][0]))
    with pytest.raises(ValueError, match="appears twice"):
        CocoDetection(_write(tmp_path, d), images)
    d = _base(coco_dir)
    d["annotations"][0]["bbox"] = [1, 2, 3]
    with pytest.raises(ValueError, match=r"'bbox' = \[x, y, width, height\]"):
        CocoDetection(_write(tmp_path, d), images)
    d = _base(coco_dir)
    d["annotations"][0]["bbox"][0] = float("nan")
    with pytest.raises(ValueError, match="non-finite bbox"):
        CocoDetection(_write(tmp_path, d), images)


def test_unknown_category_and_image(coco_dir, tmp_path):
    _, _, images = coco_dir
    d = _base(coco_dir)
    d["annotations"][0]["category_id"] = 99
    with pytest.raises(
        ValueError, match=r"category_id 99, expected one of the category ids \[1, 2"
    ):
        CocoDetection(_write(tmp_path, d), images)
    d = _base(coco_dir)
    d["annotations"][0]["image_id"] = 12345
    with pytest.raises(ValueError, match="image_id 12345, which is not in 'images'"):
        CocoDetection(_write(tmp_path, d), images)


def test_missing_image_file(coco_dir, tmp_path):
    _, path, images = coco_dir
    (images / "000002.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 4 image file\(s\) not found.*000002.png"):
        CocoDetection(path, images)


def test_unreadable_and_mismatched_images(coco_dir):
    _, path, images = coco_dir
    (images / "000001.png").write_bytes(b"not a png")
    coco = CocoDetection(path, images)
    with pytest.raises(ValueError, match="could not be read as an image"):
        coco[0]
    d = json.loads(path.read_text())
    d["images"][1]["width"] = 65
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="the image is 64x64 .* says 65x64"):
        CocoDetection(path, images)[1]


def test_degenerate_and_outside_boxes_warn_and_drop(coco_dir, tmp_path):
    _, _, images = coco_dir
    d = _base(coco_dir)
    anns = d["annotations"]
    n = len(anns)
    img0 = anns[0]["image_id"]
    extra = [
        {"id": 901, "image_id": img0, "category_id": 1, "bbox": [10, 10, 0, 5]},  # zero width
        {"id": 902, "image_id": img0, "category_id": 1, "bbox": [10, 10, 5, -1]},  # negative
        {"id": 903, "image_id": img0, "category_id": 2, "bbox": [70, 70, 10, 10]},  # outside
        {"id": 904, "image_id": img0, "category_id": 3, "bbox": [-5, 50, 20, 30]},  # clipped
        {"id": 905, "image_id": img0, "category_id": 4, "bbox": [5, 5, 9, 9], "iscrowd": 1},
    ]
    d["annotations"] = anns + extra
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        coco = CocoDetection(_write(tmp_path, d), images, image_size=64)
    msgs = [str(w.message) for w in rec if issubclass(w.category, DataWarning)]
    assert any(
        "dropped 2 annotation(s) with zero or negative width/height (ids 901, 902)" in m
        for m in msgs
    )
    assert any("dropped 1 annotation(s) lying wholly outside" in m and "903" in m for m in msgs)
    assert any("clipped 1 annotation(s)" in m and "904" in m for m in msgs)
    assert any("iscrowd" in m and "905" in m for m in msgs)
    k = coco.image_ids.index(img0)
    s = coco[k]
    n0 = sum(a["image_id"] == img0 for a in anns)
    assert len(s.boxes) == n0 + 1  # the clipped box only; the crowd box is not a target
    np.testing.assert_allclose(s.boxes[-1], [0, 50, 15, 64])
    gt = coco.coco_dict()
    assert len(gt["annotations"]) == n + 2  # clipped + crowd kept for evaluation
    assert {a["id"] for a in gt["annotations"]} >= {904, 905}
