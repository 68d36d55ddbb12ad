r"""The Integral in PyTorch: expected distance of each side's distribution."""

from __future__ import annotations

import torch
from torch import nn

from .validation import check_scalar, check_tensor


def integral(pred: torch.Tensor, reg_max: int = 16) -> torch.Tensor:
    r"""Expected distance per side, :math:`\sum_i \operatorname{softmax}(z)_i\, i`
    (see :func:`reference.integral_forward`).

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
    work = torch.float64 if pred.dtype == torch.float64 else torch.float32
    prob = torch.softmax(pred.reshape(*pred.shape[:-1], 4, k).to(work), dim=-1)  # (..., 4, n+1)
    bins = torch.arange(k, dtype=work, device=pred.device)  # (n+1,)
    return (prob * bins).sum(-1).to(pred.dtype)  # (..., 4)


class Integral(nn.Module):
    """Module form of :func:`integral` (mmdetection's ``Integral``), for one ``reg_max``."""

    def __init__(self, reg_max: int = 16) -> None:
        super().__init__()
        self.reg_max = check_scalar(reg_max, "reg_max", low=1, integer=True)

    def forward(self, pred: torch.Tensor) -> torch.Tensor:
        """``pred (N, 4*(reg_max+1))`` → ``(N, 4)``."""
        return integral(pred, self.reg_max)

    def extra_repr(self) -> str:
        return f"reg_max={self.reg_max}"


class Scale(nn.Module):
    """A learnable scalar that multiplies its input (one per FPN level in the head)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(check_scalar(scale, "scale"))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x * scale`` (the scale cast to ``x``'s dtype)."""
        return x * self.scale.to(x.dtype)
