r"""The GIoU loss of aligned box pairs, with its hand-derived gradient.

Its PyTorch twin is :mod:`torch_impl.giou`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .validation import as_float, check_scalar

__all__ = ["GIoUCache", "giou_loss_forward", "giou_loss_backward"]


def _max_weight(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of the gradient of ``maximum(a, b)`` that goes to ``a`` (1, 0 or ½ at a tie)."""
    return np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))


class GIoUCache(NamedTuple):
    pred: np.ndarray  # (M, 4)
    target: np.ndarray  # (M, 4)
    eps: float


def _giou_parts(p: np.ndarray, t: np.ndarray, eps: float) -> dict[str, np.ndarray]:
    """Every intermediate of GIoU for aligned pairs (each entry shape (M,) or (M, 2))."""
    lt = np.maximum(p[:, :2], t[:, :2])  # (M, 2)
    rb = np.minimum(p[:, 2:], t[:, 2:])  # (M, 2)
    wh_raw = rb - lt
    wh = np.clip(wh_raw, 0.0, None)
    overlap = wh[:, 0] * wh[:, 1]
    area_p = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])
    area_t = (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])
    union_raw = area_p + area_t - overlap
    union = np.maximum(union_raw, eps)
    enc_raw_wh = np.maximum(p[:, 2:], t[:, 2:]) - np.minimum(p[:, :2], t[:, :2])  # (M, 2)
    enc_wh = np.clip(enc_raw_wh, 0.0, None)
    enc_raw = enc_wh[:, 0] * enc_wh[:, 1]
    enclose = np.maximum(enc_raw, eps)
    giou = overlap / union - (enclose - union) / enclose
    return dict(wh_raw=wh_raw, wh=wh, overlap=overlap, union_raw=union_raw, union=union,
                enc_raw_wh=enc_raw_wh, enc_wh=enc_wh, enc_raw=enc_raw, enclose=enclose, giou=giou)


def giou_loss_forward(
    pred: np.ndarray, target: np.ndarray, eps: float = 1e-6
) -> tuple[np.ndarray, GIoUCache]:
    r"""GIoU loss :math:`1 - \mathrm{GIoU}` of each aligned pair.

    Parameters
    ----------
    pred : ndarray, shape (M, 4)
        Predicted boxes ``(x1, y1, x2, y2)``.
    target : ndarray, shape (M, 4)
        Target boxes.
    eps : float
        Lower bound of the union and of the enclosing area.

    Returns
    -------
    loss : ndarray, shape (M,)
        In :math:`[0, 2]`.
    cache : GIoUCache

    See Also
    --------
    torch_impl.giou_loss : the PyTorch twin, differentiated by autograd.

    Notes
    -----
    With intersection :math:`I`, union :math:`U = \max(A_p + A_t - I, \epsilon)`
    and enclosing area :math:`E = \max(E_{raw}, \epsilon)`,

    .. math::
        L = 1 - \Big(\frac{I}{U} - \frac{E - U}{E}\Big) = 2 - \frac{I}{U} - \frac{U}{E}.

    Gradient, by the chain rule through the three areas:

    .. math::
        \frac{\partial L}{\partial I} = -\frac{1}{U}, \quad
        \frac{\partial L}{\partial U} = \frac{I}{U^2} - \frac{1}{E}, \quad
        \frac{\partial L}{\partial E} = \frac{U}{E^2},

    then :math:`U = A_p + A_t - I` (so :math:`I` also receives
    :math:`-\partial L/\partial U`), :math:`I = w_I h_I` with
    :math:`w_I = \max(\min(x_2, X_2) - \max(x_1, X_1), 0)`,
    :math:`E = w_E h_E` with :math:`w_E = \max(x_2, X_2) - \min(x_1, X_1)`, and
    :math:`A_p = (x_2 - x_1)(y_2 - y_1)`. Each ``min``/``max`` routes the
    gradient to the side that wins (half to each on an exact tie, as torch
    does); each clamp at 0 (and at :math:`\epsilon`) passes it only where the
    clamp is inactive.
    """
    dims: dict[str, int] = {}
    p = as_float(pred, "pred", ("M", 4), dims, finite=True)
    t = as_float(target, "target", ("M", 4), dims, finite=True)
    eps = check_scalar(eps, "eps", low=0.0)
    parts = _giou_parts(p, t, eps)
    return 1.0 - parts["giou"], GIoUCache(p, t, eps)


def giou_loss_backward(d_loss: np.ndarray, cache: GIoUCache) -> np.ndarray:
    r"""Backward of :func:`giou_loss_forward` with respect to ``pred``.

    Parameters
    ----------
    d_loss : ndarray, shape (M,)
    cache : GIoUCache

    Returns
    -------
    d_pred : ndarray, shape (M, 4)
        See :func:`giou_loss_forward`'s Notes for the chain.
    """
    p, t = cache.pred, cache.target
    g = as_float(d_loss, "d_loss", p.shape[:1])
    q = _giou_parts(p, t, cache.eps)
    I, U, E = q["overlap"], q["union"], q["enclose"]

    # L = 2 - I/U - U/E
    d_U = g * (I / U**2 - 1.0 / E)
    d_E = g * (U / E**2)
    d_I = g * (-1.0 / U)
    # U = max(U_raw, eps); E = max(E_raw, eps)
    d_U_raw = d_U * _max_weight(q["union_raw"], np.full_like(U, cache.eps))
    d_E_raw = d_E * _max_weight(q["enc_raw"], np.full_like(E, cache.eps))
    # U_raw = A_p + A_t - I
    d_area_p = d_U_raw
    d_I = d_I - d_U_raw
    # I = w_I * h_I with (w_I, h_I) = clamp(rb - lt, 0)
    wh, enc_wh = q["wh"], q["enc_wh"]
    d_wh = np.stack([d_I * wh[:, 1], d_I * wh[:, 0]], axis=1)  # (M, 2)
    d_wh_raw = d_wh * (q["wh_raw"] >= 0.0)
    # E_raw = w_E * h_E with (w_E, h_E) = clamp(max(p2, t2) - min(p1, t1), 0)
    d_enc_wh = np.stack([d_E_raw * enc_wh[:, 1], d_E_raw * enc_wh[:, 0]], axis=1)  # (M, 2)
    d_enc_raw_wh = d_enc_wh * (q["enc_raw_wh"] >= 0.0)

    d_p = np.zeros_like(p)
    # rb = min(p2, t2), lt = max(p1, t1): wh_raw = rb - lt
    d_p[:, 2:] += d_wh_raw * _max_weight(-p[:, 2:], -t[:, 2:])
    d_p[:, :2] -= d_wh_raw * _max_weight(p[:, :2], t[:, :2])
    # enclosing: max(p2, t2) - min(p1, t1)
    d_p[:, 2:] += d_enc_raw_wh * _max_weight(p[:, 2:], t[:, 2:])
    d_p[:, :2] -= d_enc_raw_wh * _max_weight(-p[:, :2], -t[:, :2])
    # A_p = (x2 - x1) * (y2 - y1)
    w_p = p[:, 2] - p[:, 0]
    h_p = p[:, 3] - p[:, 1]
    d_p[:, 0] -= d_area_p * h_p
    d_p[:, 2] += d_area_p * h_p
    d_p[:, 1] -= d_area_p * w_p
    d_p[:, 3] += d_area_p * w_p
    return d_p
