"""Assertions shared by the per-piece agreement tests (NumPy reference vs torch_impl)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from reference import weight_reduce_backward, weight_reduce_forward
from reference.gradcheck import rel_error


def assert_rel(a, b, tol: float, what: str = "", floor: float = 1e-12) -> None:
    """``rel_error(a, b) <= tol``, saying what was compared when it is not."""
    err = rel_error(np.asarray(a), np.asarray(b), floor=floor)
    assert err <= tol, f"{what}: rel_error {err:.3g} > {tol:g}"


def check_reduced_loss_matches_torch(
    forward: Callable,
    backward: Callable,
    torch_loss: Callable,
    inputs: tuple,
    seed: int,
    reduction: str,
    use_weight: bool,
    avg: float | None,
    avg_as_tensor: bool,
    grad_floor: Callable[[np.ndarray], float] = lambda d_loss: 1e-12,
    **options,
) -> None:
    """A reference loss composed with ``weight_reduce`` equals the torch loss with the same options.

    ``forward(*inputs, **options) -> (loss (N,), cache)`` and ``backward(d_loss, cache) ->
    d_pred`` are the reference pair; ``torch_loss(*inputs, d_out, **options, weight=…,
    reduction=…, avg_factor=…) -> (out, d_pred)`` runs the torch loss and its autograd
    backward; ``options`` are the loss's own settings (QFL's ``beta``). ``grad_floor(d_loss)``
    is the gradient scale below which entries are compared absolutely. ``avg`` is dropped for
    ``"sum"`` (mmdetection rejects it there); ``avg_as_tensor`` passes it to torch as a 0-d
    tensor.
    """
    pred = inputs[0]
    if reduction == "sum":
        avg = None
    rng = np.random.default_rng(seed)
    weight = rng.uniform(0.0, 2.0, size=pred.shape[0]) if use_weight else None
    loss, cache = forward(*inputs, **options)
    out, r_cache = weight_reduce_forward(loss, weight, reduction, avg)
    d_out = rng.normal(size=out.shape)
    d_loss = weight_reduce_backward(d_out, r_cache)
    d_pred = backward(d_loss, cache)
    t_avg = torch.tensor(avg, dtype=torch.float64) if (avg is not None and avg_as_tensor) else avg
    t_weight = None if weight is None else torch.from_numpy(weight)
    t_out, t_grad = torch_loss(
        *inputs, d_out, **options, weight=t_weight, reduction=reduction, avg_factor=t_avg
    )
    assert t_out.shape == out.shape
    assert_rel(out, t_out, 1e-10, "forward")
    assert_rel(d_pred, t_grad, 1e-10, "gradient", floor=grad_floor(d_loss))
