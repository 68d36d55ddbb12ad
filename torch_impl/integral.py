r"""The Integral in PyTorch: a side's general distribution → its expected distance.

The twin of :mod:`reference.integral` (formula and hand-derived gradient
there); here autograd differentiates it. Its ``nn.Module`` form,
:class:`~torch_impl.modules.Integral`, lives with the other modules.
"""

from __future__ import annotations

import torch

from .validation import check_scalar, check_tensor, work_dtype

__all__ = ["integral"]


def integral(pred: torch.Tensor, reg_max: int = 16) -> torch.Tensor:
    r"""Expected distance per side, :math:`\sum_i \operatorname{softmax}(z)_i\, i`
    (the twin of :func:`reference.integral_forward`).

    Parameters
    ----------
    pred : Tensor, shape (N, 4*(reg_max+1))
        Four blocks of n+1 logits (left, top, right, bottom).
    reg_max : int

    Returns
    -------
    Tensor, shape (N, 4)
        Same dtype as ``pred``; the softmax is taken in float32 at least.
    """
    reg_max = check_scalar(reg_max, "reg_max", low=1, integer=True)
    k = reg_max + 1
    check_tensor(pred, "pred", ("N", 4 * k), note=f"= (N, 4*(reg_max+1)) = (N, {4 * k})")
    return _integral(pred, reg_max)


def _integral(pred: torch.Tensor, reg_max: int) -> torch.Tensor:
    """Unchecked Integral over the last axis: ``(..., 4*(n+1))`` → ``(..., 4)``."""
    k = reg_max + 1
    work = work_dtype(pred.dtype)
    prob = torch.softmax(pred.reshape(*pred.shape[:-1], 4, k).to(work), dim=-1)  # (..., 4, n+1)
    bins = torch.arange(k, dtype=work, device=pred.device)  # (n+1,)
    return (prob * bins).sum(-1).to(pred.dtype)  # (..., 4)
