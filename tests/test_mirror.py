"""The layout is the map: every public name of ``reference`` has its torch twin in
the module of the same name (``tools/mirror.py`` states the rule), the library never
imports the detector application, and no function is longer than a screen.

A test here fails when a public name has no twin, breaks the naming rule, sits in
the wrong order, or when a docstring does not point at its twin.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import mirror  # noqa: E402

MAX_FUNCTION_LINES = 60


def test_the_naming_rule_is_the_one_spec_states():
    assert mirror.torch_twin("integral_forward") == "integral"
    assert mirror.torch_twin("qfl_forward") == "quality_focal_loss"
    assert mirror.torch_twin("dfl_forward") == "distribution_focal_loss"
    assert mirror.torch_twin("weight_reduce_forward") == "weight_reduce_loss"
    assert mirror.torch_twin("giou_loss_forward") == "giou_loss"
    assert mirror.torch_twin("distance2bbox_forward") == "distance2bbox"
    assert mirror.torch_twin("gfl_loss_forward") == "gfl_loss"
    assert mirror.torch_twin("qfl_backward") is None and mirror.torch_twin("QFLCache") is None
    assert mirror.torch_twin("atss_assign") == "atss_assign"


def test_every_twin_module_is_in_the_reading_order():
    twins = set(mirror.twin_module_names()) - set(mirror.INFRASTRUCTURE_TWINS)
    assert twins == set(mirror.READING_ORDER)


@pytest.mark.parametrize("package", mirror.PACKAGES)
def test_one_sided_modules_say_which_side_they_are_on(package):
    for name in mirror.one_sided_module_names(package):
        module = mirror.library_modules(package)[name]
        first = mirror.first_doc_line(module)
        assert first.startswith(mirror.ONE_SIDED_PREFIX[package]), (
            f"{package}/{name}.py has no twin: its docstring must start with one of "
            f"{mirror.ONE_SIDED_PREFIX[package]}, got {first!r}"
        )


def _defined_order(module, names):
    """``names`` sorted by the line where ``module`` defines them."""
    return sorted(names, key=lambda n: inspect.getsourcelines(getattr(module, n))[1])


@pytest.mark.parametrize("name", mirror.READING_ORDER)
def test_twin_modules_export_twin_names_in_the_same_order(name):
    ref = mirror.library_modules("reference")[name]
    tor = mirror.library_modules("torch_impl")[name]
    ref_all, tor_all = list(ref.__all__), list(tor.__all__)
    for module, names in ((ref, ref_all), (tor, tor_all)):
        assert names == _defined_order(module, names), f"{module.__name__}.__all__ order"
    mapped = [t for t in (mirror.torch_twin(n) for n in ref_all) if t]
    plain = [n for n in tor_all if not mirror.is_torch_extra(n, tor_all)]
    assert plain == mapped, f"torch_impl.{name} should export {mapped} in this order"


@pytest.mark.parametrize("name", mirror.READING_ORDER)
def test_twin_docstrings_point_at_each_other(name):
    ref = mirror.library_modules("reference")[name]
    tor = mirror.library_modules("torch_impl")[name]
    assert f"torch_impl.{name}" in (ref.__doc__ or ""), f"reference.{name} docstring"
    assert f"reference.{name}" in (tor.__doc__ or ""), f"torch_impl.{name} docstring"
    for ref_name in ref.__all__:
        twin = mirror.torch_twin(ref_name)
        if twin is None or ref_name.endswith("_backward"):
            continue
        ref_doc = inspect.getdoc(getattr(ref, ref_name)) or ""
        tor_doc = inspect.getdoc(getattr(tor, twin)) or ""
        tor_refs = (f"torch_impl.{twin}", f"torch_impl.{name}.{twin}")
        ref_refs = (f"reference.{ref_name}", f"reference.{name}.{ref_name}")
        assert any(r in ref_doc for r in tor_refs), f"reference.{ref_name} must name {tor_refs[0]}"
        assert any(r in tor_doc for r in ref_refs), f"torch_impl.{twin} must name {ref_refs[0]}"


def test_package_exports_are_module_exports_and_twins_of_each_other():
    import reference
    import torch_impl

    ref_names = {n for m in mirror.library_modules("reference").values() for n in m.__all__}
    tor_names = {n for m in mirror.library_modules("torch_impl").values() for n in m.__all__}
    assert set(reference.__all__) <= ref_names
    assert set(torch_impl.__all__) <= tor_names | ref_names  # GFLConfig, parse_img_metas: shared
    for ref_name in reference.__all__:
        twin = mirror.torch_twin(ref_name)
        assert twin is None or twin in torch_impl.__all__, f"torch_impl must export {twin}"
    torch_only = {
        n
        for m in mirror.one_sided_module_names("torch_impl")
        for n in mirror.library_modules("torch_impl")[m].__all__
    }
    twins = {mirror.torch_twin(n) for n in reference.__all__}
    for tor_name in torch_impl.__all__:
        assert (
            tor_name in twins
            or tor_name in torch_only
            or mirror.is_torch_extra(tor_name, torch_impl.__all__)
        ), tor_name


def test_every_twin_module_has_its_test_file():
    for name in mirror.READING_ORDER:
        assert (ROOT / "tests" / f"test_{name}.py").is_file(), f"tests/test_{name}.py"


def test_the_library_never_imports_the_detector():
    """Importing every library module loads nothing of ``torch_impl.detector`` (and
    so neither argparse-driven code, PNG rendering nor checkpoints)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "def walk(name):\n"
        "    pkg = importlib.import_module(name)\n"
        "    for m in pkgutil.iter_modules(pkg.__path__, name + '.'):\n"
        "        if m.name not in ('torch_impl.detector', 'torch_impl.__main__'):\n"
        "            walk(m.name) if m.ispkg else importlib.import_module(m.name)\n"
        "walk('reference'); walk('torch_impl')\n"
        "bad = sorted(m for m in sys.modules if m.startswith('torch_impl.detector'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    for package in mirror.PACKAGES:
        for path in (ROOT / package).glob("*.py"):
            if path.name == "__main__.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom | ast.Import):
                    names = (
                        [node.module or ""]
                        if isinstance(node, ast.ImportFrom)
                        else [a.name for a in node.names]
                    )
                    assert not any("detector" in n for n in names), f"{path} imports {names}"


def _long_functions(folder: Path):
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body
                has_doc = (
                    len(body) > 1
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)
                )
                start = body[1].lineno if has_doc else body[0].lineno
                length = node.end_lineno - start + 1
                if length > MAX_FUNCTION_LINES:
                    yield f"{path.relative_to(ROOT)}:{node.name} ({length} lines)"


@pytest.mark.parametrize("folder", ["reference", "torch_impl", "tools", "benchmarks"])
def test_no_function_is_longer_than_a_screen(folder):
    """Functions read top to bottom: at most 60 lines of body (docstring not counted)."""
    assert list(_long_functions(ROOT / folder)) == []
