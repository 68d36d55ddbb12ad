"""COCO-format data: a loader (image folder + instances JSON) and an exporter.

The loader checks the file before training starts and never guesses in
silence:

* malformed JSON, missing keys, wrong types, duplicate ids, an annotation of
  an unknown image or category, a non-finite box, an image whose size differs
  from the JSON's → :class:`ValueError` naming the file, the record and what
  was expected;
* a missing image file → :class:`FileNotFoundError` listing the paths;
* a box of zero or negative width/height, or lying wholly outside its image →
  dropped, with a :class:`DataWarning` that counts them and names their ids;
* a box partly outside its image → clipped to it, with a :class:`DataWarning`;
* ``iscrowd`` annotations → not training targets, kept for evaluation (COCO's
  own convention), with a :class:`DataWarning`.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reference.validation import check_scalar

from .synthetic import Sample
from .transforms import letterbox

__all__ = [
    "CocoDetection",
    "DataWarning",
    "export_coco",
    "load_image",
    "sample_annotations",
    "sample_image",
]


class DataWarning(UserWarning):
    """Something in the data was dropped or changed; the message says what."""


def _ids(items: Sequence[Any], limit: int = 5) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f", … ({len(items)} in all)" if len(items) > limit else "")


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB ``(h, w, 3)`` uint8; a clear error if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"image file {path} could not be read as an image: {exc}") from exc


class CocoDetection:
    """A detection data set in COCO format.

    Parameters
    ----------
    ann_file : path
        An instances JSON (``images``, ``annotations``, ``categories``).
    image_dir : path
        The folder that ``images[*].file_name`` are relative to.
    image_size : int
        Images are letterboxed to ``image_size × image_size`` (longer side
        scaled to it, padding bottom/right).

    Attributes
    ----------
    class_names : tuple of str
        Category names, in label order (categories sorted by id).
    cat_ids : list of int
        ``cat_ids[label]`` is the COCO category id of ``label``.
    """

    def __init__(
        self, ann_file: str | os.PathLike, image_dir: str | os.PathLike, image_size: int = 512
    ):
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        self.image_size = check_scalar(image_size, "image_size", low=32, integer=True)
        data = self._read(self.ann_file)
        self._parse(data)

    # ------------------------------------------------------------------ parsing
    @staticmethod
    def _read(path: Path) -> dict:
        if not path.is_file():
            raise FileNotFoundError(f"annotation file not found: {path}")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from exc
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path} is not UTF-8 text: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(
                f"{path}: the top level must be a JSON object, got {type(data).__name__}"
            )
        for key in ("images", "annotations", "categories"):
            if key not in data:
                raise ValueError(
                    f"{path}: missing the key {key!r} (a COCO instances file has "
                    "'images', 'annotations' and 'categories')"
                )
            if not isinstance(data[key], list):
                raise ValueError(f"{path}: {key!r} must be a list, got {type(data[key]).__name__}")
        return data

    def _parse(self, data: dict) -> None:
        src = self.ann_file
        cats = _parse_categories(data["categories"], src)
        self.cat_ids = sorted(cats)
        self.class_names = tuple(cats[i] for i in self.cat_ids)
        images = _parse_images(data["images"], src)
        _check_image_files(images, self.image_dir, src)
        kept_anns, per_image, noted = _parse_annotations(
            data["annotations"], images, self.cat_ids, src
        )
        _warn_about(src.name, noted)
        self.image_ids = sorted(images)
        self._images = images
        self._targets = per_image
        self._coco = {
            "images": [images[i] for i in self.image_ids],
            "annotations": kept_anns,
            "categories": [{"id": cid, "name": cats[cid]} for cid in self.cat_ids],
        }

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> Sample:
        image_id = self.image_ids[index]
        info = self._images[image_id]
        path = self.image_dir / info["file_name"]
        image = load_image(path)
        if image.shape[:2] != (info["height"], info["width"]):
            raise ValueError(
                f"{path}: the image is {image.shape[1]}x{image.shape[0]} (w x h) but "
                f"{self.ann_file.name} says {info['width']}x{info['height']}"
            )
        targets = self._targets[image_id]
        boxes = np.asarray([t[0] for t in targets], np.float32).reshape(-1, 4)
        labels = np.asarray([t[1] for t in targets], np.int64)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        image, boxes, meta = letterbox(image, boxes, self.image_size)
        return Sample(image, boxes, labels, areas.astype(np.float32), image_id, meta)

    def coco_dict(self) -> dict:
        """The checked ground truth (dropped boxes removed, clipped ones clipped), COCO format."""
        return json.loads(json.dumps(self._coco))


def _parse_categories(categories: list, src: Path) -> dict[int, str]:
    """``{category id: name}``; a ValueError for an empty list, a malformed entry, a repeated id."""
    if len(categories) == 0:
        raise ValueError(f"{src}: 'categories' must not be empty")
    cats: dict[int, str] = {}
    for k, c in enumerate(categories):
        if (
            not isinstance(c, dict)
            or not _is_int(c.get("id"))
            or not isinstance(c.get("name"), str)
        ):
            raise ValueError(
                f"{src}: categories[{k}] must be an object with an int 'id' and "
                f"a str 'name', got {c!r}"
            )
        if c["id"] in cats:
            raise ValueError(f"{src}: category id {c['id']} appears twice")
        cats[c["id"]] = c["name"]
    return cats


def _parse_images(images: list, src: Path) -> dict[int, dict]:
    """``{image id: record}``; a ValueError for a malformed record or a repeated id."""
    by_id: dict[int, dict] = {}
    for k, im in enumerate(images):
        ok = (
            isinstance(im, dict)
            and _is_int(im.get("id"))
            and isinstance(im.get("file_name"), str)
            and _is_int(im.get("width"))
            and _is_int(im.get("height"))
            and im["width"] > 0
            and im["height"] > 0
        )
        if not ok:
            raise ValueError(
                f"{src}: images[{k}] must be an object with an int 'id', a str "
                f"'file_name' and positive int 'width' and 'height', got {im!r}"
            )
        if im["id"] in by_id:
            raise ValueError(f"{src}: image id {im['id']} appears twice")
        by_id[im["id"]] = im
    return by_id


def _check_image_files(images: dict[int, dict], image_dir: Path, src: Path) -> None:
    """A FileNotFoundError listing the image files that are not there."""
    missing = [
        str(image_dir / im["file_name"])
        for im in images.values()
        if not (image_dir / im["file_name"]).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"{src}: {len(missing)} of {len(images)} image file(s) not found under "
            f"{image_dir}: {_ids(missing, 3)}"
        )


def _checked_box(k: int, a: object, images: dict, cat_ids: Sequence[int], src: Path):
    """``(annotation id, (x, y, w, h))`` of ``annotations[k]``; a ValueError if it is malformed.

    The id is ``#k`` when the record has none.
    """
    if not isinstance(a, dict):
        raise ValueError(f"{src}: annotations[{k}] must be an object, got {a!r}")
    aid = a.get("id", f"#{k}")
    if a.get("image_id") not in images:
        raise ValueError(
            f"{src}: annotation {aid} refers to image_id {a.get('image_id')!r}, "
            "which is not in 'images'"
        )
    if a.get("category_id") not in cat_ids:
        raise ValueError(
            f"{src}: annotation {aid} has category_id {a.get('category_id')!r}, "
            f"expected one of the category ids {list(cat_ids)}"
        )
    box = a.get("bbox")
    if (
        not isinstance(box, list)
        or len(box) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
    ):
        raise ValueError(
            f"{src}: annotation {aid} must have 'bbox' = [x, y, width, height] "
            f"(4 numbers), got {box!r}"
        )
    if not all(math.isfinite(v) for v in box):
        raise ValueError(f"{src}: annotation {aid} has a non-finite bbox {box!r}")
    return aid, tuple(float(v) for v in box)


def _parse_annotations(
    annotations: list, images: dict[int, dict], cat_ids: Sequence[int], src: Path
) -> tuple[list[dict], dict[int, list], dict[str, list]]:
    """Check, clip and sort the annotations.

    Returns
    -------
    kept : list of dict
        The records evaluation uses (boxes clipped; ``area``, ``iscrowd`` and
        ``id`` filled in where missing).
    targets : dict
        ``{image id: [([x1, y1, x2, y2], label), …]}``, the training targets
        (crowd regions are not).
    noted : dict
        Annotation ids by what happened to them: ``degenerate`` and
        ``outside`` (dropped), ``clipped``, ``crowd``.
    """
    cat_to_label = {cid: k for k, cid in enumerate(cat_ids)}
    targets: dict[int, list[tuple[list[float], int]]] = {i: [] for i in images}
    kept: list[dict] = []
    noted: dict[str, list] = {"degenerate": [], "outside": [], "clipped": [], "crowd": []}
    for k, a in enumerate(annotations):
        aid, (x, y, w, h) = _checked_box(k, a, images, cat_ids, src)
        if w <= 0 or h <= 0:
            noted["degenerate"].append(aid)
            continue
        im = images[a["image_id"]]
        x1, y1 = min(max(x, 0.0), im["width"]), min(max(y, 0.0), im["height"])
        x2, y2 = min(max(x + w, 0.0), im["width"]), min(max(y + h, 0.0), im["height"])
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            noted["outside"].append(aid)
            continue
        if (x1, y1, x2, y2) != (x, y, x + w, y + h):
            noted["clipped"].append(aid)
        ann = dict(a, bbox=[x1, y1, x2 - x1, y2 - y1])
        ann.setdefault("area", (x2 - x1) * (y2 - y1))
        ann.setdefault("iscrowd", 0)
        ann["id"] = a.get("id", 10**9 + k)
        kept.append(ann)
        if ann["iscrowd"]:
            noted["crowd"].append(aid)
            continue
        targets[a["image_id"]].append(([x1, y1, x2, y2], cat_to_label[a["category_id"]]))
    return kept, targets, noted


#: The :class:`DataWarning` for each kind of annotation :func:`_parse_annotations` notes.
_NOTES = {
    "degenerate": "dropped {n} annotation(s) with zero or negative width/height",
    "outside": "dropped {n} annotation(s) lying wholly outside their image",
    "clipped": "clipped {n} annotation(s) that reach outside their image to the image",
    "crowd": "{n} iscrowd annotation(s) are not training targets; evaluation treats them as "
    "crowd regions",
}


def _warn_about(name: str, noted: dict[str, list]) -> None:
    """One :class:`DataWarning` per kind of annotation noted, naming their ids."""
    for kind, ids in noted.items():
        if ids:
            warnings.warn(
                f"{name}: {_NOTES[kind].format(n=len(ids))} (ids {_ids(ids)})",
                DataWarning,
                stacklevel=4,  # the code that made the CocoDetection (via __init__ and _parse)
            )


def sample_image(sample: Sample, file_name: str | None = None) -> dict:
    """A sample's COCO ``images`` record: ``id``, ``file_name`` (if given), ``width``, ``height``.

    The size is the original image's (``ori_shape``, else ``img_shape``).
    """
    oh, ow = sample.meta.get("ori_shape", sample.meta["img_shape"])
    record: dict[str, Any] = {"id": int(sample.image_id)}
    if file_name is not None:
        record["file_name"] = file_name
    record.update(width=int(ow), height=int(oh))
    return record


def sample_annotations(sample: Sample, cat_ids: Sequence[int], first_id: int = 1) -> list[dict]:
    """A sample's objects as COCO ``annotations`` records, in original-image pixels.

    Parameters
    ----------
    sample : Sample
    cat_ids : sequence of int
        The COCO category id of each class index (``cat_ids[label]``).
    first_id : int
        The annotation id of the first record; the others follow.

    Returns
    -------
    list of dict
        ``id``, ``image_id``, ``category_id``, ``bbox [x, y, w, h]`` (boxes divided by
        the sample's ``scale_factor``), ``area`` and ``iscrowd`` 0.
    """
    scale = np.asarray(sample.meta.get("scale_factor", (1.0,) * 4), np.float32)
    records = []
    for box, label, area in zip(sample.boxes / scale, sample.labels, sample.areas):
        x1, y1, x2, y2 = (float(v) for v in box)
        records.append(
            {
                "id": first_id + len(records),
                "image_id": int(sample.image_id),
                "category_id": int(cat_ids[int(label)]),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": float(area),
                "iscrowd": 0,
            }
        )
    return records


def export_coco(
    dataset: Sequence[Sample],
    out_dir: str | os.PathLike,
    class_names: Sequence[str],
    json_name: str = "instances.json",
    image_subdir: str = "images",
) -> Path:
    """Write a data set as PNG files plus a COCO instances JSON.

    Parameters
    ----------
    dataset : sequence of Sample
        E.g. a :class:`~torch_impl.detector.data.synthetic.SyntheticDetection`; boxes
        are divided by each sample's ``scale_factor`` (1 for synthetic data).
    out_dir : path
        Created if needed; gets ``json_name`` and ``image_subdir/``.
    class_names : sequence of str
        Category ``k + 1`` is ``class_names[k]``.

    Returns
    -------
    Path
        The JSON file; load it back with ``CocoDetection(path, out_dir / image_subdir)``.
    """
    from PIL import Image

    out = Path(out_dir)
    (out / image_subdir).mkdir(parents=True, exist_ok=True)
    cat_ids = list(range(1, len(class_names) + 1))
    images, anns = [], []
    for i in range(len(dataset)):
        s = dataset[i]
        record = sample_image(s, f"{s.image_id:06d}.png")
        h, w = s.meta["img_shape"]
        img = s.image[:h, :w]
        if (h, w) != (record["height"], record["width"]):
            size = (record["width"], record["height"])
            img = np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))
        Image.fromarray(img).save(out / image_subdir / record["file_name"])
        images.append(record)
        anns += sample_annotations(s, cat_ids, first_id=len(anns) + 1)
    data = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": c, "name": n} for c, n in zip(cat_ids, class_names)],
    }
    path = out / json_name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
    return path
