r"""The conformance kit as pytest items: ``pytest --gfl-adapter SPEC``.

Installed with this project (entry point ``gfl_conformance`` in the ``pytest11``
group), so every pytest of an environment that has the project knows the options:

``--gfl-adapter SPEC``
    the adapter (:func:`~reference.testing.adapter.load_adapter`: ``module``,
    ``module:object``, ``path/to/adapter.py[:object]``, relative to the directory
    pytest is run from);
``--gfl-dialect D``
    whose behaviour is expected (default ``mmdet2``);
``--gfl-max-examples N``
    examples per property (default: the engine's);
``--gfl-array-type T``
    ``auto`` (default), ``numpy`` or ``torch``.

With ``--gfl-adapter``, the session gets one item per piece and property, named
``gfl-conformance::qfl::forward matches the reference``, besides whatever tests
pytest collected (none are needed: ``pytest --gfl-adapter my_port.py`` in an empty
directory works). A failing item's report is the engine's failure text: the
smallest failing input, the expected and the obtained values. A piece the adapter
lacks is one skipped item (``gfl-conformance::nms::not in the adapter``, reported at the
adapter's file). ``-k``
selects as usual (``-k qfl``, ``-k "integral and backward"``); a piece is checked
once, when its first selected item runs, and its other items read that report.

How the items are added: :func:`pytest_collection_modifyitems` (``tryfirst``, so
before ``-k``/``-m``/``--deselect`` filter the list and before ``--lf``/``--ff``
reorder it) appends them under a collector node ``gfl-conformance`` that hangs
from the session, and reports each piece's items as collected
(``pytest_collectreport``, as pytest does for its own collectors). It needs no
file on disk, unlike a collector returned from ``pytest_collect_file``, which
would need a file to hang from. Item names are known without running anything
(:func:`reference.testing.conformance.property_names`).

Without ``--gfl-adapter`` the plugin adds its options and nothing else: the hook
returns at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from reference.testing.report import Report

SUITE = "gfl-conformance"


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--gfl-*`` options (in their own group of ``pytest --help``)."""
    group = parser.getgroup("gfl-conformance", "GFL conformance kit (reference.testing)")
    group.addoption(
        "--gfl-adapter",
        metavar="SPEC",
        default=None,
        help="check this GFL adapter: module, module:object or path/to/adapter.py"
        "[:object]; adds an item per piece and property",
    )
    group.addoption(
        "--gfl-dialect",
        metavar="D",
        default="mmdet2",
        help="the dialect the adapter is checked against (default: mmdet2)",
    )
    group.addoption(
        "--gfl-max-examples",
        metavar="N",
        type=int,
        default=None,
        help="examples per property (default: the engine's)",
    )
    group.addoption(
        "--gfl-array-type",
        metavar="T",
        default="auto",
        help="auto (default), numpy or torch: what the candidates take",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Reject bad ``--gfl-*`` values before anything runs (a usage error, exit status 4)."""
    if config.getoption("gfl_adapter") is None:
        return
    from reference.testing.conformance import UsageError, validate

    try:
        validate(
            config.getoption("gfl_dialect"),
            None,
            config.getoption("gfl_max_examples"),
            config.getoption("gfl_array_type"),
        )
    except UsageError as exc:
        raise pytest.UsageError(f"--gfl-*: {exc}") from None


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say which adapter and dialect are checked (only with ``--gfl-adapter``)."""
    spec = config.getoption("gfl_adapter")
    if spec is None:
        return None
    return f"gfl-conformance: adapter {spec}, dialect {config.getoption('gfl_dialect')}"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Append the conformance items (only with ``--gfl-adapter``)."""
    spec = config.getoption("gfl_adapter")
    if spec is None:
        return
    from reference.dialects import DIALECTS
    from reference.testing import PIECES
    from reference.testing.adapter import AdapterError, find_pieces, load_adapter
    from reference.testing.conformance import NOT_IN_ADAPTER, property_names

    try:
        adapter = load_adapter(spec, root=config.invocation_params.dir)
    except AdapterError as exc:
        raise pytest.UsageError(f"--gfl-adapter: {exc}") from None
    found, _ = find_pieces(adapter)
    dialect = config.getoption("gfl_dialect")
    source = _source_file(spec, config.invocation_params.dir) or session.path
    suite = ConformanceSuite.from_parent(session, name=SUITE, nodeid=SUITE)
    for piece in PIECES:
        node = PieceCollector.from_parent(suite, name=piece, nodeid=f"{SUITE}::{piece}")
        node.kwargs, node.source, skip = found.get(piece), source, None
        if piece not in found:
            skip = NOT_IN_ADAPTER
        elif piece not in DIALECTS[dialect].pieces:
            skip = f"not defined by dialect {dialect}"
        names = [skip] if skip is not None else property_names(piece, dialect)
        node.items = [
            PropertyItem.from_parent(node, name=n, nodeid=f"{SUITE}::{piece}::{n}") for n in names
        ]
        if skip is not None:  # skipped at setup, reported at the adapter's file
            node.items[0].add_marker(pytest.mark.skip(reason=f"{piece}: {skip}"))
        suite.pieces.append(node)
        items.extend(node.items)
        # as pytest's own collection reports what a collector yields ("collected N items")
        session.ihook.pytest_collectreport(
            report=pytest.CollectReport(node.nodeid, "passed", None, list(node.items))
        )


def _source_file(spec: str, root: Path) -> Path | None:
    """The adapter's file: the file named, or the module's ``__file__`` (None when unknown)."""
    from reference.testing.adapter import _split_spec

    target, _ = _split_spec(spec)
    if target.endswith(".py") or "/" in target or os.sep in target:
        return (root / target).resolve()
    module = sys.modules.get(target)
    file = getattr(module, "__file__", None)
    return Path(file) if file else None


class ConformanceFailure(Exception):
    """A property of the adapter does not hold; the message is the engine's failure text."""


class ConformanceSuite(pytest.Collector):
    """The ``gfl-conformance`` node: one :class:`PieceCollector` per piece."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pieces: list[PieceCollector] = []

    def collect(self) -> list[PieceCollector]:
        """The pieces (built by the plugin's hook, not by pytest's file collection)."""
        return list(self.pieces)


class PieceCollector(pytest.Collector):
    """One piece: its check runs once, when its first selected item runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.items: list[PropertyItem] = []
        self.kwargs: dict | None = None
        self.source: Path = self.path
        self._report: Report | None = None

    def collect(self) -> list[PropertyItem]:
        """The properties of the piece."""
        return list(self.items)

    def report(self) -> Report:
        """The engine's report of the piece (computed on the first call)."""
        if self._report is None:
            from reference.testing.conformance import check_piece

            opt = self.config.getoption
            self._report = check_piece(
                self.name,
                self.kwargs or {},
                dialect=opt("gfl_dialect"),
                array_type=opt("gfl_array_type"),
                max_examples=opt("gfl_max_examples"),
            )
        return self._report


class PropertyItem(pytest.Item):
    """One property of one piece of the adapter."""

    parent: PieceCollector

    def runtest(self) -> None:
        """Pass, or raise :class:`ConformanceFailure` with the failure text."""
        from reference.testing.conformance import FAIL, PASS, results_of

        piece = self.parent
        rows = {r.prop: r for r in results_of(piece.report())}
        row = rows.get(self.name)
        if row is None:
            head, texts = f"the engine did not run {self.name!r} (it ran: {', '.join(rows)})", []
        elif row.status != PASS:
            head, texts = str(row.message), [row.text()]
        else:
            head, texts = "properties without an item of their own fail", []
        if self is piece.items[0]:  # properties the engine ran that have no item of their own
            known = {i.name for i in piece.items}
            texts += [r.text() for r in rows.values() if r.prop not in known and r.status == FAIL]
        if row is None or texts:
            raise ConformanceFailure("\n\n".join([f"{piece.name}: {head}", *texts]))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        """The failure text itself (its first line the message), without a traceback into the
        engine."""
        if isinstance(excinfo.value, ConformanceFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        """The adapter's file (where known; the root otherwise), and the item's full name."""
        return self.parent.source, 0, self.nodeid
