"""Benchmarks of issue 4: the whole head's loss (forward + backward), predict and targets.

Workloads (fixed seeds, 80 classes, reg_max 16, random head outputs; built by
:mod:`benchmarks.workloads`, which ``--against`` times too):

* loss forward + backward, B = 2 at 640x640 and at 800x1333, 8 random gts
  per image: the reference (float64, hand backward) and torch_impl
  (float32, autograd);
* predict, B = 2 at 800x1333 (``nms_pre`` 1000, ``score_thr`` 0.05, IoU 0.6,
  100 per image): reference and torch_impl;
* the ATSS targets (``gfl_targets``, what the loss calls first), B = 2 at
  640x640 and 800x1333: reference (image by image) and torch_impl (the batch);
* on CUDA: the B = 2 loss and predict rows again, and the GPU rows, B = 16
  at 800x1333: loss forward + backward in float32 and under AMP (float16 head
  outputs, autocast), predict under AMP (synchronised around the timed region
  by :func:`timing.measure`). Without CUDA the GPU rows are listed as skipped,
  with the reason.

The class logits are N(-4, 1) (sigmoid ≈ 0.02, as a trained detector's
background) and the box logits N(0, 1).
"""

from __future__ import annotations

from .timing import Result, cuda_skip_reason, timed
from .workloads import (
    loss_reference,
    loss_torch,
    predict_reference,
    predict_torch,
    targets_reference,
    targets_torch,
)

TARGETS_MS = {
    ("loss fwd+bwd, B=2, 800x1333", "torch_impl gfl_loss", "cpu"): 40.0,
    ("loss fwd+bwd, B=2, 800x1333", "reference gfl_loss_forward/backward", "cpu"): 130.0,
    ("loss fwd+bwd, B=2, 640x640", "torch_impl gfl_loss", "cpu"): 15.0,
    ("predict, B=2, 800x1333", "reference gfl_predict", "cpu"): 90.0,
    ("predict, B=2, 800x1333", "torch_impl gfl_predict", "cpu"): 90.0,
}
CASES = [(2, 640, 640), (2, 800, 1333)]

#: The GPU rows: (group, implementation, builder, its keyword arguments).
GPU_ROWS = [
    ("loss fwd+bwd, B=16, 800x1333", "torch_impl gfl_loss", loss_torch, {}),
    ("loss fwd+bwd, B=16, 800x1333, AMP", "torch_impl gfl_loss", loss_torch, {"amp": True}),
    ("predict, B=16, 800x1333, AMP", "torch_impl gfl_predict", predict_torch, {"amp": True}),
]


def _row(group: str, impl: str, fn, device: str, repeat: int) -> Result:
    return timed(group, impl, fn, device=device, repeat=repeat,
                 target_ms=TARGETS_MS.get((group, impl, device)))


def _cpu(repeat: int) -> list[Result]:
    slow = max(3, repeat // 3)  # the reference's runs are long
    out = []
    for batch, h, w in CASES:
        group = f"loss fwd+bwd, B={batch}, {h}x{w}"
        out.append(_row(group, "torch_impl gfl_loss", loss_torch(batch, h, w), "cpu", repeat))
        out.append(_row(group, "reference gfl_loss_forward/backward",
                        loss_reference(batch, h, w), "cpu", slow))
    group = "predict, B=2, 800x1333"
    out.append(_row(group, "torch_impl gfl_predict", predict_torch(2, 800, 1333), "cpu", repeat))
    out.append(_row(group, "reference gfl_predict", predict_reference(2, 800, 1333), "cpu", slow))
    for batch, h, w in CASES:
        group = f"ATSS targets, B={batch}, {h}x{w}, 8 gts"
        out.append(_row(group, "torch_impl gfl_targets", targets_torch(batch, h, w), "cpu", repeat))
        out.append(_row(group, "reference gfl_targets", targets_reference(batch, h, w), "cpu",
                        repeat))
    return out


def _gpu(devices: list[str], repeat: int) -> list[Result]:
    why = cuda_skip_reason(devices)
    if why is not None:
        return [Result.skipped(group, impl, "cuda", why) for group, impl, _, _ in GPU_ROWS]
    out = []
    for batch, h, w in CASES:
        out.append(_row(f"loss fwd+bwd, B={batch}, {h}x{w}", "torch_impl gfl_loss",
                        loss_torch(batch, h, w, device="cuda"), "cuda", repeat))
    for group, impl, make, kw in GPU_ROWS:
        out.append(_row(group, impl, make(16, 800, 1333, device="cuda", **kw), "cuda", repeat))
    out.append(_row("predict, B=2, 800x1333", "torch_impl gfl_predict",
                    predict_torch(2, 800, 1333, device="cuda"), "cuda", repeat))
    return out


def run(devices: list[str], repeat: int) -> list[Result]:
    """Every head workload on the CPU; the GPU rows on CUDA (or listed as skipped)."""
    return _cpu(repeat) + _gpu(devices, repeat)
