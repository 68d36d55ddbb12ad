r"""Element-wise weighting and reduction of a loss in PyTorch (mmdetection's
``weight_reduce_loss``).

The twin of :mod:`reference.reduce` (whose docstrings carry the math and the
hand-derived gradient); here autograd differentiates it.
"""

from __future__ import annotations

import torch

from reference.reduce import REDUCTIONS

from .validation import check_broadcastable, check_choice, check_scalar, check_tensor

__all__ = ["weight_reduce_loss"]


def weight_reduce_loss(
    loss: torch.Tensor,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Weight an element-wise loss and reduce it
    (the twin of :func:`reference.weight_reduce_forward`).

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
        check_broadcastable(tuple(weight.shape), tuple(loss.shape), "weight")
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


def as_weight(weight: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Check an optional element-wise ``weight`` and cast it to the loss's ``dtype``."""
    if weight is None:
        return None
    check_tensor(weight, "weight")
    return weight.to(dtype)
