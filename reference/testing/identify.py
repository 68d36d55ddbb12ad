r"""Which dialect is this? :func:`identify` runs a candidate against every dialect.

>>> import reference as R
>>> from reference.testing import identify
>>> found = identify("integral", forward=R.integral_forward, backward=R.integral_backward)
>>> found.agrees
['mmdet2', 'mmdet3', 'gfocal', 'nanodet']

Dialects that agree on every switch a piece depends on
(:data:`~reference.testing.in_dialect.PIECE_SWITCHES`) define the same piece, so
one check answers for all of them. For each dialect the candidate does not
agree with, the report keeps the smallest input that tells them apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from reference.dialects import DIALECTS, get_dialect

from .engine import DEFAULT_EXAMPLES
from .in_dialect import convention_notes, switches_of
from .report import Failure, Report

__all__ = ["Identification", "identify"]


@dataclass
class Identification:
    """What :func:`identify` found for one piece.

    Attributes
    ----------
    piece : str
    agrees : list of str
        The dialects whose every property the candidate passes.
    differs : dict of str to Failure
        For every other dialect, the first property that fails and the
        smallest input on which it does.
    undefined : list of str
        The dialects that do not define the piece (ultralytics has no QFL).
    reports : dict of str to Report
        The whole report of every dialect checked.
    """

    piece: str
    agrees: list[str] = field(default_factory=list)
    differs: dict[str, Failure] = field(default_factory=dict)
    undefined: list[str] = field(default_factory=list)
    reports: dict[str, Report] = field(default_factory=dict)

    def __str__(self) -> str:
        head = f"identify({self.piece!r}): "
        if self.agrees:
            lines = [head + "your code agrees with " + ", ".join(self.agrees) + "."]
        else:
            lines = [head + "your code agrees with no dialect."]
        for names, failure in self._groups():
            notes = convention_notes(self.piece, DIALECTS[names[0]])
            called = f" (called as it calls it: {'; '.join(notes)})" if notes else ""
            lines += ["", f"differs from {', '.join(names)}{called}:", _indent(str(failure))]
        if self.undefined:
            lines += ["", f"not defined by: {', '.join(self.undefined)}"]
        return "\n".join(lines)

    def _groups(self) -> list[tuple[list[str], Failure]]:
        """Dialects that failed with the same failure, together (one block each)."""
        groups: list[tuple[list[str], Failure]] = []
        for name, failure in self.differs.items():
            for names, f in groups:
                if f is failure:
                    names.append(name)
                    break
            else:
                groups.append(([name], failure))
        return groups


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())


def identify(
    piece: str,
    *,
    forward: Callable | None = None,
    backward: Callable | None = None,
    fn: Callable | None = None,
    array_type: str = "auto",
    max_examples: int = DEFAULT_EXAMPLES,
    dialects: list[str] | None = None,
) -> Identification:
    r"""Check a candidate against every dialect that defines ``piece``.

    Parameters
    ----------
    piece, forward, backward, fn, array_type, max_examples
        As for :func:`~reference.testing.check`.
    dialects : list of str, optional
        The dialects to try (default: all of :data:`~reference.dialects.DIALECTS`).

    Returns
    -------
    Identification
        ``agrees``, ``differs`` (dialect → smallest distinguishing input),
        ``undefined``, ``reports``; ``print()`` it.

    Notes
    -----
    Each distinct version of the piece is checked once: dialects with the same
    values of the piece's switches share the report (and the same
    :class:`~reference.testing.report.Failure` object).
    """
    from . import check  # the package's entry point (imported here: it imports this module)

    found = Identification(piece)
    done: dict[tuple[object, ...], Report] = {}
    for name in dialects if dialects is not None else list(DIALECTS):
        d = get_dialect(name)
        if piece not in d.pieces:
            found.undefined.append(name)
            continue
        key = switches_of(piece, d)
        if key not in done:
            done[key] = check(
                piece, forward=forward, backward=backward, fn=fn, array_type=array_type,
                max_examples=max_examples, dialect=d,
            )  # fmt: skip
        report = found.reports[name] = done[key]
        if report.passed:
            found.agrees.append(name)
        elif report.failures:
            found.differs[name] = report.failures[0]
        else:  # nothing could be judged: not an agreement, and nothing to show
            found.differs[name] = Failure(report.unjudged[0], "no input could be judged", {})
    return found
