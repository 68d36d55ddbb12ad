r"""The GIoU loss of aligned box pairs in PyTorch.

The twin of :mod:`reference.giou` (formula and hand-derived gradient there);
here autograd differentiates it. Computed in float32 at least.
"""

from __future__ import annotations

import torch

from .boxes import _overlaps
from .reduce import as_weight, weight_reduce_loss
from .validation import check_scalar, check_tensor, work_dtype

__all__ = ["giou_loss"]


def giou_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | torch.Tensor | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    r"""GIoU loss :math:`1 - \mathrm{GIoU}` of aligned pairs
    (the twin of :func:`reference.giou_loss_forward`).

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
    work = work_dtype(pred.dtype)
    gious = _overlaps(pred.to(work), target.to(work), "giou", True, eps)
    return weight_reduce_loss(1 - gious, as_weight(weight, work), reduction, avg_factor)
