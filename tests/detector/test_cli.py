"""The ``gfl`` command line end to end, on tiny data: demo, export → train → evaluate → predict."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from torch_impl.detector.cli import SGD_DEFAULTS, _parser, _train_config, main
from torch_impl.detector.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = [
    "--stem-channels", "8", "--stage-channels", "8,16,16,32", "--stage-blocks", "1,1,1,1",
    "--fpn-channels", "32", "--feat-channels", "32", "--stacked-convs", "1",
    "--head-norm-groups", "16",
]  # fmt: skip


def test_demo_quick(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--no-progress", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "COCO mAP" in out and "AP50" in out and str(tmp_path) in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "per_class"):
        assert key in metrics
    for name in ("predictions.png", "distributions.png", "loss_curves.png", "detections.json"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "run" / "last.pt").is_file()


def test_train_options_default_to_train_config():
    """``gfl train``'s defaults are TrainConfig's (SGD has its own learning rate and decay)."""
    assert _train_config(_parser().parse_args(["train"])) == TrainConfig()
    sgd = _train_config(_parser().parse_args(["train", "--optimizer", "sgd"]))
    assert sgd == TrainConfig(optimizer="sgd", **SGD_DEFAULTS)
    off = _train_config(_parser().parse_args(["train", "--grad-clip", "0", "--no-hflip"]))
    assert off.grad_clip is None and off.hflip is False


def test_export_train_evaluate_predict_on_coco_files(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["export-synthetic", "--out", str(data), "--num-images", "6", "--image-size",
                 "64"]) == 0  # fmt: skip
    ann, images = data / "instances.json", data / "images"
    run = tmp_path / "run"
    args = ["train", "--data", "coco", "--train-json", str(ann), "--train-images", str(images),
            "--val-json", str(ann), "--val-images", str(images), "--image-size", "64",
            "--epochs", "1", "--batch-size", "2", "--warmup-iters", "1", "--threads", "1",
            "--out", str(run), "--no-progress", "--eval", "--no-channels-last",
            *TINY_MODEL]  # fmt: skip
    assert main(args) == 0
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["configs"]["train"]["channels_last"] is False
    assert json.loads((run / "metrics.json").read_text())["num_images"] == 6
    assert (run / "predictions.png").is_file()
    capsys.readouterr()

    ev = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--out", str(ev)]) == 0
    assert "COCO mAP" in capsys.readouterr().out
    assert (ev / "metrics.json").is_file() and (ev / "detections.json").is_file()

    pred = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run / "last.pt"), "--out", str(pred),
                 "--score-thr", "0.0", str(images / "000001.png"), str(images)]) == 0  # fmt: skip
    records = json.loads((pred / "predictions.json").read_text())
    assert len(records) == 7  # one file + the folder's six
    assert (pred / "000001_pred.png").is_file()


def test_bad_inputs_are_clear_errors(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    args = ["train", "--data", "coco", "--train-json", str(bad), "--train-images", str(tmp_path),
            "--out", str(tmp_path / "run"), "--no-progress"]  # fmt: skip
    assert main(args) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    args = ["predict", "--checkpoint", str(tmp_path / "none.pt"), str(tmp_path / "x.png")]
    assert main(args) == 2
    assert "no such file or folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--optimizer", "adam"])


def test_ctrl_c_in_a_real_process_leaves_a_resumable_checkpoint(tmp_path):
    """SIGINT to ``python -m torch_impl train``: exit 130, a checkpoint, and --resume finishes."""
    run = tmp_path / "run"
    args = [sys.executable, "-m", "torch_impl", "train", "--out", str(run), "--train-size", "64",
            "--image-size", "64", "--epochs", "50", "--batch-size", "2", "--threads", "1",
            "--no-progress", *TINY_MODEL]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    log = run / "train_log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "continue with `gfl train --resume" in err
    from torch_impl.detector.checkpoint import load_checkpoint

    done = load_checkpoint(run / "last.pt")["iteration"]
    assert done >= 3
    assert len(log.read_text().splitlines()) == done
    # resume, but only a couple of steps further (the full run is long)
    more = subprocess.run([*args, "--resume", "--stop-after", str(done + 2)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert more.returncode == 0, more.stderr
    assert load_checkpoint(run / "last.pt")["iteration"] == done + 2
