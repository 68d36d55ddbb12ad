"""Benchmarks of issue 3: ATSS assignment, NMS and multiclass NMS.

Workloads (fixed seeds):

* ATSS on one 800x1333 image: the GFL anchors of feature maps 100x167,
  50x84, 25x42, 13x21, 7x11 (22 300 anchors) and 8 or 50 random gts; the
  reference, torch ``atss_assign`` and torch ``atss_assign_batched`` on 2
  images.
* NMS of 1000 and 10 000 random boxes (centres uniform in the image, sides
  16-256 px, float32, IoU threshold 0.6).
* ``multiclass_nms`` of 1000 boxes x 80 classes, ``score_thr`` 0.05, IoU 0.6,
  ``max_num`` 100, with uniform scores (95 % of the pairs pass the
  threshold: the worst case) and with sigmoid(N(-5, 2)) scores (about 15 %
  pass, closer to a detector's output).

NMS and ``multiclass_nms`` are timed three ways: the textbook reference
(``reference.nms``: the greedy loop), its NumPy fast path
(``reference.nms_fast``: sweep + Cluster-NMS, the same results) and torch_impl.
The speed targets are the fast path's.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

import reference as R
import torch_impl as T
from reference.nms_fast import multiclass_nms_fast, nms_fast

from .timing import Result, timed

FEATMAPS = [(100, 167), (50, 84), (25, 42), (13, 21), (7, 11)]
IMAGE_HW = (800, 1333)

TARGETS_MS = {  # (group, implementation, device) -> target on the 2-core CPU machine
    ("ATSS 800x1333, 8 gts", "reference atss_assign", "cpu"): 4.6,
    ("ATSS 800x1333, 50 gts", "reference atss_assign", "cpu"): 20.0,
    ("ATSS 800x1333, 8 gts", "torch atss_assign_batched, 2 images", "cpu"): 6.0,
    ("NMS, 1000 boxes", "reference nms_fast", "cpu"): 5.0,
    ("multiclass_nms 1000x80, thr 0.05, uniform scores", "reference multiclass_nms_fast", "cpu"):
        30.0,
    ("multiclass_nms 1000x80, thr 0.05, sigmoid scores", "reference multiclass_nms_fast", "cpu"):
        30.0,
}
TEXTBOOK_NMS = "reference nms (textbook)"
TEXTBOOK_MULTICLASS = "reference multiclass_nms (textbook)"


def random_gts(rng: np.random.Generator, g: int) -> np.ndarray:
    """``(g, 4)`` float64 boxes inside the image, sides 16-400 px."""
    h, w = IMAGE_HW
    xy = rng.uniform(0, [w - 16, h - 16], size=(g, 2))
    wh = rng.uniform(16, 400, size=(g, 2))
    return np.concatenate([xy, np.minimum(xy + wh, [w, h])], axis=1)


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 4)`` float32 boxes: centres uniform in the image, sides 16-256 px."""
    h, w = IMAGE_HW
    c = rng.uniform(0, [w, h], size=(n, 2))
    wh = rng.uniform(16, 256, size=(n, 2))
    return np.concatenate([c - wh / 2, c + wh / 2], axis=1).astype(np.float32)


def _atss(devices: list[str], repeat: int) -> list[Result]:
    levels = R.grid_anchors(FEATMAPS)
    counts = [a.shape[0] for a in levels]
    anchors = np.concatenate(levels)  # (A, 4)
    out = []
    for g in (8, 50):
        rng = np.random.default_rng(g)
        gts = [random_gts(rng, g) for _ in range(2)]
        labels = [rng.integers(0, 80, size=g) for _ in range(2)]
        group = f"ATSS 800x1333, {g} gts"
        jobs = [("reference atss_assign", "cpu",
                 partial(R.atss_assign, anchors, counts, gts[0], labels[0]))]
        for dev in devices:
            a = torch.tensor(anchors, dtype=torch.float32, device=dev)
            tg = torch.tensor(np.stack(gts), dtype=torch.float32, device=dev)  # (2, G, 4)
            tl = torch.tensor(np.stack(labels), device=dev)  # (2, G)
            valid = torch.ones(2, g, dtype=torch.bool, device=dev)
            jobs.append(("torch atss_assign", dev, partial(T.atss_assign, a, counts, tg[0], tl[0])))
            jobs.append(("torch atss_assign_batched, 2 images", dev,
                         partial(T.atss_assign_batched, a, counts, tg, tl, valid)))
        for impl, dev, fn in jobs:
            out.append(timed(group, impl, fn, device=dev, repeat=repeat,
                             target_ms=TARGETS_MS.get((group, impl, dev))))
    return out


def _nms(devices: list[str], repeat: int) -> list[Result]:
    out = []
    for n in (1000, 10000):
        rng = np.random.default_rng(n)
        boxes, scores = random_boxes(rng, n), rng.random(n).astype(np.float32)
        group = f"NMS, {n} boxes"
        reps = repeat if n <= 1000 else max(3, repeat // 3)
        kept = len(nms_fast(boxes, scores, 0.6))
        for impl, fn in ((TEXTBOOK_NMS, R.nms), ("reference nms_fast", nms_fast)):
            out.append(timed(group, impl, lambda f=fn, b=boxes, s=scores: f(b, s, 0.6),
                             repeat=reps, target_ms=TARGETS_MS.get((group, impl, "cpu")),
                             note=f"{kept} kept"))
        for dev in devices:
            tb, ts = torch.tensor(boxes, device=dev), torch.tensor(scores, device=dev)
            out.append(timed(group, "torch nms", lambda tb=tb, ts=ts: T.nms(tb, ts, 0.6),
                             device=dev, repeat=reps, note=f"{kept} kept"))
    return out


def _multiclass(devices: list[str], repeat: int) -> list[Result]:
    rng = np.random.default_rng(80)
    boxes = random_boxes(rng, 1000)
    uniform = rng.random((1000, 81)).astype(np.float32)
    sigmoid = (1.0 / (1.0 + np.exp(-rng.normal(-5.0, 2.0, size=(1000, 81))))).astype(np.float32)
    out = []
    for name, scores in (("uniform", uniform), ("sigmoid", sigmoid)):
        group = f"multiclass_nms 1000x80, thr 0.05, {name} scores"
        note = f"{int((scores[:, :80] > np.float32(0.05)).sum())} candidates"
        slow = name == "uniform"  # about a second per call for the textbook loop
        jobs = (
            (TEXTBOOK_MULTICLASS, R.multiclass_nms, max(3, repeat // 3) if slow else repeat),
            ("reference multiclass_nms_fast", multiclass_nms_fast, repeat),
        )
        for impl, fn, reps in jobs:
            out.append(timed(group, impl, lambda f=fn, s=scores: f(boxes, s, 0.05, 0.6, 100),
                             repeat=reps, warmup=1 if reps < repeat else 3,
                             target_ms=TARGETS_MS.get((group, impl, "cpu")), note=note))
        for dev in devices:
            tb, ts = torch.tensor(boxes, device=dev), torch.tensor(scores, device=dev)
            reps = repeat if dev != "cpu" or name != "uniform" else max(3, repeat // 3)
            out.append(timed(group, "torch multiclass_nms",
                             lambda tb=tb, ts=ts: T.multiclass_nms(tb, ts, 0.05, 0.6, 100),
                             device=dev, repeat=reps, note=note))
    return out


def run(devices: list[str], repeat: int = 15) -> list[Result]:
    """Every workload of this module, on the CPU and on each of ``devices``."""
    return _atss(devices, repeat) + _nms(devices, repeat) + _multiclass(devices, repeat)
