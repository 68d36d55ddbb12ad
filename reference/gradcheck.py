r"""NumPy only: finite-difference checks of hand-written backward functions
(torch_impl has autograd, and ``torch.autograd.gradcheck``).

The check is the one of the CS231n assignments: perturb each input entry by
:math:`\pm h`, take the central difference of
:math:`\langle \text{d\_out}, f(x) \rangle`, and compare with the
vector-Jacobian product the backward returned, using :func:`rel_error`.

Example
-------
>>> import numpy as np
>>> from reference import integral_forward, integral_backward
>>> from reference.gradcheck import numerical_vjp, rel_error
>>> x = np.random.default_rng(0).normal(size=(3, 68))
>>> d_out = np.random.default_rng(1).normal(size=(3, 4))
>>> _, cache = integral_forward(x)
>>> analytic = integral_backward(d_out, cache)
>>> numeric = numerical_vjp(lambda p: integral_forward(p)[0], x, d_out)
>>> rel_error(analytic, numeric) < 1e-7
True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["numerical_vjp", "rel_error", "check_backward"]


def numerical_vjp(
    f: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    d_out: np.ndarray,
    h: float = 1e-6,
) -> np.ndarray:
    r"""Central-difference vector-Jacobian product :math:`J_f(x)^\top d_{out}`.

    Parameters
    ----------
    f : callable
        Maps an array shaped like ``x`` to an array shaped like ``d_out``.
    x : ndarray, any shape
        The point; it is copied, never mutated.
    d_out : ndarray, shape of ``f(x)``
        The upstream gradient.
    h : float
        Step size.

    Returns
    -------
    ndarray, shape of ``x``
        Entry :math:`k` is
        :math:`\langle d_{out}, f(x + h e_k) - f(x - h e_k)\rangle / (2h)`.
    """
    x = np.array(x, dtype=np.float64)  # a private copy we may perturb
    d_out = np.asarray(d_out, dtype=np.float64)
    grad = np.zeros_like(x)
    flat_x = x.reshape(-1)  # (x.size,) view into the copy
    flat_g = grad.reshape(-1)  # (x.size,)
    for k in range(flat_x.size):
        old = flat_x[k]
        flat_x[k] = old + h
        plus = np.sum(np.asarray(f(x), dtype=np.float64) * d_out)
        flat_x[k] = old - h
        minus = np.sum(np.asarray(f(x), dtype=np.float64) * d_out)
        flat_x[k] = old
        flat_g[k] = (plus - minus) / (2.0 * h)
    return grad


def rel_error(a: np.ndarray, b: np.ndarray, floor: float = 1e-12) -> float:
    r"""Relative error between two arrays, measured against their largest entries.

    Returns
    -------
    float
        :math:`\max_k |a_k - b_k| \,/\, \max(\max_k |a_k| + \max_k |b_k|,\ \text{floor})`;
        0.0 for empty arrays.

    Notes
    -----
    CS231n divides entry by entry, which lets an entry of :math:`10^{-9}`
    (where a central difference has absolute noise of about
    :math:`\epsilon_{mach}|f|/h \approx 10^{-10}`) dominate. Scaling by the
    largest entries instead measures what matters: how far the two gradients
    are apart compared with their size. Identical arrays give 0; arrays that
    differ in sign give 1.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(a))) + float(np.max(np.abs(b))), floor)
    return float(np.max(np.abs(a - b)) / scale)


def check_backward(
    forward: Callable[[np.ndarray], tuple[np.ndarray, object]],
    backward: Callable[[np.ndarray, object], np.ndarray],
    x: np.ndarray,
    d_out: np.ndarray | None = None,
    h: float = 1e-6,
    seed: int = 0,
) -> float:
    """Compare ``backward`` with a central-difference VJP of ``forward``.

    ``forward(x)`` must return ``(out, cache)`` and ``backward(d_out, cache)``
    the gradient with respect to ``x``. When ``d_out`` is None a random
    upstream gradient (seeded) of ``out``'s shape is used. Returns
    :func:`rel_error` of the two.
    """
    out, cache = forward(x)
    if d_out is None:
        d_out = np.random.default_rng(seed).normal(size=np.shape(out))
    analytic = backward(np.asarray(d_out, dtype=np.float64), cache)
    numeric = numerical_vjp(lambda p: forward(p)[0], x, d_out, h=h)
    return rel_error(analytic, numeric)
