"""``make grade SUBMISSIONS=dir``: grade a folder of submissions with nbgrader.

The folder holds ``<student>/<assignment>/<assignment>.ipynb`` (the notebooks of the
student release, filled in). Each submission is executed by nbgrader's ``autograde`` in a
fresh course root, with the graded cells restored from the source (a student cannot edit
them); a graded cell earns its points when it runs without error, that is when
``check(...).raise_if_failed()`` finds every property holding.

Writes, under ``course/build/grades/`` (or ``--out``):

- ``scores.csv``: one row per student, one column per exercise, and ``total``; the first
  row, ``points possible``, holds the maximum of each column;
- ``grades.csv``: nbgrader's own export (one row per student and exercise);
- ``feedback/<student>.md``: the student's scores and, for every graded cell that failed,
  the check's report (the property, the smallest failing input, expected and obtained);
- ``feedback/<student>/<assignment>/<assignment>.html``: nbgrader's feedback, the executed
  notebook with its outputs;
- ``nbgrader/``: the course root (``submitted/``, ``autograded/``, ``gradebook.db``).

Run ``python -m course.grade SUBMISSIONS [--out DIR]`` from the repository root.
Autograding *executes* the submitted code: grade untrusted submissions in a sandbox.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from .nbgrader_course import (
    ASSIGNMENTS,
    BUILD,
    IGNORED,
    NbgraderError,
    new_course_root,
    succeeded,
)

GRADES = BUILD / "grades"
#: The exceptions nbgrader raises to say "see the log above": never the cause.
NBGRADER_SUMMARY = ("nbgrader.", "NbGraderException")
#: The feedback of a graded cell deleted from a submission.
MISSING = "This graded cell is missing from your notebook: copy it back from the release."


@dataclass
class CellResult:
    """One graded cell of one submission."""

    grade_id: str
    score: float
    max_score: float
    #: The error the cell raised (the check's report), None when it passed.
    message: str | None = None


@dataclass
class Result:
    """One student's result on one exercise."""

    student: str
    assignment: str
    score: float
    max_score: float
    submitted: bool
    cells: list[CellResult] = field(default_factory=list)
    #: Why nbgrader could not grade the submission (it then scores 0), None when it could.
    error: str | None = None


def collect(submissions: Path, root: Path) -> dict[str, list[str]]:
    """Copy ``submissions/<student>/<assignment>/`` into ``root/submitted/``.

    Returns
    -------
    dict
        Each student's submitted exercises, in course order. Folders that are not an
        exercise of the course are skipped with a message.
    """
    found: dict[str, list[str]] = {}
    for student_dir in sorted(p for p in submissions.iterdir() if p.is_dir()):
        if student_dir.name.startswith("."):
            continue
        for sub in sorted(p for p in student_dir.iterdir() if p.is_dir()):
            if sub.name not in ASSIGNMENTS:
                print(f"grade: skipping {sub} (not an exercise: {', '.join(ASSIGNMENTS)})")
                continue
            shutil.copytree(sub, root / "submitted" / student_dir.name / sub.name, ignore=IGNORED)
        found[student_dir.name] = [a for a in ASSIGNMENTS if (student_dir / a).is_dir()]
    return found


def failure_reason(log: str) -> str:
    """The last exception named in an nbgrader log (the cause, not nbgrader's summary)."""
    found = re.findall(r"^\s*([\w.]+(?:Error|Exception): .*)$", log, flags=re.MULTILINE)
    causes = [line for line in found if not line.startswith(NBGRADER_SUMMARY)]
    return causes[-1] if causes else log.strip().splitlines()[-1]


def cell_messages(notebook: Path) -> list[tuple[str, str | None]]:
    """``(grade_id, error or None)`` of each graded cell of an autograded notebook, in order."""
    nb = nbformat.read(notebook, as_version=4)
    out = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or "grade_id" not in meta:
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        message = None
        if errors:
            e = errors[0]
            message = e.evalue if e.ename == "AssertionError" else f"{e.ename}: {e.evalue}"
        out.append((meta["grade_id"], message))
    return out


def results(
    api: Any, found: dict[str, list[str]], failed: dict[tuple[str, str], str]
) -> list[Result]:
    """Every student's result on every exercise, from the gradebook and the autograded
    notebooks (an exercise not submitted, or that nbgrader ``failed`` to grade, scores 0)."""
    from nbgrader.api import Gradebook

    autograded = Path(api.coursedir.root) / "autograded"
    rows = []
    with Gradebook(api.coursedir.db_url) as gb:
        for student, assignments in found.items():
            for name in ASSIGNMENTS:
                submitted = name in assignments
                if not submitted or (student, name) in failed:
                    possible = gb.find_assignment(name).max_score
                    error = failed.get((student, name))
                    rows.append(Result(student, name, 0.0, possible, submitted, error=error))
                    continue
                sub = gb.find_submission(name, student)
                grades = {g.name: g for nb in sub.notebooks for g in nb.grades}
                ran = dict(
                    item
                    for path in sorted((autograded / student / name).glob("*.ipynb"))
                    for item in cell_messages(path)
                )
                cells = [CellResult(g, grades[g].score, grades[g].max_score, m)
                         for g, m in ran.items() if g in grades]  # fmt: skip
                cells += [CellResult(g, 0.0, grades[g].max_score, MISSING)
                          for g in grades if g not in ran]  # fmt: skip
                rows.append(Result(student, name, sub.score, sub.max_score, True, cells))
    return rows


def grade(submissions: Path, out: Path = GRADES) -> list[Result]:
    """Grade every submission under ``submissions`` and write the tables and feedback.

    Parameters
    ----------
    submissions : Path
        ``<student>/<assignment>/<assignment>.ipynb``.
    out : Path
        Where ``scores.csv``, ``grades.csv``, ``feedback/`` and ``nbgrader/`` go (each
        replaced; nothing else in ``out`` is touched).

    Returns
    -------
    list of Result
        One per student and exercise, students in name order, exercises in course order.
    """
    if not submissions.is_dir():
        raise FileNotFoundError(f"no submissions folder {submissions}")
    api = new_course_root(out / "nbgrader")
    found = collect(submissions, out / "nbgrader")
    failed: dict[tuple[str, str], str] = {}
    for name in ASSIGNMENTS:
        students = [s for s, done in found.items() if name in done]
        for student in students:
            try:
                succeeded(api.autograde(name, student), f"autograde {name} {student}")
            except NbgraderError as exc:  # this submission scores 0; the others go on
                log = out / "nbgrader" / "logs" / f"{student}-{name}.log"
                log.parent.mkdir(exist_ok=True)
                log.write_text(str(exc))
                failed[student, name] = failure_reason(str(exc))
                print(f"grade: {student}/{name} could not be graded: {failed[student, name]}")
        if any((s, name) not in failed for s in students):
            succeeded(api.generate_feedback(name), f"generate_feedback {name}")
    rows = results(api, found, failed)
    write_scores(rows, out / "scores.csv")
    export_grades(api, out / "grades.csv")
    write_feedback(rows, out / "nbgrader" / "feedback", out / "feedback")
    print(f"grade: {len(found)} students; scores in {out / 'scores.csv'}, "
          f"feedback in {out / 'feedback'}")  # fmt: skip
    return rows


def write_scores(rows: list[Result], path: Path) -> None:
    """The score table: a row per student, a column per exercise, then ``total``."""
    students = list(dict.fromkeys(r.student for r in rows))
    maxima = {r.assignment: r.max_score for r in rows}
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", *ASSIGNMENTS, "total"])
        w.writerow(["points possible", *(_num(maxima.get(a, 0)) for a in ASSIGNMENTS),
                    _num(sum(maxima.values()))])  # fmt: skip
        for s in students:
            mine = {r.assignment: r.score for r in rows if r.student == s}
            w.writerow([s, *(_num(mine[a]) for a in ASSIGNMENTS), _num(sum(mine.values()))])


def export_grades(api: Any, path: Path) -> None:
    """nbgrader's CSV export (``nbgrader export``) of the gradebook."""
    from nbgrader.api import Gradebook
    from nbgrader.plugins import CsvExportPlugin

    with Gradebook(api.coursedir.db_url) as gb:
        CsvExportPlugin(to=str(path)).export(gb)


def write_feedback(rows: list[Result], html_root: Path, out: Path) -> None:
    """``out/<student>.md`` for every student, and nbgrader's HTML next to it."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for student in dict.fromkeys(r.student for r in rows):
        mine = [r for r in rows if r.student == student]
        (out / f"{student}.md").write_text(feedback_markdown(student, mine))
        if (html_root / student).is_dir():
            shutil.copytree(html_root / student, out / student)


def feedback_markdown(student: str, rows: list[Result]) -> str:
    """One student's feedback: the scores, then every failing graded cell's report."""
    total, possible = sum(r.score for r in rows), sum(r.max_score for r in rows)
    lines = [f"# Feedback for {student}", "", f"Total: **{_num(total)} / {_num(possible)}**",
             "", "| exercise | score |", "|---|---:|"]  # fmt: skip
    lines += [f"| {r.assignment} | {_num(r.score)} / {_num(r.max_score)} |" for r in rows]
    for r in rows:
        lines += ["", f"## {r.assignment}: {_num(r.score)} / {_num(r.max_score)}", ""]
        if not r.submitted:
            lines.append("Not submitted.")
            continue
        if r.error is not None:
            lines += ["nbgrader could not grade this submission:", "", "```text", r.error, "```"]
            continue
        lines.append(f"Your executed notebook, with its outputs: `{student}/{r.assignment}/`.")
        for c in r.cells:
            mark = "✓" if c.message is None else "✗"
            lines += ["", f"### {mark} `{c.grade_id}`: {_num(c.score)} / {_num(c.max_score)}"]
            if c.message is not None:
                lines += ["", "```text", c.message.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _num(x: float) -> str:
    """A score without a spurious ``.0``."""
    return f"{float(x):g}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m course.grade",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("submissions", type=Path, help="<student>/<assignment>/<nb>.ipynb")
    parser.add_argument("--out", type=Path, default=GRADES, help="output (course/build/grades)")
    args = parser.parse_args(argv)
    grade(args.submissions, args.out)


if __name__ == "__main__":
    main()
