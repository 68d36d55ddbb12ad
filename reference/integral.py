r"""The Integral: a side's general distribution → its expected distance.

Its PyTorch twin is :mod:`torch_impl.integral`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .numerics import softmax
from .validation import as_float, check_scalar

__all__ = ["IntegralCache", "integral_forward", "integral_backward"]


class IntegralCache(NamedTuple):
    prob: np.ndarray  # (N, 4, n+1) softmax of each side
    out: np.ndarray  # (N, 4) expected distance of each side
    bins: np.ndarray  # (n+1,) the bin values 0..n
    pred_shape: tuple[int, ...]


def integral_forward(pred: np.ndarray, reg_max: int = 16) -> tuple[np.ndarray, IntegralCache]:
    r"""Expected distance of each side under its softmax distribution.

    Parameters
    ----------
    pred : ndarray, shape (N, 4*(reg_max+1))
        Four contiguous blocks of n+1 logits: left, top, right, bottom.
    reg_max : int
        n, the largest bin value.

    Returns
    -------
    out : ndarray, shape (N, 4)
        :math:`\hat y = \sum_{i=0}^{n} P(y_i)\, y_i` per side, in :math:`[0, n]`.
    cache : IntegralCache

    See Also
    --------
    torch_impl.integral : the PyTorch twin, differentiated by autograd.

    Notes
    -----
    With :math:`P = \operatorname{softmax}(z)` over one side's logits
    :math:`z \in \mathbb{R}^{n+1}` and bins :math:`y_i = i`,

    .. math:: \hat y = \sum_i P_i\, i .

    Backward: :math:`\partial P_i / \partial z_j = P_i(\delta_{ij} - P_j)`, so

    .. math::
        \frac{\partial \hat y}{\partial z_j} = \sum_i i\, P_i (\delta_{ij} - P_j)
        = P_j\,(j - \hat y).
    """
    reg_max = check_scalar(reg_max, "reg_max", low=1, integer=True)
    k = reg_max + 1
    x = as_float(pred, "pred", ("N", 4 * k), note=f"= (N, 4*(reg_max+1)) = (N, {4 * k})")
    prob = softmax(x.reshape(-1, 4, k), axis=-1)  # (N, 4, n+1)
    bins = np.arange(k, dtype=np.float64)  # (n+1,)
    out = prob @ bins  # (N, 4)
    return out, IntegralCache(prob, out, bins, x.shape)


def integral_backward(d_out: np.ndarray, cache: IntegralCache) -> np.ndarray:
    r"""Backward of :func:`integral_forward`.

    Parameters
    ----------
    d_out : ndarray, shape (N, 4)
        Upstream gradient of the expected distances.
    cache : IntegralCache

    Returns
    -------
    d_pred : ndarray, shape (N, 4*(reg_max+1))
        :math:`g \cdot P_j (j - \hat y)` for every logit :math:`z_j`.
    """
    g = as_float(d_out, "d_out", cache.out.shape)
    d_logits = g[..., None] * cache.prob * (cache.bins - cache.out[..., None])  # (N, 4, n+1)
    return d_logits.reshape(cache.pred_shape)  # (N, 4*(n+1))
