r"""Distribution Focal Loss in PyTorch: pull a side's distribution onto the two
bins around its target.

The twin of :mod:`reference.dfl` (formula and hand-derived gradient there);
here autograd differentiates it. Targets are not range-checked: looking at a
value on a GPU costs a host sync (:func:`reference.dfl_forward` checks them).
"""

from __future__ import annotations

import torch

from .reduce import as_weight, weight_reduce_loss
from .validation import check_tensor, work_dtype

__all__ = ["distribution_focal_loss"]


def distribution_focal_loss(
    pred: torch.Tensor,
    label: torch.Tensor,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Distribution Focal Loss (the twin of :func:`reference.dfl_forward`).

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
    x = pred.to(work_dtype(pred.dtype))
    y = label.to(x.dtype)
    left = y.long()  # floor for y >= 0
    w_left = (left + 1).to(x.dtype) - y
    w_right = y - left.to(x.dtype)
    logp = torch.log_softmax(x, dim=1)  # (M, n+1)
    lp_left = logp.gather(1, left[:, None]).squeeze(1)
    lp_right = logp.gather(1, (left + 1)[:, None]).squeeze(1)
    loss = -(lp_left * w_left + lp_right * w_right)
    return weight_reduce_loss(loss, as_weight(weight, x.dtype), reduction, avg_factor)
