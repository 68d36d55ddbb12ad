r"""Element-wise weighting and reduction of a loss (mmdetection's ``weight_reduce_loss``).

Its PyTorch twin is :mod:`torch_impl.reduce`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .validation import as_float, check_broadcastable, check_choice, check_scalar

__all__ = ["ReduceCache", "weight_reduce_forward", "weight_reduce_backward"]

REDUCTIONS = ("none", "mean", "sum")


class ReduceCache(NamedTuple):
    scale: np.ndarray  # d out / d loss, broadcast to loss's shape
    out_shape: tuple[int, ...]


def weight_reduce_forward(
    loss: np.ndarray,
    weight: np.ndarray | None = None,
    reduction: str = "mean",
    avg_factor: float | None = None,
    *,
    eps: float = 0.0,
) -> tuple[np.ndarray, ReduceCache]:
    r"""Weight an element-wise loss and reduce it.

    Parameters
    ----------
    loss : ndarray, any shape
        Element-wise loss.
    weight : ndarray, optional, broadcastable to ``loss``'s shape
        Element-wise weight.
    reduction : {"none", "mean", "sum"}
    avg_factor : float, optional
        With ``reduction="mean"`` the weighted sum is divided by it instead of
        by the number of elements. With ``"none"`` it is unused; with
        ``"sum"`` it is an error.
    eps : float
        A dialect switch (:mod:`reference.dialects`): added to ``avg_factor``
        before dividing. 0 here (SPEC); mmdetection 3.x (and 2.28) add
        float32's epsilon, :math:`1.19 \times 10^{-7}`.

    Returns
    -------
    out : ndarray, shape () or ``loss``'s shape (``"none"``)
    cache : ReduceCache

    See Also
    --------
    torch_impl.weight_reduce_loss : the PyTorch twin, differentiated by autograd.

    Notes
    -----
    .. math::
        \text{mean: } \frac{1}{D}\sum_k w_k \ell_k, \qquad
        D = \text{avg\_factor if given, else the number of elements},

    and the mean of an empty loss is 0. (mmdetection 2.28 divides by
    ``avg_factor + 1.19e-7``; we divide by ``avg_factor`` exactly.) The
    gradient is :math:`\partial\,\text{out}/\partial \ell_k = w_k / D` for
    ``mean``, :math:`w_k` for ``sum`` and element-wise :math:`w_k` for
    ``none``.
    """
    x = as_float(loss, "loss", finite=True)
    check_choice(reduction, "reduction", REDUCTIONS)
    if weight is None:
        w = np.ones_like(x)
    else:
        w = as_float(weight, "weight", finite=True)
        check_broadcastable(w.shape, x.shape, "weight")
        w = np.broadcast_to(w, x.shape)
    weighted = x * w
    eps = check_scalar(eps, "eps", low=0.0)
    if avg_factor is not None:
        avg_factor = check_scalar(avg_factor, "avg_factor", low=0.0, low_open=True)
        if reduction == "sum":
            raise ValueError('avg_factor can not be used with reduction="sum"')
    if reduction == "none":
        return weighted, ReduceCache(w.copy(), x.shape)
    if reduction == "sum":
        return np.asarray(weighted.sum()), ReduceCache(w.copy(), ())
    denom = avg_factor + eps if avg_factor is not None else float(x.size)
    if denom == 0:  # mean of an empty loss is 0
        return np.asarray(0.0), ReduceCache(np.zeros_like(w), ())
    return np.asarray(weighted.sum() / denom), ReduceCache(w / denom, ())


def weight_reduce_backward(d_out: np.ndarray, cache: ReduceCache) -> np.ndarray:
    r"""Backward of :func:`weight_reduce_forward`.

    Parameters
    ----------
    d_out : ndarray, shape of the forward's output
    cache : ReduceCache

    Returns
    -------
    d_loss : ndarray, ``loss``'s shape
    """
    g = as_float(d_out, "d_out", cache.out_shape)
    return g * cache.scale
