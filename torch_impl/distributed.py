"""torch only: the one collective the head needs, mmdetection's ``reduce_mean``
(the NumPy reference runs in one process)."""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["is_distributed", "reduce_mean"]


def is_distributed() -> bool:
    """True inside an initialised ``torch.distributed`` process group."""
    return dist.is_available() and dist.is_initialized()


def reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of ``t`` over all ranks (``t`` itself without a process group).

    The input is not modified; the result carries no gradient (the head only
    reduces normalisers built from detached quantities).
    """
    if not is_distributed():
        return t
    t = t.detach().clone()
    dist.all_reduce(t.div_(dist.get_world_size()), op=dist.ReduceOp.SUM)
    return t
