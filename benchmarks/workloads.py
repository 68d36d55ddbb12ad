"""The workloads that ``make bench`` times, as plain callables, and the demo's training step.

This module imports only NumPy, torch, :mod:`reference` and :mod:`torch_impl`
(absolute imports, nothing from ``benchmarks``): ``--against`` loads this very
file into two worker processes, one whose ``reference``/``torch_impl`` come from
the working tree and one whose come from the other revision's worktree, so both
sides run the same workload code on their own library code (see
:mod:`benchmarks.against`).

* :func:`head_inputs`: random head outputs and gts of a padded batch;
* :func:`loss_torch`, :func:`loss_reference`, :func:`predict_torch`,
  :func:`predict_reference`, :func:`targets_torch`, :func:`targets_reference`:
  each returns a callable doing one unit of work (what one timing measures);
* :class:`DemoStep`: the demo's training run (``gfl demo``: model preset ``cpu``,
  ``DEMO_TRAIN``, ``DEMO_HEAD``, one training thread), with its batches, its
  real step and the same step cut into timed phases;
* :data:`AGAINST`: the named workloads of ``--against``, and :func:`build`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import reference as R
import torch_impl as T

#: The phases of :meth:`DemoStep.profiled_step`, in the order they run (``targets`` is timed by
#: a separate call and subtracted from the loss call; see the method).
PHASES = ("data", "backbone+fpn", "head", "targets", "losses", "backward", "optimizer")


def synchronize(device: str) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- head workloads


def head_inputs(batch: int, height: int, width: int, cfg: R.GFLConfig, gts: int = 8, seed: int = 0):
    """Random float32 head outputs, gts and img_metas for one padded batch.

    Class logits N(-4, 1) (sigmoid ≈ 0.02, a trained detector's background), box logits
    N(0, 1), ``gts`` boxes per image with sides 16-400 px.
    """
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


def _autocast(device: str, amp: bool):
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.float16)


def loss_torch(batch: int, h: int, w: int, device: str = "cpu", amp: bool = False) -> Callable:
    """``torch_impl.gfl_loss`` forward + backward; ``amp``: float16 head outputs, autocast on."""
    cfg = R.GFLConfig()
    cls, reg, gtb, gtl, metas = head_inputs(batch, h, w, cfg)
    dtype = torch.float16 if amp else torch.float32
    cls_t = [torch.tensor(c, device=device, dtype=dtype, requires_grad=True) for c in cls]
    reg_t = [torch.tensor(r, device=device, dtype=dtype, requires_grad=True) for r in reg]
    gtb_t = [torch.tensor(b, device=device) for b in gtb]
    gtl_t = [torch.tensor(lab, device=device) for lab in gtl]

    def step() -> None:
        for t in cls_t + reg_t:
            t.grad = None
        with _autocast(device, amp):
            losses = T.gfl_loss(cls_t, reg_t, gtb_t, gtl_t, metas, cfg)
        sum(losses.values()).backward()

    return step


def loss_reference(batch: int, h: int, w: int) -> Callable:
    """``reference.gfl_loss_forward`` + ``gfl_loss_backward`` (float64 inside, hand backward)."""
    cfg = R.GFLConfig()
    cls, reg, gtb, gtl, metas = head_inputs(batch, h, w, cfg)

    def step() -> None:
        _, cache = R.gfl_loss_forward(cls, reg, gtb, gtl, metas, cfg)
        R.gfl_loss_backward(cache)

    return step


def predict_torch(batch: int, h: int, w: int, device: str = "cpu", amp: bool = False) -> Callable:
    """``torch_impl.gfl_predict`` (``amp``: float16 head outputs, as autocast leaves them)."""
    cfg = R.GFLConfig()
    cls, reg, _, _, metas = head_inputs(batch, h, w, cfg)
    dtype = torch.float16 if amp else torch.float32
    cls_t = [torch.tensor(c, device=device, dtype=dtype) for c in cls]
    reg_t = [torch.tensor(r, device=device, dtype=dtype) for r in reg]
    return lambda: T.gfl_predict(cls_t, reg_t, metas, cfg)


def predict_reference(batch: int, h: int, w: int) -> Callable:
    """``reference.gfl_predict``."""
    cfg = R.GFLConfig()
    cls, reg, _, _, metas = head_inputs(batch, h, w, cfg)
    return lambda: R.gfl_predict(cls, reg, metas, cfg)


def _featmap_sizes(h: int, w: int, cfg: R.GFLConfig) -> list[tuple[int, int]]:
    return [(-(-h // s), -(-w // s)) for s in cfg.strides]


def targets_torch(batch: int, h: int, w: int, device: str = "cpu") -> Callable:
    """``torch_impl.gfl_targets``: ATSS on the whole batch at once (what the loss calls)."""
    cfg = R.GFLConfig()
    _, _, gtb, gtl, metas = head_inputs(batch, h, w, cfg)
    sizes = _featmap_sizes(h, w, cfg)
    gtb_t = [torch.tensor(b, device=device) for b in gtb]
    gtl_t = [torch.tensor(lab, device=device) for lab in gtl]
    return lambda: T.gfl_targets(sizes, gtb_t, gtl_t, metas, cfg, device=device)


def targets_reference(batch: int, h: int, w: int) -> Callable:
    """``reference.gfl_targets``: ATSS image by image."""
    cfg = R.GFLConfig()
    _, _, gtb, gtl, metas = head_inputs(batch, h, w, cfg)
    sizes = _featmap_sizes(h, w, cfg)
    return lambda: R.gfl_targets(sizes, gtb, gtl, metas, cfg)


# --------------------------------------------------------------------------- the demo's step


def demo_settings() -> dict:
    """The demo's run as plain data: ``train`` (``DEMO_TRAIN``), ``head`` (``DEMO_HEAD``),
    ``model`` (the preset), ``threads`` (the demo's default, 1)."""
    from torch_impl.detector.cli import DEMO_HEAD, DEMO_TRAIN

    return {"train": dict(DEMO_TRAIN), "head": dict(DEMO_HEAD), "model": "cpu", "threads": 1}


def quick_settings() -> dict:
    """:func:`demo_settings` with ``QUICK_TRAIN`` over it (64 px, batch 4: tests, smoke runs)."""
    from torch_impl.detector.cli import QUICK_TRAIN

    settings = demo_settings()
    settings["train"].update(QUICK_TRAIN)
    return settings


class DemoStep:
    """The demo's training run, built by the trainer's own code, one step at a time.

    Parameters
    ----------
    settings : dict
        :func:`demo_settings` (or :func:`quick_settings`).
    device : str

    Notes
    -----
    The run is ``torch_impl.detector.train``'s: ``_start_run`` builds model, optimizer and
    data order exactly as ``train()`` does (and sets the process's torch threads to
    ``settings["threads"]``), and :meth:`step` is ``_Run.step``. Batches come in the order of
    the run's first epoch, each rendered and collated in this process (in ``gfl demo`` a
    DataLoader worker does this, in parallel with the training step).
    """

    def __init__(self, settings: dict, device: str = "cpu") -> None:
        from torch_impl.detector.data.synthetic import CLASS_NAMES
        from torch_impl.detector.train import TrainConfig, _EpochView, _start_run

        self.settings = settings
        train = {**settings["train"], "num_workers": 0}  # batches are made here, not by workers
        self._tmp = tempfile.TemporaryDirectory(prefix="gfl-bench-")
        self.cfg = TrainConfig(
            out_dir=self._tmp.name,
            device=device,
            threads=int(settings["threads"]),
            progress=False,
            **train,
        )
        head_cfg = T.GFLConfig(num_classes=len(CLASS_NAMES), **settings["head"])
        self.run = _start_run(self.cfg, settings["model"], head_cfg, None, 0, 1, 0)
        self.run.model.train()
        self.run.sampler.set_epoch(0)
        self._order = list(self.run.sampler)
        self._view = _EpochView(self.run.train_set, 0, self.cfg.seed, self.cfg.hflip)
        self._next = 0
        self.device = self.run.device

    def batch(self):
        """The run's next batch: render + flip + collate, moved to the device."""
        from torch_impl.detector.data.transforms import collate

        b = self.cfg.batch_size
        start = (self._next * b) % (len(self._order) - b + 1)
        self._next += 1
        return collate([self._view[i] for i in self._order[start : start + b]]).to(self.device)

    def step(self, batch) -> dict:
        """The trainer's own step (``_Run.step``): forward, loss, backward, clip, AdamW."""
        return self.run.step(batch)

    def plain_step(self) -> tuple[float, float]:
        """One uninstrumented step with its data: ``(data + step ms, step-only ms)``."""
        dev = str(self.device)
        synchronize(dev)
        t0 = time.perf_counter()
        batch = self.batch()
        t1 = time.perf_counter()
        self.step(batch)
        synchronize(dev)
        t2 = time.perf_counter()
        return (t2 - t0) * 1e3, (t2 - t1) * 1e3

    def profiled_step(self) -> dict[str, float]:
        """One step cut into :data:`PHASES`, in milliseconds; the same work as :meth:`step`.

        The phases are timed with ``time.perf_counter`` around explicit calls (a device
        synchronize before each reading on a GPU): ``data`` (render + collate + to device),
        ``backbone+fpn`` (``model.features``), ``head`` (``model.head``), the loss call
        (``model.head.loss``, which runs the ATSS targets inside), ``backward``, and
        ``optimizer`` (learning rate, ``zero_grad``, gradient clipping, ``AdamW.step``, the
        scaler and EMA when on). ``targets`` is a separate call of
        ``torch_impl.gfl_targets`` with the loss's own inputs, after the step; ``losses`` is
        the loss call minus ``targets`` (plus reading the loss values, as the trainer does).
        """
        run, dev = self.run, str(self.device)
        marks = [time.perf_counter()]

        def mark() -> None:
            synchronize(dev)
            marks.append(time.perf_counter())

        batch = self.batch()
        mark()  # data
        out = self._forward_backward(batch, mark)
        self._optimizer_step(out["loss"])
        mark()  # backward .. optimizer
        ms = [float(x) for x in np.diff(marks) * 1e3]
        t = time.perf_counter()
        self.targets(out["cls_scores"], batch)
        synchronize(dev)
        targets = (time.perf_counter() - t) * 1e3
        run.it += 1
        return {  # marks: data | lr, zero_grad | features | head | loss call | backward | step
            "data": ms[0],
            "backbone+fpn": ms[2],
            "head": ms[3],
            "targets": targets,
            "losses": ms[4] - targets,
            "backward": ms[5],
            "optimizer": ms[1] + ms[6],
        }

    def _forward_backward(self, batch, mark: Callable[[], None]) -> dict:
        """``_Run.step`` up to the backward pass, with a mark after each phase."""
        import math

        from torch_impl.detector.train import lr_at

        run = self.run
        lr = lr_at(run.cfg, run.it, run.total)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        run.optimizer.zero_grad(set_to_none=True)
        mark()  # optimizer (its first part: lr and zero_grad)
        model = run.model
        with torch.autocast(run.device.type, dtype=torch.float16, enabled=run.use_amp):
            feats = model.features(batch.images)
            mark()  # backbone+fpn
            cls_scores, bbox_preds = model.head(feats)
            mark()  # head
            losses = model.head.loss(
                cls_scores, bbox_preds, batch.gt_bboxes, batch.gt_labels, batch.img_metas
            )
        loss = losses["loss_cls"] + losses["loss_bbox"] + losses["loss_dfl"]
        names = ("loss_cls", "loss_bbox", "loss_dfl")
        values = torch.stack([loss.detach(), *(losses[k].detach() for k in names)]).tolist()
        if not all(math.isfinite(v) for v in values):
            raise FloatingPointError(f"non-finite loss in the profiled step: {values}")
        mark()  # loss call (targets inside)
        run.scaler.scale(loss).backward()
        mark()  # backward
        return {"loss": loss, "cls_scores": cls_scores}

    def _optimizer_step(self, loss: torch.Tensor) -> None:
        """``_Run.step`` after the backward pass: clip, step, scaler, EMA."""
        run = self.run
        if run.cfg.grad_clip is not None:
            run.scaler.unscale_(run.optimizer)
            torch.nn.utils.clip_grad_norm_(run.ddp_model.parameters(), run.cfg.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        if run.ema is not None:
            run.ema.update(run.model, run.it + 1)

    def targets(self, cls_scores, batch):
        """``torch_impl.gfl_targets`` as ``gfl_loss`` calls it (autocast off, float32 at least)."""
        dtype = torch.promote_types(cls_scores[0].dtype, torch.float32)
        with torch.autocast(self.device.type, enabled=False):
            return T.gfl_targets(
                [tuple(m.shape[-2:]) for m in cls_scores],
                batch.gt_bboxes,
                batch.gt_labels,
                batch.img_metas,
                self.run.model.head_cfg,
                device=self.device,
                dtype=dtype,
            )

    def close(self) -> None:
        """Remove the run's temporary folder (nothing is written there)."""
        self._tmp.cleanup()


def profile_steps(demo: DemoStep, steps: int, warmup: int = 3) -> dict[str, Any]:
    """Interleave ``steps`` plain and ``steps`` profiled steps (after ``warmup`` of each).

    Pairs alternate their order (plain first, then profiled first, …) so that a drift in
    the machine's load falls on both alike. Returns the raw per-step times: ``phases``
    (name → list of ms), ``step`` (plain data + step), ``train_step`` (plain, step only).
    """
    for _ in range(warmup):
        demo.plain_step()
        demo.profiled_step()
    phases: dict[str, list[float]] = {p: [] for p in PHASES}
    plain, train_only = [], []
    for k in range(steps):
        for kind in ("plain", "profiled") if k % 2 == 0 else ("profiled", "plain"):
            if kind == "plain":
                whole, step_only = demo.plain_step()
                plain.append(whole)
                train_only.append(step_only)
            else:
                for name, ms in demo.profiled_step().items():
                    phases[name].append(ms)
    return {"phases": phases, "step": plain, "train_step": train_only}


def summarize_profile(raw: dict[str, Any]) -> dict[str, Any]:
    """Medians and shares of :func:`profile_steps`' raw times (the JSON's ``profile`` body)."""
    med = {name: statistics.median(v) for name, v in raw["phases"].items()}
    total = sum(med.values())
    per_step_sums = [sum(v) for v in zip(*raw["phases"].values())]
    step = statistics.median(raw["step"])
    return {
        "phases": [
            {"phase": name, "median_ms": med[name], "share": med[name] / total} for name in PHASES
        ],
        "sum_of_phases_ms": total,
        "profiled_step_ms": statistics.median(per_step_sums),
        "step_ms": step,
        "train_step_ms": statistics.median(raw["train_step"]),
        "step_min_ms": min(raw["step"]),
        "sum_over_step": total / step,
    }


# --------------------------------------------------------------------------- --against's workloads


@dataclasses.dataclass(frozen=True)
class Workload:
    """A named workload of ``--against``: ``make(**params)`` returns the callable to time.

    ``threads``: torch threads while it runs (None: the bench's setting); ``device``.
    """

    name: str
    make: Callable[..., Callable[[], object]]
    device: str = "cpu"
    threads: int | None = None
    params: dict = dataclasses.field(default_factory=dict)


def _demo_train(settings: dict, pool: int = 4) -> Callable:
    """The demo's step (``_Run.step``) on a pool of ``pool`` pre-rendered batches, cycled."""
    demo = DemoStep(settings)
    batches = [demo.batch() for _ in range(pool)]
    state = {"k": 0}

    def step() -> None:
        demo.step(batches[state["k"] % pool])
        state["k"] += 1

    return step


def _demo_data(settings: dict) -> Callable:
    """The demo's data: render, flip and collate the run's next batch."""
    return DemoStep(settings).batch


def against_workloads(cuda: bool = False, settings: dict | None = None) -> list[Workload]:
    """The workloads ``--against`` times: the head's at B = 2, 80 classes, 8 gts, 640x640 and
    800x1333 (torch and reference: loss forward + backward, predict, ATSS targets), the demo's
    training step and data; with ``cuda``, the GPU rows (B = 16, 800x1333, AMP)."""
    settings = settings or demo_settings()
    head = (
        ("loss fwd+bwd", loss_torch, loss_reference),
        ("predict", predict_torch, predict_reference),
        ("ATSS targets", targets_torch, targets_reference),
    )
    out = []
    for h, w in ((640, 640), (800, 1333)):
        size = dict(batch=2, h=h, w=w)
        for what, torch_fn, ref_fn in head:
            out.append(Workload(f"{what}, B=2, {h}x{w}: torch_impl", torch_fn, params=size))
            out.append(Workload(f"{what}, B=2, {h}x{w}: reference", ref_fn, params=size))
    threads, b = int(settings["threads"]), settings["train"]["batch_size"]
    demo = dict(settings=settings)
    out.append(Workload(f"demo train step, B={b}", _demo_train, threads=threads, params=demo))
    out.append(Workload(f"demo data, B={b}", _demo_data, threads=threads, params=demo))
    if cuda:
        amp = dict(batch=16, h=800, w=1333, device="cuda", amp=True)
        for what, fn in (("loss fwd+bwd", loss_torch), ("predict", predict_torch)):
            out.append(Workload(f"{what}, B=16, 800x1333, AMP: torch_impl", fn, "cuda", params=amp))
    return out
