"""Training: schedule, checkpoints, exact resume, interruption, non-finite loss, two-process DDP."""

from __future__ import annotations

import json
import os
import pickle
import signal

import pytest
import torch
import torch.multiprocessing as mp
from tiny_model import TINY  # the detector these tests share

from torch_impl.detector.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from torch_impl.detector.train import TrainConfig, lr_at, train


def tiny_cfg(out_dir, **kw) -> TrainConfig:
    """8 images of 64 px, batch 2: 4 steps per epoch, 2 epochs."""
    base = dict(
        out_dir=str(out_dir),
        train_size=8,
        val_size=4,
        image_size=64,
        epochs=2,
        batch_size=2,
        warmup_iters=2,
        ema_decay=0.9,
        ema_warmup=2,
        checkpoint_every=3,
        progress=False,
        threads=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def _same_state(a: dict, b: dict) -> list[str]:
    return [k for k in a if not torch.equal(a[k], b[k])]


def _same_optimizer(a: dict, b: dict) -> bool:
    if a["param_groups"] != b["param_groups"]:
        return False
    for k, sa in a["state"].items():
        for name, v in sa.items():
            w = b["state"][k][name]
            if not (torch.equal(v, w) if isinstance(v, torch.Tensor) else v == w):
                return False
    return True


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    result = train(tiny_cfg(out), TINY)
    return result, load_checkpoint(result.checkpoint)


def test_lr_schedule():
    cfg = TrainConfig(lr=0.01, warmup_iters=10, warmup_ratio=0.1, min_lr_ratio=0.05)
    assert lr_at(cfg, 0, 100) == pytest.approx(0.001)
    assert lr_at(cfg, 5, 100) == pytest.approx(0.0055)
    assert lr_at(cfg, 10, 100) == pytest.approx(0.01)
    assert lr_at(cfg, 100, 100) == pytest.approx(0.0005)
    lrs = [lr_at(cfg, i, 100) for i in range(10, 101)]
    assert all(x >= y for x, y in zip(lrs, lrs[1:]))


def test_config_errors():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="adam")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="data='coco' needs train_json"):
        TrainConfig(data="coco")


def test_checkpoints_are_atomic_and_weights_only(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"format": "gfl-from-scratch/1", "w": torch.ones(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left behind
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with open(tmp_path / "evil.pt", "wb") as f:  # arbitrary objects are refused (weights_only)
        pickle.dump({"format": "gfl-from-scratch/1", "obj": TrainConfig()}, f, protocol=2)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not a gfl-from-scratch/1 checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_train_writes_checkpoint_and_log(full_run):
    result, state = full_run
    assert result.iterations == 8 and state["iteration"] == 8
    lines = [json.loads(x) for x in open(result.checkpoint.parent / "train_log.jsonl")]
    assert [r["iter"] for r in lines] == list(range(8))
    for r in lines:
        assert {"loss_cls", "loss_bbox", "loss_dfl", "loss", "lr"} <= set(r)
        assert all(r[k] == r[k] for k in ("loss_cls", "loss_bbox", "loss_dfl"))  # not NaN
    model = model_from_checkpoint(state, ema=False)
    assert not _same_state(model.state_dict(), result.model.state_dict())
    ema = model_from_checkpoint(state)  # the moving average is what evaluation uses
    assert _same_state(ema.state_dict(), result.model.state_dict())
    assert state["class_names"][0] == "circle" and state["cat_ids"] == [1, 2, 3, 4, 5, 6]


def test_resume_gives_the_same_weights(full_run, tmp_path):
    _, full = full_run
    part = train(tiny_cfg(tmp_path, stop_after=3), TINY)  # stops mid-epoch
    assert part.iterations == 3 and load_checkpoint(part.checkpoint)["iteration"] == 3
    resumed = train(tiny_cfg(tmp_path), TINY, resume=True)
    assert resumed.iterations == 8
    state = load_checkpoint(resumed.checkpoint)
    assert not _same_state(full["model"], state["model"])
    assert not _same_state(full["ema"], state["ema"])
    assert _same_optimizer(full["optimizer"], state["optimizer"])
    lines = [json.loads(x) for x in open(tmp_path / "train_log.jsonl")]
    assert [r["iter"] for r in lines] == list(range(8))


def test_sigint_checkpoints_then_resume_matches(full_run, tmp_path):
    _, full = full_run

    def interrupt(it, record):
        if it == 5:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt, match="interrupted after step 5"):
        train(tiny_cfg(tmp_path), TINY, on_step=interrupt)
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == 5
    resumed = train(tiny_cfg(tmp_path), TINY, resume=True)
    assert not _same_state(full["model"], load_checkpoint(resumed.checkpoint)["model"])


def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
    # an absurd learning rate blows the weights up after the first step
    cfg = tiny_cfg(tmp_path, lr=1e30, warmup_iters=0, grad_clip=None, checkpoint_every=1)
    with pytest.raises(FloatingPointError, match="non-finite loss at step 1: loss_cls="):
        train(cfg, TINY)
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == 1  # the last good one


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world)
    )
    result = train(tiny_cfg(out), TINY, init_method=f"file://{init_file}")
    torch.save(result.model.state_dict(), os.path.join(out, f"rank{rank}.pt"))


def test_two_processes_with_ddp_on_gloo(tmp_path):
    mp.spawn(
        _ddp_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True
    )
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # DDP keeps the replicas' trainable weights identical (BatchNorm running stats are per rank)
    differ = [k for k in _same_state(r0, r1) if "running_" not in k and "num_batches" not in k]
    assert not differ
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["iteration"] == 4  # 8 images / 2 ranks / batch 2 = 2 steps per epoch, 2 epochs
    lines = [json.loads(x) for x in open(tmp_path / "train_log.jsonl")]
    assert len(lines) == 4


def test_data_workers_do_not_change_the_result(full_run, tmp_path):
    """Images rendered in a worker process train the same weights as in the main process."""
    _, full = full_run
    result = train(tiny_cfg(tmp_path, num_workers=1), TINY)
    assert not _same_state(full["model"], load_checkpoint(result.checkpoint)["model"])


def test_channels_last_changes_only_the_layout(full_run, tmp_path):
    """NHWC weights train the same run as NCHW ones, up to float rounding."""
    result, _ = full_run
    nchw = train(tiny_cfg(tmp_path / "nchw", channels_last=False, stop_after=2), TINY)
    conv = result.model.backbone.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert nchw.model.backbone.stem[0].weight.is_contiguous()
    for a, b in zip(result.history[:2], nchw.history):
        for k in ("loss_cls", "loss_bbox", "loss_dfl"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k
