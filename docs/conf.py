"""Sphinx configuration of the GFL from Scratch site (MyST-NB, sphinx-book-theme).

Built by ``make docs``: ``sphinx-build -W -b html docs docs/_build/html``.

At build time (``config-inited``) this file

* copies ``notebooks/*.ipynb`` into ``docs/notebooks/`` (git-ignored), where
  MyST-NB executes and renders them;
* writes one API page per public module of ``reference`` and ``torch_impl``
  into ``docs/api/`` (git-ignored; the detector application's modules into
  ``docs/api/detector/``), so a new module is documented without editing
  anything here;
* renders the map of twins (``tools/mirror.py``) into
  ``docs/_generated/mirror.md``, which ``api.md`` includes, and the
  paper-to-code table (``tools/paper.py``) into ``docs/_generated/paper.md``,
  which ``teaching.md`` includes;
* renders ``bench_results/bench.json`` (written by ``make bench``), if present,
  into ``docs/_generated/bench.md``, which ``benchmarks.md`` includes.

Importing this file has no side effects (``tests/test_notebooks.py`` reads it).
"""

from __future__ import annotations

import json
import pkgutil
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# -- Project -----------------------------------------------------------------
project = "GFL from Scratch"
author = "the GFL from Scratch contributors"
copyright = "the GFL from Scratch contributors, Apache-2.0"  # noqa: A001

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "**.ipynb_checkpoints", "README.md"]

# -- Math: a local MathJax, never a CDN ----------------------------------------
# docs/fetch_mathjax.py installs MathJax 3 from the npm registry into
# docs/_static/mathjax/ (git-ignored); a relative mathjax_path is relative to
# the built site's _static/ directory.
mathjax_path = "mathjax/tex-svg.js"
mathjax3_config = {
    "loader": {"load": []},
    "options": {"enableMenu": False},
}

# -- MyST / MyST-NB ------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_execution_mode = "force"  # every build runs the notebooks top to bottom
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_kernel_rgx_aliases = {".*": "python3"}

# -- API reference (numpydoc-style docstrings through napoleon) ------------------
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True  # "Attributes" as fields: no duplicates of dataclass members
napoleon_use_rtype = False
# a type named in a docstring ("labels", "Sample") may match attributes of several
# classes; Sphinx then links the first and warns. That ambiguity is harmless here.
suppress_warnings = ["ref.python"]

# -- HTML ----------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "GFL from Scratch"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
}
html_last_updated_fmt = None
html_show_sourcelink = False

# -- Packages documented in the API reference -----------------------------------
API_PACKAGES = ("reference", "torch_impl")
NOTEBOOKS = ROOT / "notebooks"
BENCH_JSON = ROOT / "bench_results" / "bench.json"


def _write_if_changed(path: Path, text: str) -> None:
    """Write only on change, so Sphinx's incremental build stays incremental."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def sync_notebooks() -> list[str]:
    """Copy ``notebooks/*.ipynb`` into ``docs/notebooks/``; drop stale copies."""
    dest = DOCS / "notebooks"
    dest.mkdir(exist_ok=True)
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    for name in names:
        src, dst = NOTEBOOKS / name, dest / name
        if not dst.is_file() or dst.read_bytes() != src.read_bytes():
            shutil.copy2(src, dst)
    for old in dest.glob("*.ipynb"):
        if old.name not in names:
            old.unlink()
    return names


def public_modules(package: str) -> list[str]:
    """Dotted names of the modules of ``package`` (recursively).

    Private modules and sub-packages' ``__init__`` (which only re-export names
    defined in their modules, and would document them twice) are left out.
    """
    pkg_dir = ROOT / package
    names = []
    for info in pkgutil.walk_packages([str(pkg_dir)], prefix=package + "."):
        if info.ispkg or any(part.startswith("_") for part in info.name.split(".")):
            continue
        names.append(info.name)
    return sorted(names)


def write_api_pages() -> None:
    """One MyST page per public module: an ``automodule`` with its members.

    The library's modules go to ``api/``; the detector application's
    (``torch_impl.detector.*``) to ``api/detector/``, a section of its own.
    """
    dest = DOCS / "api"
    wanted = set()
    for package in API_PACKAGES:
        for module in public_modules(package):
            sub = "detector/" if module.startswith("torch_impl.detector.") else ""
            wanted.add(f"{sub}{module}.md")
            text = (
                f"# `{module}`\n\n"
                "```{eval-rst}\n"
                f".. automodule:: {module}\n"
                "   :members:\n"
                "```\n"
            )
            _write_if_changed(dest / f"{sub}{module}.md", text)
    for old in list(dest.glob("*.md")) + list(dest.glob("detector/*.md")):
        if str(old.relative_to(dest)) not in wanted:
            old.unlink()


def write_mirror_page() -> None:
    """``_generated/mirror.md``: the map of twins, built from the code by ``tools/mirror.py``."""
    from tools.mirror import markdown_table, mirror_rows

    def link(module: str) -> str:  # a twin's page is reference's; torch-only: torch_impl's
        package = "reference" if (ROOT / "reference" / f"{module}.py").is_file() else "torch_impl"
        return f"api/{package}.{module}.md"

    linked = markdown_table(mirror_rows(), link)
    _write_if_changed(DOCS / "_generated" / "mirror.md", linked)


def _cell(value: object) -> str:
    if value is None or (isinstance(value, (dict, list)) and not value):
        return ""
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def render_bench(data: object) -> str:
    """Markdown for a benchmark JSON of any reasonable shape, numbers untouched."""
    out: list[str] = []

    def walk(obj: object, title: str | None, depth: int) -> None:
        heading = "#" * min(depth, 6)
        if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
            if title:
                out.append(f"{heading} {title}\n")
            out.append(_table(obj) + "\n")
        elif isinstance(obj, dict):
            scalars = {k: v for k, v in obj.items() if not isinstance(v, (dict, list))}
            nested = {k: v for k, v in obj.items() if isinstance(v, (dict, list))}
            if title:
                out.append(f"{heading} {title}\n")
            if scalars:
                out.append(_table([{"key": k, "value": v} for k, v in scalars.items()]) + "\n")
            for key, value in nested.items():
                walk(value, str(key), depth + 1)
        else:
            if title:
                out.append(f"{heading} {title}\n")
            out.append(f"`{_cell(obj)}`\n")

    walk(data, None, 2)
    return "\n".join(out)


def _render_profile(prof: dict) -> str:
    """The ``profile`` section: one row per phase, then the check against a plain step."""
    rows = [{"phase": p["phase"], "median ms": p["median_ms"],
             "share": f"{100 * p['share']:.1f} %"} for p in prof.get("phases", [])]
    rows.append({"phase": "sum of phases", "median ms": prof.get("sum_of_phases_ms"),
                 "share": "100 %"})
    train = prof.get("settings", {}).get("train", {})
    return "\n".join([
        "## Where a demo training step goes\n",
        f"{prof.get('workload')} on {prof.get('device')}, {prof.get('threads')} thread(s), "
        f"batch {train.get('batch_size')} of {train.get('image_size')} px: medians of "
        f"{prof.get('steps')} profiled steps after {prof.get('warmup')} warm-up.\n",
        _table(rows) + "\n",
        f"A plain step (data + `_Run.step`, no timer inside) took {_cell(prof.get('step_ms'))} "
        f"ms (the training step alone {_cell(prof.get('train_step_ms'))} ms); the sum of the "
        f"phases is {_cell(prof.get('sum_over_step'))} of it.\n",
    ])


def _render_against(section: dict) -> str:
    """The ``against`` section: both medians and the median per-pair ratio per workload."""
    cur = section.get("current", {})
    rows = [{"workload": r["workload"], "device": r.get("device"), "threads": r.get("threads"),
             "current ms": r.get("current_median_ms"), "REV ms": r.get("rev_median_ms"),
             "current / REV": r.get("ratio_median"),
             "ratio IQR": None if r.get("ratio_q1") is None
             else f"{r['ratio_q1']:.3f}-{r['ratio_q3']:.3f}",
             "by round": " ".join(f"{x:.2f}" for x in r.get("ratio_rounds") or []),
             "error": r.get("error")} for r in section.get("rows", [])]
    return "\n".join([
        "## Side by side with another revision\n",
        f"REV = `{section.get('rev')}` ({str(section.get('sha'))[:12]}); current = the working "
        f"tree at {str(cur.get('commit'))[:12]}"
        f"{' with uncommitted changes' if cur.get('dirty') else ''}; {section.get('repeat')} "
        f"alternating pairs per workload over {section.get('rounds', 1)} round(s) of fresh "
        "workers. A ratio below 1: the working tree is faster.\n",
        _table(rows) + "\n",
    ])


def render_bench_results(data: dict) -> str | None:
    """Markdown for ``make bench``'s own layout, or None for any other layout.

    The layout (``benchmarks.timing.check_schema``): ``{"environment": {...}, "results":
    [{"group", "impl", "device", "median_ms", ...}, ...], "profile": {...} or null,
    "against": {...} or null}``; the environment first, then one table per ``group``,
    then the profile and the comparison when present.
    """
    if not isinstance(data, dict):
        return None
    results = data.get("results")
    profile, against = data.get("profile"), data.get("against")
    if not (isinstance(results, list)
            and all(isinstance(r, dict) and "group" in r and "impl" in r for r in results)
            and (results or isinstance(profile, dict) or isinstance(against, dict))):
        return None
    out = []
    env = data.get("environment")
    if isinstance(env, dict):
        out.append("## Where they were measured\n")
        out.append(_table([{"key": k, "value": v} for k, v in env.items()]) + "\n")
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(str(r["group"]), []).append(r)
    if groups:
        out.append("## Results\n")
        out.append("Times in milliseconds per call: the median and the minimum over the "
                   "repeats; `target_ms`, where set, is the goal the implementation is held "
                   "to; a `skipped` row was not run on this machine (`note` says why).\n")
    for group, rows in groups.items():
        out.append(f"### {group}\n")
        out.append(_table([{k: v for k, v in r.items() if k != "group"} for r in rows]) + "\n")
    if isinstance(profile, dict):
        out.append(_render_profile(profile))
    if isinstance(against, dict):
        out.append(_render_against(against))
    return "\n".join(out)


def write_paper_page() -> None:
    """``_generated/paper.md``: the paper-to-code table of ``tools/paper.py``."""
    from tools.paper import markdown_table

    _write_if_changed(DOCS / "_generated" / "paper.md", markdown_table())


def write_bench_page() -> None:
    """``_generated/bench.md``: the results of ``make bench``, or a note that there are none."""
    if BENCH_JSON.is_file():
        data = json.loads(BENCH_JSON.read_text())
        text = (
            "These numbers were read from `bench_results/bench.json` when this site was "
            "built. They are whatever `make bench` measured on the machine that ran it, "
            "under the load recorded with them.\n\n"
            + (render_bench_results(data) or render_bench(data))
        )
    else:
        text = (
            "```{note}\n"
            "No benchmark results were available when this site was built: "
            "`bench_results/bench.json` did not exist. Run `make bench`, then `make docs`, "
            "to include them here.\n"
            "```\n"
        )
    _write_if_changed(DOCS / "_generated" / "bench.md", text)


def _skip_namedtuple_fields(app, what, name, obj, skip, options):  # noqa: ARG001
    """Leave out NamedTuple fields' generated "Alias for field number k" entries
    (the class docstrings describe their fields)."""
    doc = getattr(obj, "__doc__", None) or ""
    return True if doc.startswith("Alias for field number") else None


def _on_config_inited(app, config) -> None:  # noqa: ARG001
    sync_notebooks()
    write_api_pages()
    write_mirror_page()
    write_paper_page()
    write_bench_page()


def setup(app):
    app.connect("config-inited", _on_config_inited)
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
    return {"parallel_read_safe": True}
