"""What :mod:`course.build` and :mod:`course.grade` share: the assignments, and an nbgrader
course root made fresh from ``course/source`` with every assignment generated.

nbgrader is driven in-process through its Python API (:class:`nbgrader.apps.NbGraderAPI`):
one interpreter for the whole build or grading run instead of one per ``nbgrader`` command.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

COURSE = Path(__file__).resolve().parent
REPO = COURSE.parent
SOURCE = COURSE / "source"
BUILD = COURSE / "build"
CONFIG = COURSE / "nbgrader_config.py"

#: The exercises, in the order of the course (one notebook each, named like its folder).
ASSIGNMENTS: tuple[str, ...] = (
    "integral", "qfl", "dfl", "boxes_giou", "atss", "nms", "head_backward",
)  # fmt: skip


#: Leftovers of editing and running notebooks, never copied.
IGNORED = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", ".hypothesis")


class NbgraderError(RuntimeError):
    """An nbgrader step failed; the message holds nbgrader's log."""


def _quiet_nbgrader() -> None:
    # nbgrader runs ``alembic`` (its database migrations) as a subprocess: the venv's
    # bin/ must be on PATH even when the venv is not activated.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    try:  # nbgrader 0.9 with SQLAlchemy 2 warns about its own session use; harmless
        from sqlalchemy.exc import SAWarning

        warnings.filterwarnings("ignore", category=SAWarning)
    except ImportError:  # pragma: no cover - SQLAlchemy comes with nbgrader
        pass


def nbgrader_api(root: Path) -> Any:
    """An :class:`~nbgrader.apps.NbGraderAPI` on the course root ``root`` (which holds
    ``nbgrader_config.py``)."""
    _quiet_nbgrader()
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    return NbGraderAPI(config=config)


def succeeded(result: dict, what: str) -> None:
    """Raise :class:`NbgraderError` with nbgrader's log when an API call did not succeed."""
    if not result.get("success"):
        detail = "\n".join(filter(None, (result.get("log"), result.get("error"))))
        raise NbgraderError(f"nbgrader {what} failed:\n{detail or '(no log)'}")


def new_course_root(root: Path) -> Any:
    """Make ``root`` a fresh nbgrader course root and generate every assignment.

    ``root`` is deleted first. It receives ``nbgrader_config.py`` and ``source/`` (copies of
    this folder's), then nbgrader writes ``release/`` (the student versions) and
    ``gradebook.db`` (the assignments and their graded cells, which autograding needs).

    Returns
    -------
    NbGraderAPI
        The API on ``root``.
    """
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copy2(CONFIG, root / "nbgrader_config.py")
    for name in ASSIGNMENTS:
        shutil.copytree(SOURCE / name, root / "source" / name, ignore=IGNORED)
    api = nbgrader_api(root)
    for name in ASSIGNMENTS:
        succeeded(api.generate_assignment(name), f"generate_assignment {name}")
    return api
