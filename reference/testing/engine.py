r"""The engine behind :func:`reference.testing.check`: a candidate, properties, and a
derandomised Hypothesis run per property that keeps the smallest failing input.

A *property* draws named arguments from a strategy and raises
:class:`PropertyFailed` (with what was expected and what came back) when the
candidate breaks it. Hypothesis then shrinks the input; the last input tried
before the exception escapes is the smallest one, and it goes into the report.
Nothing of Hypothesis is printed: the report is the message.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FailedHealthCheck, Flaky, Unsatisfiable

from reference.dialects import MMDET2, Dialect

from .report import Failure

#: Examples per property unless a piece asks for fewer (its inputs are expensive).
DEFAULT_EXAMPLES = 30


class PropertyFailed(Exception):
    """A property does not hold on the current input."""

    def __init__(self, message: str, expected: object = None, got: object = None) -> None:
        super().__init__(message)
        self.message, self.expected, self.got = message, expected, got


@dataclass(frozen=True)
class Property:
    """A named check of a candidate on inputs drawn from ``inputs``.

    ``run(candidate, args)`` raises :class:`PropertyFailed` when the property
    does not hold; ``hypothesis.assume(False)`` skips an input it cannot judge.
    """

    name: str
    inputs: st.SearchStrategy[dict[str, Any]]
    run: Callable[[Candidate, dict[str, Any]], None]
    max_examples: int | None = None


class Candidate:
    """An implementation under test: NumPy in, NumPy out, or torch in, torch out.

    Parameters
    ----------
    forward, backward : callable, optional
        A differentiable piece's pair, called like the reference's
        (``out, cache = forward(*args)``, ``d_x = backward(d_out, cache)``). A
        torch candidate needs no backward: autograd differentiates its forward.
    fn : callable, optional
        A plain function, called like the reference's.
    array_type : {"auto", "numpy", "torch"}
        How arguments are passed. ``"auto"`` looks at the annotation of the
        candidate's first parameter: ``torch.Tensor`` (or a string naming
        ``Tensor``) means torch, anything else (or none) NumPy. Torch candidates
        get float64 CPU tensors (integer arrays as int64 tensors); whatever
        comes back, tensor or array, is compared as a float64 NumPy array.
    dialect : Dialect, optional
        The dialect checked (identities that depend on a switch read it);
        this project's when None.
    translate : callable, optional
        Turns this project's positional arguments into the candidate's (the
        dialect's calling conventions), before every call.
    """

    def __init__(
        self,
        forward: Callable | None = None,
        backward: Callable | None = None,
        fn: Callable | None = None,
        array_type: str = "auto",
        dialect: Dialect | None = None,
        translate: Callable[[tuple], tuple] | None = None,
    ) -> None:
        self.forward, self.backward, self.fn = forward, backward, fn
        self.dialect = dialect if dialect is not None else MMDET2
        self.translate = translate
        main = fn if fn is not None else forward
        if array_type not in ("auto", "numpy", "torch"):
            raise ValueError(f"array_type must be 'auto', 'numpy' or 'torch', got {array_type!r}")
        self.torch = array_type == "torch" or (array_type == "auto" and _wants_torch(main))

    def call(self, what: str, f: Callable, *args: object) -> Any:
        """Call ``f`` with ``args`` converted to the candidate's array type; check that
        it leaves them unchanged; turn any exception into a :class:`PropertyFailed`."""
        if self.translate is not None:
            args = self.translate(args)
        passed = [to_candidate(a, self.torch) for a in args]
        before = [_snapshot(a) for a in passed]
        try:
            out = f(*passed)
        except PropertyFailed:
            raise
        except Exception as exc:  # the candidate's own error is the finding
            hint = ""
            if not self.torch and "Tensor" in str(exc):
                hint = " (a torch candidate? pass array_type='torch' or annotate torch.Tensor)"
            raise PropertyFailed(f"your {what} raised {type(exc).__name__}: {exc}{hint}") from None
        for k, (a, b) in enumerate(zip(passed, before)):
            if not _same(_snapshot(a), b):
                raise PropertyFailed(f"your {what} changed its argument {k + 1} in place")
        return out


def _wants_torch(f: Callable | None) -> bool:
    if f is None:
        return False
    try:
        params = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        return False
    if not params or params[0].annotation is inspect.Parameter.empty:
        return False
    ann = params[0].annotation
    return "Tensor" in (ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann)))


def to_candidate(value: object, torch_side: bool) -> object:
    """A private copy of ``value`` in the candidate's array type (lists element-wise)."""
    if isinstance(value, list):
        return [to_candidate(v, torch_side) for v in value]
    if isinstance(value, tuple):
        return tuple(to_candidate(v, torch_side) for v in value)
    if isinstance(value, np.ndarray):
        if not torch_side:
            return value.copy()
        import torch

        return torch.from_numpy(value.copy())
    return value


def to_numpy(value: object) -> object:
    """Tensors (detached) and arrays to NumPy arrays; containers element-wise."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple
        return type(value)(*(to_numpy(v) for v in value))
    if isinstance(value, list | tuple):
        return type(value)(to_numpy(v) for v in value)
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    return value


def _snapshot(value: object) -> object:
    value = to_numpy(value)
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list | tuple):
        return [_snapshot(v) for v in value]
    return None


def _same(now: object, before: object) -> bool:
    if isinstance(before, np.ndarray):
        return isinstance(now, np.ndarray) and np.array_equal(now, before, equal_nan=True)
    if isinstance(before, list):
        return all(_same(a, b) for a, b in zip(now, before))  # type: ignore[call-overload]
    return True


#: What :func:`run_property` returns when no input could be judged (every one was skipped).
UNJUDGED = "unjudged"


def run_property(
    prop: Property, candidate: Candidate, max_examples: int
) -> Failure | str | None:
    """Run one property under a derandomised Hypothesis.

    Returns None when it holds, the :class:`Failure` on the smallest failing
    input, or :data:`UNJUDGED` when Hypothesis found no input it could judge.
    """
    last: dict[str, Mapping[str, Any]] = {}

    @settings(
        max_examples=prop.max_examples or max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        print_blob=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    @given(prop.inputs)
    def test(args: dict[str, Any]) -> None:
        last["inputs"] = args
        try:
            prop.run(candidate, args)
        except (PropertyFailed, AssertionError) as exc:
            raise exc if isinstance(exc, PropertyFailed) else PropertyFailed(str(exc)) from None
        except Exception as exc:  # an output the property could not use (wrong type, …)
            if type(exc).__module__.startswith("hypothesis"):
                raise  # assume(), stop: Hypothesis's own control flow
            raise PropertyFailed(
                f"your output could not be checked: {type(exc).__name__}: {exc}"
            ) from None

    try:
        with _quiet(), _without_local_constants():
            test()
    except PropertyFailed as exc:
        return Failure(prop.name, exc.message, dict(last["inputs"]), exc.expected, exc.got)
    except Flaky:
        return Failure(prop.name, "gives different results on the same input", last["inputs"])
    except (Unsatisfiable, FailedHealthCheck):
        return UNJUDGED  # no input could be judged: said in the report, never a pass
    return None


@contextmanager
def _quiet() -> Iterator[None]:
    """No warnings while a property runs (a candidate's ``exp`` overflowing, a comparison
    with inf): the report is the message."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


@contextmanager
def _without_local_constants() -> Iterator[None]:
    """Draw no literals from the process's own source files while a property runs.

    Hypothesis (6.131 and later) now and then draws a constant found in any
    imported module outside site-packages, so what a check generates (and the
    counterexample it reports) would depend on what else the process has
    imported: a notebook, a test session, an edited source file. That pool is
    pinned to empty here (a private hook of Hypothesis: where it is missing,
    nothing is pinned).
    """
    try:
        from hypothesis.internal.conjecture import providers

        original, cache = providers._get_local_constants, providers.CONSTANTS_CACHE.cache
        empty = providers.Constants()
    except (ImportError, AttributeError):  # another Hypothesis: nothing to pin
        yield
        return
    providers._get_local_constants = lambda: empty
    cache.clear()  # permitted constants cached from an earlier pool
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.clear()
