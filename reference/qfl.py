r"""Quality Focal Loss: a sigmoid classifier trained towards a soft IoU target.

Its PyTorch twin is :mod:`torch_impl.qfl`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .numerics import bce_with_logits, sigmoid_softplus
from .validation import as_float, as_int, check_scalar

__all__ = ["QFLCache", "qfl_forward", "qfl_backward"]  # the helpers serve qfl_fast too


class QFLCache(NamedTuple):
    sig: np.ndarray | None  # (N, C) sigmoid(pred)
    softplus: np.ndarray | None  # (N, C) softplus(pred) = BCE(pred, 0)
    sig_beta: np.ndarray | None  # (N, C) sigmoid(pred) ** beta
    pos_rows: np.ndarray  # (P,) rows of the positives
    pos_cols: np.ndarray  # (P,) their labels
    pos_pred: np.ndarray  # (P,) the logit at [row, label]
    pos_score: np.ndarray  # (P,) the soft target y of each positive
    beta: float
    abs_factor: bool = True
    # (N, C) the gradient for d_loss = 1: reference.qfl_fast computes it in the forward and
    # keeps it instead of the three arrays above (which are then None)
    d_pred: np.ndarray | None = None


def positive_entries(x: np.ndarray, sig: np.ndarray, y: np.ndarray, beta: float, absolute: bool):
    """BCE(x, y) and |y - sigma|^beta (or (y - sigma)^beta) at the positive entries (shape (P,))."""
    u = y - sig
    return bce_with_logits(x, y), (np.abs(u) if absolute else u) ** beta


def positive_grad(
    x: np.ndarray, sig: np.ndarray, y: np.ndarray, beta: float, absolute: bool
) -> np.ndarray:
    r"""d QFL / dx at the positive entries (shape (P,)): the general formula of
    :func:`qfl_forward`'s Notes, at logits ``x``, their sigmoids ``sig`` and targets ``y``."""
    diff = sig - y
    bce_p, mod_p = positive_entries(x, sig, y, beta, absolute)
    # d|diff|^beta / d diff = beta |diff|^(beta-1) sign(diff); taken as 0 where diff == 0
    # (the true derivative for beta > 1, a subgradient for beta == 1, a convention for
    # 0 < beta < 1, where it is infinite) and when beta == 0. Without the abs (GFocal):
    # d (-diff)^beta / d diff = -beta (-diff)^(beta-1), smooth for beta >= 1: at diff == 0
    # it is -1 for beta == 1 (the factor is linear), 0 for beta > 1 (0 by convention below 1).
    if beta == 0.0:
        d_mod = np.zeros_like(diff)
    elif absolute:
        safe = np.where(diff == 0.0, 1.0, np.abs(diff))
        d_mod = np.where(diff == 0.0, 0.0, beta * safe ** (beta - 1.0) * np.sign(diff))
    else:
        safe = np.where(diff == 0.0, 1.0, -diff)
        d_mod = np.where((diff == 0.0) & (beta != 1.0), 0.0, -beta * safe ** (beta - 1.0))
    return mod_p * diff + bce_p * d_mod * sig * (1.0 - sig)


def check_qfl_inputs(
    pred: np.ndarray, label: np.ndarray, score: np.ndarray, beta: float, abs_factor: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """:func:`qfl_forward`'s checks; returns ``x (N, C)``, the positives' rows, labels and
    scores ``(P,)``, and ``beta`` (shared with :mod:`reference.qfl_fast`)."""
    dims: dict[str, int] = {}
    x = as_float(pred, "pred", ("N", "C"), dims, finite=True)
    lab = as_int(label, "label", ("N",), dims)
    s = as_float(score, "score", ("N",), dims, finite=True)
    beta = check_scalar(beta, "beta", low=0.0)
    if not isinstance(abs_factor, bool | np.bool_):
        raise ValueError(f"abs_factor must be True or False, got {abs_factor!r}")
    c = x.shape[1]
    pos_rows = np.flatnonzero((lab >= 0) & (lab < c))  # (P,)
    pos_cols = lab[pos_rows]
    y = s[pos_rows]
    if np.any((y < 0) | (y > 1)):
        bad = y[(y < 0) | (y > 1)]
        raise ValueError(f"score must lie in [0, 1] at positives, got {bad[:5].tolist()}")
    return x, pos_rows, pos_cols, y, beta


def qfl_forward(
    pred: np.ndarray,
    label: np.ndarray,
    score: np.ndarray,
    beta: float = 2.0,
    *,
    abs_factor: bool = True,
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
    abs_factor : bool
        A dialect switch (:mod:`reference.dialects`): False takes the factor of
        a positive as :math:`(y - \sigma)^\beta`, without the absolute value
        (the original GFocal code): the same for an even :math:`\beta`, a
        negative loss for an odd one, NaN for a fractional one when
        :math:`\sigma > y`.

    Returns
    -------
    loss : ndarray, shape (N,)
        Per-anchor loss, summed over the C classes.
    cache : QFLCache

    See Also
    --------
    torch_impl.quality_focal_loss : the PyTorch twin, differentiated by autograd.

    Notes
    -----
    With :math:`\sigma = \operatorname{sigmoid}(x)` and the soft target
    :math:`y` (the score at the positive's own class, 0 elsewhere),

    .. math::
        \mathrm{QFL}(x; y) = -|y - \sigma|^{\beta}
            \big((1-y)\log(1-\sigma) + y\log\sigma\big)
            = |y - \sigma|^{\beta}\,\mathrm{BCE}(x, y).

    BCE is taken from logits: :math:`\mathrm{BCE}(x, y) = \mathrm{softplus}(x) - x y`.
    Every entry first gets the negative term (:math:`y = 0`),
    :math:`\sigma^\beta\,\mathrm{softplus}(x)`; the entry ``[i, label_i]``
    of each positive row is then replaced by the general formula.

    Gradient (the modulating factor is differentiated through, not detached),
    using :math:`\partial\sigma/\partial x = \sigma(1-\sigma)` and
    :math:`\partial\,\mathrm{BCE}/\partial x = \sigma - y`:

    .. math::
        \frac{\partial\,\mathrm{QFL}}{\partial x}
        = |y-\sigma|^{\beta}(\sigma - y)
        + \beta\,\mathrm{BCE}(x, y)\,|y - \sigma|^{\beta-1}
          \operatorname{sign}(\sigma - y)\,\sigma(1-\sigma),

    which for :math:`y = 0` is
    :math:`\sigma^{\beta}\big(\sigma + \beta\,\mathrm{softplus}(x)(1-\sigma)\big)`.
    The same loss and gradient, faster: :func:`reference.qfl_fast.qfl_forward_fast`
    (what :func:`reference.gfl_loss_forward` runs).
    """
    x, pos_rows, pos_cols, y, beta = check_qfl_inputs(pred, label, score, beta, abs_factor)
    sig, sp = sigmoid_softplus(x)  # (N, C) each, from one exp
    sig_beta = sig**beta
    loss = sp * sig_beta  # (N, C): every entry as a negative
    xp = x[pos_rows, pos_cols]
    bce_p, mod_p = positive_entries(xp, sig[pos_rows, pos_cols], y, beta, bool(abs_factor))
    loss[pos_rows, pos_cols] = bce_p * mod_p
    cache = QFLCache(sig, sp, sig_beta, pos_rows, pos_cols, xp, y, beta, bool(abs_factor))
    return loss.sum(axis=1), cache


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
    if cache.d_pred is not None:  # qfl_forward_fast's cache: the gradient is there already
        return cache.d_pred * as_float(d_loss, "d_loss", cache.d_pred.shape[:1])[:, None]
    g = as_float(d_loss, "d_loss", cache.sig.shape[:1])
    sig, beta = cache.sig, cache.beta
    # negatives (y = 0): sigma^beta * (sigma + beta * softplus(x) * (1 - sigma))
    d_x = beta * cache.softplus  # (N, C), then in place: a private temporary
    d_x *= 1.0 - sig
    d_x += sig
    d_x *= cache.sig_beta
    # positives: the general formula at [row, label]
    r, c = cache.pos_rows, cache.pos_cols
    d_x[r, c] = positive_grad(cache.pos_pred, sig[r, c], cache.pos_score, beta, cache.abs_factor)
    d_x *= g[:, None]
    return d_x
