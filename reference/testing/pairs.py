r"""The properties of the differentiable pieces (forward/backward pairs).

For every pair the engine checks, on inputs drawn from the project's
strategies:

1. *forward matches the reference* — same shape, equal within 1e-7;
2. *backward matches finite differences of your forward* — along random
   directions :math:`v`, :math:`\langle \nabla, v\rangle` equals
   :math:`(f(x + hv) - f(x - hv))/2h` of the candidate's **own** forward
   (inputs at a kink are skipped);
3. *backward matches the reference backward*;
4. the piece's identities (β = 0 QFL is BCE, an integer DFL target is
   cross-entropy, …), on the candidate alone.

A NumPy candidate is called as ``out, cache = forward(*args)`` and
``d = backward(d_out, cache)``; a torch candidate as ``out = forward(*args)``
and differentiated by autograd (unless it brings a backward).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from .compare import assert_close, assert_same_structure, directional_check, flat, unflat
from .engine import Candidate, Property, PropertyFailed, to_candidate, to_numpy

Args = dict[str, Any]


@dataclass(frozen=True)
class PairSpec:
    """A differentiable piece: its inputs, the reference pair, what is differentiated.

    ``forward_out`` turns a forward's output (without the cache) into what is
    compared and differentiated (a dict of losses becomes a vector);
    ``backward_call`` calls a NumPy backward (most are ``backward(d_out, cache)``).
    """

    name: str
    inputs: st.SearchStrategy[Args]
    ref_forward: Callable[..., tuple[Any, Any]]
    ref_backward: Callable[..., Any]
    wrt: tuple[str, ...]
    identities: tuple[Property, ...] = ()
    forward_out: Callable[[Any], Any] = lambda out: out
    backward_call: Callable[..., Any] = lambda b, d_out, cache: [b(d_out, cache)]
    max_examples: int | None = None
    #: The finite-difference checks: (mask on the outputs' upstream gradient or None,
    #: which ``wrt`` arguments move). None: one check, every output, every argument.
    fd_blocks: tuple[tuple[Any, tuple[int, ...]], ...] | None = None


def candidate_forward(spec: PairSpec, cand: Candidate, args: Args) -> tuple[Any, Any]:
    """``(out, cache)`` of the candidate's forward (cache None for torch or a bare output)."""
    result = cand.call("forward", cand.forward, *args.values())
    out, cache = result, None
    if not cand.torch and isinstance(result, tuple) and len(result) == 2:
        out, cache = result
    elif cand.torch and isinstance(result, tuple) and len(result) == 2 and cand.backward:
        out, cache = result
    return spec.forward_out(out), cache


def candidate_gradient(spec: PairSpec, cand: Candidate, args: Args, d_out: np.ndarray) -> list:
    """The candidate's gradient of ``<d_out, forward(args)>``: one entry per ``spec.wrt``."""
    if cand.backward is None and cand.torch:
        return _autograd(spec, cand, args, d_out)
    if cand.backward is None:
        raise PropertyFailed("no backward was given (check(..., backward=...))")
    out, cache = candidate_forward(spec, cand, args)
    d = to_candidate(d_out.reshape(np.shape(to_numpy(out))), cand.torch)
    try:
        grad = spec.backward_call(cand.backward, d, cache)
    except Exception as exc:  # the candidate's own error is the finding
        raise PropertyFailed(f"your backward raised {type(exc).__name__}: {exc}") from None
    return list(to_numpy(grad))


def _autograd(spec: PairSpec, cand: Candidate, args: Args, d_out: np.ndarray) -> list:
    import torch

    targs = {k: to_candidate(v, True) for k, v in args.items()}
    groups = [targs[n] if isinstance(targs[n], list) else [targs[n]] for n in spec.wrt]
    leaves = [t for group in groups for t in group]
    for t in leaves:
        t.requires_grad_(True)
    out = cand.call("forward", cand.forward, *targs.values())
    out = spec.forward_out(out[0] if isinstance(out, tuple) else out)
    vec = out.reshape(-1)
    grads = torch.autograd.grad(
        vec, leaves, grad_outputs=torch.from_numpy(d_out).to(vec.dtype), allow_unused=True
    )
    grads = iter(to_numpy([torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads)]))
    return [[next(grads) for _ in g] if isinstance(args[n], list) else next(grads)
            for n, g in zip(spec.wrt, groups)]  # fmt: skip


def _rng(args: Args) -> np.random.Generator:
    """A generator fixed by the input's shapes: the same input, the same directions."""
    sizes = [int(np.size(v)) for v in flat_leaves(args)]
    return np.random.default_rng([7, *sizes])


def flat_leaves(args: Args) -> list[np.ndarray]:
    out = []
    for v in args.values():
        if isinstance(v, np.ndarray):
            out.append(v)
        elif isinstance(v, list):
            out.extend(x for x in v if isinstance(x, np.ndarray))
    return out


def pair_properties(spec: PairSpec) -> list[Property]:
    """The three properties every pair has, then the piece's identities."""

    def wrt_values(args: Args) -> list:
        return [args[n] for n in spec.wrt]

    def forward_matches(cand: Candidate, args: Args) -> None:
        expected = spec.forward_out(spec.ref_forward(*args.values())[0])
        got, _ = candidate_forward(spec, cand, args)
        assert_close(expected, to_numpy(got), "the forward's output")

    def backward_matches_fd(cand: Candidate, args: Args) -> None:
        n_out = flat(spec.forward_out(spec.ref_forward(*args.values())[0])).size
        rng = _rng(args)
        for mask, moving in spec.fd_blocks or ((None, tuple(range(len(spec.wrt)))),):
            d_out = rng.normal(size=n_out) * (1.0 if mask is None else np.asarray(mask))
            grad = candidate_gradient(spec, cand, args, d_out)
            assert_same_structure(wrt_values(args), grad, "the gradient")
            for _ in range(2):
                v = [rng.normal(size=np.shape(flat(x))) * (k in moving)
                     for k, x in enumerate(wrt_values(args))]  # fmt: skip

                def g(t: float, v: list = v, d_out: np.ndarray = d_out) -> float:
                    moved = dict(args)
                    for k, name in enumerate(spec.wrt):
                        moved[name] = unflat(flat(args[name]) + t * v[k], args[name])
                    out, _ = candidate_forward(spec, cand, moved)
                    return float(np.dot(d_out, flat(out)))

                directional_check(g, float(np.dot(flat(grad), np.concatenate(v))))

    def backward_matches_reference(cand: Candidate, args: Args) -> None:
        ref_out, cache = spec.ref_forward(*args.values())
        shape = np.shape(spec.forward_out(ref_out))
        d_out = _rng(args).normal(size=int(np.prod(shape)))
        expected = spec.backward_call(spec.ref_backward, d_out.reshape(shape), cache)
        got = candidate_gradient(spec, cand, args, d_out)
        assert_same_structure(list(expected), got, "the gradient")
        assert_close(flat(expected), flat(got), "the gradient", rtol=1e-6, atol=1e-9)

    n = spec.max_examples
    return [
        Property("forward matches the reference", spec.inputs, forward_matches, n),
        Property("backward matches finite differences of your forward", spec.inputs,
                 backward_matches_fd, n),
        Property("backward matches the reference backward", spec.inputs,
                 backward_matches_reference, n),
        *spec.identities,
    ]  # fmt: skip
