"""``make bench``'s machinery: the demo-step profile, ``--against``, the JSON's layout.

Fast (tiny settings, few repeats); the figures themselves are not tested, only that the
profile accounts for a real step, that a revision timed against itself comes out even,
and that the worktree of ``--against`` is made, reused and removed cleanly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import against, bench_head, profile_step, run, timing  # noqa: E402
from benchmarks.workloads import PHASES, DemoStep, quick_settings  # noqa: E402

TINY = "ATSS targets, B=2, 640x640: reference"  # a few milliseconds, NumPy only


def test_profile_phases_add_up_to_a_plain_step():
    threads = torch.get_num_threads()
    prof = profile_step.run(steps=8, warmup=2, quick=True)
    assert torch.get_num_threads() == threads  # the demo's setting does not leak
    assert [p["phase"] for p in prof["phases"]] == list(PHASES)
    assert sum(p["share"] for p in prof["phases"]) == pytest.approx(1.0)
    assert all(p["median_ms"] > 0 for p in prof["phases"] if p["phase"] != "losses")
    assert prof["phases"][PHASES.index("losses")]["median_ms"] > -1.0  # loss call - targets
    # the phases, timed one by one, account for a step timed without any timer inside
    assert 0.67 < prof["sum_over_step"] < 1.5, prof
    assert prof["train_step_ms"] < prof["step_ms"]


def test_the_profiled_step_is_the_trainers_step():
    """Cut into phases, the step does what ``_Run.step`` does: the same weights after it."""
    plain, profiled = DemoStep(quick_settings()), DemoStep(quick_settings())
    try:
        for _ in range(2):
            plain.step(plain.batch())
            profiled.profiled_step()
        assert plain.run.it == profiled.run.it == 2
        a, b = plain.run.model.state_dict(), profiled.run.model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    finally:
        plain.close()
        profiled.close()


@pytest.fixture(scope="module")
def head_vs_itself(tmp_path_factory):
    base = tmp_path_factory.mktemp("against")
    section = against.compare("HEAD", repeat=9, warmup=2, rounds=1, select=TINY, threads=1,
                              base=base)
    yield section, base
    against.remove_worktree(base / section["sha"])


def _registered(path: Path) -> bool:
    listing = against.git("worktree", "list", "--porcelain")
    return f"worktree {path.resolve()}" in listing.splitlines()


def test_head_against_itself_comes_out_even(head_vs_itself):
    section, base = head_vs_itself
    (row,) = section["rows"]
    assert row["workload"] == TINY and row["error"] is None and row["pairs"] == 9
    assert section["rounds"] == 1 and row["ratio_rounds"] == [row["ratio_median"]]
    assert 0.67 < row["ratio_median"] < 1.5, row
    assert row["ratio_q1"] <= row["ratio_median"] <= row["ratio_q3"]
    for side in ("current", "rev"):  # each side imported its own tree's packages
        assert section["workers"][side]["torch_impl"].startswith(section["workers"][side]["root"])
    assert section["workers"]["rev"]["root"] == str((base / section["sha"]).resolve())


def test_rows_pool_the_pairs_of_every_round():
    job = {"device": "cpu", "threads": 1}
    rounds = [{"current": [1.0, 2.0, 3.0], "rev": [2.0, 2.0, 2.0]},
              {"current": [4.0, 4.0], "rev": [4.0, 2.0]}]
    row = against.make_row("w", job, rounds, None)
    assert row["pairs"] == 5 and row["current_median_ms"] == 3.0 and row["rev_median_ms"] == 2.0
    assert row["ratio_median"] == 1.0  # of 0.5, 1, 1.5, 1, 2
    assert row["ratio_rounds"] == [1.0, 1.5]
    failed = against.make_row("w", job, [], "rev: AttributeError: no gfl_targets")
    assert failed["error"] and failed["ratio_median"] is None and failed["pairs"] == 0


def test_the_worktree_is_reused_remade_and_removed(head_vs_itself):
    section, base = head_vs_itself
    path = base / section["sha"]
    assert not section["reused"] and _registered(path)
    again = against.ensure_worktree("HEAD", base)
    assert again.reused and again.path == path
    (path / "README.md").write_text("edited\n")  # a modified checkout is not trusted
    assert not against.ensure_worktree("HEAD", base).reused
    assert (path / "README.md").read_text() != "edited\n"
    subprocess.run(["rm", "-rf", str(path)], check=True)  # as `make clean` would
    assert not against.ensure_worktree("HEAD", base).reused and _registered(path)
    against.remove_worktree(path)
    assert not path.exists() and not _registered(path)
    against.ensure_worktree("HEAD", base)  # for the fixture's teardown


def test_a_worker_reports_errors_and_carries_on():
    w = against.Worker("current", ROOT, 1)
    try:
        assert w.start()["torch_impl"].startswith(str(ROOT))
        assert "error" in w.call(op="setup", name="no such workload", cuda=False, settings={})
        assert "error" in w.call(op="nonsense")
        settings = quick_settings()
        assert w.call(op="setup", name=TINY, cuda=False, settings=settings) == {"ok": True}
        assert w.call(op="time")["ms"] > 0
    finally:
        w.close()
    assert w.proc.returncode == 0


def test_bad_revisions_are_refused():
    with pytest.raises(ValueError, match="no commit"):
        against.resolve("no-such-rev-anywhere")


def test_gpu_rows_are_listed_as_skipped_without_cuda():
    rows = bench_head._gpu(["cpu"], 1)
    assert [r.group for r in rows] == [g for g, *_ in bench_head.GPU_ROWS]
    assert all(r.status == "skipped" and r.device == "cuda" and r.median_ms is None for r in rows)
    assert any("AMP" in r.group for r in rows)


def test_the_json_has_its_documented_layout(tmp_path, head_vs_itself, capsys):
    out = tmp_path / "bench.json"
    run.main(["--only", "profile", "--profile-quick", "--steps", "2", "--out", str(out)])
    header = capsys.readouterr().out
    data = json.loads(out.read_text())
    timing.check_schema(data)
    env = data["environment"]
    assert env["cpu_model"] in header and f"{env['cpu_count']} cores" in header
    assert "load average" in header and env["loadavg_start"] and env["loadavg_end"]
    if not torch.cuda.is_available():
        assert env["cuda"] is None and env["gpu_rows"].startswith("skipped")
    assert data["results"] == [] and data["against"] is None
    assert data["profile"]["steps"] == 2
    # every section at once, as write_json writes it
    rows = bench_head._gpu(["cpu"], 1)
    path = timing.write_json(rows, tmp_path / "all.json", env=env, profile=data["profile"],
                             against=head_vs_itself[0])
    timing.check_schema(json.loads(path.read_text()))
    broken = {**data, "profile": {"phases": []}}
    with pytest.raises(ValueError, match="profile lacks"):
        timing.check_schema(broken)
