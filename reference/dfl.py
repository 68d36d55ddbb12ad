r"""Distribution Focal Loss: pull a side's distribution onto the two bins around its target.

Its PyTorch twin is :mod:`torch_impl.dfl`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .numerics import log_softmax
from .validation import as_float, check_scalar

__all__ = ["DFLCache", "dfl_forward", "dfl_backward"]


class DFLCache(NamedTuple):
    prob: np.ndarray  # (M, n+1) softmax of the logits
    left: np.ndarray  # (M,) int, floor(label)
    w_left: np.ndarray  # (M,) r - label
    w_right: np.ndarray  # (M,) label - l


def dfl_forward(
    pred: np.ndarray, label: np.ndarray, *, clamp_eps: float | None = None
) -> tuple[np.ndarray, DFLCache]:
    r"""Distribution Focal Loss of each row.

    Parameters
    ----------
    pred : ndarray, shape (M, n+1)
        Logits of one side's distribution over the bins 0..n.
    label : ndarray, shape (M,)
        Continuous target :math:`y` with :math:`0 \le y < n` (the head's
        targets lie in :math:`[0, n - 0.1]`).
    clamp_eps : float, optional
        A dialect switch (:mod:`reference.dialects`): when given, the label is
        first clamped to :math:`[0, n - \epsilon]`, as ultralytics' ``DFLoss``
        does (``clamp_eps=0.01``), so any finite label is accepted.

    Returns
    -------
    loss : ndarray, shape (M,)
    cache : DFLCache

    Raises
    ------
    ValueError
        If a label lies outside ``[0, n)`` (mmdetection raises an IndexError
        at ``n`` and silently extrapolates below 0).

    See Also
    --------
    torch_impl.distribution_focal_loss : the PyTorch twin, differentiated by autograd.

    Notes
    -----
    With :math:`y_l = \lfloor y \rfloor`, :math:`y_r = y_l + 1` and
    :math:`S = \operatorname{softmax}(z)`,

    .. math::
        \mathrm{DFL}(S; y) = -\big((y_r - y)\log S_{y_l} + (y - y_l)\log S_{y_r}\big),

    a cross-entropy with the "two-hot" target :math:`t` that puts
    :math:`y_r - y` on bin :math:`y_l` and :math:`y - y_l` on :math:`y_r`.
    Its weights sum to 1, so the gradient is the familiar

    .. math:: \frac{\partial\,\mathrm{DFL}}{\partial z_j} = S_j - t_j .
    """
    x = as_float(pred, "pred", ("M", None), finite=True)
    n = x.shape[1] - 1
    if n < 1:
        raise ValueError(f"pred must have shape (M, n+1) with n >= 1, got {x.shape}")
    y = as_float(label, "label", (x.shape[0],), finite=True)
    if clamp_eps is not None:
        eps = check_scalar(clamp_eps, "clamp_eps", low=0.0, high=1.0, low_open=True)
        y = np.clip(y, 0.0, n - eps)
    bad = (y < 0) | (y >= n)
    if np.any(bad):
        raise ValueError(
            f"label must lie in [0, n) = [0, {n}) for pred with n+1 = {n + 1} bins, "
            f"got {y[bad][:5].tolist()}"
        )
    left = np.floor(y).astype(np.int64)
    w_left = (left + 1) - y
    w_right = y - left
    logp = log_softmax(x, axis=1)  # (M, n+1)
    rows = np.arange(x.shape[0])
    loss = -(logp[rows, left] * w_left + logp[rows, left + 1] * w_right)
    return loss, DFLCache(np.exp(logp), left, w_left, w_right)


def dfl_backward(d_loss: np.ndarray, cache: DFLCache) -> np.ndarray:
    r"""Backward of :func:`dfl_forward`.

    Parameters
    ----------
    d_loss : ndarray, shape (M,)
    cache : DFLCache

    Returns
    -------
    d_pred : ndarray, shape (M, n+1)
        :math:`g\,(S - t)` with :math:`t` the two-hot target.
    """
    g = as_float(d_loss, "d_loss", cache.left.shape)
    rows = np.arange(cache.left.shape[0])
    d_pred = cache.prob * (cache.w_left + cache.w_right)[:, None]  # (M, n+1), weights sum to 1
    d_pred[rows, cache.left] -= cache.w_left
    d_pred[rows, cache.left + 1] -= cache.w_right
    return g[:, None] * d_pred
