"""Where one training step of ``gfl demo`` goes: the ``profile`` section of ``make bench``.

The step is the demo's (model preset ``cpu``, ``DEMO_TRAIN``, ``DEMO_HEAD``, one
training thread, on the CPU), built and stepped by the trainer's own code
(:class:`benchmarks.workloads.DemoStep`). ``steps`` plain steps and ``steps``
profiled ones alternate after a warm-up; the profiled ones are cut into
:data:`~benchmarks.workloads.PHASES`:

========================  =======================================================
data                      render, flip and collate the batch (in ``gfl demo`` a
                          DataLoader worker does this in parallel with the rest)
backbone+fpn              ``model.features``: normalise, ResNet, FPN
head                      ``model.head``: the GFL head's convs, all levels
targets                   ``torch_impl.gfl_targets`` (anchors + ATSS + targets),
                          timed by a separate call with the loss's own inputs
losses                    the loss call (``model.head.loss``) minus ``targets``,
                          plus reading the loss values as the trainer does
backward                  ``loss.backward()``
optimizer                 learning rate, ``zero_grad``, gradient clipping,
                          ``AdamW.step`` (and the AMP scaler / EMA when on)
========================  =======================================================

Each phase's figure is its median over the profiled steps; its share is of the
sum of those medians. ``step_ms`` is the median of the plain steps (data +
``_Run.step``, no timer inside), so ``sum_over_step`` (sum of the phases /
``step_ms``) says how well the phases account for a real step.
"""

from __future__ import annotations

import torch

from .timing import print_rows
from .workloads import DemoStep, demo_settings, profile_steps, quick_settings, summarize_profile


def run(steps: int = 15, warmup: int = 3, quick: bool = False, device: str = "cpu") -> dict:
    """The ``profile`` section: ``steps`` profiled and ``steps`` plain demo steps.

    ``quick``: ``QUICK_TRAIN``'s sizes (64 px, batch 4) instead of the demo's (tests).
    The process's torch thread count is the demo's while it runs, and restored after.
    """
    settings = quick_settings() if quick else demo_settings()
    threads = torch.get_num_threads()
    demo = DemoStep(settings, device=device)
    try:
        raw = profile_steps(demo, steps, warmup)
    finally:
        demo.close()
        torch.set_num_threads(threads)
    return {
        "workload": "gfl demo training step" + (" (QUICK_TRAIN sizes)" if quick else ""),
        "settings": settings,
        "device": device,
        "threads": settings["threads"],
        "steps": steps,
        "warmup": warmup,
        **summarize_profile(raw),
        "notes": (
            "medians over the profiled steps; shares of their sum. losses = the loss call "
            "minus targets (timed by a separate gfl_targets call). data runs in a DataLoader "
            "worker in gfl demo, in parallel with the rest of the step. step_ms: plain steps "
            "(data + _Run.step) without timers, interleaved with the profiled ones."
        ),
    }


def print_profile(profile: dict) -> None:
    """The profile as a table: phase, median ms, share; then the whole-step check."""
    s = profile["settings"]
    train = s["train"]
    print(
        f"\nprofile: {profile['workload']} on {profile['device']}, {profile['threads']} "
        f"thread(s): model {s['model']}, batch {train['batch_size']} x "
        f"{train['image_size']} px, head {s['head']}; median of {profile['steps']} steps "
        f"after {profile['warmup']} warm-up"
    )
    rows = [(p["phase"], f"{p['median_ms']:.2f}", f"{100 * p['share']:.1f} %")
            for p in profile["phases"]]
    rows.append(("sum of phases", f"{profile['sum_of_phases_ms']:.2f}", "100.0 %"))
    print_rows(("phase", "median ms", "share"), rows)
    print(
        f"whole step without timers (data + train step): {profile['step_ms']:.2f} ms "
        f"(train step alone {profile['train_step_ms']:.2f} ms); sum of phases / step = "
        f"{profile['sum_over_step']:.3f}"
    )
