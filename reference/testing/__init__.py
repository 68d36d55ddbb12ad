r"""The checking engine: run this project's properties against *any* implementation.

>>> from reference.testing import check
>>> import reference as R
>>> report = check("integral", forward=R.integral_forward, backward=R.integral_backward)
>>> report.passed
True

``check(piece, forward=..., backward=...)`` for a differentiable piece (a
forward/backward pair called like the reference's), ``check(piece, fn=...)``
for a plain function. It returns a :class:`~reference.testing.report.Report`:
``report.passed``, ``report.failures`` (each with the property, the smallest
failing input Hypothesis found, the expected and the obtained values),
``print(report)``, and ``report.raise_if_failed()`` for graded cells.

Every call is deterministic (Hypothesis derandomised, no example database, a
fixed budget of examples per property) and prints nothing: the report is the
message. A candidate that raises, returns the wrong shape or dtype, or changes
its input gets a failure that says exactly that.

The pieces are named as in SPEC without ``_forward`` / ``_backward``; see
:data:`PIECES`. A candidate may work on NumPy arrays or on torch tensors (see
:class:`~reference.testing.engine.Candidate` for how the engine decides).

``check(..., dialect="nanodet")`` checks against another implementation's
behaviour (:mod:`reference.dialects`), and :func:`identify` runs a candidate
against every dialect and says which ones it agrees with.
"""

from __future__ import annotations

from collections.abc import Callable

from reference.dialects import DIALECTS, MMDET2, Dialect, get_dialect

from .engine import DEFAULT_EXAMPLES, UNJUDGED, Candidate, Property, run_property
from .goldens import golden_property
from .identify import Identification, identify
from .in_dialect import dialect_inputs, in_dialect, switches_of, translator
from .pair_pieces import PAIR_SPECS
from .pairs import pair_properties
from .plain_pieces import PLAIN_SPECS, plain_properties
from .report import Failure, Report

__all__ = ["PIECES", "DIALECTS", "Failure", "Report", "Identification", "check", "identify"]

#: Every piece the engine checks: the differentiable pairs, then the plain functions.
PIECES: tuple[str, ...] = (*PAIR_SPECS, *PLAIN_SPECS)


def check(
    piece: str,
    *,
    forward: Callable | None = None,
    backward: Callable | None = None,
    fn: Callable | None = None,
    array_type: str = "auto",
    max_examples: int = DEFAULT_EXAMPLES,
    dialect: str | Dialect = "mmdet2",
) -> Report:
    r"""Check an implementation of ``piece`` against the project's properties.

    Parameters
    ----------
    piece : str
        One of :data:`PIECES` (``"integral"``, ``"qfl"``, ``"nms"``, …).
    forward, backward : callable, optional
        For a differentiable piece: called like the reference,
        ``out, cache = forward(*args)`` and ``d_x = backward(d_out, cache)``
        (the head: ``backward(cache, d_loss_cls, d_loss_bbox, d_loss_dfl)``). A
        torch forward needs no backward (autograd gives it).
    fn : callable, optional
        For a plain piece: called like the reference function.
    array_type : {"auto", "numpy", "torch"}
        What the candidate takes: see :class:`~reference.testing.engine.Candidate`.
    max_examples : int
        Examples per property (pieces with costly inputs use fewer).
    dialect : str or Dialect
        Whose behaviour is expected (:data:`DIALECTS`): ``"mmdet2"`` (this
        project), ``"mmdet3"``, ``"gfocal"``, ``"nanodet"``, ``"ultralytics"``.
        The candidate is called in that dialect's conventions (GFocal's QFL
        labels 1..C, ultralytics' ``reg_max`` as a number of bins). A dialect
        that does not define ``piece`` is an error.

    Returns
    -------
    Report
        ``passed``, ``failures`` and a readable ``str``.

    Notes
    -----
    For a pair, the properties are: the forward matches the reference's; the
    backward matches finite differences of the candidate's *own* forward
    (along random directions; inputs at a kink are skipped); the backward
    matches the reference's; and the piece's identities. For a plain
    function: the output matches the reference's, and its identities. Where
    mmdetection's own outputs are installed with the package
    (:data:`~reference.testing.goldens.GOLDEN_CASES`) and the dialect agrees
    with mmdetection 2.x on the piece, the candidate must also reproduce them.
    """
    d = get_dialect(dialect)
    if piece not in PIECES:
        raise ValueError(f"piece must be one of {PIECES}, got {piece!r}")
    if piece not in d.pieces:
        raise ValueError(f"dialect {d.name!r} does not define {piece!r} (it defines {d.pieces})")
    if piece in PAIR_SPECS:
        if forward is None or fn is not None:
            raise ValueError(f"{piece!r} is a forward/backward pair: pass forward= (and backward=)")
    elif fn is None or forward is not None or backward is not None:
        raise ValueError(f"{piece!r} is a plain function: pass fn=")
    candidate = Candidate(forward, backward, fn, array_type, d, translator(piece, d))
    return run_properties(piece, properties_of(piece, d), candidate, max_examples)


def properties_of(piece: str, d: Dialect) -> list[Property]:
    """The properties of ``piece`` in dialect ``d``, in the order they are run."""
    if piece in PAIR_SPECS:
        spec = PAIR_SPECS[piece]
        properties = pair_properties(in_dialect(spec, d, dialect_inputs(piece, d, spec.inputs)))
    else:
        spec = PLAIN_SPECS[piece]
        properties = plain_properties(in_dialect(spec, d, dialect_inputs(piece, d, spec.inputs)))
    golden = golden_property(piece)
    if golden is not None and switches_of(piece, d) == switches_of(piece, MMDET2):
        properties.append(golden)
    return properties


def run_properties(
    piece: str, properties: list[Property], candidate: Candidate, max_examples: int
) -> Report:
    """Run ``properties`` on ``candidate`` and collect the :class:`Report`."""
    report = Report(piece)
    for prop in properties:
        report.checked.append(prop.name)
        outcome = run_property(prop, candidate, max_examples)
        if outcome == UNJUDGED:
            report.unjudged.append(prop.name)
        elif outcome is not None:
            report.failures.append(outcome)
    return report
