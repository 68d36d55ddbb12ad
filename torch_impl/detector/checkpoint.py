"""Checkpoints: written atomically, read with ``weights_only=True``, turned back into a model.

A checkpoint is a plain dict of tensors and built-in types (so it loads with
``torch.load(..., weights_only=True)``, which runs no pickled code):

``format``
    :data:`CHECKPOINT_FORMAT`, checked on loading.
``iteration``, ``total_iterations``
    Steps done, and steps the whole run has.
``model``, ``ema``
    The weights, and their moving average (None without one).
``optimizer``, ``scaler``, ``torch_rng``
    What an exact resume needs besides the weights (``scaler`` is None
    without AMP).
``configs``
    ``{"train": TrainConfig, "model": ModelConfig, "head": GFLConfig}``, each
    as :func:`dataclasses.asdict` gives it.
``class_names``, ``cat_ids``
    Class ``k`` is ``class_names[k]``, COCO category ``cat_ids[k]``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from torch_impl import GFLConfig

from .model.detector import GFLDetector, ModelConfig, config_from_dict

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint", "model_from_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = "gfl-from-scratch/1"


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` with :func:`torch.save` atomically: a temporary file, fsync, rename.

    A reader sees either the previous checkpoint or the new one, never half
    of one, even if the process dies while writing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True`` and check that it is one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing
        raise ValueError(f"{path} is not a readable checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    return state


def model_from_checkpoint(state: dict, ema: bool = True) -> GFLDetector:
    """Rebuild the detector described by a checkpoint and load its weights.

    With ``ema`` (default) the moving-average weights are used when the
    checkpoint has them.
    """
    cfgs = state["configs"]
    model = GFLDetector(
        config_from_dict(ModelConfig, cfgs["model"]), config_from_dict(GFLConfig, cfgs["head"])
    )
    model.load_state_dict(state["ema"] if ema and state.get("ema") is not None else state["model"])
    return model
