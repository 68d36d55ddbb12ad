r"""GFL's losses in PyTorch, with mmdetection's ``weight`` / ``reduction`` /
``avg_factor`` arguments.

Formulas and gradients are documented in :mod:`reference` (``qfl_forward``,
``dfl_forward``, ``giou_loss_forward``, ``weight_reduce_forward``); here
autograd differentiates them. Every loss is computed in float32 at least
(float64 stays float64), so float16 / bfloat16 inputs give a float32 loss.
No function reads a tensor's values on the host: nothing here syncs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reference.reduce import REDUCTIONS

from .boxes import _overlaps
from .validation import check_choice, check_scalar, check_tensor, loss_dtype


def weight_reduce_loss(
    loss: torch.Tensor,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Weight an element-wise loss and reduce it (see :func:`reference.weight_reduce_forward`).

    Parameters
    ----------
    loss : Tensor, any shape
    weight : Tensor, optional, broadcastable to ``loss``'s shape
    reduction : {"none", "mean", "sum"}
    avg_factor : float or 0-d Tensor, optional
        ``mean`` divides the weighted sum by it (no eps added); unused by
        ``none``; an error with ``sum``.

    Returns
    -------
    Tensor, shape () or ``loss``'s shape
        ``mean`` of an empty loss is 0.
    """
    check_tensor(loss, "loss")
    check_choice(reduction, "reduction", REDUCTIONS)
    if weight is not None:
        check_tensor(weight, "weight")
        try:
            b = torch.broadcast_shapes(weight.shape, loss.shape)
        except RuntimeError:
            b = None
        if b != loss.shape:
            raise ValueError(
                f"weight must be broadcastable to loss's shape {tuple(loss.shape)}, "
                f"got {tuple(weight.shape)}"
            )
        loss = loss * weight
    if avg_factor is not None and reduction == "sum":
        raise ValueError('avg_factor can not be used with reduction="sum"')
    if isinstance(avg_factor, torch.Tensor):
        if avg_factor.dim() != 0 or avg_factor.dtype == torch.bool or avg_factor.is_complex():
            raise ValueError(
                "avg_factor must be a number or a 0-d real tensor, "
                f"got a tensor of shape {tuple(avg_factor.shape)} and dtype {avg_factor.dtype}"
            )
    elif avg_factor is not None:
        avg_factor = check_scalar(avg_factor, "avg_factor", low=0.0, low_open=True)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if avg_factor is None:
        if loss.numel() == 0:
            return loss.sum()  # 0, and keeps the graph
        return loss.mean()
    return loss.sum() / avg_factor


def quality_focal_loss(
    pred: torch.Tensor,
    label: torch.Tensor,
    score: torch.Tensor,
    weight: torch.Tensor | None = None,
    beta: float = 2.0,
    reduction: str = "mean",
    avg_factor: float | torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Quality Focal Loss (see :func:`reference.qfl_forward` for the formula).

    Parameters
    ----------
    pred : Tensor, shape (N, C)
        Logits.
    label : Tensor of int, shape (N,)
        ``0 <= label < C`` positive; ``C``, ``-1`` or ``> C`` negative.
    score : Tensor, shape (N,)
        IoU target of each positive (ignored for negatives).
    weight : Tensor, shape (N,), optional
    beta : float
    reduction, avg_factor
        As :func:`weight_reduce_loss`.

    Returns
    -------
    Tensor
        Per-anchor losses ``(N,)`` summed over classes, then reduced.

    Notes
    -----
    Every entry is first scored as a negative, :math:`\mathrm{softplus}(x)\,\sigma^\beta`
    (no dense target tensor is built); each positive row then masks its label
    entry out of that sum and adds the positive term, computed on an
    ``(N,)``-sized gather. (Subtracting the label's negative term back instead
    would cancel catastrophically when its logit is large: a well-predicted
    positive's loss of 3e-7 at logit 12 came out as 0 in float32.) Shapes are
    static, so nothing calls ``nonzero()`` or syncs. A negative's score is
    replaced by 0 before use, so a NaN there cannot leak into the gradient.
    """
    dims: dict[str, int] = {}
    check_tensor(pred, "pred", ("N", "C"), dims)
    check_tensor(label, "label", ("N",), dims, kind="int")
    check_tensor(score, "score", ("N",), dims)
    beta = check_scalar(beta, "beta", low=0.0)
    c = pred.shape[1]
    x = pred.to(loss_dtype(pred.dtype))
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    # every entry as a negative (y = 0): BCE(x, 0) * sigma^beta = softplus(x) * sigma^beta
    neg = _softplus(x) * _pow(x.sigmoid(), beta)  # (N, C)
    # each positive row: its label entry takes the positive term instead (masked out of
    # the negative sum, not subtracted from it, which would cancel for large logits)
    pos = (label >= 0) & (label < c)  # (N,)
    classes = torch.arange(c, device=x.device)
    is_label = pos[:, None] & (classes[None, :] == label[:, None])  # (N, C) bool
    column = label.clamp(0, max(c - 1, 0))[:, None]  # (N, 1)
    x_l = x.gather(1, column).squeeze(1)  # (N,) logit at the label
    s = torch.where(pos, score.to(x.dtype), zero)  # a negative's score is never read
    sig_l = x_l.sigmoid()
    sp_l = _softplus(x_l)
    as_pos = (sp_l - x_l * s) * _pow((s - sig_l).abs(), beta)  # BCE(x, s) = softplus(x) - x s
    loss = neg.masked_fill(is_label, 0.0).sum(dim=1) + torch.where(pos, as_pos, zero)  # (N,)
    return weight_reduce_loss(loss, _as_dtype(weight, x.dtype), reduction, avg_factor)


def distribution_focal_loss(
    pred: torch.Tensor,
    label: torch.Tensor,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Distribution Focal Loss (see :func:`reference.dfl_forward`).

    Parameters
    ----------
    pred : Tensor, shape (M, n+1)
        Logits over the bins 0..n.
    label : Tensor, shape (M,)
        Targets in ``[0, n)`` (not checked here: looking costs a sync).
    weight : Tensor, shape (M,), optional
    reduction, avg_factor
        As :func:`weight_reduce_loss`.

    Returns
    -------
    Tensor
    """
    dims: dict[str, int] = {}
    check_tensor(pred, "pred", ("M", None), dims)
    if pred.shape[1] < 2:
        raise ValueError(
            f"pred must have shape (M, n+1) with n >= 1, got {tuple(pred.shape)}"
        )
    check_tensor(label, "label", ("M",), dims)
    x = pred.to(loss_dtype(pred.dtype))
    y = label.to(x.dtype)
    left = y.long()  # floor for y >= 0
    w_left = (left + 1).to(x.dtype) - y
    w_right = y - left.to(x.dtype)
    logp = torch.log_softmax(x, dim=1)  # (M, n+1)
    lp_left = logp.gather(1, left[:, None]).squeeze(1)
    lp_right = logp.gather(1, (left + 1)[:, None]).squeeze(1)
    loss = -(lp_left * w_left + lp_right * w_right)
    return weight_reduce_loss(loss, _as_dtype(weight, x.dtype), reduction, avg_factor)


def giou_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | torch.Tensor | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    r"""GIoU loss :math:`1 - \mathrm{GIoU}` of aligned pairs
    (see :func:`reference.giou_loss_forward`).

    Parameters
    ----------
    pred, target : Tensor, shape (M, 4)
    weight : Tensor, shape (M,), optional
    reduction, avg_factor
        As :func:`weight_reduce_loss`.
    eps : float

    Returns
    -------
    Tensor
    """
    dims: dict[str, int] = {}
    check_tensor(pred, "pred", ("M", 4), dims)
    check_tensor(target, "target", ("M", 4), dims)
    eps = check_scalar(eps, "eps", low=0.0)
    work = loss_dtype(pred.dtype)
    gious = _overlaps(pred.to(work), target.to(work), "giou", True, eps)
    return weight_reduce_loss(1 - gious, _as_dtype(weight, work), reduction, avg_factor)


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + e^x)`` to full float64 precision.

    ``F.softplus`` returns ``x`` itself above its default threshold of 20,
    which is off by ``e^-20 ~ 2e-9`` (1e-10 relative); above 40 the
    difference is below float64's resolution.
    """
    return F.softplus(x, beta=1.0, threshold=40.0)


def _pow(x: torch.Tensor, beta: float) -> torch.Tensor:
    """``x ** beta``: a plain product for the usual beta = 2, and 1 for beta = 0
    (``pow``'s gradient at ``x = 0, beta = 0`` would be 0 * inf = NaN)."""
    if beta == 0.0:
        return torch.ones_like(x)
    return x * x if beta == 2.0 else x.pow(beta)


def _as_dtype(weight: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    if weight is None:
        return None
    check_tensor(weight, "weight")
    return weight.to(dtype)
