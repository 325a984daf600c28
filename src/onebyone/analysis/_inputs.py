"""The analyzer's inputs: input sizes parsed into tensors, and the copy of the model it runs.

The analyzer never runs the user's model: :func:`analysis_copy` deep-copies the module
structure with every tensor replaced on the analysis device, so tied tensors stay tied and no
real data is copied for the meta device.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import numbers
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from onebyone.errors import OneByOneError

__all__ = [
    "INPUT_RANK",
    "analysis_copy",
    "check_rank",
    "default_dtype",
    "make_inputs",
    "rng_kept",
    "strip_user_hooks",
]

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


def rng_kept(device: torch.device) -> contextlib.AbstractContextManager:
    """A context that gives the global RNG of ``device`` back as it was (none on meta).

    A real analysis draws random inputs (and dropout masks in training mode); the user's
    random stream must not move because of it.

    Example:
        >>> _ = torch.manual_seed(0); a = torch.rand(1)
        >>> _ = torch.manual_seed(0)
        >>> with rng_kept(torch.device("cpu")):
        ...     _ = torch.randn(10)
        >>> torch.equal(torch.rand(1), a)
        True
    """
    if device.type == "meta":
        return contextlib.nullcontext()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.random.fork_rng(devices=[index])
    return torch.random.fork_rng(devices=[])


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


def analysis_copy(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Deep-copy the module structure with every tensor replaced on ``device`` / ``dtype``.

    Parameters and buffers are mapped through deepcopy's memo, so tied tensors stay tied
    and no real data is copied for the meta device. On a real device every tensor is copied,
    so a forward that writes to a parameter in place changes the copy, never the user's model.
    The user's own forward and backward hooks are not run: the copy keeps only the hooks that
    torch itself registered to compute the forward (``weight_norm``, lazy modules' shape
    inference, ...), see :func:`strip_user_hooks`.

    Raises:
        ValueError: the model has uninitialized (lazy) parameters, or ``device`` is real and
            the model's tensors are on the meta device (they hold no data to copy).
        OneByOneError: the model cannot be deep-copied.

    Example:
        >>> from torch import nn
        >>> m = nn.Linear(2, 2)
        >>> c = analysis_copy(m, torch.device("meta"), torch.float16)
        >>> c.weight.device.type, c.weight.dtype, m.weight.device.type
        ('meta', torch.float16, 'cpu')
    """
    _check_copyable(model, device)
    memo: dict[int, Any] = {}

    def convert(t: torch.Tensor) -> torch.Tensor:
        new_dtype = dtype if t.is_floating_point() else t.dtype
        if device.type == "meta":
            return torch.empty(t.shape, dtype=new_dtype, device="meta")
        data = t.detach().to(device=device, dtype=new_dtype)
        if data.data_ptr() == t.data_ptr():
            data = data.clone()
        return data

    # Forwards write to buffers (running statistics, counters) and sometimes to parameters
    # (a clamp under no_grad) in place, even in eval mode: nothing of the copy may share
    # memory with the user's model.
    for module in model.modules():
        for p in module._parameters.values():
            if p is not None and id(p) not in memo:
                memo[id(p)] = nn.Parameter(convert(p), requires_grad=p.requires_grad)
        for b in module._buffers.values():
            if b is not None and id(b) not in memo:
                memo[id(b)] = convert(b)
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and id(value) not in memo:
                memo[id(value)] = convert(value)
    try:
        work = copy.deepcopy(model, memo)
    except Exception as e:
        raise OneByOneError(
            f"cannot copy {type(model).__name__} for analysis ({type(e).__name__}: {e}); "
            "the analyzer never runs the user's model itself"
        ) from e
    strip_user_hooks(work)
    return work


def _check_copyable(model: nn.Module, device: torch.device) -> None:
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        where = f"{name!r}"
        if is_lazy(t):
            raise ValueError(
                f"model has an uninitialized (lazy) tensor {where}: run the model once on a real "
                "input to initialize its lazy modules, then analyze it"
            )
        if device.type != "meta" and t.device.type == "meta":
            raise ValueError(
                f"device={str(device)!r} runs the model for real, but its tensor {where} is on "
                "the meta device (no data to copy); analyze it with device='meta' (the default)"
            )


# Hook dicts of nn.Module; each maps a handle id to a hook.
_HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks")
# Per-hook flags, keyed by the same ids.
_HOOK_FLAGS = (
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
)


def _is_torch_hook(hook: Any) -> bool:
    while isinstance(hook, functools.partial):
        hook = hook.func
    owner = getattr(hook, "__module__", None) or type(hook).__module__ or ""
    return owner == "torch" or owner.startswith("torch.")


def strip_user_hooks(model: nn.Module) -> None:
    """Remove the hooks of ``model``'s modules that torch did not register itself.

    The analyzer runs a copy of the user's model; the user's hooks were written for the real
    model (they keep outputs, read values, print) and must not run on a copy with meta
    tensors. Hooks defined in torch (``weight_norm``, ``spectral_norm``, lazy modules) are
    part of how the forward computes, and stay. Global hooks
    (``torch.nn.modules.module.register_module_forward_hook``) belong to no model and do run.

    Example:
        >>> from torch import nn
        >>> m = nn.Linear(2, 2)
        >>> _ = m.register_forward_hook(lambda mod, args, out: print("user hook"))
        >>> strip_user_hooks(m)
        >>> _ = m(torch.zeros(1, 2))
        >>> len(m._forward_hooks)
        0
    """
    for module in model.modules():
        for attr in _HOOK_DICTS:
            hooks = getattr(module, attr, None)
            if not hooks:
                continue
            for key in [k for k, h in hooks.items() if not _is_torch_hook(h)]:
                del hooks[key]
                for flags in _HOOK_FLAGS:
                    getattr(module, flags, {}).pop(key, None)
