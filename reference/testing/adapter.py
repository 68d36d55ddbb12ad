r"""Adapters: how a port of GFL names its pieces, and how the conformance kit finds them.

An *adapter* is any object (usually a module) exposing some of SPEC's functions,
named in either of the project's two namings:

* **reference naming** (NumPy, hand-written backward): ``integral_forward`` and
  ``integral_backward``, ``qfl_forward`` / ``qfl_backward``, …, and the plain
  functions ``bbox_overlaps``, ``nms``, …, called exactly like :mod:`reference`'s;
* **torch naming** (torch tensors, autograd): ``integral``, ``quality_focal_loss``,
  ``distribution_focal_loss``, ``giou_loss``, ``distance2bbox``,
  ``weight_reduce_loss``, ``gfl_loss`` and the same plain functions, called like
  :mod:`torch_impl`'s.

:data:`NAMES` is the table of both namings (``tests/test_conformance.py`` checks
it against ``tools/mirror.py``'s :func:`torch_twin`). Both :mod:`reference` and
:mod:`torch_impl` are adapters.

:func:`load_adapter` imports one from a command-line spec, :func:`find_pieces` turns
it into the keyword arguments of :func:`reference.testing.check`.

.. rubric:: How a piece is chosen (:func:`find_pieces`)

A differentiable piece is taken, in this order of preference, from

1. the reference naming when it is *complete*: ``X_forward`` **and** ``X_backward``
   (``{"forward": X_forward, "backward": X_backward}``; the array type follows the
   forward's annotation, as :func:`~reference.testing.check` decides it);
2. the torch naming (complete by itself: autograd is its backward), called as
   :mod:`torch_impl` calls it and always given torch tensors;
3. the reference naming without its backward (``{"forward": X_forward}``): a
   torch forward is differentiated by autograd; a NumPy one fails the backward's
   properties with "no backward was given", which is the finding.

A plain function has the same name in both namings. It is given torch tensors
when any annotation of its signature names ``Tensor`` (``torch_impl.gfl_targets``
takes a list of sizes first, then tensors), NumPy arrays otherwise.

.. rubric:: The torch naming's calling conventions

mmdetection's losses reduce by default, and :mod:`torch_impl` keeps their
signatures: ``quality_focal_loss(pred, label, score, weight=None, beta=2.0,
reduction="mean", avg_factor=None)``. Called like the reference
(``qfl_forward(pred, label, score, beta)``), its ``weight`` would receive ``beta``.
So a torch-named function is called through a thin wrapper that passes the
arguments listed in :attr:`PieceNames.torch_keywords` by keyword (``beta=``) and
adds :attr:`PieceNames.torch_extras` (``reduction="none"``: the per-element
loss the properties compare; ``dtype=torch.float64`` for ``grid_anchors``), each
only when the function's signature accepts it (a port whose ``quality_focal_loss``
has no ``reduction`` is called without one).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import PIECES

if TYPE_CHECKING:
    import torch

__all__ = ["AdapterError", "NAMES", "PieceNames", "load_adapter", "find_pieces"]


class AdapterError(ValueError):
    """An adapter that cannot be loaded, or that exposes no piece (a one-line message)."""


@dataclass(frozen=True)
class PieceNames:
    """How one piece is named in the reference naming and in the torch naming.

    Attributes
    ----------
    piece : str
        The engine's name (one of :data:`reference.testing.PIECES`).
    forward, backward : str or None
        The reference naming of a differentiable piece (``"qfl_forward"``,
        ``"qfl_backward"``); None for a plain function.
    fn : str or None
        A plain function's name (the same in both namings); None for a pair.
    torch : str
        The torch naming (``"quality_focal_loss"``; a plain function's own name).
    torch_keywords : tuple of (int, str)
        Arguments the engine passes positionally that a torch-named function takes
        by keyword: ``(position, name)``.
    torch_extras : tuple of (str, object)
        Keywords added to every call of a torch-named function. A string value
        ``"torch.NAME"`` stands for the attribute of torch (``torch.float64``).
    """

    piece: str
    forward: str | None
    backward: str | None
    fn: str | None
    torch: str
    torch_keywords: tuple[tuple[int, str], ...] = ()
    torch_extras: tuple[tuple[str, object], ...] = ()

    @property
    def is_pair(self) -> bool:
        """True for a differentiable piece (a forward/backward pair)."""
        return self.fn is None


def _pair(piece: str, torch: str, **conventions: Any) -> PieceNames:
    return PieceNames(piece, f"{piece}_forward", f"{piece}_backward", None, torch, **conventions)


def _plain(piece: str, **conventions: Any) -> PieceNames:
    return PieceNames(piece, None, None, piece, piece, **conventions)


_PER_ELEMENT = (("reduction", "none"),)

#: Every piece's names, in the order of :data:`reference.testing.PIECES`.
NAMES: dict[str, PieceNames] = {
    n.piece: n
    for n in (
        _pair("integral", "integral"),
        _pair(
            "qfl", "quality_focal_loss", torch_keywords=((3, "beta"),), torch_extras=_PER_ELEMENT
        ),
        _pair("dfl", "distribution_focal_loss", torch_extras=_PER_ELEMENT),
        _pair("giou_loss", "giou_loss", torch_extras=_PER_ELEMENT),
        _pair("distance2bbox", "distance2bbox"),
        _pair("weight_reduce", "weight_reduce_loss"),
        _pair("gfl_loss", "gfl_loss"),
        _plain("bbox_overlaps"),
        _plain("bbox2distance"),
        _plain("grid_anchors", torch_extras=(("dtype", "torch.float64"),)),
        _plain("atss_assign"),
        _plain("nms"),
        _plain("batched_nms"),
        _plain("multiclass_nms"),
        _plain("gfl_targets"),
        _plain("gfl_predict"),
    )
}


# --- loading --------------------------------------------------------------------------


def load_adapter(spec: str, *, root: str | os.PathLike[str] | None = None) -> object:
    """Import the adapter named by ``spec``.

    Parameters
    ----------
    spec : str
        ``module`` (``torch_impl``, ``mypkg.gfl_adapter``), ``module:object``
        (``mypkg.adapters:TORCH``, a dotted attribute path), or a Python file
        ``path/to/adapter.py`` or ``path/to/adapter.py:object``.
    root : path, optional
        The directory that is made importable (prepended to ``sys.path``, as
        pytest does with its root) and against which a relative file path is
        resolved: the current directory by default.

    Returns
    -------
    object
        The module, or the object named after the colon.

    Raises
    ------
    AdapterError
        With a one-line message: the module or file cannot be found or imported,
        the object does not exist, or it exposes none of the pieces (:data:`NAMES`).

    Notes
    -----
    A file is imported under a private module name (``_gfl_adapter_<stem>_<hash>``),
    with its own directory prepended to ``sys.path`` so that it can import its
    neighbours; a file named ``torch.py`` shadows nothing.
    """
    base = Path(root) if root is not None else Path.cwd()
    target, attribute = _split_spec(spec)
    if not target:
        raise AdapterError(f"adapter spec {spec!r} names no module or file")
    if target.endswith(".py") or "/" in target or os.sep in target:
        module = _import_file(base / target, spec)
    else:
        module = _import_module(target, base, spec)
    obj: object = module
    for part in attribute.split(".") if attribute else ():
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AdapterError(
                f"adapter {spec!r}: {target} has no attribute {attribute!r}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - a property of the adapter that raises
            raise AdapterError(
                f"adapter {spec!r}: reading {attribute!r} raised {_one_line(exc)}"
            ) from None
    found, _ = find_pieces(obj)
    if not found:
        raise AdapterError(
            f"adapter {spec!r} exposes none of the pieces (expected callables named like "
            "qfl_forward/qfl_backward or quality_focal_loss, integral, nms, ...: "
            "see reference.testing.adapter.NAMES)"
        )
    return obj


def _split_spec(spec: str) -> tuple[str, str]:
    """``"a/b.py:obj.x"`` → ``("a/b.py", "obj.x")``; a Windows drive letter is no object."""
    target, sep, attribute = spec.strip().rpartition(":")
    if sep and len(target) > 1 and all(p.isidentifier() for p in attribute.split(".")):
        return target, attribute
    return spec.strip(), ""


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _prepend_path(directory: Path) -> None:
    entry = str(directory.resolve())
    if entry not in sys.path:
        sys.path.insert(0, entry)


def _import_module(name: str, base: Path, spec: str) -> ModuleType:
    _prepend_path(base)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise AdapterError(
                f"adapter {spec!r}: no module named {exc.name!r} (importable from {base} "
                "or the installed packages; a file needs its .py suffix)"
            ) from None
        raise AdapterError(f"adapter {spec!r}: importing it failed: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - whatever the adapter's own import raises
        raise AdapterError(f"adapter {spec!r}: importing it failed: {_one_line(exc)}") from None


def _import_file(path: Path, spec: str) -> ModuleType:
    if not path.is_file():
        what = "is not a .py file" if path.exists() else "does not exist"
        raise AdapterError(f"adapter {spec!r}: {path} {what}")
    path = path.resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    name = f"_gfl_adapter_{stem}_{digest}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise AdapterError(f"adapter {spec!r}: {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    _prepend_path(path.parent)
    sys.modules[name] = module  # dataclasses and pickling look their module up there
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - whatever the adapter's own code raises
        del sys.modules[name]
        raise AdapterError(f"adapter {spec!r}: importing {path} failed: {_one_line(exc)}") from None
    return module


# --- finding the pieces -------------------------------------------------------------------


def find_pieces(obj: object) -> tuple[dict[str, dict[str, Callable]], list[str]]:
    """The pieces an adapter exposes, as keyword arguments of :func:`~reference.testing.check`.

    Parameters
    ----------
    obj : object
        A module, any object with attributes, or a mapping from names to callables.

    Returns
    -------
    found : dict of str to dict
        For each piece found, in the order of :data:`~reference.testing.PIECES`:
        ``{"forward": f, "backward": g}``, ``{"forward": f}`` or ``{"fn": f}``.
    missing : list of str
        The pieces it lacks.

    Notes
    -----
    The module's docstring states which naming wins when a piece is present in
    both. A torch-named function that needs keywords (``reduction="none"``) or
    whose first parameter does not say ``Tensor`` is returned wrapped (the
    wrapper keeps the original in ``__gfl_adapted__``); everything else is
    returned as it is.
    """
    found: dict[str, dict[str, Callable]] = {}
    missing: list[str] = []
    for piece in PIECES:
        names = NAMES[piece]
        kwargs = _pair_kwargs(obj, names) if names.is_pair else _plain_kwargs(obj, names)
        if kwargs is None:
            missing.append(piece)
        else:
            found[piece] = kwargs
    return found, missing


def _pair_kwargs(obj: object, names: PieceNames) -> dict[str, Callable] | None:
    forward = _lookup(obj, names.forward)
    backward = _lookup(obj, names.backward)
    if forward is not None and backward is not None:
        return {"forward": forward, "backward": backward}
    torch_named = _lookup(obj, names.torch)
    if torch_named is not None:
        return {"forward": _torch_call(torch_named, names)}
    if forward is not None:
        return {"forward": forward}
    return None


def _plain_kwargs(obj: object, names: PieceNames) -> dict[str, Callable] | None:
    fn = _lookup(obj, names.fn)
    if fn is None:
        return None
    return {"fn": _torch_call(fn, names) if _mentions_tensor(fn) else fn}


def _lookup(obj: object, name: str | None) -> Callable | None:
    if name is None:
        return None
    try:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - an attribute that raises is not a piece
        return None
    if value is None or isinstance(value, ModuleType | type) or not callable(value):
        return None  # a submodule (``reference.integral``) or a class is not a function
    return value


def _annotation_text(annotation: object) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", None) or repr(annotation)


def _signature(f: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(f)
    except (TypeError, ValueError):
        return None


def _first_says_tensor(f: Callable) -> bool:
    """What the engine's ``array_type="auto"`` sees: the first parameter's annotation."""
    sig = _signature(f)
    params = list(sig.parameters.values()) if sig is not None else []
    return bool(params) and "Tensor" in _annotation_text(params[0].annotation)


def _mentions_tensor(f: Callable) -> bool:
    sig = _signature(f)
    if sig is None:
        return False
    texts = [_annotation_text(p.annotation) for p in sig.parameters.values()]
    return any("Tensor" in t for t in (*texts, _annotation_text(sig.return_annotation)))


def _accepted(f: Callable, keys: list[str]) -> set[str]:
    """Which of ``keys`` the signature of ``f`` takes by keyword (all with ``**kwargs``)."""
    sig = _signature(f)
    if sig is None:
        return set()
    params = sig.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return set(keys)
    by_name = {p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    return set(keys) & by_name


def _torch_value(value: object) -> object:
    if isinstance(value, str) and value.startswith("torch."):
        import torch

        return getattr(torch, value[len("torch.") :])
    return value


def _torch_call(f: Callable, names: PieceNames) -> Callable:
    """``f`` called in the torch naming's conventions, annotated so the engine passes tensors."""
    accepted = _accepted(
        f, [k for _, k in names.torch_keywords] + [k for k, _ in names.torch_extras]
    )
    keywords = {i: k for i, k in names.torch_keywords if k in accepted}
    extras = {k: v for k, v in names.torch_extras if k in accepted}
    if not keywords and not extras and _first_says_tensor(f):
        return f

    def call(*args: torch.Tensor) -> Any:
        positional = [a for i, a in enumerate(args) if i not in keywords]
        by_keyword = {k: args[i] for i, k in keywords.items() if i < len(args)}
        return f(*positional, **by_keyword, **{k: _torch_value(v) for k, v in extras.items()})

    call.__name__ = getattr(f, "__name__", names.torch)
    call.__qualname__ = getattr(f, "__qualname__", call.__name__)
    call.__doc__ = getattr(f, "__doc__", None)
    call.__gfl_adapted__ = f  # type: ignore[attr-defined]
    return call
