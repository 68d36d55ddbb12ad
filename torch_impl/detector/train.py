"""Training: one loop for one CPU, one GPU, or many processes under ``torchrun``.

* AdamW or SGD, linear warm-up then cosine decay, per iteration;
* AMP (float16 autocast + gradient scaling) on CUDA;
* ``DistributedDataParallel`` and a ``DistributedSampler`` whenever the
  process was started by ``torchrun`` (or with ``RANK``/``WORLD_SIZE`` set):
  the same code, on gloo for CPUs and NCCL for GPUs;
* a checkpoint (:mod:`.checkpoint`) every ``checkpoint_every`` steps;
  ``resume`` continues exactly where the last one stopped: same weights,
  optimizer state, schedule position, data order and augmentation, so an
  interrupted-and-resumed run ends with the same weights as an uninterrupted
  one;
* Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes a checkpoint
  and raises :class:`KeyboardInterrupt`; a non-finite loss stops training
  with a :class:`FloatingPointError` that says which loss and where.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from reference.validation import check_choice, check_scalar
from torch_impl import GFLConfig

from .checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from .data.coco import CocoDetection
from .data.synthetic import CLASS_NAMES, Sample, SyntheticDetection
from .data.transforms import Batch, collate, hflip
from .model.detector import PRESETS, GFLDetector, ModelConfig, config_from_dict

__all__ = [
    "DATA_SOURCES",
    "OPTIMIZERS",
    "RESUME_KEEPS",
    "TrainConfig",
    "TrainResult",
    "build_datasets",
    "lr_at",
    "pick_device",
    "train",
]

#: ``TrainConfig.data``: the embedded synthetic set, or COCO-format files.
DATA_SOURCES = ("synthetic", "coco")
#: ``TrainConfig.optimizer``.
OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a training run except the model's shape.

    Attributes
    ----------
    out_dir : str
        Run folder: ``last.pt`` (checkpoint), ``train_log.jsonl`` (losses).
    data : {"synthetic", "coco"}
    train_json, train_images, val_json, val_images : str or None
        COCO instances files and image folders (``data="coco"``).
    train_size, val_size : int
        Synthetic images per split.
    data_seed : int
        Seed of the synthetic images.
    image_size : int
        Network input side (COCO images are letterboxed to it).
    epochs : int
    batch_size : int
        Images per step *per process*.
    optimizer : {"adamw", "sgd"}
    lr : float
        Peak learning rate (per step of ``batch_size × world size`` images).
    weight_decay : float
        Applied to conv/linear weights only (not to norms, biases, scales).
    momentum : float
        SGD momentum (AdamW's beta1 stays 0.9).
    warmup_iters : int
        Linear warm-up from ``warmup_ratio × lr``.
    warmup_ratio : float
    min_lr_ratio : float
        The cosine decays to ``min_lr_ratio × lr`` at the last step.
    grad_clip : float or None
        Clip the global gradient norm to this (None: off).
    hflip : bool
        Random horizontal flips (deterministic per seed, epoch and image).
    seed : int
        Model initialisation and data order.
    amp : bool
        float16 autocast + GradScaler when running on CUDA (ignored on CPU).
    channels_last : bool
        Keep the conv weights (and so the activations) in NHWC layout: about
        12 % faster steps on a CPU (oneDNN), the layout tensor cores prefer.
        The numbers are the same up to float rounding.
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, …
    threads : int
        CPU threads per process (0: cores / local processes).
    num_workers : int
        DataLoader worker processes.
    checkpoint_every : int
        Write ``last.pt`` every this many steps (and at the end).
    ema_decay : float
        Keep an exponential moving average of the weights with this decay
        (0: off), ramped up as ``decay · (1 − exp(−step / ema_warmup))``; the
        checkpoint carries it and evaluation uses it.
    ema_warmup : int
        Steps of the EMA ramp.
    stop_after : int or None
        Stop (with a checkpoint) once this many steps are done; the schedule
        still spans the whole run, so ``resume`` continues it.
    progress : bool
        Show a tqdm progress bar (rank 0).
    """

    out_dir: str = "runs/gfl"
    data: str = "synthetic"
    train_json: str | None = None
    train_images: str | None = None
    val_json: str | None = None
    val_images: str | None = None
    train_size: int = 4000
    val_size: int = 500
    data_seed: int = 0
    image_size: int = 128
    epochs: int = 3
    batch_size: int = 16
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    warmup_iters: int = 100
    warmup_ratio: float = 0.001
    min_lr_ratio: float = 0.02
    grad_clip: float | None = 10.0
    ema_decay: float = 0.0
    ema_warmup: int = 200
    hflip: bool = True
    seed: int = 0
    amp: bool = True
    channels_last: bool = True
    device: str = "auto"
    threads: int = 0
    num_workers: int = 0
    checkpoint_every: int = 200
    stop_after: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        check_choice(self.data, "data", DATA_SOURCES)
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        for name in ("train_size", "epochs", "batch_size", "checkpoint_every"):
            check_scalar(getattr(self, name), name, low=1, integer=True)
        for name in ("val_size", "warmup_iters", "data_seed", "seed", "threads", "num_workers"):
            check_scalar(getattr(self, name), name, low=0, integer=True)
        check_scalar(self.image_size, "image_size", low=32, integer=True)
        check_scalar(self.lr, "lr", low=0.0, low_open=True)
        check_scalar(self.weight_decay, "weight_decay", low=0.0)
        check_scalar(self.momentum, "momentum", low=0.0, high=1.0)
        check_scalar(self.warmup_ratio, "warmup_ratio", low=0.0, high=1.0)
        check_scalar(self.min_lr_ratio, "min_lr_ratio", low=0.0, high=1.0)
        check_scalar(self.ema_decay, "ema_decay", low=0.0, high=1.0)
        check_scalar(self.ema_warmup, "ema_warmup", low=1, integer=True)
        if self.grad_clip is not None:
            check_scalar(self.grad_clip, "grad_clip", low=0.0, low_open=True)
        if self.stop_after is not None:
            check_scalar(self.stop_after, "stop_after", low=0, integer=True)
        if self.data == "coco" and not (self.train_json and self.train_images):
            raise ValueError(
                "data='coco' needs train_json and train_images, got "
                f"{self.train_json!r} and {self.train_images!r}"
            )


@dataclass
class TrainResult:
    """What :func:`train` returns (on every rank).

    Attributes
    ----------
    checkpoint : Path
        ``out_dir/last.pt``.
    iterations : int
        Steps done (in all, counting those before a resume).
    seconds : float
        Wall time of this call's loop.
    model : GFLDetector
        The trained model (unwrapped from DDP), on its training device.
    history : list of dict
        The log records (rank 0; empty elsewhere).
    """

    checkpoint: Path
    iterations: int
    seconds: float
    model: nn.Module
    history: list[dict] = field(default_factory=list)


# --------------------------------------------------------------------------- building


def build_datasets(cfg: TrainConfig) -> tuple[Any, Any | None, tuple[str, ...], list[int]]:
    """``(train_set, val_set or None, class_names, cat_ids)`` described by ``cfg``."""
    if cfg.data == "synthetic":
        train = SyntheticDetection(  # keep images for later epochs when the main process makes them
            cfg.train_size,
            cfg.image_size,
            cfg.data_seed,
            "train",
            cache=cfg.num_workers == 0 and cfg.epochs > 1,
        )
        val = (
            SyntheticDetection(cfg.val_size, cfg.image_size, cfg.data_seed, "val")
            if cfg.val_size
            else None
        )
        return train, val, CLASS_NAMES, list(range(1, len(CLASS_NAMES) + 1))
    train = CocoDetection(cfg.train_json, cfg.train_images, cfg.image_size)
    val = None
    if cfg.val_json:
        val = CocoDetection(cfg.val_json, cfg.val_images or cfg.train_images, cfg.image_size)
        if val.cat_ids != train.cat_ids:
            raise ValueError(
                f"val_json categories {val.cat_ids} differ from train_json's {train.cat_ids}"
            )
    return train, val, train.class_names, list(train.cat_ids)


def _configs_for_classes(
    model_cfg: ModelConfig | str, head_cfg: GFLConfig | None, num_classes: int
) -> tuple[ModelConfig, GFLConfig]:
    """The model config (a preset name resolved) and head config, both for ``num_classes``."""
    if isinstance(model_cfg, str):
        check_choice(model_cfg, "model_cfg", tuple(PRESETS))
        model_cfg = PRESETS[model_cfg]
    model_cfg = dataclasses.replace(model_cfg, num_classes=num_classes)
    head_cfg = head_cfg or GFLConfig(num_classes=num_classes)
    if head_cfg.num_classes != num_classes:
        head_cfg = dataclasses.replace(head_cfg, num_classes=num_classes)
    return model_cfg, head_cfg


#: What ``resume`` takes from the new ``TrainConfig`` rather than from the checkpoint: when to
#: stop, whether to show progress, and where and how the run goes on (folder, device, threads,
#: data workers).
RESUME_KEEPS = ("stop_after", "progress", "device", "threads", "num_workers", "out_dir")


def _resumed_configs(cfg: TrainConfig, state: dict) -> tuple[TrainConfig, ModelConfig, GFLConfig]:
    """The configs a checkpoint was trained with, but :data:`RESUME_KEEPS` from ``cfg``."""
    saved = dict(state["configs"]["train"])
    for keep in RESUME_KEEPS:
        saved[keep] = getattr(cfg, keep)
    return (
        config_from_dict(TrainConfig, saved),
        config_from_dict(ModelConfig, state["configs"]["model"]),
        config_from_dict(GFLConfig, state["configs"]["head"]),
    )


class _EpochView:
    """The training set as seen in one epoch: deterministic random flips."""

    def __init__(self, dataset: Any, epoch: int, seed: int, flip: bool) -> None:
        self.dataset, self.epoch, self.seed, self.flip = dataset, epoch, seed, flip

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        sample = self.dataset[index]
        if self.flip:
            u = zlib.crc32(f"{self.seed}/{self.epoch}/{index}".encode()) / 2**32
            if u < 0.5:
                sample = hflip(sample)
        return sample


class _ListSampler(torch.utils.data.Sampler):
    def __init__(self, indices: Sequence[int]) -> None:
        self.indices = list(indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


# --------------------------------------------------------------------------- schedule


def lr_at(cfg: TrainConfig, it: int, total: int) -> float:
    """The learning rate of step ``it`` (0-based) of ``total``: linear warm-up, then cosine."""
    if cfg.warmup_iters and it < cfg.warmup_iters:
        k = it / cfg.warmup_iters
        return cfg.lr * (cfg.warmup_ratio + (1 - cfg.warmup_ratio) * k)
    span = max(total - cfg.warmup_iters, 1)
    t = min(max(it - cfg.warmup_iters, 0) / span, 1.0)
    low = cfg.lr * cfg.min_lr_ratio
    return low + (cfg.lr - low) * 0.5 * (1 + math.cos(math.pi * t))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    groups = _param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999))
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)


class _EMA:
    """Exponential moving average of a model's floating state (weights and BN statistics)."""

    def __init__(self, model: nn.Module, decay: float, warmup: int) -> None:
        self.decay, self.warmup = decay, warmup
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = self.decay * (1.0 - math.exp(-step / self.warmup))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.state[k].mul_(d).add_(v.detach(), alpha=1.0 - d)
            else:
                self.state[k].copy_(v)


# --------------------------------------------------------------------------- processes and devices


def _dist_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the environment (torchrun's variables)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, world, local


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """The device called ``name``: ``"auto"`` is CUDA when present (else the CPU), and a
    ``"cuda"`` without an index is the GPU of local process ``local_rank``."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def _set_up_device(cfg: TrainConfig, local_rank: int, world: int) -> torch.device:
    """This process's device; on a CPU, its share of the threads (``cfg.threads`` or cores /
    local processes)."""
    device = pick_device(cfg.device, local_rank)
    if device.type == "cpu":
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // local_world))
    elif device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def _any_rank(flag: bool, world: int, device: torch.device) -> bool:
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


class _StopFlag:
    """SIGINT/SIGTERM → finish the step, checkpoint, stop. A second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


# --------------------------------------------------------------------------- the run


@dataclass
class _Run:
    """One process's part of a training run: what it trains, with what, and how far it is.

    ``it`` counts the steps done; ``updating`` is True from the start of the
    optimizer's update until ``it`` counts it (a checkpoint taken then would
    be inconsistent).
    """

    cfg: TrainConfig
    rank: int
    world: int
    device: torch.device
    train_set: Any
    class_names: Sequence[str]
    cat_ids: Sequence[int]
    model: GFLDetector
    ddp_model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: _EMA | None
    sampler: torch.utils.data.DistributedSampler
    iters_per_epoch: int
    it: int = 0
    updating: bool = False

    @property
    def use_amp(self) -> bool:
        return self.cfg.amp and self.device.type == "cuda"

    @property
    def total(self) -> int:
        """Steps of the whole run (the schedule spans them)."""
        return self.cfg.epochs * self.iters_per_epoch

    @property
    def stop_at(self) -> int:
        """Steps after which this call stops (``stop_after`` or the whole run)."""
        return self.total if self.cfg.stop_after is None else min(self.total, self.cfg.stop_after)

    @property
    def ckpt_path(self) -> Path:
        return Path(self.cfg.out_dir) / "last.pt"

    def epoch_loader(self, epoch: int, pos: int) -> torch.utils.data.DataLoader:
        """The batches of ``epoch`` from its ``pos``-th on, as an unbroken run would see them."""
        cfg = self.cfg
        self.sampler.set_epoch(epoch)
        indices = list(self.sampler)[pos * cfg.batch_size : self.iters_per_epoch * cfg.batch_size]
        return torch.utils.data.DataLoader(
            _EpochView(self.train_set, epoch, cfg.seed, cfg.hflip),
            batch_size=cfg.batch_size,
            sampler=_ListSampler(indices),
            drop_last=True,
            collate_fn=collate,
            num_workers=cfg.num_workers,
            pin_memory=self.device.type == "cuda",
        )

    def step(self, batch: Batch) -> dict:
        """One optimizer step on ``batch`` (and the moving average); returns its log record."""
        lr = lr_at(self.cfg, self.it, self.total)
        optimizer, scaler = self.optimizer, self.scaler
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            losses = self.ddp_model(batch.images, batch.gt_bboxes, batch.gt_labels, batch.img_metas)
        loss = losses["loss_cls"] + losses["loss_bbox"] + losses["loss_dfl"]
        names = ("loss", "loss_cls", "loss_bbox", "loss_dfl")
        values = torch.stack([loss.detach(), *(losses[k].detach() for k in names[1:])]).tolist()
        if not all(math.isfinite(v) for v in values):
            raise FloatingPointError(
                f"non-finite loss at step {self.it}: loss_cls={values[1]}, "
                f"loss_bbox={values[2]}, loss_dfl={values[3]} (lr {lr:.3g}); the last "
                "checkpoint is untouched — try a lower --lr or a longer --warmup-iters"
            )
        scaler.scale(loss).backward()
        grad_norm = float("nan")
        if self.cfg.grad_clip is not None:
            scaler.unscale_(optimizer)
            params = self.ddp_model.parameters()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip))
        self.updating = True
        scaler.step(optimizer)
        scaler.update()
        if self.ema is not None:
            self.ema.update(self.model, self.it + 1)
        self.it += 1
        self.updating = False
        return {"lr": lr, **dict(zip(names, values)), "grad_norm": grad_norm}

    def snapshot(self) -> dict:
        """The checkpoint of the run as it stands (see :mod:`.checkpoint` for the keys)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "iteration": self.it,
            "total_iterations": self.total,
            "model": self.model.state_dict(),
            "ema": self.ema.state if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.use_amp else None,
            "torch_rng": torch.get_rng_state(),
            "configs": {"train": asdict(self.cfg), **self.model.config_dict()},
            "class_names": list(self.class_names),
            "cat_ids": [int(c) for c in self.cat_ids],
        }

    def checkpoint(self) -> None:
        """Rank 0 writes ``last.pt``; every rank waits for it."""
        if self.rank == 0:
            save_checkpoint(self.ckpt_path, self.snapshot())
        if self.world > 1:
            dist.barrier()


def _start_run(
    cfg: TrainConfig,
    model_cfg: ModelConfig | str,
    head_cfg: GFLConfig | None,
    state: dict | None,
    rank: int,
    world: int,
    local_rank: int,
) -> _Run:
    """Build the model, optimizer and data order of a run; from ``state`` when resuming."""
    device = _set_up_device(cfg, local_rank, world)
    train_set, _, class_names, cat_ids = build_datasets(cfg)
    model_cfg, head_cfg = _configs_for_classes(model_cfg, head_cfg, len(class_names))
    torch.manual_seed(cfg.seed)
    model = GFLDetector(model_cfg, head_cfg).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(cfg, model)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    start_it = 0 if state is None else _restore(state, model, optimizer, scaler)
    ema = _EMA(model, cfg.ema_decay, cfg.ema_warmup) if cfg.ema_decay > 0 else None
    if ema is not None and state is not None and state.get("ema") is not None:
        ema.state = {k: v.to(device) for k, v in state["ema"].items()}
    ddp_model: nn.Module = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    sampler = torch.utils.data.DistributedSampler(
        train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    iters_per_epoch = len(sampler) // cfg.batch_size
    if iters_per_epoch == 0:
        raise ValueError(
            f"batch_size must be <= images per process ({len(sampler)}), got {cfg.batch_size}"
        )
    return _Run(
        cfg=cfg,
        rank=rank,
        world=world,
        device=device,
        train_set=train_set,
        class_names=class_names,
        cat_ids=cat_ids,
        model=model,
        ddp_model=ddp_model,
        optimizer=optimizer,
        scaler=scaler,
        ema=ema,
        sampler=sampler,
        iters_per_epoch=iters_per_epoch,
        it=start_it,
    )


def _restore(
    state: dict, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler
) -> int:
    """Load a checkpoint's weights, optimizer, scaler and RNG state; returns its step count."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"])
    return int(state["iteration"])


# --------------------------------------------------------------------------- the loop


def train(
    cfg: TrainConfig,
    model_cfg: ModelConfig | str = "cpu",
    head_cfg: GFLConfig | None = None,
    *,
    resume: bool = False,
    init_method: str | None = None,
    on_step: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Train a :class:`GFLDetector`; returns where the final checkpoint is.

    Parameters
    ----------
    cfg : TrainConfig
    model_cfg : ModelConfig or str
        A config, or a preset name; its ``num_classes`` is set from the data.
    head_cfg : GFLConfig, optional
        Default: ``GFLConfig(num_classes=…)`` (mmdetection's GFL settings).
    resume : bool
        Continue from ``out_dir/last.pt`` (its configs win over the arguments,
        except :data:`RESUME_KEEPS`: ``stop_after``, ``progress`` and the
        I/O and hardware settings, which come from ``cfg``).
    init_method : str, optional
        ``torch.distributed`` rendezvous (default ``env://``, as torchrun
        sets up); only used when ``WORLD_SIZE > 1``.
    on_step : callable, optional
        Called on rank 0 after each step with ``(iteration, log_record)``.

    Returns
    -------
    TrainResult
    """
    rank, world, local_rank = _dist_env()
    started_dist = False
    if world > 1 and not dist.is_initialized():
        device = pick_device(cfg.device, local_rank)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend, init_method=init_method or "env://", rank=rank, world_size=world
        )
        started_dist = True
    threads = torch.get_num_threads()
    try:
        return _train(cfg, model_cfg, head_cfg, resume, rank, world, local_rank, on_step)
    finally:
        torch.set_num_threads(threads)  # leave the caller's setting as it was
        if started_dist:
            dist.destroy_process_group()


def _train(cfg, model_cfg, head_cfg, resume, rank, world, local_rank, on_step) -> TrainResult:
    state = None
    if resume:
        state = load_checkpoint(Path(cfg.out_dir) / "last.pt")
        cfg, model_cfg, head_cfg = _resumed_configs(cfg, state)
    run = _start_run(cfg, model_cfg, head_cfg, state, rank, world, local_rank)
    log_path = Path(cfg.out_dir) / "train_log.jsonl"
    history = _restart_log(log_path, run.it) if rank == 0 else []
    bar = _progress_bar(run.it, run.stop_at) if rank == 0 and cfg.progress else None
    t0 = time.perf_counter()
    run.model.train()
    with _StopFlag() as stop, open(log_path, "a") if rank == 0 else contextlib.nullcontext() as log:
        try:
            stopped = _run_steps(run, stop, t0, _StepLog(history, log, bar, on_step))
        except KeyboardInterrupt:
            # A hard interrupt (a second Ctrl-C): save unless it hit the weight update itself,
            # in which case the previous checkpoint is the consistent one.
            if rank == 0 and not run.updating:
                save_checkpoint(run.ckpt_path, run.snapshot())
            raise
        finally:
            if bar is not None:
                bar.close()
    run.checkpoint()
    if stopped:
        raise KeyboardInterrupt(
            f"training interrupted after step {run.it}; checkpoint {run.ckpt_path}"
        )
    return TrainResult(run.ckpt_path, run.it, time.perf_counter() - t0, run.model, history)


def _restart_log(log_path: Path, start_it: int) -> list[dict]:
    """Rewrite the log with the records of the steps the checkpoint has; returns them."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    history: list[dict] = []
    if log_path.exists() and start_it > 0:
        with open(log_path) as f:
            history = [r for r in map(json.loads, f) if r["iter"] < start_it]
    with open(log_path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in history)
    return history


def _progress_bar(start_it: int, stop_at: int):
    from tqdm.auto import tqdm

    return tqdm(
        total=stop_at,
        initial=start_it,
        desc="train",
        unit="it",
        dynamic_ncols=True,
        mininterval=0.5,
    )


@dataclass
class _StepLog:
    """Where rank 0 reports each step: the history, the log file, the progress bar, ``on_step``."""

    history: list[dict]
    file: Any
    bar: Any
    on_step: Callable[[int, dict], None] | None

    def __call__(self, it: int, record: dict) -> None:
        self.history.append(record)
        self.file.write(json.dumps(record) + "\n")
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                cls=f"{record['loss_cls']:.3f}",
                bbox=f"{record['loss_bbox']:.3f}",
                dfl=f"{record['loss_dfl']:.3f}",
                lr=f"{record['lr']:.1e}",
                refresh=False,
            )
        if self.on_step is not None:
            self.on_step(it, record)


def _run_steps(run: _Run, stop: _StopFlag, t0: float, report: _StepLog) -> bool:
    """Step until ``run.stop_at``, checkpointing as configured; True if asked to stop early."""
    while run.it < run.stop_at:
        epoch, pos = divmod(run.it, run.iters_per_epoch)
        for batch in run.epoch_loader(epoch, pos):
            if run.it >= run.stop_at:
                break
            record = run.step(batch.to(run.device))
            record.update(iter=run.it - 1, epoch=epoch, time=round(time.perf_counter() - t0, 3))
            if run.rank == 0:
                report(run.it, record)
            if _any_rank(stop.requested, run.world, run.device):
                return True
            if run.it % run.cfg.checkpoint_every == 0 and run.it < run.stop_at:
                run.checkpoint()
    return False
