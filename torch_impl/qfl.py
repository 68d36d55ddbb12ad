r"""Quality Focal Loss in PyTorch: a sigmoid classifier trained towards a soft IoU target.

The twin of :mod:`reference.qfl` (formula and hand-derived gradient there);
here autograd differentiates it. Computed in float32 at least, so float16 /
bfloat16 logits give a float32 loss; nothing reads a value on the host.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .reduce import as_weight, weight_reduce_loss
from .validation import check_scalar, check_tensor, work_dtype

__all__ = ["quality_focal_loss"]


def quality_focal_loss(
    pred: torch.Tensor,
    label: torch.Tensor,
    score: torch.Tensor,
    weight: torch.Tensor | None = None,
    beta: float = 2.0,
    reduction: str = "mean",
    avg_factor: float | torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Quality Focal Loss (the twin of :func:`reference.qfl_forward`, which has the formula).

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
    x = pred.to(work_dtype(pred.dtype))
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
    as_pos = _positive_term(x_l, s, beta)  # (N,)
    loss = neg.masked_fill(is_label, 0.0).sum(dim=1) + torch.where(pos, as_pos, zero)  # (N,)
    return weight_reduce_loss(loss, as_weight(weight, x.dtype), reduction, avg_factor)


def _positive_term(x: torch.Tensor, s: torch.Tensor, beta: float) -> torch.Tensor:
    """QFL of an entry whose target is the score ``s``: ``BCE(σ(x), s) · |s − σ(x)|^β``,
    elementwise, with ``BCE(σ(x), s) = softplus(x) − x s``."""
    return (_softplus(x) - x * s) * _pow((s - x.sigmoid()).abs(), beta)


class _DenseNegatives(torch.autograd.Function):
    r"""QFL's negative terms summed over a dense tensor, with a hand-written backward.

    ``forward(x, index, keep, weight, beta)``, with logits ``x`` of any shape and layout,
    ``index`` a tuple of ``x.ndim`` int64 ``(P,)`` tensors (advanced indexing: entry
    ``x[index[0][p], index[1][p], ...]``) and ``keep (P,)`` bool, returns

    * :math:`\sum w\,\mathrm{softplus}(x)\,\sigma(x)^\beta` over every entry of ``x`` but
      those at the kept indices (positives' label entries: they take the positive term
      instead); ``weight`` broadcasts to ``x``'s shape, None for all ones;
    * ``x[index]``, ``(P,)``: the positive terms, computed by autograd on these P logits,
      send their gradient back through this function's one dense gradient.

    Autograd's chain of elementwise ops (sigmoid, softplus, power, products, masks) makes
    about twenty passes over ``x``-sized tensors and allocates as many; this makes about
    ten passes over three buffers (the one holding the forward's products is reused for
    the gradient, in ``x``'s memory layout). The backward is
    :math:`\partial_x [\mathrm{softplus}(x)\,\sigma^\beta]
    = \sigma^\beta\,(\sigma + \beta\,\mathrm{softplus}(x)\,(1 - \sigma))`. The kept
    entries are set to exactly 0 in the loss and in the gradient (masked, never
    subtracted back: see :func:`quality_focal_loss`). Indices may repeat; those of the
    kept slots must not. Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, x, index, keep, weight, beta):
        sig = x.sigmoid()
        sp = _softplus(x)
        terms = _mask(_pow(sig, beta), index, keep, weight)  # w sigma^beta, a new buffer
        total = terms.mul_(sp).sum()  # the negative terms, summed
        ctx.save_for_backward(sig, sp, keep, weight, *index)
        ctx.beta = beta
        ctx.scratch = terms  # the backward writes the gradient over it (once)
        return total, x[index]

    @staticmethod
    @once_differentiable
    def backward(ctx, d_sum, d_at):
        sig, sp, keep, weight, *index = ctx.saved_tensors
        index = tuple(index)
        grad, ctx.scratch = ctx.scratch, None  # reused once (a retained graph allocates anew)
        grad = torch.empty_like(sig) if grad is None else grad
        torch.addcmul(sp, sp, sig, value=-1.0, out=grad)  # softplus(x) (1 - sigma)
        torch.add(sig, grad, alpha=ctx.beta, out=grad)  # sigma + beta softplus(x) (1 - sigma)
        grad.mul_(d_sum)
        if ctx.beta == 2.0:
            grad.mul_(sig).mul_(sig)
        elif ctx.beta != 0.0:
            grad.mul_(sig.pow(ctx.beta))
        _mask(grad, index, keep, weight)
        grad.index_put_(index, d_at, accumulate=True)  # the positive terms' gradient
        return grad, None, None, None, None


def _mask(
    t: torch.Tensor,
    index: tuple[torch.Tensor, ...],
    keep: torch.Tensor,
    weight: torch.Tensor | None,
) -> torch.Tensor:
    """``t *= weight`` and exact zeros at the kept entries ``t[index]``, in place."""
    if weight is not None:
        t.mul_(weight)
    _zero_at(t, index, keep)
    return t


def _zero_at(t: torch.Tensor, index: tuple[torch.Tensor, ...], keep: torch.Tensor) -> None:
    """Set ``t[index]`` to exactly 0 where ``keep``, in place; the other slots leave ``t`` as
    it is, even where their index repeats a kept one (``v - v - 0 = 0`` in any order)."""
    t.index_put_(index, -torch.where(keep, t[index], 0.0), accumulate=True)


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
