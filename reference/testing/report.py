"""What :func:`reference.testing.check` returns: a report a student can read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Failure:
    """One property that does not hold, with the smallest input on which it fails.

    Attributes
    ----------
    prop : str
        The property, in words ("backward matches finite differences of your forward").
    message : str
        What went wrong, in one or two sentences.
    inputs : dict
        The smallest failing input Hypothesis found, by argument name.
    expected, got : object
        The values compared (None where the failure is not a comparison).
    """

    prop: str
    message: str
    inputs: Mapping[str, object]
    expected: object = None
    got: object = None

    def __str__(self) -> str:
        lines = [f"✗ {self.prop}", f"  {self.message}", "  smallest failing input:"]
        lines += [f"    {name} = {show(value)}" for name, value in self.inputs.items()]
        if self.expected is not None or self.got is not None:
            lines.append(f"  expected: {show(self.expected)}")
            lines.append(f"  got:      {show(self.got)}")
        return "\n".join(lines)


@dataclass
class Report:
    """The result of :func:`~reference.testing.check` on one piece.

    Attributes
    ----------
    piece : str
    checked : list of str
        Every property that was run, in order.
    failures : list of Failure
        One entry per property that failed.
    """

    piece: str
    checked: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    unjudged: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every property held (a property no input could judge is not a pass)."""
        return not self.failures and not self.unjudged

    def __str__(self) -> str:
        head = f"check({self.piece!r}): "
        if self.passed:
            n = len(self.checked)
            return head + f"all {n} propert{'y holds' if n == 1 else 'ies hold'}:\n" + "\n".join(
                f"✓ {p}" for p in self.checked
            )
        failed = {f.prop for f in self.failures} | set(self.unjudged)
        lines = [head + f"{len(self.failures)} of {len(self.checked)} properties fail."]
        lines += [f"✓ {p}" for p in self.checked if p not in failed]
        lines += [f"? {p}: no input could be judged (every one was skipped)" for p in self.unjudged]
        lines += ["", *(str(f) + "\n" for f in self.failures)]
        return "\n".join(lines).rstrip()

    def raise_if_failed(self) -> None:
        """Raise an ``AssertionError`` whose message is this report (for graded cells)."""
        if not self.passed:
            raise AssertionError(str(self))


def show(value: object, max_items: int = 40) -> str:
    """A short, exact rendering of a value: arrays with shape and dtype (the values of
    those with at most ``max_items`` entries and two axes), floats with every digit
    (``repr``), lists and dicts element by element."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        shape = "x".join(map(str, value.shape)) or "scalar"
        if value.size > max_items:
            return f"array of shape ({shape}), {value.dtype}, too large to show"
        if value.ndim > 2:  # nested brackets over several lines read worse than nothing
            return f"array of shape ({shape}), {value.dtype}, not shown (more than 2 axes)"
        body = np.array2string(value, precision=17, separator=", ", threshold=max_items)
        return f"{body}  # shape ({shape}), {value.dtype}"
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if isinstance(value, tuple | list):
        inner = ", ".join(show(v, max_items) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {show(v, max_items)}" for k, v in value.items()) + "}"
    return repr(value)
