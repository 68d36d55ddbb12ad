"""The map of the library: every public name of ``reference`` and its torch twin.

The layout rule (``docs/architecture.md``): each module of ``reference/`` that
has a PyTorch counterpart has a twin of the same name in ``torch_impl/``, whose
``__all__`` lists the twins of the reference module's ``__all__`` in the same
order, mapped by :func:`torch_twin`. A module that exists on one side only
says so in the first words of its docstring. ``tests/test_mirror.py`` enforces
all of it, and ``docs/conf.py`` renders :func:`mirror_rows` as the table of
``docs/api.md``; nothing here is typed twice.

Run it to print the table: ``.venv/bin/python tools/mirror.py``.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PACKAGES = ("reference", "torch_impl")
# The twin modules in reading order (the learning path of the notebooks).
READING_ORDER = (
    "integral", "qfl", "dfl", "giou", "reduce", "boxes", "anchors", "atss", "nms",
    "levels", "head_targets", "head_loss", "head_predict",
)  # fmt: skip
# A twin pair whose public names differ by design: each side checks its own array type.
INFRASTRUCTURE_TWINS = ("validation",)
# The three exceptions to "X_forward -> X": the torch losses keep mmdetection's names.
LOSS_NAMES = {
    "qfl": "quality_focal_loss",
    "dfl": "distribution_focal_loss",
    "weight_reduce": "weight_reduce_loss",
}
# Reference names with no torch twin: autograd does what they are for.
BACKWARD_ONLY = {"unflatten_levels": "the inverse of flatten_levels, for the hand backward"}
# How a one-sided module's docstring starts (the words that make its side obvious).
ONE_SIDED_PREFIX = {
    "reference": ("NumPy only:", "Shared by both packages:"),
    "torch_impl": ("torch only:",),
}


def torch_twin(ref_name: str) -> str | None:
    """The torch name of a reference name, or None when autograd replaces it.

    ``X_forward`` → ``X`` (``qfl`` → ``quality_focal_loss``, ``dfl`` →
    ``distribution_focal_loss``, ``weight_reduce`` → ``weight_reduce_loss``);
    ``X_backward`` and ``*Cache`` have no twin; every other name is its own twin.
    """
    if ref_name.endswith("_backward") or ref_name.endswith("Cache"):
        return None
    if ref_name in BACKWARD_ONLY:
        return None
    if ref_name.endswith("_forward"):
        base = ref_name[: -len("_forward")]
        return LOSS_NAMES.get(base, base)
    return ref_name


def is_torch_extra(torch_name: str, torch_all: list[str]) -> bool:
    """A torch-only name allowed beside its twin: ``X_batched``, the batched form of ``X``."""
    return torch_name.endswith("_batched") and torch_name[: -len("_batched")] in torch_all


def library_modules(package: str) -> dict[str, ModuleType]:
    """The library modules of ``package`` by short name (sub-packages such as the
    detector application, ``__init__`` and ``__main__`` left out)."""
    pkg = importlib.import_module(package)
    out = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.ispkg or info.name.startswith("_"):
            continue
        out[info.name] = importlib.import_module(f"{package}.{info.name}")
    return out


def twin_module_names() -> list[str]:
    """Module names present in both packages."""
    ref, tor = (set(library_modules(p)) for p in PACKAGES)
    return sorted(ref & tor)


def one_sided_module_names(package: str) -> list[str]:
    """Module names of ``package`` with no twin in the other package."""
    other = PACKAGES[1 - PACKAGES.index(package)]
    return sorted(set(library_modules(package)) - set(library_modules(other)))


def first_doc_line(module: ModuleType) -> str:
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""


@dataclass(frozen=True)
class Row:
    """One line of the map."""

    reference: str  # the reference name ("" for a torch-only name)
    torch: str  # its torch twin ("" when autograd replaces it)
    module: str  # the module's short name, the same on both sides when twins
    test_file: str  # tests/test_<module>.py, when it exists
    notebook: str  # "NN_name § section" where the name is first used, or ""


def mirror_rows() -> list[Row]:
    """Every public name of the twin modules, then of the one-sided modules (NumPy only or
    shared by both packages, then torch only)."""
    ref_mods, tor_mods = library_modules("reference"), library_modules("torch_impl")
    sections = NotebookIndex()
    rows = []
    for name in READING_ORDER:
        tor_all = list(tor_mods[name].__all__)
        for ref_name in ref_mods[name].__all__:
            twin = torch_twin(ref_name) or ""
            rows.append(Row(ref_name, twin, name, test_file(name), sections.find(ref_name, twin)))
        for extra in (n for n in tor_all if is_torch_extra(n, tor_all)):
            rows.append(Row("", extra, name, test_file(name), sections.find(extra)))
    for name in one_sided_module_names("reference"):  # shared ones are re-exported by torch_impl
        shared = first_doc_line(ref_mods[name]).startswith("Shared by both packages:")
        for ref_name in ref_mods[name].__all__:
            twin = ref_name if shared else ""
            rows.append(Row(ref_name, twin, name, test_file(name), sections.find(ref_name)))
    for name in one_sided_module_names("torch_impl"):
        for tor_name in tor_mods[name].__all__:
            rows.append(Row("", tor_name, name, test_file(name), sections.find(tor_name)))
    return rows


#: Modules tested in another module's file.
TESTED_WITH = {"nms_fast": "nms", "gradcheck": "numerics"}


def test_file(module: str) -> str:
    path = ROOT / "tests" / f"test_{TESTED_WITH.get(module, module)}.py"
    return f"tests/{path.name}" if path.is_file() else ""


class NotebookIndex:
    """Where a name is first used in the notebooks: the notebook and the heading above."""

    def __init__(self) -> None:
        self.cells: list[tuple[str, str, str]] = []  # (notebook, heading, code)
        for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
            heading = ""
            for cell in json.loads(path.read_text())["cells"]:
                text = "".join(cell["source"])
                if cell["cell_type"] == "markdown":
                    titles = [ln for ln in text.splitlines() if ln.startswith("#")]
                    heading = titles[-1].lstrip("#").strip() if titles else heading
                elif cell["cell_type"] == "code":
                    self.cells.append((path.stem, heading, text))

    def find(self, *names: str, notebook: str | None = None) -> str:
        """``"NN_name § heading"`` of the first code cell using one of ``names``
        (only in ``notebook`` when given), or ""."""
        for name in (n for n in names if n):
            word = re.compile(rf"\b{re.escape(name)}\b")
            for stem, heading, code in self.cells:
                if (notebook is None or stem == notebook) and word.search(code):
                    return f"{stem} § {heading}" if heading else stem
        return ""


#: What the torch column says for a NumPy-only module's names.
NUMPY_ONLY_NOTE = {
    "gradcheck": "— (autograd checks itself)",
    "numerics": "— (torch's built-ins)",
    "nms_fast": "— (NumPy only: the fast path of nms)",
}


def markdown_table(rows: list[Row], link: Callable[[str], str] | None = None) -> str:
    """The map as a Markdown table (what ``docs/api.md`` includes).

    ``link(module)``, when given, is the URL that each module's name links to.
    """
    lines = [
        "| reference | torch_impl | module | tests | notebook § section |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ref = f"`{r.reference}`" if r.reference else "—"
        tor = f"`{r.torch}`" if r.torch else NUMPY_ONLY_NOTE.get(r.module, "— (autograd)")
        module = f"[`{r.module}`]({link(r.module)})" if link else f"`{r.module}`"
        where = f"{r.test_file or '—'} | {r.notebook or '—'}"
        lines.append(f"| {ref} | {tor} | {module} | {where} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(mirror_rows()), end="")
