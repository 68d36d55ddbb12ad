r"""NumPy only: numerically stable building blocks — sigmoid, log-sigmoid, BCE from
logits, softmax and max-shifted log-softmax (torch has them built in).

Nothing here ever takes ``log(p + eps)``: every logarithm is taken of a
quantity that cannot underflow to zero.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "sigmoid",
    "softplus",
    "sigmoid_softplus",
    "log_sigmoid",
    "bce_with_logits",
    "log_softmax",
    "softmax",
]


def sigmoid(x: np.ndarray) -> np.ndarray:
    r"""Logistic sigmoid, exact for large :math:`|x|` (no overflow in ``exp``).

    Parameters
    ----------
    x : ndarray, any shape
        Logits.

    Returns
    -------
    ndarray, same shape as ``x``
        :math:`\sigma(x) = 1 / (1 + e^{-x})`.

    Notes
    -----
    Computed as :math:`1/(1+e^{-x})` for :math:`x \ge 0` and
    :math:`e^{x}/(1+e^{x})` for :math:`x < 0`, so ``exp`` only ever sees
    non-positive arguments.
    """
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))  # in (0, 1]
    return _sigmoid_from_exp(x, e)


def _sigmoid_from_exp(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    r""":math:`\sigma(x)` from :math:`e = e^{-|x|}`: 1 or :math:`e` over :math:`1 + e`."""
    out = np.where(x >= 0, 1.0, e)  # the numerator
    out /= 1.0 + e
    return out


def softplus(x: np.ndarray) -> np.ndarray:
    r"""Softplus :math:`\log(1 + e^{x}) = \max(x, 0) + \log(1 + e^{-|x|})`."""
    x = np.asarray(x, dtype=np.float64)
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def sigmoid_softplus(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Both :func:`sigmoid` and :func:`softplus` of ``x``, from one ``exp``.

    They share :math:`e = e^{-|x|}`: :math:`\sigma(x)` is :math:`1/(1+e)` or
    :math:`e/(1+e)`, and :math:`\operatorname{softplus}(x) = \max(x, 0) + \log(1 + e)`.
    The values are those of the two functions, bit for bit.
    """
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))  # in (0, 1]
    sp = np.maximum(x, 0.0)
    sp += np.log1p(e)
    return _sigmoid_from_exp(x, e), sp


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    r"""Log-sigmoid :math:`\log\sigma(x) = -\operatorname{softplus}(-x)`."""
    return -softplus(-np.asarray(x, dtype=np.float64))


def bce_with_logits(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Binary cross-entropy between :math:`\sigma(x)` and a soft target ``y``.

    Parameters
    ----------
    x : ndarray, any shape
        Logits.
    y : ndarray, broadcastable to ``x``
        Targets in :math:`[0, 1]`.

    Returns
    -------
    ndarray, broadcast shape
        :math:`-y\log\sigma(x) - (1-y)\log(1-\sigma(x))`.

    Notes
    -----
    Uses :math:`\log(1-\sigma(x)) = \log\sigma(x) - x`, so the loss is
    :math:`\operatorname{softplus}(x) - x y`, written as
    :math:`\max(x, 0) - x y + \log(1 + e^{-|x|})` (what
    ``torch.nn.functional.binary_cross_entropy_with_logits`` computes).
    Its derivative in :math:`x` is :math:`\sigma(x) - y`.
    """
    x = np.asarray(x, dtype=np.float64)
    return np.maximum(x, 0.0) - x * y + np.log1p(np.exp(-np.abs(x)))


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    r"""Max-shifted log-softmax along ``axis``.

    Notes
    -----
    :math:`\log\operatorname{softmax}(x)_i = (x_i - m) - \log\sum_j e^{x_j - m}`
    with :math:`m = \max_j x_j`; the sum is at least 1, so its log is finite.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape[axis] == 0:
        return x.copy()
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    r"""Max-shifted softmax along ``axis``: :math:`e^{x_i - m} / \sum_j e^{x_j - m}`."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[axis] == 0:
        return x.copy()
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)
