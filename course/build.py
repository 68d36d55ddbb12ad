"""``make course``: the student release and the teacher's version, generated with nbgrader.

Writes, under ``course/build/`` (or ``--out``; each folder is rebuilt from scratch):

- ``student/assignments/<a>/<a>.ipynb``: the exercises with every solution replaced by
  ``raise NotImplementedError()`` (nbgrader's ``generate_assignment``);
- ``student/notebooks/NN_*.ipynb``: the reading notebooks without the cells tagged
  ``answer`` (nbconvert's ``TagRemovePreprocessor``);
- ``teacher/assignments/…`` and ``teacher/notebooks/…``: the same with the solutions and
  answers;
- ``nbgrader/``: the nbgrader course root the release came from (its ``gradebook.db``
  knows the graded cells); ``nbgrader`` commands can be run in it.

Run ``python -m course.build [--out DIR]`` from the repository root.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import nbformat

from .nbgrader_course import ASSIGNMENTS, BUILD, IGNORED, REPO, SOURCE, new_course_root

#: The reading notebooks, and the tag of their cells that hold worked answers.
NOTEBOOKS = REPO / "notebooks"
ANSWER_TAG = "answer"


def strip_answers(src: Path, dst: Path, tag: str = ANSWER_TAG) -> int:
    """Copy the notebook ``src`` to ``dst`` without its cells tagged ``tag``.

    Returns
    -------
    int
        The number of cells removed.
    """
    from nbconvert.preprocessors import TagRemovePreprocessor

    nb = nbformat.read(src, as_version=4)
    before = len(nb.cells)
    remover = TagRemovePreprocessor(remove_cell_tags={tag}, enabled=True)
    nb, _ = remover.preprocess(nb, {})
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)
    return before - len(nb.cells)


def fresh(path: Path) -> Path:
    """``path`` as an empty folder."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def build(out: Path = BUILD, notebooks: Path = NOTEBOOKS) -> dict[str, Path]:
    """Build the student release and the teacher's version under ``out``.

    Parameters
    ----------
    out : Path
        The build folder; its ``nbgrader/``, ``student/`` and ``teacher/`` are replaced
        (anything else in it, such as ``grades/``, is left alone).
    notebooks : Path
        The reading notebooks (``NN_*.ipynb``).

    Returns
    -------
    dict
        ``{"student": …, "teacher": …, "nbgrader": …}``: the three folders.
    """
    root = out / "nbgrader"
    new_course_root(root)
    student, teacher = fresh(out / "student"), fresh(out / "teacher")
    for name in ASSIGNMENTS:
        shutil.copytree(root / "release" / name, student / "assignments" / name, ignore=IGNORED)
        shutil.copytree(SOURCE / name, teacher / "assignments" / name, ignore=IGNORED)
    readings = sorted(notebooks.glob("[0-9][0-9]_*.ipynb"))
    (teacher / "notebooks").mkdir()
    removed = 0
    for path in readings:
        removed += strip_answers(path, student / "notebooks" / path.name)
        shutil.copy2(path, teacher / "notebooks" / path.name)
    print(
        f"course: {len(ASSIGNMENTS)} exercises, {len(readings)} reading notebooks "
        f"({removed} answer cells left out of the student copies)"
    )
    for what, path in (("student release", student), ("teacher's version", teacher)):
        print(f"  {what:18s} {path}")
    return {"student": student, "teacher": teacher, "nbgrader": root}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m course.build",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=BUILD, help="build folder (course/build)")
    args = parser.parse_args(argv)
    build(args.out)


if __name__ == "__main__":
    main()
