"""Image transforms (letterbox resize, horizontal flip) and the batch collate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from .synthetic import Sample

__all__ = ["Batch", "collate", "hflip", "letterbox"]


def letterbox(
    image: np.ndarray, boxes: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Resize so the longer side is ``size`` (aspect kept), pad bottom/right to square.

    Parameters
    ----------
    image : ndarray, shape (h, w, 3), uint8
    boxes : ndarray, shape (K, 4)
        ``(x1, y1, x2, y2)`` in ``image`` pixels.
    size : int
        The output is ``size × size``.

    Returns
    -------
    image : ndarray, shape (size, size, 3), uint8
        Zero padded.
    boxes : ndarray, shape (K, 4), float32
        Scaled into the output.
    meta : dict
        ``img_shape`` (resized, before padding), ``pad_shape``, ``ori_shape``
        and ``scale_factor`` ``(w_scale, h_scale, w_scale, h_scale)``.
    """
    from PIL import Image

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"image must be a uint8 array of shape (h, w, 3), got {image.dtype} {image.shape}"
        )
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    if (nh, nw) != (h, w):
        image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    out = np.zeros((size, size, 3), np.uint8)
    out[:nh, :nw] = image
    sx, sy = nw / w, nh / h
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4) * np.array([sx, sy, sx, sy], np.float32)
    meta = {
        "img_shape": (nh, nw),
        "pad_shape": (size, size),
        "ori_shape": (h, w),
        "scale_factor": (sx, sy, sx, sy),
    }
    return out, boxes, meta


def hflip(sample: Sample) -> Sample:
    """Mirror a sample left-right within its ``img_shape`` (padding stays right)."""
    h, w = sample.meta["img_shape"]
    image = sample.image.copy()
    image[:h, :w] = image[:h, :w][:, ::-1]
    boxes = sample.boxes.copy()
    boxes[:, 0], boxes[:, 2] = w - sample.boxes[:, 2], w - sample.boxes[:, 0]
    return sample._replace(image=image, boxes=boxes, meta={**sample.meta, "flip": True})


class Batch(NamedTuple):
    """A collated batch.

    Attributes
    ----------
    images : Tensor, shape (B, 3, H, W), uint8
    gt_bboxes : list of Tensor, each (K_i, 4) float32
    gt_labels : list of Tensor, each (K_i,) int64
    img_metas : list of dict
    image_ids : list of int
    """

    images: torch.Tensor
    gt_bboxes: list[torch.Tensor]
    gt_labels: list[torch.Tensor]
    img_metas: list[dict]
    image_ids: list[int]

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with its tensors on ``device``."""
        return Batch(
            self.images.to(device, non_blocking=True),
            [b.to(device, non_blocking=True) for b in self.gt_bboxes],
            [lab.to(device, non_blocking=True) for lab in self.gt_labels],
            self.img_metas,
            self.image_ids,
        )


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack samples of one size into a :class:`Batch` (images stay uint8)."""
    if len(samples) == 0:
        raise ValueError("samples must be a non-empty sequence, got 0 samples")
    shapes = {s.image.shape for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"samples must share one image shape, got {sorted(shapes)}")
    images = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2)
    return Batch(
        images.contiguous(),
        [torch.from_numpy(np.asarray(s.boxes, np.float32).reshape(-1, 4)) for s in samples],
        [torch.from_numpy(np.asarray(s.labels, np.int64).reshape(-1)) for s in samples],
        [dict(s.meta) for s in samples],
        [int(s.image_id) for s in samples],
    )
