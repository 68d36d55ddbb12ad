"""The detector is an application of the library: it uses the library only through the
packages' top-level names. (That the library never imports the detector is checked in
``tests/test_mirror.py``.)"""

from __future__ import annotations

import ast
from pathlib import Path

import torch_impl.detector

DETECTOR = Path(torch_impl.detector.__file__).resolve().parent
ROOT = DETECTOR.parents[1]


def _library_imports(path: Path) -> list[str]:
    """The modules of ``reference`` / ``torch_impl`` (outside the detector) ``path`` imports."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            depth = len(path.relative_to(DETECTOR).parts) - 1  # folders below the detector
            if node.level > depth + 1:
                names.append("." * node.level + (node.module or ""))  # reaches out of it
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return [
        n
        for n in names
        if n.startswith((".", "reference", "torch_impl"))
        and not n.startswith("torch_impl.detector")
    ]


def test_the_detector_uses_only_the_library_top_level_names():
    allowed = {"torch_impl", "reference", "reference.validation"}  # + the shared validators
    for path in sorted(DETECTOR.rglob("*.py")):
        bad = [n for n in _library_imports(path) if n not in allowed]
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
