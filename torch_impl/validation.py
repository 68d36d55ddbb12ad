"""Shape and dtype checks for :mod:`torch_impl`.

They look only at metadata (``shape``, ``dtype``), never at values: reading a
value of a CUDA tensor would force a host-device sync on the training path.
Each raises a :class:`ValueError` that names the argument, what was expected
and what was given.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reference.validation import check_choice, check_scalar, check_shape

__all__ = ["check_choice", "check_scalar", "check_shape", "check_tensor", "loss_dtype"]

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_tensor(
    x: object,
    name: str,
    spec: Sequence[int | str | None] | None = None,
    dims: dict[str, int] | None = None,
    *,
    kind: str = "float",
    note: str = "",
) -> torch.Tensor:
    """Check that ``x`` is a tensor of the right kind and shape and return it.

    ``kind`` is ``"float"`` (float16, bfloat16, float32, float64), ``"int"``
    (any integer dtype), ``"bool"`` or ``"any"``.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if kind == "float" and x.dtype not in FLOAT_DTYPES:
        raise ValueError(
            f"{name} must be a floating tensor (float16, bfloat16, float32 or float64), "
            f"got dtype {x.dtype}"
        )
    if kind == "int" and (x.dtype == torch.bool or x.dtype.is_floating_point or x.dtype.is_complex):
        raise ValueError(f"{name} must be an integer tensor, got dtype {x.dtype}")
    if kind == "bool" and x.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool tensor, got dtype {x.dtype}")
    if spec is not None:
        check_shape(tuple(x.shape), name, spec, dims, note)
    return x


def loss_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a loss is computed in: float32 at least (float64 stays float64)."""
    return torch.float64 if dtype == torch.float64 else torch.float32
