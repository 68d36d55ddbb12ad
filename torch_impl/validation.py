"""Shape and dtype checks for :mod:`torch_impl` (the twin of :mod:`reference.validation`,
whose scalar, size and shape checks it re-uses).

They look only at metadata (``shape``, ``dtype``), never at values: reading a
value of a CUDA tensor would force a host-device sync on the training path.
Each raises a :class:`ValueError` that names the argument, what was expected
and what was given.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reference.validation import (
    check_broadcastable,
    check_choice,
    check_hw,
    check_scalar,
    check_shape,
)

__all__ = [
    "check_broadcastable",
    "check_choice",
    "check_hw",
    "check_scalar",
    "check_shape",
    "check_tensor",
    "work_dtype",
]

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


def work_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype to compute in: the inputs' common dtype, at least float32.

    float16 and bfloat16 work in float32 (losses, box areas, IoU thresholds);
    float32 stays float32 and float64 stays float64. The one rule for every
    function of :mod:`torch_impl` that widens half-precision inputs.
    """
    dt = dtypes[0]
    for other in dtypes[1:]:
        dt = torch.promote_types(dt, other)
    return torch.float32 if dt in (torch.float16, torch.bfloat16) else dt
