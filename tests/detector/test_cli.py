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

from torch_impl import GFLConfig
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


# --- the demo's time budget ----------------------------------------------------------------


def test_parse_duration():
    from torch_impl.detector.cli import parse_duration

    assert parse_duration("8m") == 480.0 and parse_duration("480s") == 480.0
    assert parse_duration("480") == 480.0 and parse_duration("0.5h") == 1800.0
    for bad in ("", "m", "-1m", "0", "eight minutes", "nan"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_fit_steps_fills_what_is_left_of_the_budget():
    from torch_impl.detector.cli import DEMO_STEPS, fit_steps

    # 480 s, 20 s spent timing, 45 s kept for evaluation: 0.95 * 415 s / 0.5 s = 788.5 steps
    assert fit_steps(480.0, 20.0, 0.5, reserve_s=45.0) == 788
    assert fit_steps(480.0, 20.0, 1e-4) == 2 * DEMO_STEPS  # a very fast machine: capped
    assert fit_steps(60.0, 50.0, 1.0) == 50  # nothing left: still the minimum


def test_demo_budget_chooses_the_steps_from_the_timed_speed(monkeypatch):
    """The budget path times the machine (here: a stand-in saying 0.25 s per step) and
    says which ``--steps`` repeats the run."""
    import time

    import torch_impl.detector.cli as cli

    monkeypatch.setattr(cli, "time_demo_step", lambda cfg, head_cfg: 0.25)
    a = _parser().parse_args(["demo", "--time-budget", "5m", "--out", "x"])
    head = GFLConfig(num_classes=len(cli.CLASS_NAMES), **cli.DEMO_HEAD)
    steps, why = cli._demo_steps(a, head, time.perf_counter())
    assert int(0.95 * (300 - 46) / 0.25) <= steps <= int(0.95 * (300 - 45) / 0.25)  # 965..969
    assert f"--steps {steps}" in why and "4.0 steps/s" in why
    a = _parser().parse_args(["demo", "--steps", "123", "--out", "x"])
    assert cli._demo_steps(a, head, time.perf_counter())[0] == 123


def test_demo_config_fits_the_schedule_to_the_steps():
    from torch_impl.detector.cli import DEMO_STEPS, DEMO_TRAIN, demo_config

    kw = {"quick": False, "device": "cpu", "threads": 1, "progress": False}
    full = demo_config("x", **kw)
    assert full.train_size // full.batch_size == DEMO_STEPS and full.warmup_iters == 150
    short = demo_config("x", steps=840, **kw)
    assert short.train_size == 840 * DEMO_TRAIN["batch_size"] and short.warmup_iters == 26
    assert demo_config("x", steps=20, **kw).warmup_iters == 10
    assert demo_config("x", steps=2 * DEMO_STEPS, **kw).warmup_iters == 150
    with pytest.raises(ValueError, match="steps"):
        demo_config("x", steps=0, **kw)


def test_time_demo_step_times_a_throwaway_run(tmp_path):
    from torch_impl.detector.cli import DEMO_HEAD, demo_config, time_demo_step

    cfg = demo_config(tmp_path, quick=True, device="cpu", threads=1, progress=False)
    step_s = time_demo_step(cfg, GFLConfig(num_classes=8, **DEMO_HEAD), warm=1, timed=2)
    assert 0 < step_s < 60
    assert not (tmp_path / "run").exists()  # nothing of the timing run is left behind


def test_a_fixed_step_demo_reproduces_exactly(tmp_path):
    """``--steps N`` twice: the same weights, bit for bit (what a budget run promises)."""
    states = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        args = ["demo", "--quick", "--steps", "3", "--out", str(out), "--no-progress",
                "--threads", "1"]  # fmt: skip
        assert main(args) == 0
        states.append(torch.load(out / "run" / "last.pt", weights_only=True)["model"])
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["steps"]["trained"] == 3
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
