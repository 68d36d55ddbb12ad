"""Benchmarks of issue 4: the whole head's loss (forward + backward) and predict.

Workloads (fixed seeds, 80 classes, reg_max 16, random head outputs):

* loss forward + backward, B = 2 at 640x640 and at 800x1333, 8 random gts
  per image: the reference (float64, hand backward) and torch_impl
  (float32, autograd);
* predict, B = 2 at 800x1333 (``nms_pre`` 1000, ``score_thr`` 0.05, IoU 0.6,
  100 per image): reference and torch_impl;
* on a GPU, when one is present: loss forward + backward with B = 16 at
  800x1333 (synchronised around the timed region by :func:`timing.measure`).

The class logits are N(-4, 1) (sigmoid ≈ 0.02, as a trained detector's
background) and the box logits N(0, 1).
"""

from __future__ import annotations

import numpy as np
import torch

import reference as R
import torch_impl as T

from .timing import Result, timed

TARGETS_MS = {
    ("loss fwd+bwd, B=2, 800x1333", "torch_impl gfl_loss", "cpu"): 40.0,
    ("loss fwd+bwd, B=2, 800x1333", "reference gfl_loss_forward/backward", "cpu"): 130.0,
    ("loss fwd+bwd, B=2, 640x640", "torch_impl gfl_loss", "cpu"): 15.0,
    ("predict, B=2, 800x1333", "reference gfl_predict", "cpu"): 90.0,
    ("predict, B=2, 800x1333", "torch_impl gfl_predict", "cpu"): 90.0,
}


def workload(batch: int, height: int, width: int, cfg: R.GFLConfig, gts: int = 8, seed: int = 0):
    """Random float32 head outputs, gts and img_metas for one padded batch."""
    rng = np.random.default_rng(seed)
    sizes = [(-(-height // s), -(-width // s)) for s in cfg.strides]
    k = 4 * (cfg.reg_max + 1)
    cls = [
        (rng.normal(size=(batch, cfg.num_classes, h, w)) - 4).astype(np.float32) for h, w in sizes
    ]
    reg = [rng.normal(size=(batch, k, h, w)).astype(np.float32) for h, w in sizes]
    gt_bboxes, gt_labels = [], []
    for _ in range(batch):
        xy = rng.uniform(0, [width - 32, height - 32], size=(gts, 2))
        wh = rng.uniform(16, 400, size=(gts, 2))
        gt_bboxes.append(
            np.concatenate([xy, np.minimum(xy + wh, [width, height])], 1).astype(np.float32)
        )
        gt_labels.append(rng.integers(0, cfg.num_classes, size=gts))
    metas = [{"img_shape": (height, width)}] * batch
    return cls, reg, gt_bboxes, gt_labels, metas


def _loss(devices: list[str], repeat: int) -> list[Result]:
    cfg = R.GFLConfig()
    out = []
    cases = [(2, 640, 640), (2, 800, 1333)]
    for device in devices:
        for batch, h, w in cases + ([(16, 800, 1333)] if device == "cuda" else []):
            group = f"loss fwd+bwd, B={batch}, {h}x{w}"
            cls, reg, gtb, gtl, metas = workload(batch, h, w, cfg)
            cls_t = [torch.tensor(c, device=device, requires_grad=True) for c in cls]
            reg_t = [torch.tensor(r, device=device, requires_grad=True) for r in reg]
            gtb_t = [torch.tensor(b, device=device) for b in gtb]
            gtl_t = [torch.tensor(lab, device=device) for lab in gtl]

            def torch_step(cls_t=cls_t, reg_t=reg_t, gtb_t=gtb_t, gtl_t=gtl_t, metas=metas):
                for t in cls_t + reg_t:
                    t.grad = None
                losses = T.gfl_loss(cls_t, reg_t, gtb_t, gtl_t, metas, cfg)
                sum(losses.values()).backward()

            impl = "torch_impl gfl_loss"
            out.append(
                timed(
                    group,
                    impl,
                    torch_step,
                    device=device,
                    repeat=repeat,
                    target_ms=TARGETS_MS.get((group, impl, device)),
                )
            )
            if device == "cpu" and batch == 2:

                def ref_step(cls=cls, reg=reg, gtb=gtb, gtl=gtl, metas=metas):
                    _, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg)
                    R.gfl_loss_backward(cache)

                impl = "reference gfl_loss_forward/backward"
                out.append(
                    timed(
                        group,
                        impl,
                        ref_step,
                        repeat=max(3, repeat // 3),
                        target_ms=TARGETS_MS.get((group, impl, device)),
                    )
                )
    return out


def _predict(devices: list[str], repeat: int) -> list[Result]:
    cfg = R.GFLConfig()
    group = "predict, B=2, 800x1333"
    cls, reg, _, _, metas = workload(2, 800, 1333, cfg)
    out = []
    for device in devices:
        cls_t = [torch.tensor(c, device=device) for c in cls]
        reg_t = [torch.tensor(r, device=device) for r in reg]
        impl = "torch_impl gfl_predict"
        out.append(
            timed(
                group,
                impl,
                lambda c=cls_t, r=reg_t: T.gfl_predict(c, r, metas, cfg),
                device=device,
                repeat=repeat,
                target_ms=TARGETS_MS.get((group, impl, device)),
            )
        )
        if device == "cpu":
            impl = "reference gfl_predict"
            out.append(
                timed(
                    group,
                    impl,
                    lambda: R.gfl_predict(cls, reg, metas, cfg),
                    repeat=max(3, repeat // 3),
                    target_ms=TARGETS_MS.get((group, impl, device)),
                )
            )
    return out


def run(devices: list[str], repeat: int) -> list[Result]:
    """Every head workload on every device."""
    return _loss(devices, repeat) + _predict(devices, repeat)
