r"""Quality Focal Loss: a sigmoid classifier trained towards a soft IoU target."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .numerics import bce_with_logits, sigmoid, softplus
from .validation import as_float, as_int, check_scalar


class QFLCache(NamedTuple):
    pred: np.ndarray  # (N, C) logits
    sig: np.ndarray  # (N, C) sigmoid(pred)
    target: np.ndarray  # (N, C) soft target: score at [i, label_i] of positives, else 0
    pos_mask: np.ndarray  # (N, C) bool, the [i, label_i] entries of positive rows
    beta: float


def qfl_forward(
    pred: np.ndarray, label: np.ndarray, score: np.ndarray, beta: float = 2.0
) -> tuple[np.ndarray, QFLCache]:
    r"""Quality Focal Loss per anchor, summed over classes.

    Parameters
    ----------
    pred : ndarray, shape (N, C)
        Classification logits.
    label : ndarray of int, shape (N,)
        Class of each anchor: ``0 <= label < C`` is a positive; ``C`` (the
        background), ``-1`` or anything ``> C`` is a negative.
    score : ndarray, shape (N,)
        The quality (IoU) target of each positive, in ``[0, 1]``; ignored for
        negatives.
    beta : float
        The modulating exponent :math:`\beta \ge 0`.

    Returns
    -------
    loss : ndarray, shape (N,)
        Per-anchor loss, summed over the C classes.
    cache : QFLCache

    Notes
    -----
    With :math:`\sigma = \operatorname{sigmoid}(x)` and the soft target
    :math:`y` (the score at the positive's own class, 0 elsewhere),

    .. math::
        \mathrm{QFL}(x; y) = -|y - \sigma|^{\beta}
            \big((1-y)\log(1-\sigma) + y\log\sigma\big)
            = |y - \sigma|^{\beta}\,\mathrm{BCE}(x, y).

    For :math:`y = 0` this is :math:`\sigma^\beta\,\mathrm{softplus}(x)`.
    BCE is taken from logits: :math:`\mathrm{BCE}(x, y) = \mathrm{softplus}(x) - x y`.

    Gradient (the modulating factor is differentiated through, not detached),
    using :math:`\partial\sigma/\partial x = \sigma(1-\sigma)` and
    :math:`\partial\,\mathrm{BCE}/\partial x = \sigma - y`:

    .. math::
        \frac{\partial\,\mathrm{QFL}}{\partial x}
        = |y-\sigma|^{\beta}(\sigma - y)
        + \beta\,\mathrm{BCE}(x, y)\,|y - \sigma|^{\beta-1}
          \operatorname{sign}(\sigma - y)\,\sigma(1-\sigma).

    For :math:`y = 0` the second term is
    :math:`\beta\,\mathrm{softplus}(x)\,\sigma^{\beta}(1-\sigma)`.
    """
    dims: dict[str, int] = {}
    x = as_float(pred, "pred", ("N", "C"), dims, finite=True)
    lab = as_int(label, "label", ("N",), dims)
    s = as_float(score, "score", ("N",), dims, finite=True)
    beta = check_scalar(beta, "beta", low=0.0)
    n, c = x.shape
    pos = (lab >= 0) & (lab < c)  # (N,)
    if np.any(pos & ((s < 0) | (s > 1))):
        bad = s[pos & ((s < 0) | (s > 1))]
        raise ValueError(f"score must lie in [0, 1] at positives, got {bad[:5].tolist()}")
    pos_mask = pos[:, None] & (np.arange(c)[None, :] == lab[:, None])  # (N, C)
    target = np.where(pos_mask, s[:, None], 0.0)  # (N, C)
    sig = sigmoid(x)
    loss = bce_with_logits(x, target) * np.abs(target - sig) ** beta  # (N, C)
    return loss.sum(axis=1), QFLCache(x, sig, target, pos_mask, beta)


def qfl_backward(d_loss: np.ndarray, cache: QFLCache) -> np.ndarray:
    r"""Backward of :func:`qfl_forward`.

    Parameters
    ----------
    d_loss : ndarray, shape (N,)
        Upstream gradient of the per-anchor losses.
    cache : QFLCache

    Returns
    -------
    d_pred : ndarray, shape (N, C)
        See :func:`qfl_forward` for the formula.
    """
    g = as_float(d_loss, "d_loss", cache.pred.shape[:1])
    x, sig, y, beta = cache.pred, cache.sig, cache.target, cache.beta
    diff = sig - y  # (N, C)
    bce = softplus(x) - x * y
    # d|diff|^beta / d diff = beta |diff|^(beta-1) sign(diff); taken as 0 where
    # diff == 0 (its subgradient; only singular for beta < 1) and when beta == 0
    if beta == 0.0:
        d_mod = np.zeros_like(diff)
    else:
        safe = np.where(diff == 0.0, 1.0, np.abs(diff))
        d_mod = np.where(diff == 0.0, 0.0, beta * safe ** (beta - 1.0) * np.sign(diff))
    d_x = np.abs(diff) ** beta * diff + bce * d_mod * sig * (1.0 - sig)  # (N, C)
    return g[:, None] * d_x
