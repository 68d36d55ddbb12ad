r"""The conformance kit: every piece of an adapter against one dialect, for CI.

>>> from reference.testing.conformance import run
>>> result = run("torch_impl", pieces=["integral"], max_examples=3)
>>> result.passed
True

:func:`run` loads an adapter (:mod:`reference.testing.adapter`), checks each of
its pieces with :func:`reference.testing.check` in the chosen dialect, and returns
a :class:`ConformanceResult`: the table, the failures, JSON and JUnit XML.
:func:`main` is the console script::

    gfl-conformance ADAPTER [--dialect D] [--pieces p1,p2] [--max-examples N]
                    [--array-type T] [--identify] [--json PATH|-] [--junit-xml PATH] [-q]

(also ``python -m reference.testing.conformance``). Exit status: 0 when every
checked property holds, 1 when one fails (or no input could judge it), 2 for a
usage error (unknown dialect or piece, adapter not loadable, nothing to check),
with one line on stderr.

.. rubric:: The JSON document (``--json``), schema version 1

::

    {
      "schema": "gfl-conformance",
      "version": 1,
      "adapter": "torch_impl",            # the spec given (or the object's name)
      "dialect": "mmdet2",
      "max_examples": null,               # null: the engine's default budget
      "passed": true,                     # the exit status is 0 exactly when true
      "counts": {"properties": 10, "pass": 10, "fail": 0, "unjudged": 0,
                 "pieces_checked": 2, "pieces_skipped": 14},
      "pieces": [{"piece": "integral", "passed": true, "seconds": 0.41}, ...],
      "results": [                        # one per property, in the order run
        {"piece": "qfl", "property": "forward matches the reference",
         "status": "fail",                # "pass" | "fail" | "unjudged"
         "message": "...",                # null for a pass
         "inputs": {"pred": "[[0.5]]  # shape (1x1), float64", ...},  # null unless "fail"
         "expected": "...", "got": "..."} # rendered with report.show; null when absent
      ],
      "skipped": [{"piece": "nms", "reason": "not in the adapter"}],
      "identification": null              # with --identify: see below
    }

With ``--identify``, ``"identification"`` is ``{"pieces": {piece: {"agrees": [...],
"differs": {dialect: {"property", "message", "inputs", "expected", "got"}},
"undefined": [...]}}, "agree_on_every_piece": [...]}``: the last list holds the
dialects that agree on every identified piece they define. New keys may be added
in version 1; a key's meaning changes only with a new version.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from reference import testing
from reference.dialects import DIALECTS

from . import PIECES
from .adapter import AdapterError, find_pieces, load_adapter
from .engine import DEFAULT_EXAMPLES
from .report import Failure, Report, show

__all__ = [
    "SCHEMA_VERSION",
    "ConformanceResult",
    "PropertyResult",
    "UsageError",
    "check_piece",
    "main",
    "property_names",
    "results_of",
    "run",
    "validate",
]

#: The version of the JSON document written by ``--json`` (see the module docstring).
SCHEMA_VERSION = 1
PASS, FAIL, UNJUDGED = "pass", "fail", "unjudged"
NOT_IN_ADAPTER = "not in the adapter"
UNJUDGED_MESSAGE = "no input could be judged (every one was skipped)"


class UsageError(ValueError):
    """A request that cannot be run: unknown dialect or piece, a bad budget, nothing to check."""


@dataclass(frozen=True)
class PropertyResult:
    """One row of the table: a property of a piece and how it fared.

    Attributes
    ----------
    piece, prop : str
    status : {"pass", "fail", "unjudged"}
    failure : Failure or None
        The failure (with the shrunk input) when ``status`` is ``"fail"``.
    """

    piece: str
    prop: str
    status: str
    failure: Failure | None = None

    @property
    def message(self) -> str | None:
        """The failure's message, the reason a property was not judged, or None."""
        if self.failure is not None:
            return self.failure.message
        return UNJUDGED_MESSAGE if self.status == UNJUDGED else None

    def text(self) -> str:
        """The full failure text (``Failure.__str__``), as the table prints it."""
        if self.failure is not None:
            return str(self.failure)
        if self.status == UNJUDGED:
            return f"? {self.prop}: {UNJUDGED_MESSAGE}"
        return f"✓ {self.prop}"


def results_of(report: Report) -> list[PropertyResult]:
    """The rows of one piece's :class:`~reference.testing.report.Report`, in the order run."""
    failures = {f.prop: f for f in report.failures}
    rows = []
    for prop in report.checked:
        if prop in failures:
            rows.append(PropertyResult(report.piece, prop, FAIL, failures[prop]))
        elif prop in report.unjudged:
            rows.append(PropertyResult(report.piece, prop, UNJUDGED))
        else:
            rows.append(PropertyResult(report.piece, prop, PASS))
    return rows


@dataclass
class ConformanceResult:
    """What :func:`run` found.

    Attributes
    ----------
    adapter : str
        The adapter's spec (or, for an object, its name).
    dialect : str
    max_examples : int or None
        The budget asked for (None: the engine's default).
    reports : dict of str to Report
        One per checked piece, in the order of :data:`~reference.testing.PIECES`.
    skipped : dict of str to str
        Pieces not checked, with the reason ("not in the adapter", "not defined
        by dialect ultralytics").
    seconds : dict of str to float
        Wall time per checked (or identified) piece.
    identifications : dict of str to Identification
        With ``identify=True``: :func:`reference.testing.identify`'s answer per piece.
    started : str
        When the run started (ISO 8601, local time; the JUnit suites' timestamp).
    """

    adapter: str
    dialect: str
    max_examples: int | None = None
    reports: dict[str, Report] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    identifications: dict[str, Any] = field(default_factory=dict)
    started: str = field(default_factory=lambda: datetime.now().isoformat(timespec="seconds"))

    @property
    def passed(self) -> bool:
        """True when every checked property holds (an unjudged property is not a pass)."""
        return all(r.passed for r in self.reports.values())

    def results(self) -> list[PropertyResult]:
        """Every checked property, piece by piece."""
        return [row for report in self.reports.values() for row in results_of(report)]

    def agreeing_dialects(self) -> list[str] | None:
        """The dialects that agree on every identified piece they define, those defining
        the most pieces first (None without ``identify=True``; a dialect that defines
        none of them is not listed)."""
        if not self.identifications:
            return None
        agreeing = [name for name in DIALECTS if self._agrees_on_all(name)]
        return sorted(agreeing, key=lambda name: -len(self._defined(name)))  # stable

    def _defined(self, name: str) -> list[str]:
        return [p for p, i in self.identifications.items() if name not in i.undefined]

    def _agrees_on_all(self, name: str) -> bool:
        defined = self._defined(name)
        return bool(defined) and all(name in self.identifications[p].agrees for p in defined)

    # --- renderings ---------------------------------------------------------------------

    def table(self) -> str:
        """The human-readable report: the table, the failures, the skipped pieces, a verdict."""
        rows = self.results()
        budget = "default" if self.max_examples is None else str(self.max_examples)
        lines = [f"gfl-conformance: {self.adapter} against {self.dialect} (examples: {budget})", ""]
        if rows:
            w_piece = max(len("piece"), *(len(r.piece) for r in rows))
            w_prop = max(len("property"), *(len(r.prop) for r in rows))
            lines.append(f"{'piece':<{w_piece}}  {'property':<{w_prop}}  result")
            lines.append(f"{'-' * w_piece}  {'-' * w_prop}  ------")
            shown = {PASS: "pass", FAIL: "FAIL", UNJUDGED: "UNJUDGED"}
            lines += [f"{r.piece:<{w_piece}}  {r.prop:<{w_prop}}  {shown[r.status]}" for r in rows]
        bad = [r for r in rows if r.status != PASS]
        if bad:
            lines += ["", f"{len(bad)} propert{'y' if len(bad) == 1 else 'ies'} failing:"]
            for r in bad:
                lines += ["", f"[{r.piece}]", r.text()]
        by_reason: dict[str, list[str]] = {}
        for piece, reason in self.skipped.items():
            by_reason.setdefault(reason, []).append(piece)
        if by_reason:
            lines.append("")
            lines += [f"skipped ({reason}): {', '.join(ps)}" for reason, ps in by_reason.items()]
        if self.identifications:
            lines += ["", "Identification (which dialects the adapter agrees with):"]
            for ident in self.identifications.values():
                lines += ["", str(ident)]
            agreeing = self.agreeing_dialects() or []
            n = len(self.identifications)
            shown = [f"{a} ({len(self._defined(a))} of {n})" for a in agreeing]
            lines += [
                "",
                "Dialects agreeing on every identified piece they define (pieces defined): "
                + (", ".join(shown) if shown else "none"),
            ]
        lines += ["", self.verdict()]
        return "\n".join(lines)

    def verdict(self) -> str:
        """One line: passed or failed, with the counts and the time."""
        rows = self.results()
        n_bad = sum(r.status != PASS for r in rows)
        total = sum(self.seconds.values())
        where = (
            f"{len(self.reports)} piece{'s' if len(self.reports) != 1 else ''} checked, "
            f"{len(self.skipped)} skipped, {total:.1f} s"
        )
        if n_bad:
            return f"FAILED: {n_bad} of {len(rows)} properties fail ({where})"
        if len(rows) == 1:
            return f"passed: the 1 property holds ({where})"
        return f"passed: all {len(rows)} properties hold ({where})"

    def to_json(self) -> dict[str, Any]:
        """The JSON document of schema version :data:`SCHEMA_VERSION` (module docstring)."""
        rows = self.results()
        counts = {s: sum(r.status == s for r in rows) for s in (PASS, FAIL, UNJUDGED)}
        return {
            "schema": "gfl-conformance",
            "version": SCHEMA_VERSION,
            "adapter": self.adapter,
            "dialect": self.dialect,
            "max_examples": self.max_examples,
            "passed": self.passed,
            "counts": {
                "properties": len(rows),
                **counts,
                "pieces_checked": len(self.reports),
                "pieces_skipped": len(self.skipped),
            },
            "pieces": [
                {"piece": p, "passed": r.passed, "seconds": round(self.seconds.get(p, 0.0), 3)}
                for p, r in self.reports.items()
            ],
            "results": [_row_json(r) for r in rows],
            "skipped": [{"piece": p, "reason": why} for p, why in self.skipped.items()],
            "identification": self._identification_json(),
        }

    def _identification_json(self) -> dict[str, Any] | None:
        if not self.identifications:
            return None
        pieces = {
            piece: {
                "agrees": list(i.agrees),
                "differs": {d: _failure_json(f) for d, f in i.differs.items()},
                "undefined": list(i.undefined),
            }
            for piece, i in self.identifications.items()
        }
        return {"pieces": pieces, "agree_on_every_piece": self.agreeing_dialects()}

    def to_junit_xml(self) -> ET.ElementTree:
        """JUnit XML: a ``<testsuite>`` per piece, a ``<testcase>`` per property, a
        ``<failure message=...>`` holding the full failure text; a skipped piece is a
        suite with one ``<skipped>`` case."""
        rows = self.results()
        root = ET.Element("testsuites", name="gfl-conformance")
        for piece in self.reports:
            suite_rows = [r for r in rows if r.piece == piece]
            n_bad = sum(r.status != PASS for r in suite_rows)
            suite = _suite(root, piece, len(suite_rows), n_bad, 0, self.seconds.get(piece, 0.0))
            props = ET.SubElement(suite, "properties")
            for key, value in (("adapter", self.adapter), ("dialect", self.dialect)):
                ET.SubElement(props, "property", name=key, value=_xml_text(value))
            for r in suite_rows:
                case = ET.SubElement(
                    suite, "testcase", classname=f"gfl-conformance.{piece}", name=_xml_text(r.prop)
                )
                if r.status != PASS:
                    failure = ET.SubElement(
                        case, "failure", type=r.status, message=_xml_text(f"{r.prop}: {r.message}")
                    )
                    failure.text = _xml_text(r.text())
        for piece, reason in self.skipped.items():
            suite = _suite(root, piece, 1, 0, 1, 0.0)
            case = ET.SubElement(
                suite, "testcase", classname=f"gfl-conformance.{piece}", name=piece
            )
            ET.SubElement(case, "skipped", message=reason)
        suites = list(root)
        for suite in suites:
            suite.set("timestamp", self.started)
        for key in ("tests", "failures", "errors", "skipped"):
            root.set(key, str(sum(int(s.get(key, "0")) for s in suites)))
        root.set("time", f"{sum(self.seconds.values()):.3f}")
        return ET.ElementTree(root)


def _suite(
    root: ET.Element, piece: str, tests: int, failures: int, skipped: int, seconds: float
) -> ET.Element:
    return ET.SubElement(
        root,
        "testsuite",
        name=f"gfl-conformance.{piece}",
        tests=str(tests),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{seconds:.3f}",
    )


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (a candidate's message may)."""
    return _XML_ILLEGAL.sub("\N{REPLACEMENT CHARACTER}", text)


def _failure_json(failure: Failure) -> dict[str, Any]:
    return {
        "property": failure.prop,
        "message": failure.message,
        "inputs": {name: show(value) for name, value in failure.inputs.items()},
        "expected": None if failure.expected is None else show(failure.expected),
        "got": None if failure.got is None else show(failure.got),
    }


def _row_json(row: PropertyResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "piece": row.piece,
        "property": row.prop,
        "status": row.status,
        "message": row.message,
        "inputs": None,
        "expected": None,
        "got": None,
    }
    if row.failure is not None:
        out.update({k: v for k, v in _failure_json(row.failure).items() if k != "property"})
    return out


# --- running -----------------------------------------------------------------------------


def property_names(piece: str, dialect: str = "mmdet2") -> list[str]:
    """The properties :func:`~reference.testing.check` runs for ``piece`` in ``dialect``, in
    order, without running them (what the pytest plugin collects as items)."""
    return [p.name for p in testing.properties_of(piece, DIALECTS[dialect])]


def check_piece(
    piece: str,
    kwargs: dict[str, Callable],
    *,
    dialect: str = "mmdet2",
    array_type: str = "auto",
    max_examples: int | None = None,
) -> Report:
    """:func:`reference.testing.check` of one piece of an adapter.

    Parameters
    ----------
    piece : str
    kwargs : dict
        The piece's entry of :func:`~reference.testing.adapter.find_pieces`.
    dialect, array_type : str
        As for :func:`~reference.testing.check`.
    max_examples : int, optional
        Examples per property; the engine's default when None.

    Returns
    -------
    Report
    """
    budget = {} if max_examples is None else {"max_examples": max_examples}
    return testing.check(piece, **kwargs, array_type=array_type, dialect=dialect, **budget)


def validate(
    dialect: str = "mmdet2",
    pieces: Iterable[str] | None = None,
    max_examples: int | None = None,
    array_type: str = "auto",
) -> list[str]:
    """Check a request's options; return the pieces asked for, in :data:`PIECES` order.

    Raises
    ------
    UsageError
        For an unknown dialect, piece or array type, or a budget below 1.
    """
    if dialect not in DIALECTS:
        raise UsageError(f"unknown dialect {dialect!r} (one of: {', '.join(DIALECTS)})")
    if array_type not in ("auto", "numpy", "torch"):
        raise UsageError(f"array type must be auto, numpy or torch, got {array_type!r}")
    if max_examples is not None and max_examples < 1:
        raise UsageError(f"max examples must be at least 1, got {max_examples}")
    if pieces is None:
        return list(PIECES)
    asked = [p.strip() for p in pieces if p.strip()]
    unknown = [p for p in asked if p not in PIECES]
    if unknown:
        raise UsageError(
            f"unknown piece{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(pieces: {', '.join(PIECES)})"
        )
    if not asked:
        raise UsageError("no piece given")
    return [p for p in PIECES if p in asked]


def run(
    adapter: str | object,
    *,
    dialect: str = "mmdet2",
    pieces: Iterable[str] | None = None,
    max_examples: int | None = None,
    identify: bool = False,
    array_type: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> ConformanceResult:
    """Check every piece of an adapter against a dialect.

    Parameters
    ----------
    adapter : str or object
        A spec for :func:`~reference.testing.adapter.load_adapter` (``"torch_impl"``,
        ``"my_adapter.py:GFL"``), or the adapter itself (a module, an object, a dict).
    dialect : str
        One of :data:`~reference.dialects.DIALECTS`; pieces it does not define are
        skipped.
    pieces : iterable of str, optional
        Only these pieces (all of :data:`~reference.testing.PIECES` by default).
    max_examples : int, optional
        Examples per property (the engine's default when None; pieces with costly
        inputs keep their own smaller budget).
    identify : bool
        Also run :func:`reference.testing.identify` on every piece found: which
        dialects the adapter agrees with. The dialect's report is then taken from it.
    array_type : {"auto", "numpy", "torch"}
        Passed to :func:`~reference.testing.check`.
    progress : callable, optional
        Called with one line per piece as it is done (the CLI prints them to stderr).

    Returns
    -------
    ConformanceResult

    Raises
    ------
    UsageError
        Unknown dialect, piece or array type, or a budget below 1.
    AdapterError
        The adapter cannot be loaded or exposes no piece.
    """
    selected = validate(dialect, pieces, max_examples, array_type)
    if isinstance(adapter, str):
        name, obj = adapter, load_adapter(adapter)
    else:
        name, obj = getattr(adapter, "__name__", type(adapter).__name__), adapter
    found, _ = find_pieces(obj)
    if not found:
        raise AdapterError(f"adapter {name!r} exposes none of the pieces")
    result = ConformanceResult(name, dialect, max_examples)
    defined = DIALECTS[dialect].pieces
    todo = [p for p in selected if p in found and (identify or p in defined)]
    for piece in selected:
        if piece not in found:
            result.skipped[piece] = NOT_IN_ADAPTER
        elif piece not in defined:
            result.skipped[piece] = f"not defined by dialect {dialect}"
    budget = {} if max_examples is None else {"max_examples": max_examples}
    for k, piece in enumerate(todo, 1):
        start = time.perf_counter()
        report = None
        if identify:
            ident = testing.identify(piece, **found[piece], array_type=array_type, **budget)
            result.identifications[piece] = ident
            report = ident.reports.get(dialect)
        if report is None and piece in defined:
            report = check_piece(
                piece,
                found[piece],
                dialect=dialect,
                array_type=array_type,
                max_examples=max_examples,
            )
        if report is not None:
            result.reports[piece] = report
        result.seconds[piece] = time.perf_counter() - start
        if progress is not None:
            progress(
                f"[{k}/{len(todo)}] {piece}: {_status(report)} ({result.seconds[piece]:.1f} s)"
            )
    return result


def _status(report: Report | None) -> str:
    if report is None:
        return "identified"
    bad, n = len(report.failures) + len(report.unjudged), len(report.checked)
    if bad:
        return f"{bad} of {n} fail"
    return "1 property holds" if n == 1 else f"all {n} properties hold"


# --- the command line --------------------------------------------------------------------


EPILOG = """\
adapters:
  torch_impl                   a module (the current directory is importable)
  mypkg.adapters:GFL           an object of a module (a namespace, a class, a dict)
  path/to/adapter.py[:object]  a file
  each exposing reference-named functions (qfl_forward + qfl_backward, nms, ...)
  or torch-named ones (quality_focal_loss, integral, nms, ...): docs/testing.md

exit status:
  0  every checked property holds
  1  a property fails (or no input could judge it)
  2  usage error: unknown dialect or piece, adapter not loadable, nothing to check

examples:
  gfl-conformance torch_impl
  gfl-conformance my_port.py --pieces qfl,dfl --junit-xml conformance.xml
  gfl-conformance my_port:GFL --identify --json -
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``gfl-conformance``."""
    parser = _Parser(
        prog="gfl-conformance",
        description="Check a GFL implementation (an adapter) against the reference, "
        "property by property, with the smallest failing input of every failure.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("adapter", metavar="ADAPTER", help="what to check (see below)")
    parser.add_argument(
        "--dialect",
        default="mmdet2",
        metavar="D",
        help=f"whose behaviour is expected: {', '.join(DIALECTS)} (default: mmdet2)",
    )
    parser.add_argument(
        "--pieces",
        metavar="P1,P2",
        help="only these pieces, comma-separated "
        f"(default: every piece the adapter has: {', '.join(PIECES)})",
    )
    parser.add_argument(
        "--max-examples",
        type=_positive_int,
        metavar="N",
        help=f"examples per property (default: {DEFAULT_EXAMPLES}; the head's pieces keep "
        "their own smaller budget, mmdetection's golden outputs are one example)",
    )
    parser.add_argument(
        "--array-type",
        choices=("auto", "numpy", "torch"),
        default="auto",
        help="what the candidates take (default: auto, from the names and annotations)",
    )
    parser.add_argument(
        "--identify",
        action="store_true",
        help="also say which dialects the adapter agrees with, piece by piece",
    )
    parser.add_argument(
        "--json",
        metavar="PATH|-",
        help="write the results as JSON (schema version "
        f"{SCHEMA_VERSION}); '-' writes it to stdout and the table to stderr",
    )
    parser.add_argument("--junit-xml", metavar="PATH", help="write JUnit XML for a CI server")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def _tolerant(stream: TextIO) -> None:
    """Never fail on a console that cannot print ✗ (a CI runner in the C locale)."""
    try:
        stream.reconfigure(errors="backslashreplace")  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """The console script ``gfl-conformance``; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        0 when every checked property holds, 1 when one fails, 2 for a usage error.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error, already printed (2)
        return exc.code if isinstance(exc.code, int) else 2
    for stream in (sys.stdout, sys.stderr):
        _tolerant(stream)
    err = sys.stderr

    def say(line: str) -> None:
        print(line, file=err, flush=True)

    try:
        pieces = args.pieces.split(",") if args.pieces is not None else None
        result = run(
            args.adapter,
            dialect=args.dialect,
            pieces=pieces,
            max_examples=args.max_examples,
            identify=args.identify,
            array_type=args.array_type,
            progress=None if args.quiet else say,
        )
    except (UsageError, AdapterError) as exc:
        say(f"gfl-conformance: error: {' '.join(str(exc).split())}")
        return 2
    if not result.reports and not result.identifications:
        asked = ", ".join(result.skipped) or "none"
        say(
            f"gfl-conformance: error: nothing to check: the adapter has none of the pieces "
            f"asked for that dialect {args.dialect} defines ({asked})"
        )
        return 2
    table_stream = sys.stderr if args.json == "-" else sys.stdout
    print(result.table(), file=table_stream, flush=True)
    try:
        if args.json is not None:
            text = json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"
            if args.json == "-":
                sys.stdout.write(text)
                sys.stdout.flush()
            else:
                Path(args.json).write_text(text, encoding="utf-8")
        if args.junit_xml is not None:
            tree = result.to_junit_xml()
            ET.indent(tree)
            tree.write(args.junit_xml, encoding="utf-8", xml_declaration=True)
    except OSError as exc:
        say(f"gfl-conformance: error: cannot write the results: {exc}")
        return 2
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
