"""The conformance kit: adapters (``reference.testing.adapter``), the ``gfl-conformance``
command (``reference.testing.conformance``) and the pytest plugin
(``reference.testing.pytest_plugin``).

Fast by design: few pieces, three examples per property, planted bugs that every
example exposes.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import reference as R
import torch_impl as T
from reference.testing import PIECES
from reference.testing.adapter import NAMES, AdapterError, find_pieces, load_adapter
from reference.testing.conformance import SCHEMA_VERSION, main, property_names, run
from reference.testing.pair_pieces import PAIR_SPECS

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.mirror import torch_twin  # noqa: E402

pytest_plugins = ["pytester"]

# --- planted bugs -----------------------------------------------------------------------

#: Reference naming: the Integral over bins 1..n+1 instead of 0..n (its gradient is right).
INTEGRAL_BUG = """
import reference as R


def integral_forward(pred, reg_max=16):
    out, cache = R.integral_forward(pred, reg_max)
    return out + 1.0, cache  # bins 1..n+1


integral_backward = R.integral_backward
"""
INTEGRAL_BUG_FAILS = {
    "forward matches the reference",
    "each expected distance lies in [0, reg_max]",
    "matches mmdetection's golden outputs",
}

#: Torch naming, mmdetection's signature: QFL whose modulating factor lacks its abs.
QFL_BUG = '''
import torch
import torch.nn.functional as F


def quality_focal_loss(pred, label, score, weight=None, beta=2.0, reduction="mean",
                       avg_factor=None):
    """mmdetection's signature; per-element only with reduction="none"."""
    sigma = pred.sigmoid()
    zeros = torch.zeros_like(pred)
    loss = F.binary_cross_entropy_with_logits(pred, zeros, reduction="none") * sigma.pow(beta)
    pos = ((label >= 0) & (label < pred.shape[1])).nonzero().squeeze(1)
    cls = label[pos].long()
    factor = (score[pos] - sigma[pos, cls]).pow(beta)  # the bug: (y - sigma), not |y - sigma|
    loss = loss.clone()
    loss[pos, cls] = F.binary_cross_entropy_with_logits(
        pred[pos, cls], score[pos], reduction="none") * factor
    loss = loss.sum(dim=1)
    return loss if reduction == "none" else loss.mean()
'''
QFL_BUG_FAILS = {"forward matches the reference", "backward matches the reference backward"}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """``tmp_path`` as the current directory; ``sys.path`` and the modules imported from
    it are restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if str(tmp_path) in str(getattr(sys.modules[name], "__file__", "") or ""):
            del sys.modules[name]


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


# --- the name table and find_pieces -----------------------------------------------------


def test_the_name_table_is_the_mirror_s():
    """Both namings of every piece: the reference's names map to the torch ones by
    ``tools/mirror.torch_twin``, and both packages define them."""
    assert tuple(NAMES) == PIECES
    assert [p for p in PIECES if NAMES[p].is_pair] == list(PAIR_SPECS)
    for piece, names in NAMES.items():
        if names.is_pair:
            assert (names.forward, names.backward) == (f"{piece}_forward", f"{piece}_backward")
            assert torch_twin(names.forward) == names.torch, piece
            assert torch_twin(names.backward) is None
            assert callable(getattr(R, names.forward)) and callable(getattr(R, names.backward))
        else:
            assert torch_twin(names.fn) == names.fn == names.torch == piece
            assert callable(getattr(R, names.fn))
        assert callable(getattr(T, names.torch)), names.torch


def test_reference_is_an_adapter_with_every_piece():
    found, missing = find_pieces(R)
    assert missing == [] and list(found) == list(PIECES)
    assert found["qfl"] == {"forward": R.qfl_forward, "backward": R.qfl_backward}
    assert found["gfl_loss"] == {"forward": R.gfl_loss_forward, "backward": R.gfl_loss_backward}
    assert found["nms"] == {"fn": R.nms}


def test_torch_impl_is_an_adapter_with_every_piece():
    found, missing = find_pieces(T)
    assert missing == [] and list(found) == list(PIECES)
    assert all(set(kw) == ({"forward"} if NAMES[p].is_pair else {"fn"}) for p, kw in found.items())
    # called as they are, tensors detected from the annotation
    assert found["integral"] == {"forward": T.integral}
    assert found["nms"] == {"fn": T.nms} and found["gfl_loss"] == {"forward": T.gfl_loss}
    # wrapped: mmdetection's loss signatures, and tensors after a first non-tensor argument
    assert found["qfl"]["forward"].__gfl_adapted__ is T.quality_focal_loss
    assert found["grid_anchors"]["fn"].__gfl_adapted__ is T.grid_anchors
    assert found["gfl_targets"]["fn"].__gfl_adapted__ is T.gfl_targets
    pred, score = torch.randn(5, 3, dtype=torch.float64), torch.rand(5, dtype=torch.float64)
    label = torch.tensor([0, 2, 3, 1, 3])
    expected = T.quality_focal_loss(pred, label, score, beta=1.5, reduction="none")
    assert torch.equal(found["qfl"]["forward"](pred, label, score, 1.5), expected)
    assert found["grid_anchors"]["fn"]([(2, 3)], [8], 4)[0].dtype == torch.float64


def test_find_pieces_on_a_tiny_adapter_module(workdir):
    write(workdir, "tiny_adapter.py", """
        import reference as R
        from torch_impl import quality_focal_loss

        def integral_forward(pred, reg_max=16):  # NumPy, no backward
            return R.integral_forward(pred, reg_max)

        giou_loss_backward = R.giou_loss_backward  # a backward alone is no piece
        dfl = "not a function"
        nms = None
    """)  # fmt: skip
    adapter = load_adapter("tiny_adapter")
    found, missing = find_pieces(adapter)
    assert list(found) == ["integral", "qfl"]
    assert found["integral"] == {"forward": adapter.integral_forward}
    assert found["qfl"]["forward"].__gfl_adapted__ is T.quality_focal_loss
    assert missing == [p for p in PIECES if p not in ("integral", "qfl")]


def test_the_complete_naming_wins():
    both = {"qfl_forward": R.qfl_forward, "qfl_backward": R.qfl_backward,
            "quality_focal_loss": T.quality_focal_loss}  # fmt: skip
    assert find_pieces(both)[0]["qfl"] == {"forward": R.qfl_forward, "backward": R.qfl_backward}
    without_backward = {"qfl_forward": R.qfl_forward, "quality_focal_loss": T.quality_focal_loss}
    torch_one = find_pieces(without_backward)[0]["qfl"]["forward"]
    assert torch_one.__gfl_adapted__ is T.quality_focal_loss
    assert find_pieces({"qfl_forward": R.qfl_forward})[0]["qfl"] == {"forward": R.qfl_forward}


def test_a_torch_port_gets_only_the_keywords_it_accepts():
    calls = []

    def quality_focal_loss(pred, label, score, beta):  # a per-element port: no reduction
        calls.append(beta)
        return pred

    forward = find_pieces({"quality_focal_loss": quality_focal_loss})[0]["qfl"]["forward"]
    forward("p", "l", "s", 3.0)
    assert calls == [3.0]


# --- load_adapter -----------------------------------------------------------------------

FORMS_MODULE = """
    from types import SimpleNamespace

    import reference as R

    nms = R.nms
    GFL = SimpleNamespace(
        integral_forward=R.integral_forward, integral_backward=R.integral_backward
    )


    class Holder:
        ADAPTER = {"bbox_overlaps": R.bbox_overlaps}
"""


@pytest.mark.parametrize(
    ("spec", "pieces"),
    [
        ("reference", list(PIECES)),
        ("forms_adapter", ["nms"]),
        ("forms_adapter:GFL", ["integral"]),
        ("forms_adapter:Holder.ADAPTER", ["bbox_overlaps"]),
        ("forms_adapter.py", ["nms"]),
        ("./forms_adapter.py:GFL", ["integral"]),
        ("sub/dir/forms_adapter.py:Holder.ADAPTER", ["bbox_overlaps"]),
    ],
)
def test_every_form_of_adapter_spec_loads(workdir, spec, pieces):
    write(workdir, "forms_adapter.py", FORMS_MODULE)
    write(workdir, "sub/dir/forms_adapter.py", FORMS_MODULE)
    assert list(find_pieces(load_adapter(spec))[0]) == pieces


def test_an_absolute_file_path_loads(workdir):
    path = write(workdir, "forms_adapter.py", FORMS_MODULE)
    assert list(find_pieces(load_adapter(f"{path}:GFL"))[0]) == ["integral"]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_such_adapter_xyz", "no module named 'no_such_adapter_xyz'"),
        ("no_such_adapter_xyz.py", "does not exist"),
        ("sub", "exposes none of the pieces"),  # a directory imports as a namespace package
        ("sub/", "is not a .py file"),
        ("good_adapter:MISSING", "has no attribute 'MISSING'"),
        ("good_adapter.py:GFL.nope", "has no attribute 'GFL.nope'"),
        ("empty_adapter", "exposes none of the pieces"),
        ("raising_adapter.py", "failed: RuntimeError: half-written port"),
        ("syntax_adapter.py", "SyntaxError"),
        ("missing_dep_adapter", "ModuleNotFoundError: No module named 'no_such_dependency'"),
    ],
)
def test_an_adapter_that_cannot_be_loaded_says_why_in_one_line(workdir, spec, words):
    (workdir / "sub").mkdir()
    write(workdir, "good_adapter.py", FORMS_MODULE)
    write(workdir, "empty_adapter.py", "x = 1\n")
    write(workdir, "raising_adapter.py", "raise RuntimeError('half-written\\nport')\n")
    write(workdir, "syntax_adapter.py", "def integral_forward(:\n")
    write(workdir, "missing_dep_adapter.py", "import no_such_dependency\n")
    with pytest.raises(AdapterError) as caught:
        load_adapter(spec)
    message = str(caught.value)
    assert words in message and "\n" not in message, message
    assert isinstance(caught.value, ValueError)


# --- the command line ---------------------------------------------------------------------


def test_the_cli_passes_torch_impl(tmp_path, capsys):
    json_path, xml_path = tmp_path / "r.json", tmp_path / "r.xml"
    argv = ["torch_impl", "--pieces", "qfl,integral", "--max-examples", "3", "-q",
            "--json", str(json_path), "--junit-xml", str(xml_path)]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err == ""
    names = {p: property_names(p) for p in ("integral", "qfl")}  # the order they run in
    n = sum(map(len, names.values()))
    lines = out.splitlines()
    assert lines[0] == "gfl-conformance: torch_impl against mmdet2 (examples: 3)"
    rows = [ln.split() for ln in lines if ln.startswith(("integral ", "qfl "))]
    assert len(rows) == n and all(r[-1] == "pass" for r in rows)
    assert [r[0] for r in rows] == ["integral"] * len(names["integral"]) + ["qfl"] * len(
        names["qfl"]
    )
    assert "skipped (" not in out and lines[-1].startswith(f"passed: all {n} properties hold")

    doc = json.loads(json_path.read_text())
    assert (doc["schema"], doc["version"], doc["adapter"]) == ("gfl-conformance", SCHEMA_VERSION,
                                                              "torch_impl")  # fmt: skip
    assert doc["dialect"] == "mmdet2" and doc["max_examples"] == 3 and doc["passed"] is True
    assert doc["counts"] == {"properties": n, "pass": n, "fail": 0, "unjudged": 0,
                             "pieces_checked": 2, "pieces_skipped": 0}  # fmt: skip
    assert [p["piece"] for p in doc["pieces"]] == ["integral", "qfl"]
    assert [(r["piece"], r["property"]) for r in doc["results"]] == [
        (p, name) for p in ("integral", "qfl") for name in names[p]
    ]
    for r in doc["results"]:
        assert set(r) == {"piece", "property", "status", "message", "inputs", "expected", "got"}
        assert r["status"] == "pass" and r["message"] is r["inputs"] is r["got"] is None
    assert doc["skipped"] == [] and doc["identification"] is None

    root = ET.parse(xml_path).getroot()
    assert root.tag == "testsuites" and (root.get("tests"), root.get("failures")) == (str(n), "0")
    assert [s.get("name") for s in root] == ["gfl-conformance.integral", "gfl-conformance.qfl"]
    assert len(root.findall("./testsuite/testcase")) == n and not root.findall(".//failure")


def test_the_cli_fails_a_planted_bug_and_says_where(workdir, capsys):
    write(workdir, "bug_adapter.py", INTEGRAL_BUG)
    argv = ["bug_adapter.py", "--max-examples", "3", "--json", "-", "--junit-xml", "r.xml"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    doc = json.loads(out)  # '-': stdout is the JSON alone, the table goes to stderr
    assert doc["passed"] is False
    failed = {r["property"] for r in doc["results"] if r["status"] == "fail"}
    assert failed == INTEGRAL_BUG_FAILS
    forward = next(r for r in doc["results"] if r["property"] == "forward matches the reference")
    assert forward["inputs"]["reg_max"] == "1" and forward["inputs"]["pred"].startswith("[[")
    assert forward["expected"].startswith("[[0.5") and forward["got"].startswith("[[1.5")
    assert doc["skipped"] == [{"piece": p, "reason": "not in the adapter"} for p in PIECES[1:]]

    assert "integral  forward matches the reference" in err and "FAIL" in err
    assert "✗ forward matches the reference" in err and "smallest failing input:" in err
    assert "    reg_max = 1" in err and "expected: [[0.5, 0.5, 0.5, 0.5]]" in err
    assert "skipped (not in the adapter): qfl, dfl," in err
    assert err.rstrip().splitlines()[-1].startswith(f"FAILED: 3 of {len(doc['results'])}")

    root = ET.parse(workdir / "r.xml").getroot()
    assert root.get("failures") == "3" and root.get("skipped") == str(len(PIECES) - 1)
    failures = root.findall("./testsuite/testcase/failure")
    assert len(failures) == 3
    assert {f.get("message").split(":")[0] for f in failures} == INTEGRAL_BUG_FAILS
    assert all("smallest failing input:" in f.text for f in failures)


def test_the_cli_checks_in_another_dialect(capsys):
    """torch_impl is mmdetection's: ultralytics passes the number of bins as reg_max, and
    defines no QFL."""
    assert main(["torch_impl", "--dialect", "ultralytics", "--pieces", "integral,qfl",
                 "--max-examples", "3", "-q"]) == 1  # fmt: skip
    out = capsys.readouterr().out
    assert "against ultralytics" in out and "integral  forward matches the reference" in out
    assert "skipped (not defined by dialect ultralytics): qfl" in out


def test_identify_says_which_dialects_agree_on_every_piece(capsys):
    """The Integral tells ultralytics apart (it passes the number of bins); GFocal and
    ultralytics define no GIoU loss, so GFocal still agrees on every piece it defines."""
    argv = ["reference", "--pieces", "integral,giou_loss", "--max-examples", "3", "--identify",
            "-q", "--json", "-"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    ident = json.loads(out)["identification"]
    integral, giou = ident["pieces"]["integral"], ident["pieces"]["giou_loss"]
    assert integral["agrees"] == ["mmdet2", "mmdet3", "gfocal", "nanodet"]
    assert list(integral["differs"]) == ["ultralytics"]
    assert integral["differs"]["ultralytics"]["inputs"]["reg_max"] == "1"
    assert giou["undefined"] == ["gfocal", "ultralytics"] and giou["differs"] == {}
    assert ident["agree_on_every_piece"] == ["mmdet2", "mmdet3", "nanodet", "gfocal"]
    assert "identify('integral'): your code agrees with mmdet2, mmdet3, gfocal, nanodet." in err
    assert (
        "Dialects agreeing on every identified piece they define (pieces defined): "
        "mmdet2 (2 of 2), mmdet3 (2 of 2), nanodet (2 of 2), gfocal (1 of 2)"
    ) in err


def test_run_takes_an_adapter_object():
    result = run(SimpleNamespace(nms=R.nms), max_examples=3)
    assert list(result.reports) == ["nms"] and result.passed
    assert result.skipped == {p: "not in the adapter" for p in PIECES if p != "nms"}


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["torch_impl", "--dialect", "mmdet9"], "unknown dialect 'mmdet9'"),
        (["torch_impl", "--pieces", "qfl,qlf"], "unknown piece qlf"),
        (["torch_impl", "--pieces", ","], "no piece given"),
        (["no_such_adapter_xyz"], "no module named 'no_such_adapter_xyz'"),
        (["x1_adapter.py"], "does not exist"),
        (["torch_impl", "--max-examples", "0"], "must be at least 1"),
        (["torch_impl", "--pieces", "qfl", "--dialect", "ultralytics"], "nothing to check"),
        (["torch_impl", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "the following arguments are required: ADAPTER"),
    ],
)
def test_a_usage_error_is_one_line_and_status_2(argv, words, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and words in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("gfl-conformance: error:") and "Traceback" not in err


def test_the_console_script_and_python_m(workdir):
    write(workdir, "bug_adapter.py", INTEGRAL_BUG)
    script = Path(sys.executable).with_name("gfl-conformance")
    if not script.exists():
        pytest.skip("gfl-conformance is not installed in this environment (pip install -e .)")
    done = subprocess.run([str(script), "bug_adapter.py", "--max-examples", "3", "-q"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1 and "✗ forward matches the reference" in done.stdout
    done = subprocess.run([sys.executable, "-m", "reference.testing.conformance", "nope.py"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"gfl-conformance: error: adapter 'nope.py': {workdir / 'nope.py'} does not exist"
    ]


# --- the pytest plugin --------------------------------------------------------------------


def plugin_args() -> list[str]:
    """Load the plugin explicitly where the entry point is not installed (a fresh checkout)."""
    installed = any(e.name == "gfl_conformance"
                    for e in importlib.metadata.entry_points(group="pytest11"))  # fmt: skip
    return ["-p", "no:cacheprovider"] + (
        [] if installed else ["-p", "reference.testing.pytest_plugin"]
    )


def test_the_plugin_adds_nothing_without_the_option(pytester):
    assert pytester.runpytest(*plugin_args()).ret == pytest.ExitCode.NO_TESTS_COLLECTED
    pytester.makepyfile(test_mine="def test_one():\n    pass\n")
    result = pytester.runpytest(*plugin_args(), "--collect-only", "-q")
    assert "gfl-conformance" not in result.stdout.str()
    pytester.runpytest(*plugin_args()).assert_outcomes(passed=1)


def test_the_plugin_collects_an_item_per_piece_and_property(pytester):
    result = pytester.runpytest(*plugin_args(), "--gfl-adapter", "torch_impl", "--co", "-q")
    ids = [ln for ln in result.stdout.lines if ln.startswith("gfl-conformance::")]
    assert ids == [f"gfl-conformance::{p}::{n}" for p in PIECES for n in property_names(p)]
    assert "gfl-conformance::qfl::forward matches the reference" in ids


def test_the_plugin_runs_the_items_selected_with_k(pytester):
    result = pytester.runpytest(*plugin_args(), "--gfl-adapter", "torch_impl",
                                "--gfl-max-examples", "3", "-k", "qfl", "-v")  # fmt: skip
    n = len(property_names("qfl"))
    total = sum(len(property_names(p)) for p in PIECES)
    result.assert_outcomes(passed=n, deselected=total - n)
    result.stdout.fnmatch_lines(["*gfl-conformance::qfl::forward matches the reference PASSED*"])


def test_the_plugin_fails_exactly_the_properties_a_bug_breaks(pytester):
    pytester.makepyfile(qfl_port=QFL_BUG)
    result = pytester.runpytest(*plugin_args(), "--gfl-adapter", "qfl_port.py",
                                "--gfl-max-examples", "3", "-rfs")  # fmt: skip
    n = len(property_names("qfl"))
    result.assert_outcomes(passed=n - len(QFL_BUG_FAILS), failed=len(QFL_BUG_FAILS),
                           skipped=len(PIECES) - 1)  # fmt: skip
    failed = [ln for ln in result.stdout.lines if ln.startswith("FAILED gfl-conformance::qfl::")]
    assert {ln.split("::")[2].split(" - ")[0] for ln in failed} == QFL_BUG_FAILS
    result.stdout.fnmatch_lines(["*✗ forward matches the reference", "*smallest failing input:*"])
    # the summary: the failure's message; a missing piece reported at the adapter's file
    result.stdout.fnmatch_lines([
        "FAILED gfl-conformance::qfl::forward matches the reference - qfl: the forward*",
        "SKIPPED [[]1[]] qfl_port.py*: nms: not in the adapter",
    ])  # fmt: skip


def test_the_plugin_reports_a_bad_adapter_as_a_usage_error(pytester):
    result = pytester.runpytest(*plugin_args(), "--gfl-adapter", "nope.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --gfl-adapter: adapter 'nope.py': *nope.py does not exist"]
    )
    result = pytester.runpytest(*plugin_args(), "--gfl-adapter", "torch_impl", "--gfl-dialect", "x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
