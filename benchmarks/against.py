"""``make bench AGAINST=REV``: the working tree and another revision, timed side by side.

How it works:

1. ``REV`` is resolved to a commit and checked out, detached, in a git worktree
   at ``bench_results/against/<sha>`` (git-ignored). A clean worktree already
   at that commit is reused; a broken or modified one is removed and made
   again; ``--against-cleanup`` removes it after the run
   (``git worktree remove`` + ``git worktree prune``).
2. Two worker processes start (:mod:`benchmarks._against_worker`), the same
   interpreter and environment for both (``OMP_WAIT_POLICY=PASSIVE`` unless
   set, see :func:`worker_env`): one imports ``reference`` and
   ``torch_impl`` from the working tree, the other from the worktree (each
   checks where its packages came from). Both load *this* tree's
   :mod:`benchmarks.workloads`, so the two sides run identical workload code
   on their own library code; the demo's settings are this tree's, sent to both.
3. For each workload, both workers build it, run ``warmup`` untimed calls
   each, then pairs of timed calls, alternating: current then REV, REV then
   current, … Only one worker runs at a time (the other waits on its pipe). A
   worker times its own call (``time.perf_counter``, a CUDA synchronize around
   GPU work), so the pipe is not in the figure.
4. The ``repeat`` pairs are split over ``rounds`` (3) fresh pairs of workers,
   so that what is peculiar to one process (where its memory landed, how the
   scheduler treats it) is not in every pair.
5. Per workload: the median time of each side and the median of the per-pair
   ratios current / REV (with its quartiles, and its median in each round). A
   pair's two calls run within a second, so a change of the machine's load
   between pairs cancels out of the ratio, which is why the ratio's median,
   not the ratio of the medians, is the figure to read.

Why processes and not the two packages imported side by side under different
names: ``torch_impl`` imports ``reference`` by its absolute name (and the
detector imports ``torch_impl``), so one interpreter cannot hold two versions
of them; and torch's process-wide state (threads, allocator, oneDNN caches)
would be shared. Two fresh, symmetric processes put neither side at an advantage.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .timing import print_rows
from .workloads import against_workloads, demo_settings

ROOT = Path(__file__).resolve().parents[1]
AGAINST_DIR = ROOT / "bench_results" / "against"
WORKER = Path(__file__).resolve().parent / "_against_worker.py"
WORKLOADS = Path(__file__).resolve().parent / "workloads.py"


def git(*args: str, cwd: Path = ROOT) -> str:
    """Run git in ``cwd``; its stdout, stripped (CalledProcessError on failure)."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def resolve(rev: str, repo: Path = ROOT) -> str:
    """The full sha of commit ``rev`` (ValueError when there is none)."""
    try:
        return git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", cwd=repo)
    except subprocess.CalledProcessError:
        raise ValueError(f"--against: no commit called {rev!r} in {repo}") from None


@dataclass(frozen=True)
class Worktree:
    """A checkout of ``sha`` at ``path``; ``reused``: it was there already."""

    path: Path
    sha: str
    reused: bool


def _is_checkout_of(path: Path, sha: str) -> bool:
    """``path`` is the top of a clean git worktree whose HEAD is ``sha``."""
    try:
        top = git("rev-parse", "--show-toplevel", cwd=path)
        head = git("rev-parse", "HEAD", cwd=path)
        dirty = git("status", "--porcelain", "--untracked-files=no", cwd=path)
    except (subprocess.CalledProcessError, OSError):
        return False
    return Path(top).resolve() == path.resolve() and head == sha and not dirty


def ensure_worktree(rev: str, base: Path = AGAINST_DIR, repo: Path = ROOT) -> Worktree:
    """A clean worktree of ``rev`` at ``base/<sha>``: reused when there, made otherwise."""
    sha = resolve(rev, repo)
    path = Path(base) / sha
    if path.exists():
        if _is_checkout_of(path, sha):
            return Worktree(path, sha, True)
        remove_worktree(path, repo)
    git("worktree", "prune", cwd=repo)  # forget worktrees whose folders were deleted
    path.parent.mkdir(parents=True, exist_ok=True)
    git("worktree", "add", "--detach", "--quiet", str(path), sha, cwd=repo)
    return Worktree(path, sha, False)


def remove_worktree(path: Path, repo: Path = ROOT) -> None:
    """Remove the worktree at ``path`` (its folder and git's record of it)."""
    try:
        git("worktree", "remove", "--force", str(path), cwd=repo)
    except subprocess.CalledProcessError:  # not a registered worktree: a stray folder
        shutil.rmtree(path, ignore_errors=True)
    git("worktree", "prune", cwd=repo)


def worker_env() -> dict[str, str]:
    """The workers' environment: this one, without ``PYTHONPATH``, ``OMP_WAIT_POLICY=PASSIVE``
    unless set (an idle worker's OpenMP threads would otherwise spin for a while after each
    call, on the cores the other worker is timed on: 2-3x slower calls were seen)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


class Worker:
    """A worker process timing workloads with the library code of ``root``."""

    def __init__(self, label: str, root: Path, threads: int) -> None:
        env = worker_env()
        self.label, self.root = label, root
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(root), str(WORKLOADS), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=root,
            env=env,
            text=True,
            bufsize=1,
        )
        self.hello: dict | None = None

    def receive(self) -> dict:
        """The worker's next reply (RuntimeError if it died)."""
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(
                f"the {self.label} worker ({self.root}) exited with {self.proc.wait()}; "
                "its stderr is above"
            )
        return json.loads(line)

    def call(self, **message) -> dict:
        """Send one request, wait for its reply."""
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        return self.receive()

    def start(self) -> dict:
        """Wait for the worker's greeting: where its ``reference`` and ``torch_impl`` live."""
        self.hello = self.receive()
        if "error" in self.hello:
            raise RuntimeError(f"the {self.label} worker failed to start: {self.hello['error']}")
        return self.hello

    def close(self) -> None:
        """Ask the worker to quit; kill it if it does not within 10 s."""
        try:
            if self.proc.poll() is None:
                self.call(op="quit")
            self.proc.wait(timeout=10)
        except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def _quartiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return xs[0], xs[0]
    q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q3


def _time_pairs(workers: dict[str, Worker], repeat: int, warmup: int) -> dict[str, list[float]]:
    """Warm-up, then ``repeat`` alternating pairs; the ms of each side, pair by pair."""
    times: dict[str, list[float]] = {"current": [], "rev": []}
    for k in range(warmup + repeat):
        for side in ("current", "rev") if k % 2 == 0 else ("rev", "current"):
            reply = workers[side].call(op="time")
            if "error" in reply:
                raise RuntimeError(f"{side}: {reply['error']}")
            if k >= warmup:
                times[side].append(reply["ms"])
    return times


def measure_one(workers: dict[str, Worker], name: str, job: dict, pairs: int,
                warmup: int) -> dict[str, list[float]]:
    """One workload on both sides: warm-up, then ``pairs`` alternating pairs (ms per side).

    RuntimeError when a side cannot run it (e.g. an API its revision lacks).
    """
    try:
        for side, w in workers.items():
            reply = w.call(op="setup", name=name, cuda=job["cuda"], settings=job["settings"])
            if "error" in reply:
                raise RuntimeError(f"{side}: {reply['error']}")
        return _time_pairs(workers, pairs, warmup)
    finally:
        for w in workers.values():
            if w.proc.poll() is None:
                w.call(op="drop")


def make_row(name: str, job: dict, rounds: list[dict[str, list[float]]],
             error: str | None) -> dict:
    """The row of the ``against`` section: medians, the median per-pair ratio, its spread."""
    row: dict = {"workload": name, "device": job["device"], "threads": job["threads"],
                 "pairs": 0, "current_median_ms": None, "rev_median_ms": None,
                 "ratio_median": None, "ratio_q1": None, "ratio_q3": None,
                 "ratio_rounds": [], "error": error}
    if error is not None or not rounds:
        return row
    cur = [t for r in rounds for t in r["current"]]
    rev = [t for r in rounds for t in r["rev"]]
    ratios = [c / r for c, r in zip(cur, rev)]
    q1, q3 = _quartiles(ratios)
    row.update(pairs=len(ratios), current_median_ms=statistics.median(cur),
               rev_median_ms=statistics.median(rev), ratio_median=statistics.median(ratios),
               ratio_q1=q1, ratio_q3=q3,
               ratio_rounds=[statistics.median(c / v for c, v in zip(r["current"], r["rev"]))
                             for r in rounds])
    return row


def _current_tree() -> dict:
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except subprocess.CalledProcessError:  # pragma: no cover - not a git checkout
        commit, dirty = None, None
    return {"root": str(ROOT), "commit": commit, "dirty": dirty}


def _round(rev: str, tree: Worktree, threads: int, jobs: dict[str, dict], pairs: int,
           warmup: int, measured: dict, errors: dict) -> dict:
    """One round: a fresh pair of workers times every workload; returns their greetings."""
    workers = {"current": Worker("current", ROOT, threads), "rev": Worker(rev, tree.path, threads)}
    try:
        hellos = {side: w.start() for side, w in workers.items()}
        for name, job in jobs.items():
            if name in errors:
                continue
            try:
                measured[name].append(measure_one(workers, name, job, pairs, warmup))
            except RuntimeError as e:
                errors[name] = str(e).splitlines()[0][:300]
    finally:
        for w in workers.values():
            w.close()
    return hellos


def compare(
    rev: str,
    *,
    repeat: int = 15,
    warmup: int = 2,
    rounds: int = 3,
    select: str = "",
    cuda: bool = False,
    threads: int | None = None,
    base: Path = AGAINST_DIR,
    cleanup: bool = False,
    settings: dict | None = None,
) -> dict:
    """Time the working tree against ``rev``: the ``against`` section of ``bench.json``.

    ``repeat`` pairs per workload, split over ``rounds`` fresh pairs of worker processes (so
    that what is peculiar to one process, e.g. where its memory landed, is not in every
    pair); ``select``: only the workloads whose name contains it; ``cuda``: add the GPU rows;
    ``threads``: torch threads of the workers (default: this process's); ``settings``: the
    demo's (default :func:`~benchmarks.workloads.demo_settings`, this tree's).
    """
    settings = settings or demo_settings()
    threads = threads or torch.get_num_threads()
    rounds = max(1, min(rounds, repeat))
    pairs = -(-repeat // rounds)
    tree = ensure_worktree(rev, base)
    jobs = {w.name: {"device": w.device, "threads": w.threads or threads, "cuda": cuda,
                     "settings": settings}
            for w in against_workloads(cuda, settings) if select in w.name}
    measured: dict[str, list] = {name: [] for name in jobs}
    errors: dict[str, str] = {}
    try:
        for k in range(rounds):
            hellos = _round(rev, tree, threads, jobs, pairs, warmup, measured, errors)
            print(f"  against: round {k + 1} of {rounds} done", flush=True)
    finally:
        if cleanup:
            remove_worktree(tree.path)
    rows = [make_row(name, job, measured[name], errors.get(name)) for name, job in jobs.items()]
    return {
        "rev": rev, "sha": tree.sha, "worktree": _shown(tree.path), "reused": tree.reused,
        "cleaned_up": cleanup, "current": _current_tree(), "repeat": repeat, "warmup": warmup,
        "rounds": rounds, "pairs_per_round": pairs, "threads": threads,
        "order": "alternating pairs: (current, REV), (REV, current), ...",
        "worker_env": {"OMP_WAIT_POLICY": worker_env()["OMP_WAIT_POLICY"]},
        "workers": hellos, "rows": rows,
    }


def _shown(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def print_against(section: dict) -> None:
    """The comparison as a table: both medians, the median ratio and its quartiles."""
    cur = section["current"]
    print(
        f"\nagainst {section['rev']} ({section['sha'][:12]}, worktree {section['worktree']}, "
        f"{'reused' if section['reused'] else 'made'}"
        f"{', removed after' if section['cleaned_up'] else ''}); current = working tree at "
        f"{(cur['commit'] or '?')[:12]}{' + uncommitted changes' if cur['dirty'] else ''}; "
        f"{section['rounds']} rounds of fresh workers x {section['pairs_per_round']} pairs, "
        f"each after {section['warmup']} warm-up, alternating order"
    )
    header = ("workload", "device", "threads", "current ms", "REV ms", "current/REV",
              "ratio IQR", "by round", "")
    rows = []
    for r in section["rows"]:
        if r["error"]:
            rows.append((r["workload"], r["device"], r["threads"], "-", "-", "-", "-", "-",
                         f"error: {r['error'][:60]}"))
            continue
        rows.append((r["workload"], r["device"], r["threads"], f"{r['current_median_ms']:.2f}",
                     f"{r['rev_median_ms']:.2f}", f"{r['ratio_median']:.3f}",
                     f"{r['ratio_q1']:.3f}-{r['ratio_q3']:.3f}",
                     " ".join(f"{x:.2f}" for x in r["ratio_rounds"]), ""))
    print_rows(header, rows)
    print("current/REV: median of the per-pair ratios; < 1: the working tree is faster.")
