"""The ``gfl`` command line: ``train``, ``evaluate``, ``predict``, ``demo``, ``export-synthetic``.

Run ``gfl COMMAND --help`` (or ``python -m torch_impl COMMAND --help``) for
the options. Multi-process / multi-GPU training is the same command under
torchrun::

    torchrun --nproc_per_node 2 -m torch_impl train --out runs/ddp

The training options' defaults are :class:`~.train.TrainConfig`'s, and the
model options' are the preset's (:data:`~.model.PRESETS`) and ``GFLConfig``'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from torch_impl import GFLConfig

from .checkpoint import load_checkpoint, model_from_checkpoint
from .data import (
    CLASS_NAMES,
    SPLITS,
    CocoDetection,
    Sample,
    SyntheticDetection,
    collate,
    export_coco,
    letterbox,
    load_image,
)
from .evaluate import evaluate_model
from .model import PRESETS, GFLDetector, ModelConfig
from .train import DATA_SOURCES, OPTIMIZERS, TrainConfig, pick_device, train
from .visualize import (
    detection_distributions,
    plot_distributions,
    plot_loss_curves,
    plot_predictions,
)

__all__ = [
    "DEMO_BUDGET_S",
    "DEMO_HEAD",
    "DEMO_STEPS",
    "DEMO_TRAIN",
    "QUICK_TRAIN",
    "SGD_DEFAULTS",
    "demo_config",
    "fit_steps",
    "main",
    "parse_duration",
]

#: The demo's training run, sized for two CPU cores: one trains (one intra-op thread, which
#: stays fast when other processes share the machine), the other renders a fresh synthetic
#: image for every step in a data-loader worker, so no image is seen twice. 4 800 steps of 16
#: with the ``cpu`` model preset take about 7 minutes on an idle 2-core machine.
DEMO_TRAIN = {
    "train_size": 76800,
    "val_size": 500,
    "image_size": 128,
    "epochs": 1,
    "batch_size": 16,
    "optimizer": "adamw",
    "lr": 6e-3,
    "warmup_iters": 150,
    "num_workers": 1,
}

#: Steps of the tuned schedule (:data:`DEMO_TRAIN`'s images / its batch): the most a time
#: budget fits is twice this.
DEMO_STEPS = DEMO_TRAIN["train_size"] // DEMO_TRAIN["batch_size"]

#: ``gfl demo``'s default time budget for training, evaluation and pictures: with the
#: install (``make demo`` on a fresh machine: about a minute and a half) the whole command
#: stays under 10 minutes.
DEMO_BUDGET_S = 480.0

#: What the budget keeps back for evaluation and pictures (s): about 4 + 3 s on this
#: project's 2-core machine, so this also holds on one several times slower.
DEMO_RESERVE_S = 45.0

#: The demo's head settings for 128 px images: anchors of 4 strides (32 px on P3) spread the
#: objects (8-64 px) over P3 and P4, and 7 bins (0-6 strides) cover every distance they need.
DEMO_HEAD = {"reg_max": 6, "octave_base_scale": 4}

#: ``demo --quick``: the same pipeline on a handful of tiny images (tests, smoke checks).
QUICK_TRAIN = {
    "train_size": 16,
    "val_size": 8,
    "image_size": 64,
    "epochs": 1,
    "batch_size": 4,
    "warmup_iters": 2,
    "num_workers": 0,
}

#: ``--lr`` and ``--weight-decay`` with ``--optimizer sgd`` when not given (AdamW's are
#: ``TrainConfig``'s own defaults).
SGD_DEFAULTS = {"lr": 0.01, "weight_decay": 1e-4}

#: The files ``predict`` reads from a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Images per forward pass in ``predict`` and in the pictures.
_CHUNK = 16


# --------------------------------------------------------------------------- the parser


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gfl", description="Train, evaluate and run a Generalized Focal Loss detector."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train_command(sub)
    _add_evaluate_command(sub)
    _add_predict_command(sub)
    _add_demo_command(sub)
    _add_export_command(sub)
    return parser


def _add_data_args(p: argparse.ArgumentParser, train: bool) -> None:
    """The data options; without ``train`` their defaults (None) mean "as the checkpoint"."""

    def default(name: str):
        return getattr(TrainConfig, name) if train else None

    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        choices=DATA_SOURCES,
        default=default("data"),
        help=f"the embedded synthetic set, or COCO-format files (default: {TrainConfig.data}"
        + ("" if train else ", or what the checkpoint was trained on")
        + ")",
    )
    if train:
        g.add_argument("--train-json", help="COCO instances JSON for training")
        g.add_argument("--train-images", help="folder of the training images")
        g.add_argument(
            "--train-size",
            type=int,
            default=TrainConfig.train_size,
            help="synthetic training images",
        )
    g.add_argument("--val-json", help="COCO instances JSON for validation")
    g.add_argument("--val-images", help="folder of the validation images")
    g.add_argument(
        "--val-size", type=int, default=default("val_size"), help="synthetic validation images"
    )
    g.add_argument(
        "--data-seed", type=int, default=default("data_seed"), help="seed of the synthetic images"
    )
    g.add_argument(
        "--image-size",
        type=int,
        default=default("image_size"),
        help="network input side; COCO images are letterboxed to it",
    )


def _add_train_command(sub) -> None:
    p = sub.add_parser("train", help="train a detector (resumable; works under torchrun)")
    p.add_argument(
        "--out", default=TrainConfig.out_dir, help="run folder (checkpoint, log, metrics)"
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt exactly")
    _add_data_args(p, train=True)
    _add_optimisation_args(p)
    _add_hardware_args(p)
    _add_model_args(p)
    p.add_argument("--eval", action="store_true", help="evaluate on the validation set at the end")


def _add_optimisation_args(p: argparse.ArgumentParser) -> None:
    c = TrainConfig
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=c.epochs)
    g.add_argument(
        "--batch-size", type=int, default=c.batch_size, help="images per step per process"
    )
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=c.optimizer)
    lr, wd = SGD_DEFAULTS["lr"], SGD_DEFAULTS["weight_decay"]
    g.add_argument("--lr", type=float, help=f"peak LR (default {c.lr:g} AdamW, {lr:g} SGD)")
    g.add_argument(
        "--weight-decay", type=float, help=f"default {c.weight_decay:g} AdamW, {wd:g} SGD"
    )
    g.add_argument("--momentum", type=float, default=c.momentum)
    g.add_argument("--warmup-iters", type=int, default=c.warmup_iters)
    g.add_argument("--min-lr-ratio", type=float, default=c.min_lr_ratio)
    g.add_argument(
        "--grad-clip", type=float, default=c.grad_clip, help="max gradient norm (0: off)"
    )
    g.add_argument(
        "--ema-decay",
        type=float,
        default=c.ema_decay,
        help="moving average of the weights (0: off)",
    )
    g.add_argument("--no-hflip", action="store_true", help="no random horizontal flips")
    g.add_argument("--seed", type=int, default=c.seed)


def _add_hardware_args(p: argparse.ArgumentParser) -> None:
    c = TrainConfig
    g = p.add_argument_group("hardware")
    g.add_argument("--device", default=c.device, help="auto, cpu, cuda, cuda:N")
    g.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    g.add_argument(
        "--no-channels-last", action="store_true", help="keep NCHW weights (default: NHWC)"
    )
    g.add_argument(
        "--threads", type=int, default=c.threads, help="CPU threads per process (0: auto)"
    )
    g.add_argument("--workers", type=int, default=c.num_workers, help="data loader processes")
    g.add_argument(
        "--checkpoint-every", type=int, default=c.checkpoint_every, help="steps between checkpoints"
    )
    g.add_argument(
        "--stop-after",
        type=int,
        default=c.stop_after,
        help="stop after this many steps (resume later with --resume)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    """Model options: a preset, and any of its widths and depths (None: the preset's)."""
    m, h = ModelConfig, GFLConfig
    g = p.add_argument_group("model")
    g.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="cpu",
        help="model size: cpu (minutes on 2 cores) or gpu (wider, deeper)",
    )
    g.add_argument("--stem-channels", type=int)
    g.add_argument("--stage-channels", type=_ints, help="4 widths, e.g. 24,48,96,160")
    g.add_argument("--stage-blocks", type=_ints, help="4 depths, e.g. 1,2,2,1")
    g.add_argument("--fpn-channels", type=int)
    g.add_argument("--feat-channels", type=int, help="head width (multiple of 32)")
    g.add_argument("--stacked-convs", type=int, help="convs per head tower")
    g.add_argument(
        "--head-norm-groups", type=int, help=f"GroupNorm groups in the head ({m.head_norm_groups})"
    )
    g.add_argument("--reg-max", type=int, help=f"GFL's n: bins 0..n per side (default {h.reg_max})")
    g.add_argument(
        "--octave-base-scale",
        type=float,
        help=f"anchor side in strides (default {h.octave_base_scale}; 4 suits small images)",
    )


def _add_evaluate_command(sub) -> None:
    p = sub.add_parser("evaluate", help="COCO mAP of a checkpoint; writes metrics.json")
    p.add_argument("--checkpoint", required=True, help="a checkpoint (e.g. runs/gfl/last.pt)")
    p.add_argument("--out", default=None, help="report folder (default: next to the checkpoint)")
    _add_data_args(p, train=False)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--pictures", action="store_true", help="also draw predictions/distributions")


def _add_predict_command(sub) -> None:
    p = sub.add_parser("predict", help="detect objects in image files; writes JSON and pictures")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", default="predictions", help="output folder")
    p.add_argument("--score-thr", type=float, default=0.3, help="keep detections above this")
    p.add_argument("--device", default="auto")
    p.add_argument("inputs", nargs="+", help="image files or folders of images")


def _add_demo_command(sub) -> None:
    p = sub.add_parser("demo", help="train on the synthetic set, evaluate, draw pictures")
    p.add_argument("--out", default="reports/demo", help="report folder")
    p.add_argument(
        "--quick", action="store_true", help="a tiny run (seconds) to check the pipeline"
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--threads", type=int, default=1, help="training threads (default 1; 0: one per core)"
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--time-budget",
        type=_duration,
        default=DEMO_BUDGET_S,
        metavar="T",
        help="wall time for training, evaluation and pictures, e.g. 8m, 480s or 480 "
        f"(default {DEMO_BUDGET_S / 60:g}m): the demo times its first steps on this machine "
        f"and trains as many steps as fit (at most {2 * DEMO_STEPS})",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train exactly this many steps instead (no timing): a run of N steps is "
        "reproducible, whatever the machine",
    )


def parse_duration(text: str) -> float:
    """Seconds in ``"480"``, ``"480s"``, ``"8m"``, ``"1.5h"``; a ValueError names what is wrong."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    t = text.strip().lower()
    scale = units.get(t[-1:], None)
    try:
        value = float(t[:-1] if scale else t) * (scale or 1.0)
    except ValueError:
        raise ValueError(f"expected a duration such as 8m, 480s or 480, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return value


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def fit_steps(budget_s: float, spent_s: float, step_s: float, reserve_s: float = DEMO_RESERVE_S,
              max_steps: int = 2 * DEMO_STEPS, min_steps: int = 50) -> int:
    """How many training steps of ``step_s`` seconds fit in what is left of ``budget_s``.

    ``spent_s`` is already gone (timing the machine), ``reserve_s`` is kept for
    evaluation and pictures, and 5 % of the rest for the variation of the step time;
    the answer is clamped to ``[min_steps, max_steps]`` (the demo trains at least
    ``min_steps``, even past the budget, since fewer teach nothing).
    """
    left = budget_s - spent_s - reserve_s
    return int(min(max(0.95 * left / step_s, min_steps), max_steps))


def _add_export_command(sub) -> None:
    p = sub.add_parser("export-synthetic", help="write synthetic images + COCO JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--num-images", type=int, default=100)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=SPLITS, default="val")


# --------------------------------------------------------------------------- configs


def _train_config(a: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` of ``gfl train``'s options."""
    sgd = a.optimizer == "sgd"
    lr = SGD_DEFAULTS["lr"] if sgd else TrainConfig.lr
    weight_decay = SGD_DEFAULTS["weight_decay"] if sgd else TrainConfig.weight_decay
    return TrainConfig(
        out_dir=a.out,
        data=a.data,
        train_json=a.train_json,
        train_images=a.train_images,
        val_json=a.val_json,
        val_images=a.val_images,
        train_size=a.train_size,
        val_size=a.val_size,
        data_seed=a.data_seed,
        image_size=a.image_size,
        epochs=a.epochs,
        batch_size=a.batch_size,
        optimizer=a.optimizer,
        lr=a.lr if a.lr is not None else lr,
        weight_decay=a.weight_decay if a.weight_decay is not None else weight_decay,
        momentum=a.momentum,
        warmup_iters=a.warmup_iters,
        min_lr_ratio=a.min_lr_ratio,
        grad_clip=a.grad_clip or None,
        ema_decay=a.ema_decay,
        hflip=not a.no_hflip,
        seed=a.seed,
        amp=not a.no_amp,
        channels_last=not a.no_channels_last,
        device=a.device,
        threads=a.threads,
        num_workers=a.workers,
        checkpoint_every=a.checkpoint_every,
        stop_after=a.stop_after,
        progress=not a.no_progress,
    )


def _model_configs(a: argparse.Namespace) -> tuple[ModelConfig, GFLConfig]:
    """The preset with the widths and depths given as options, and the head's config."""
    over = {
        k: getattr(a, k)
        for k in (
            "stem_channels",
            "stage_channels",
            "stage_blocks",
            "fpn_channels",
            "feat_channels",
            "stacked_convs",
            "head_norm_groups",
        )
        if getattr(a, k) is not None
    }
    model_cfg = dataclasses.replace(PRESETS[a.preset], **over)
    head = {}
    if a.reg_max:
        head["reg_max"] = a.reg_max
    if a.octave_base_scale:
        head["octave_base_scale"] = a.octave_base_scale
    head_cfg = GFLConfig(num_classes=model_cfg.num_classes, **head)
    return model_cfg, head_cfg


def demo_config(
    out: str | os.PathLike,
    *,
    quick: bool,
    device: str,
    threads: int,
    progress: bool,
    steps: int | None = None,
) -> TrainConfig:
    """The demo's training run, in ``out/run``: :data:`DEMO_TRAIN` (:data:`QUICK_TRAIN` over it).

    ``steps`` fits the schedule to that many steps: as many fresh images (16 per step) and
    the warm-up scaled with them (150 of the tuned 4 800 steps, at least 10).
    """
    settings = {**DEMO_TRAIN, **(QUICK_TRAIN if quick else {})}
    if steps is not None:
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        settings["train_size"] = steps * settings["batch_size"]
        if not quick:
            scaled = round(DEMO_TRAIN["warmup_iters"] * steps / DEMO_STEPS)
            settings["warmup_iters"] = min(max(scaled, 10), steps - 1, DEMO_TRAIN["warmup_iters"])
    return TrainConfig(
        out_dir=str(Path(out) / "run"),
        device=device,
        threads=threads,
        progress=progress,
        checkpoint_every=100,
        **settings,
    )


# --------------------------------------------------------------------------- evaluation


def _val_set(
    state: dict,
    data: str | None = None,
    val_json: str | None = None,
    val_images: str | None = None,
    val_size: int | None = None,
    data_seed: int | None = None,
    image_size: int | None = None,
):
    """The validation set: as given, and what is not given as the checkpoint was trained with."""
    t = state["configs"]["train"]
    data = data or ("coco" if val_json else t["data"])
    size = image_size or t["image_size"]
    if data == "coco":
        json_path = val_json or t.get("val_json")
        images = val_images or t.get("val_images")
        if not json_path or not images:
            raise ValueError("COCO evaluation needs --val-json and --val-images")
        ds = CocoDetection(json_path, images, size)
        if list(ds.cat_ids) != list(state["cat_ids"]):
            raise ValueError(
                f"{json_path} has category ids {ds.cat_ids}, the "
                f"checkpoint was trained on {state['cat_ids']}"
            )
        return ds
    n = val_size if val_size is not None else (t["val_size"] or TrainConfig.val_size)
    seed = data_seed if data_seed is not None else t["data_seed"]
    return SyntheticDetection(n, size, seed, "val")


def _val_options(a: argparse.Namespace) -> dict:
    """The data options of ``evaluate`` (and ``train --eval``), as :func:`_val_set` takes them."""
    names = ("data", "val_json", "val_images", "val_size", "data_seed", "image_size")
    return {k: getattr(a, k) for k in names}


def _trained_model(
    ckpt: Path, device: torch.device, **val_options
) -> tuple[dict, GFLDetector, object]:
    """``(checkpoint, model on device, validation set)`` of a checkpoint."""
    state = load_checkpoint(ckpt)
    model = model_from_checkpoint(state).to(device)
    return state, model, _val_set(state, **val_options)


def _evaluate_checkpoint(ckpt: Path, out: Path, a: argparse.Namespace, pictures: bool) -> dict:
    device = pick_device(a.device)
    state, model, val = _trained_model(ckpt, device, **_val_options(a))
    metrics = evaluate_model(
        model, val, state["cat_ids"], out, batch_size=a.batch_size, device=device
    )
    if pictures:
        _pictures(
            model, val, state["class_names"], out, device, history=ckpt.parent / "train_log.jsonl"
        )
    print(f"metrics: {out / 'metrics.json'}; detections: {out / 'detections.json'}")
    return metrics


def _pictures(
    model, val, class_names, out: Path, device, history: Path | None = None, num: int = 12
) -> list[Path]:
    """Draw ``predictions.png``, ``distributions.png`` and (given a log) ``loss_curves.png``."""
    samples = [val[i] for i in range(min(4 * num, len(val)))]  # more candidates for distributions
    infos: list = []
    for k in range(0, len(samples), _CHUNK):
        infos += detection_distributions(model, samples[k : k + _CHUNK], device)
    results = [
        ([[*d["box"], d["score"]] for d in items], [d["label"] for d in items]) for items in infos
    ]
    paths = [plot_predictions(samples[:num], results[:num], class_names, out / "predictions.png")]
    paths.append(plot_distributions(samples, infos, class_names, out / "distributions.png"))
    if history is not None and Path(history).is_file():
        paths.append(plot_loss_curves(history, out / "loss_curves.png"))
    return paths


def _print_metrics(m: dict) -> None:
    def f(v):
        return "  n/a" if v is None else f"{v:.3f}"

    print(f"COCO mAP {f(m['mAP'])}   AP50 {f(m['AP50'])}   AP75 {f(m['AP75'])}")
    print(
        f"AP small {f(m['AP_small'])}   medium {f(m['AP_medium'])}   large {f(m['AP_large'])}"
        "   (COCO sizes: < 32², 32²–96², > 96² px)"
    )
    if m.get("per_class"):
        print("per class AP: " + ", ".join(f"{k} {f(v['AP'])}" for k, v in m["per_class"].items()))
    print(f"{m['num_images']} images, {m['num_gt']} objects, {m['num_detections']} detections")


# --------------------------------------------------------------------------- commands


def _cmd_train(a: argparse.Namespace) -> int:
    cfg = _train_config(a)
    model_cfg, head_cfg = _model_configs(a)
    result = train(cfg, model_cfg, head_cfg, resume=a.resume)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    print(
        f"trained {result.iterations} steps in {result.seconds:.0f} s; "
        f"checkpoint {result.checkpoint}"
    )
    if a.eval:
        metrics = _evaluate_checkpoint(result.checkpoint, Path(cfg.out_dir), a, pictures=True)
        _print_metrics(metrics)
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    ckpt = Path(a.checkpoint)
    out = Path(a.out) if a.out else ckpt.parent / "eval"
    metrics = _evaluate_checkpoint(ckpt, out, a, pictures=a.pictures)
    _print_metrics(metrics)
    return 0


def _image_files(inputs: Sequence[str]) -> list[Path]:
    """The files named, and the images (:data:`IMAGE_SUFFIXES`) in the folders named."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in the inputs")
    return files


def _unlabelled_sample(path: Path, size: int, image_id: int) -> Sample:
    """An image file letterboxed to ``size``, as a sample without objects."""
    no_boxes = np.zeros((0, 4), np.float32)
    image, _, meta = letterbox(load_image(path), no_boxes, size)
    return Sample(image, no_boxes, np.zeros(0, np.int64), np.zeros(0, np.float32), image_id, meta)


def _prediction_record(
    path: Path, dets: torch.Tensor, labels: torch.Tensor, score_thr: float, state: dict
) -> dict:
    """``predictions.json``'s entry of one file: its detections above ``score_thr``."""
    names, cat_ids = state["class_names"], state["cat_ids"]
    keep = dets[:, 4] > score_thr
    return {
        "file": str(path),
        "detections": [
            {
                "bbox_xyxy": [round(float(v), 2) for v in d[:4]],
                "score": round(float(d[4]), 4),
                "label": names[int(lab)],
                "category_id": int(cat_ids[int(lab)]),
            }
            for d, lab in zip(dets[keep], labels[keep])
        ],
    }


def _cmd_predict(a: argparse.Namespace) -> int:
    files = _image_files(a.inputs)
    device = pick_device(a.device)
    state = load_checkpoint(a.checkpoint)
    model = model_from_checkpoint(state).to(device).eval()
    size = state["configs"]["train"]["image_size"]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for k in range(0, len(files), _CHUNK):
        chunk = files[k : k + _CHUNK]
        samples = [_unlabelled_sample(f, size, k + i + 1) for i, f in enumerate(chunk)]
        batch = collate(samples)
        with torch.inference_mode():
            cls_scores, bbox_preds = model.head(model.features(batch.images.to(device)))
            scaled = model.head.predict(cls_scores, bbox_preds, batch.img_metas, rescale=True)
            raw = model.head.predict(cls_scores, bbox_preds, batch.img_metas, rescale=False)
        for f, s, (dets, labels), r in zip(chunk, samples, scaled, raw):
            records.append(_prediction_record(f, dets, labels, a.score_thr, state))
            plot_predictions(
                [s],
                [r],
                state["class_names"],
                out / f"{f.stem}_pred.png",
                score_thr=a.score_thr,
                ncols=1,
                title=f.name,
            )
    (out / "predictions.json").write_text(json.dumps(records, indent=1))
    n = sum(len(r["detections"]) for r in records)
    print(
        f"{n} detections in {len(files)} image(s): {out / 'predictions.json'}; pictures in {out}/"
    )
    return 0


def _demo_banner(cfg: TrainConfig, device: torch.device, threads: int) -> str:
    """What the demo is about to do, in one line."""
    steps = cfg.epochs * (cfg.train_size // cfg.batch_size)
    return (
        f"GFL demo: {steps} steps of {cfg.batch_size} synthetic {cfg.image_size}x{cfg.image_size} "
        f"images ({cfg.train_size} in all"
        + (f", {cfg.epochs} epochs" if cfg.epochs > 1 else ", each seen once")
        + f") on {device}"
        + (f", {threads} training thread(s)" if device.type == "cpu" else "")
        + (f" + {cfg.num_workers} data worker(s)" if cfg.num_workers else "")
        + f"; validation: {cfg.val_size} held-out images"
    )


def time_demo_step(cfg: TrainConfig, head_cfg: GFLConfig, warm: int = 4, timed: int = 12) -> float:
    """Seconds per training step of the demo's run on this machine: ``warm + timed`` steps of
    a throwaway run (same model, data pipeline and threads), the median of the last ``timed``
    step intervals."""
    stamps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="gfl-demo-timing-") as tmp:
        probe = dataclasses.replace(
            cfg, out_dir=tmp, train_size=(warm + timed) * cfg.batch_size, progress=False,
            checkpoint_every=10**9,
        )  # fmt: skip
        train(probe, "cpu", head_cfg, on_step=lambda it, rec: stamps.append(time.perf_counter()))
    intervals = np.diff(stamps[warm - 1 :])
    return float(np.median(intervals))


def _demo_steps(a: argparse.Namespace, head_cfg: GFLConfig, t_start: float) -> tuple[int, str]:
    """The steps the demo trains, and how they were chosen (one line)."""
    if a.quick or a.steps is not None:
        cfg = demo_config(a.out, quick=a.quick, device=a.device, threads=a.threads,
                          progress=False, steps=a.steps)  # fmt: skip
        n = cfg.train_size // cfg.batch_size
        return n, f"{n} steps, as asked" if a.steps is not None else f"{n} steps (--quick)"
    cfg = demo_config(a.out, quick=False, device=a.device, threads=a.threads, progress=False)
    step_s = time_demo_step(cfg, head_cfg)
    spent = time.perf_counter() - t_start
    n = fit_steps(a.time_budget, spent, step_s)
    return n, (
        f"{n} steps: this machine does {1 / step_s:.1f} steps/s (timed in {spent:.0f} s), "
        f"and the time budget is {a.time_budget:.0f} s (--time-budget; --steps {n} repeats "
        "this run exactly)"
    )


def _cmd_demo(a: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    out = Path(a.out)
    head_cfg = GFLConfig(num_classes=len(CLASS_NAMES), **DEMO_HEAD)
    device = pick_device(a.device)
    if a.steps is not None and a.steps < 1:
        raise SystemExit(f"gfl demo: error: --steps must be at least 1, got {a.steps}")
    steps, why = _demo_steps(a, head_cfg, t_start)
    cfg = demo_config(out, quick=a.quick, device=a.device, threads=a.threads,
                      progress=not a.no_progress, steps=a.steps if a.quick else steps)  # fmt: skip
    threads = cfg.threads or os.cpu_count() or 1
    print(_demo_banner(cfg, device, threads))
    print(f"  {why}")
    t0 = time.perf_counter()
    result = train(cfg, "cpu", head_cfg)
    t_train = time.perf_counter() - t0
    if device.type == "cpu":
        torch.set_num_threads(threads)
    state, model, val = _trained_model(result.checkpoint, device)
    t1 = time.perf_counter()
    metrics = evaluate_model(
        model, val, state["cat_ids"], out, batch_size=50, device=device, progress=not a.no_progress
    )
    t_eval = time.perf_counter() - t1
    pics = _pictures(
        model, val, state["class_names"], out, device, result.checkpoint.parent / "train_log.jsonl"
    )
    total = time.perf_counter() - t_start
    metrics["timing_s"] = {"train": round(t_train, 1), "evaluate": round(t_eval, 1),
                           "total": round(total, 1)}  # fmt: skip
    metrics["steps"] = {"trained": result.iterations, "chosen": why,
                        "time_budget_s": None if a.steps or a.quick else a.time_budget}  # fmt: skip
    metrics["train_config"] = dataclasses.asdict(cfg)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print()
    print(metrics["summary"].rstrip())
    print()
    _print_metrics(metrics)
    print(f"trained {result.iterations} steps in {t_train:.0f} s, evaluated in {t_eval:.0f} s; "
          f"{total:.0f} s in all")  # fmt: skip
    print(f"report: {out}/  (metrics.json, detections.json)")
    for p in pics:
        print(f"picture: {p}")
    print(f"checkpoint: {result.checkpoint}")
    return 0


def _cmd_export(a: argparse.Namespace) -> int:
    ds = SyntheticDetection(a.num_images, a.image_size, a.seed, a.split)
    path = export_coco(ds, a.out, CLASS_NAMES)
    print(f"wrote {a.num_images} images to {Path(a.out) / 'images'} and annotations to {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gfl`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    commands = {
        "train": _cmd_train,
        "evaluate": _cmd_evaluate,
        "predict": _cmd_predict,
        "demo": _cmd_demo,
        "export-synthetic": _cmd_export,
    }
    try:
        return commands[args.command](args)
    except KeyboardInterrupt as exc:
        msg = str(exc) or "interrupted"
        print(f"\ngfl: {msg}; continue with `gfl train --resume --out DIR`", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FloatingPointError) as exc:
        print(f"gfl: error: {exc}", file=sys.stderr)
        return 2
