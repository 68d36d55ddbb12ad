"""The course (``course/``, ``make course``, ``make grade``): every exercise's solution passes
its graded cells; every generated student notebook runs, and each graded cell fails with the
check's report (a stub raising ``NotImplementedError`` is reported, not a crash); the reading
notebooks lose their ``answer`` cells in the student copies only; grading a folder of
submissions gives the right score table and feedback that names the smallest failing input.

The notebooks are executed for real (a kernel each, as nbgrader does): about a minute in all.
"""

from __future__ import annotations

import csv
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course import build as course_build  # noqa: E402
from course import grade as course_grade  # noqa: E402
from course.nbgrader_course import ASSIGNMENTS, SOURCE  # noqa: E402

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def graded_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and nbgrader_meta(c).get("grade")]


def solution_cells(nb) -> list:
    return [c for c in nb.cells if nbgrader_meta(c).get("solution")]


def errors(cell) -> list:
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def piece_of(cell) -> str:
    """The piece a graded cell checks: ``check("integral", …)`` → ``"integral"``."""
    found = re.findall(r"""check\(["'](\w+)["']""", cell.source)
    assert len(found) == 1, cell.source
    return found[0]


def source_notebook(name: str) -> Path:
    return SOURCE / name / f"{name}.ipynb"


def execute(path: Path, workdir: Path):
    """Run every cell of ``path`` in a fresh kernel in ``workdir``; errors stay in the outputs."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(workdir)}},
    ).execute()  # fmt: skip
    return nb


# --- the source notebooks -----------------------------------------------------------------


def test_the_exercises_are_the_seven_the_course_names():
    assert ASSIGNMENTS == ("integral", "qfl", "dfl", "boxes_giou", "atss", "nms", "head_backward")
    on_disk = {p.name for p in SOURCE.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert on_disk == set(ASSIGNMENTS)
    for name in ASSIGNMENTS:
        assert source_notebook(name).is_file(), name


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_source_notebook_is_well_formed(name):
    nb = nbformat.read(source_notebook(name), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:  # committed without outputs
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert nb.cells[0].source.startswith("# ") and "**Learning objectives.**" in markdown
    assert "$$" in markdown, "a recap of the math in LaTeX"
    paragraphs = re.split(r"\n\s*\n", markdown)
    assert not [p for p in paragraphs if p.startswith("    ")], "an indented paragraph is code"
    graded = graded_cells(nb)
    assert graded and all(nbgrader_meta(c)["points"] > 0 for c in graded)
    assert all(nbgrader_meta(c)["locked"] for c in graded)
    for cell in graded:
        assert ".raise_if_failed()" in cell.source
    ids = [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c)]
    assert len(ids) == len(set(ids)), "grade ids must be unique"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solutions_sit_inside_functions_and_are_the_students_own(name):
    """A stub must replace a function's body (a top-level ``raise`` would crash the notebook
    before its graded cells), and a solution must not call the reference piece it is graded
    against (the grade would then mean nothing)."""
    nb = nbformat.read(source_notebook(name), as_version=4)
    pending: list = []
    for cell in nb.cells:
        if nbgrader_meta(cell).get("solution"):
            lines = cell.source.splitlines()
            begins = [ln for ln in lines if ln.strip() == BEGIN]
            assert begins and len(begins) == sum(ln.strip() == END for ln in lines)
            assert all(ln.startswith("    ") for ln in begins), "a solution region is a body"
            pending.append(cell)
        elif cell in graded_cells(nb):
            piece = piece_of(cell)
            forbidden = re.compile(rf"\b(R|reference)\.{piece}(_forward|_backward)?\b"
                                   rf"|import .*\b{piece}(_forward|_backward)?\b")  # fmt: skip
            for sol in pending:
                assert not forbidden.search(sol.source), (name, piece)
            pending = []
    assert not pending, "every solution is followed by a graded cell"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_every_solution_passes_its_graded_cells(name, tmp_path):
    nb = execute(source_notebook(name), tmp_path)
    for i, cell in enumerate(nb.cells):
        assert not errors(cell), f"{name}: cell {i} raised:\n{errors(cell)[0]['evalue']}"
    for cell in graded_cells(nb):
        printed = "".join(o.get("text", "") for o in cell.outputs)
        holds = rf"check\('{piece_of(cell)}'\): all \d+ propert(y holds|ies hold)"
        assert re.search(holds, printed)


# --- make course ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``course.build.build`` into a temporary folder, with a reading notebook that has
    ``answer`` cells beside the project's own."""
    readings = tmp_path_factory.mktemp("notebooks")
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        shutil.copy2(path, readings / path.name)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Exercises\n\n1. Why?"),
        nbformat.v4.new_markdown_cell("Because.", metadata={"tags": ["answer"]}),
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["answer", "other"]}),
        nbformat.v4.new_code_cell("y = 2", metadata={"tags": ["other"]}),
    ]
    nbformat.write(nb, readings / "99_answers.ipynb")
    out = tmp_path_factory.mktemp("build")
    return course_build.build(out, notebooks=readings), readings


def test_the_build_has_a_student_and_a_teacher_version(built):
    paths, readings = built
    for name in ASSIGNMENTS:
        teacher = paths["teacher"] / "assignments" / name / f"{name}.ipynb"
        assert teacher.read_bytes() == source_notebook(name).read_bytes()
        student = nbformat.read(paths["student"] / "assignments" / name / f"{name}.ipynb", 4)
        source = nbformat.read(source_notebook(name), 4)
        assert len(student.cells) == len(source.cells)
        for s_cell, t_cell in zip(student.cells, source.cells):
            if nbgrader_meta(t_cell).get("solution"):
                assert BEGIN not in s_cell.source and END not in s_cell.source
                assert s_cell.source.count("raise NotImplementedError()") == t_cell.source.count(
                    BEGIN
                )
                defs = [ln for ln in t_cell.source.splitlines() if ln.startswith("def ")]
                assert defs == [ln for ln in s_cell.source.splitlines() if ln.startswith("def ")]
            else:
                assert s_cell.source == t_cell.source


def test_reading_notebooks_lose_their_answers_in_the_student_copy_only(built):
    paths, readings = built
    names = sorted(p.name for p in readings.glob("*.ipynb"))
    assert sorted(p.name for p in (paths["student"] / "notebooks").glob("*.ipynb")) == names
    for name in names:
        teacher = paths["teacher"] / "notebooks" / name
        assert teacher.read_bytes() == (readings / name).read_bytes()
        student = nbformat.read(paths["student"] / "notebooks" / name, as_version=4)
        original = nbformat.read(readings / name, as_version=4)
        kept = [c for c in original.cells if "answer" not in c.metadata.get("tags", [])]
        assert [c.source for c in student.cells] == [c.source for c in kept]
    demo = nbformat.read(paths["student"] / "notebooks" / "99_answers.ipynb", as_version=4)
    assert [c.source for c in demo.cells] == ["# Exercises\n\n1. Why?", "y = 2"]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_every_student_notebook_runs_and_fails_with_the_report(built, name, tmp_path):
    paths, _ = built
    nb = execute(paths["student"] / "assignments" / name / f"{name}.ipynb", tmp_path)
    graded = graded_cells(nb)
    for i, cell in enumerate(nb.cells):
        if cell not in graded:
            assert not errors(cell), f"{name}: ungraded cell {i} raised {errors(cell)}"
    for cell in graded:
        (err,) = errors(cell)
        assert err["ename"] == "AssertionError", err  # the report, not a harness crash
        report = err["evalue"]
        assert report.startswith(f"check('{piece_of(cell)}'): ")
        assert "raised NotImplementedError" in report and "smallest failing input" in report


# --- make grade ----------------------------------------------------------------------------


def max_points(name: str) -> float:
    nb = nbformat.read(source_notebook(name), as_version=4)
    return sum(nbgrader_meta(c)["points"] for c in graded_cells(nb))


def submit(folder: Path, student: str, name: str, edit=None) -> None:
    """A submission: the solution, with its markers removed and ``edit`` applied."""
    nb = nbformat.read(source_notebook(name), as_version=4)
    for cell in solution_cells(nb):
        lines = [ln for ln in cell.source.splitlines() if ln.strip() not in (BEGIN, END)]
        cell.source = "\n".join(lines)
        if edit is not None:
            cell.source = edit(cell.source)
    (folder / student / name).mkdir(parents=True)
    nbformat.write(nb, folder / student / name / f"{name}.ipynb")


def wrong_integral_backward(source: str) -> str:
    """The deliberate mistake: the Integral's gradient with its sign flipped."""
    right = "(bins - out[..., None])"
    assert right in source
    return source.replace(right, "(out[..., None] - bins)")


def test_grading_gives_the_score_table_and_feedback_with_the_smallest_input(tmp_path):
    subs = tmp_path / "submissions"
    submit(subs, "alice", "integral")
    submit(subs, "alice", "nms")
    submit(subs, "bob", "integral", edit=wrong_integral_backward)
    submit(subs, "bob", "nms")
    out = tmp_path / "grades"
    rows = course_grade.grade(subs, out)

    scores = {(r.student, r.assignment): r.score for r in rows}
    assert scores["alice", "integral"] == max_points("integral")
    assert scores["alice", "nms"] == scores["bob", "nms"] == max_points("nms")
    assert scores["bob", "integral"] == 0
    assert all(scores[s, a] == 0 for s in ("alice", "bob") for a in ASSIGNMENTS
               if a not in ("integral", "nms"))  # fmt: skip

    with (out / "scores.csv").open() as f:
        table = list(csv.reader(f))
    assert table[0] == ["student", *ASSIGNMENTS, "total"]
    possible = [max_points(a) for a in ASSIGNMENTS]
    assert table[1] == ["points possible", *(f"{p:g}" for p in possible), f"{sum(possible):g}"]
    by_student = {row[0]: row[1:] for row in table[2:]}
    assert set(by_student) == {"alice", "bob"}
    total_alice = max_points("integral") + max_points("nms")
    assert by_student["alice"][-1] == f"{total_alice:g}"
    assert by_student["bob"][ASSIGNMENTS.index("integral")] == "0"
    assert by_student["bob"][-1] == f"{max_points('nms'):g}"
    assert (out / "grades.csv").read_text().startswith("assignment,duedate,timestamp,student_id")

    bob = (out / "feedback" / "bob.md").read_text()
    assert f"✗ `check_integral`: 0 / {max_points('integral'):g}" in bob
    assert "backward matches finite differences of your forward" in bob
    assert "smallest failing input" in bob and "pred = [[" in bob  # the shrunk input itself
    assert "✓ `check_nms`" in bob and "Not submitted." in bob
    alice = (out / "feedback" / "alice.md").read_text()
    assert "✗" not in alice and f"Total: **{total_alice:g} / {sum(possible):g}**" in alice
    html = out / "feedback" / "bob" / "integral" / "integral.html"
    assert "smallest failing input" in html.read_text()
