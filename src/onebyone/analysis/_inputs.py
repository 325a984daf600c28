"""The analyzer's inputs: input sizes parsed into tensors, and the copy of the model it runs.

The analyzer never runs the user's model: :func:`analysis_copy` deep-copies the module
structure with every tensor replaced on the analysis device, so tied tensors stay tied and no
real data is copied for the meta device.
"""

from __future__ import annotations

import copy
import math
import numbers
from typing import Any

import torch
from torch import nn

from onebyone.errors import OneByOneError

__all__ = ["INPUT_RANK", "analysis_copy", "check_rank", "default_dtype", "make_inputs"]

# The input rank that the first convolution of a model implies (batch included). An input
# one dimension short would run silently as an unbatched call, so it is rejected early.
INPUT_RANK: dict[type[nn.Module], int] = {
    nn.Conv1d: 3,
    nn.Conv2d: 4,
    nn.Conv3d: 5,
    nn.ConvTranspose1d: 3,
    nn.ConvTranspose2d: 4,
    nn.ConvTranspose3d: 5,
}

# torch sizes tensors in int64 bytes: a larger shape cannot exist, even on the meta device.
_MAX_BYTES = 2**63 - 1


def default_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating parameter (or buffer); float32 if it has none.

    Example:
        >>> from torch import nn
        >>> default_dtype(nn.Linear(2, 2).half())
        torch.float16
    """
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def _is_shape(obj: Any) -> bool:
    return isinstance(obj, (tuple, list, torch.Size)) and all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in obj
    )


def _check_size(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    nbytes = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
    if nbytes > _MAX_BYTES:
        raise ValueError(
            f"input_size {shape} is too large: {nbytes:.3g} bytes in {str(dtype).replace('torch.', '')} "
            f"is more than a tensor can hold (2**63 - 1 bytes)"
        )


def make_inputs(input_size: Any, device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
    """Turn ``input_size`` (a shape, a list of shapes, or example tensors) into input tensors.

    Example:
        >>> [tuple(t.shape) for t in make_inputs((1, 3, 8, 8), torch.device("meta"), torch.float32)]
        [(1, 3, 8, 8)]
    """
    if isinstance(input_size, torch.Tensor):
        items: list[Any] = [input_size]
    elif _is_shape(input_size) and len(input_size) > 0:
        items = [tuple(input_size)]
    elif (
        isinstance(input_size, (tuple, list))
        and input_size
        and all(isinstance(s, torch.Tensor) or _is_shape(s) for s in input_size)
    ):
        items = list(input_size)
    else:
        raise ValueError(
            "input_size must be a shape with the batch dimension such as (1, 3, 224, 224), "
            f"a list of shapes, or example tensors; got {input_size!r}"
        )
    tensors = []
    for item in items:
        if isinstance(item, torch.Tensor):
            if device.type == "meta":
                tensors.append(torch.empty_like(item, device="meta"))
            else:
                tensors.append(item.detach().to(device))
            continue
        shape = tuple(int(d) for d in item)
        if not shape or any(d < 1 for d in shape):
            raise ValueError(
                f"input_size dimensions must be integers >= 1 with the batch first, such as "
                f"(1, 3, 224, 224); got {tuple(item)!r}"
            )
        _check_size(shape, dtype)
        tensors.append(_new_input(shape, device, dtype))
    return tensors


def _new_input(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if device.type == "meta":
        return torch.empty(shape, device=device, dtype=dtype)
    try:
        return torch.randn(shape, device=device, dtype=dtype)
    except (RuntimeError, MemoryError) as e:  # out of memory on a real device
        nbytes = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
        raise OneByOneError(
            f"cannot allocate the input {shape} on {device} ({nbytes / 2**30:.1f} GiB for the "
            f"input alone): {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}; "
            "use a smaller input or device='meta' (counts without memory)"
        ) from e


def check_rank(model: nn.Module, inputs: list[torch.Tensor]) -> None:
    """Reject a single input whose rank differs from what the model's first convolution expects.

    Example:
        >>> from torch import nn
        >>> check_rank(nn.Conv2d(3, 4, 3), [torch.empty(3, 8, 8, device="meta")])
        Traceback (most recent call last):
        ...
        ValueError: input_size (3, 8, 8) has 3 dimensions, but the first convolution the model (Conv2d) expects 4 with the batch first, e.g. (1, 3, 32, 32)
    """
    if len(inputs) != 1:
        return
    for name, module in model.named_modules():
        for cls, rank in INPUT_RANK.items():
            if isinstance(module, cls):
                got = inputs[0].dim()
                if got != rank:
                    example = (1, getattr(module, "in_channels", 3), *([32] * (rank - 2)))
                    where = f"{name!r}" if name else "the model"
                    raise ValueError(
                        f"input_size {tuple(inputs[0].shape)} has {got} dimensions, but the first "
                        f"convolution {where} ({type(module).__name__}) expects {rank} with the "
                        f"batch first, e.g. {example}"
                    )
                return


def analysis_copy(
    model: nn.Module, device: torch.device, dtype: torch.dtype, *, clone: bool
) -> nn.Module:
    """Deep-copy the module structure with every tensor replaced on ``device`` / ``dtype``.

    Parameters and buffers are mapped through deepcopy's memo, so tied tensors stay tied
    and no real data is copied for the meta device.

    Example:
        >>> from torch import nn
        >>> m = nn.Linear(2, 2)
        >>> c = analysis_copy(m, torch.device("meta"), torch.float16, clone=False)
        >>> c.weight.device.type, c.weight.dtype, m.weight.device.type
        ('meta', torch.float16, 'cpu')
    """
    memo: dict[int, Any] = {}

    def convert(t: torch.Tensor, clone: bool) -> torch.Tensor:
        new_dtype = dtype if t.is_floating_point() else t.dtype
        if device.type == "meta":
            return torch.empty(t.shape, dtype=new_dtype, device="meta")
        data = t.detach().to(device=device, dtype=new_dtype)
        if clone and data.data_ptr() == t.data_ptr():
            data = data.clone()
        return data

    # On a real device, parameters are shared with the user's model unless training
    # (an optimizer-free forward does not write to them); buffers and tensor attributes are
    # always copied, because forwards do update them in place (running statistics,
    # counters), even in eval mode.
    for module in model.modules():
        for p in module._parameters.values():
            if p is not None and id(p) not in memo:
                memo[id(p)] = nn.Parameter(convert(p, clone), requires_grad=p.requires_grad)
        for b in module._buffers.values():
            if b is not None and id(b) not in memo:
                memo[id(b)] = convert(b, True)
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and id(value) not in memo:
                memo[id(value)] = convert(value, True)
    try:
        return copy.deepcopy(model, memo)
    except Exception as e:
        raise OneByOneError(
            f"cannot copy {type(model).__name__} for analysis ({type(e).__name__}: {e}); "
            "the analyzer never runs the user's model itself"
        ) from e
