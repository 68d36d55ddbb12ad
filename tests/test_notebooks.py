"""Cheap checks of the notebooks and of the docs configuration.

The notebooks themselves are executed by ``make test`` through nbval, which compares
their stored outputs with a fresh run; the site is built and looked at by
``make docs`` (``docs/check_site.py``). These tests only read files.
"""

import json
import pathlib
import runpy
from urllib.parse import urlparse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DOCS = ROOT / "docs"


def test_there_are_notebooks():
    names = [p.stem for p in NOTEBOOKS]
    assert names, "notebooks/ has no .ipynb"
    for expected in ("00_overview", "01_integral", "02_qfl", "03_dfl", "04_boxes",
                     "05_atss", "06_nms", "07_head", "08_training", "09_common_mistakes"):
        assert expected in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_with_the_outputs_of_one_clean_run(path):
    """Outputs are committed (readers see the plots on a code host), and they come from one
    run top to bottom (``make notebooks``): execution counts 1, 2, 3, … in order. Whether
    they are still what the code prints is nbval's check in ``make test``."""
    nb = json.loads(path.read_text())
    counts = [c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: run `make notebooks`"
    assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_structure(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    markdown = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    assert markdown and markdown[0].lstrip().startswith("# "), "the first cell is the title"
    headings = [line.strip() for text in markdown for line in text.splitlines()
                if line.startswith("#")]
    assert "## Summary" in headings, f"{path.name} has no '## Summary'"
    assert "## Exercises" in headings, f"{path.name} has no '## Exercises'"
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "default_rng(" in code or "manual_seed(" in code, f"{path.name} fixes no seed"


def _conf():
    return runpy.run_path(str(DOCS / "conf.py"))


def test_mathjax_is_local():
    conf = _conf()
    path = conf["mathjax_path"]
    assert not urlparse(path).scheme and not path.startswith("//"), path
    fetch = runpy.run_path(str(DOCS / "fetch_mathjax.py"))
    # the fetch script installs exactly the file conf.py points at, under _static
    assert path == fetch["ENTRY"]
    assert "_static" in conf["html_static_path"]
    assert (fetch["DEST"].parent / path) == fetch["DEST"] / "tex-svg.js"


def test_docs_pages_exist():
    for page in ("index.md", "installation.md", "notation.md", "semantics.md",
                 "benchmarks.md", "api.md"):
        assert (DOCS / page).is_file(), page
    index = (DOCS / "index.md").read_text()
    assert "notebooks/*" in index  # every notebook is rendered, by glob


def test_bench_page_renders_any_json():
    render = _conf()["render_bench"]
    text = render({"machine": "cpu", "results": [{"name": "a", "ms": 1.5}, {"name": "b"}]})
    assert "| name | ms |" in text and "| a | 1.5 |" in text and "| b |  |" in text
    assert "`3`" in render(3)


def test_the_paper_table_names_real_functions_taught_in_its_notebooks():
    """Each equation of the paper that the code computes names functions that exist, and
    the notebook it names uses one of them (so the teachers' table never points nowhere)."""
    import sys

    sys.path.insert(0, str(ROOT))
    from tools.mirror import NotebookIndex
    from tools.paper import EQUATIONS, resolve

    index = NotebookIndex()
    for eq in EQUATIONS:
        assert (ROOT / "notebooks" / f"{eq.notebook}.ipynb").is_file(), eq.notebook
        if not eq.reference:
            continue
        assert callable(resolve(eq.reference)) and callable(resolve(eq.torch)), eq.name
        names = (eq.reference.rpartition(".")[2], eq.torch.rpartition(".")[2], *eq.also)
        assert index.find(*names, notebook=eq.notebook), f"{eq.notebook} never uses {names}"
