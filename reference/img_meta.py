"""Shared by both packages: parsing of ``img_metas``, one dict per image with
``img_shape``, optional ``pad_shape`` and optional ``scale_factor``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .validation import check_hw

__all__ = ["ImgMeta", "parse_img_metas"]


class ImgMeta(NamedTuple):
    img_shape: tuple[int, int]  # (h, w) of the image inside the padded batch
    pad_shape: tuple[int, int]  # (h, w) after padding; anchors beyond it are invalid
    scale_factor: np.ndarray  # (4,) float64, (w, h, w, h) as in mmdetection


def parse_img_metas(img_metas: Sequence[dict], batch: int | None = None) -> list[ImgMeta]:
    """Check and normalise ``img_metas``.

    Parameters
    ----------
    img_metas : list of dict, length B
        ``img_shape`` ``(h, w)`` (required), ``pad_shape`` ``(h, w)``
        (default ``img_shape``), ``scale_factor`` a float or 4 floats
        ``(w, h, w, h)`` (default 1).
    batch : int, optional
        The expected number of images B.

    Returns
    -------
    list of ImgMeta, length B
    """
    if isinstance(img_metas, dict) or not isinstance(img_metas, Sequence):
        raise ValueError(
            f"img_metas must be a list of dicts (one per image), got {type(img_metas).__name__}"
        )
    if batch is not None and len(img_metas) != batch:
        raise ValueError(f"img_metas must have one dict per image ({batch}), got {len(img_metas)}")
    out = []
    for i, meta in enumerate(img_metas):
        if not isinstance(meta, dict) or "img_shape" not in meta:
            raise ValueError(f"img_metas[{i}] must be a dict with 'img_shape', got {meta!r}")
        img_shape = check_hw(
            meta["img_shape"], f"img_metas[{i}]['img_shape']", positive_int=True, extra_ok=True
        )
        pad_shape = check_hw(
            meta.get("pad_shape", img_shape),
            f"img_metas[{i}]['pad_shape']",
            positive_int=True,
            extra_ok=True,
        )
        sf = np.asarray(meta.get("scale_factor", 1.0), dtype=np.float64).reshape(-1)
        if sf.size == 1:
            sf = np.repeat(sf, 4)
        if sf.shape != (4,) or not np.all(np.isfinite(sf)) or np.any(sf <= 0):
            raise ValueError(
                f"img_metas[{i}]['scale_factor'] must be a positive float or 4 positive floats "
                f"(w, h, w, h), got {meta.get('scale_factor')!r}"
            )
        out.append(ImgMeta(img_shape, pad_shape, sf))
    return out
