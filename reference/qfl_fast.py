r"""NumPy only: the fast path of :mod:`reference.qfl`, tested against it.

:func:`qfl_forward_fast` and :func:`qfl_backward_fast` take the same arguments,
run the same validation (imported from :mod:`reference.qfl`) and return the same
loss and gradient, bit for bit, as :func:`reference.qfl.qfl_forward` and
:func:`~reference.qfl.qfl_backward`; ``tests/test_qfl.py`` checks that on
Hypothesis inputs, in every memory layout. Read :mod:`reference.qfl` to learn
QFL; this module exists for speed. :func:`reference.gfl_loss_forward` uses it.

Why it exists: QFL is dense. Every one of the :math:`N \times C` logits (3.6
million for two 800x1333 images and 80 classes) goes through ``exp``, ``log1p``
and a dozen element-wise steps, and the textbook writes each intermediate
:math:`(N, C)` array to memory and reads it back (about 30 MB each, more than
the caches hold); its backward then reads :math:`\sigma`, softplus and
:math:`\sigma^\beta` back and makes five more passes. This path runs the same
expressions, in the same order, on blocks of entries small enough to stay in the
CPU's cache (a few whole rows, or part of one column when ``pred`` is stored
class-major, as the head's is), and computes each entry's derivative in the
forward, while its inputs are at hand. Its cache (a :class:`~reference.qfl.QFLCache`)
holds that one :math:`(N, C)` array, ``d_pred``, instead of the textbook's three,
and the backward only multiplies it by the upstream gradient. Every fresh
:math:`(N, C)` array costs time too (the kernel zeroes its pages), so keeping one
instead of three matters nearly as much as the blocks.
"""

from __future__ import annotations

import numpy as np

from .numerics import sigmoid, sigmoid_softplus
from .qfl import QFLCache, check_qfl_inputs, positive_entries, positive_grad, qfl_backward

__all__ = ["qfl_forward_fast", "qfl_backward_fast"]

#: Entries per block: a block's dozen float64 temporaries stay in the CPU's caches.
BLOCK_ENTRIES = 16384


def qfl_forward_fast(
    pred: np.ndarray,
    label: np.ndarray,
    score: np.ndarray,
    beta: float = 2.0,
    *,
    abs_factor: bool = True,
) -> tuple[np.ndarray, QFLCache]:
    r""":func:`reference.qfl.qfl_forward`, block by block: the same loss, bit for bit; its
    cache holds the gradient for ``d_loss = 1`` (``d_pred``) instead of the textbook's
    :math:`\sigma`, softplus and :math:`\sigma^\beta`."""
    x, pos_rows, pos_cols, y, beta = check_qfl_inputs(pred, label, score, beta, abs_factor)
    # the positive entries first, as the textbook computes them
    xp = x[pos_rows, pos_cols]
    sig_p = sigmoid(xp)
    bce_p, mod_p = positive_entries(xp, sig_p, y, beta, bool(abs_factor))
    loss_p, grad_p = bce_p * mod_p, positive_grad(xp, sig_p, y, beta, bool(abs_factor))

    if not (x.flags.c_contiguous or x.flags.f_contiguous):  # a strided view: copied, in its order
        x = np.array(x, order="K")
    class_major = x.flags.f_contiguous and not x.flags.c_contiguous  # (C, N) in memory
    loss = np.zeros(x.shape[0])
    d_pred = np.empty_like(x)  # (N, C), x's memory layout (as the textbook's temporaries)
    blocks, members = _blocks(x.shape, class_major, pos_rows, pos_cols)
    for (rows, cols), p in zip(blocks, members):
        sig, sp = sigmoid_softplus(x[rows, cols])  # (rows, cols) each
        sig_beta = sig**beta
        block_loss = sp * sig_beta  # every entry as a negative
        # the derivative, in place: sigma^beta (sigma + beta softplus (1 - sigma))
        d = np.multiply(beta, sp, out=d_pred[rows, cols])
        d *= 1.0 - sig
        d += sig
        d *= sig_beta
        if p.size:  # the block's positive entries, as the textbook replaces them
            block_loss[pos_rows[p] - rows.start, pos_cols[p] - cols.start] = loss_p[p]
            d[pos_rows[p] - rows.start, pos_cols[p] - cols.start] = grad_p[p]
        # the textbook's sum over classes: whole rows at once (row-major pred), or class
        # after class, in order (column-major pred: what NumPy's sum does there)
        loss[rows] += block_loss.sum(axis=1)
    cache = QFLCache(None, None, None, pos_rows, pos_cols, xp, y, beta, bool(abs_factor), d_pred)
    return loss, cache


def _blocks(
    shape: tuple[int, int], class_major: bool, pos_rows: np.ndarray, pos_cols: np.ndarray
) -> tuple[list[tuple[slice, slice]], list[np.ndarray]]:
    """Blocks of an ``(N, C)`` array, contiguous in memory and in memory order: a few whole
    rows each when it is row-major, part of one column when it is column-major (class-major);
    and the indices of the positives that fall in each block."""
    n, c = shape
    if class_major:
        step = BLOCK_ENTRIES
        per_col = -(-n // step)  # blocks per column
        blocks = [(slice(r, min(r + step, n)), slice(j, j + 1)) for j in range(c)
                  for r in range(0, n, step)]  # fmt: skip
        block_of = pos_cols * per_col + pos_rows // step  # (P,)
    else:
        step = max(1, BLOCK_ENTRIES // max(c, 1))
        blocks = [(slice(r, min(r + step, n)), slice(0, c)) for r in range(0, n, step)]
        block_of = pos_rows // step
    order = np.argsort(block_of, kind="stable")
    bounds = np.searchsorted(block_of[order], np.arange(1, len(blocks)))
    return blocks, np.split(order, bounds)


def qfl_backward_fast(d_loss: np.ndarray, cache: QFLCache) -> np.ndarray:
    """:func:`reference.qfl.qfl_backward`: for :func:`qfl_forward_fast`'s cache, its
    ``d_pred`` times ``d_loss`` (what the textbook backward does with it too)."""
    return qfl_backward(d_loss, cache)
