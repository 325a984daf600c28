"""``onebyone.analyze``: per-layer parameters, MACs and FLOPs of any PyTorch model.

The model is copied onto the meta device (no real memory, no real arithmetic) with its
parameters, buffers and tensor attributes replaced by meta tensors of the same shape;
tied tensors stay tied and shared modules stay shared. The copy runs under a
``TorchDispatchMode`` that counts every aten operator (see ``_counting``) and module hooks
that attribute each operator to the innermost module running. The user's model is never
moved, mutated or hooked.
"""

from __future__ import annotations

import copy
import gc
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from onebyone._internal import InternalError, ours
from onebyone.errors import OneByOneError

from ._counting import count_op
from .report import LayerStats, Report

__all__ = ["INPUT_RANK", "analyze"]

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

_VIEW_OPS = {
    torch.ops.aten.view,
    torch.ops.aten._unsafe_view,
    torch.ops.aten.reshape,
    torch.ops.aten.flatten,
}


def analyze(
    model: nn.Module,
    input_size: Any = None,
    *,
    device: str | torch.device = "meta",
    dtype: torch.dtype = torch.float32,
    train: bool = False,
) -> Report:
    """Count parameters, MACs and FLOPs per module call, without a real forward by default.

    Args:
        model: any ``nn.Module``. It is not moved, changed or hooked: a copy is analyzed.
        input_size: one shape with the batch dimension, e.g. ``(1, 3, 224, 224)``; a list of
            shapes for a model with several inputs; or example tensors (their shapes and
            dtypes are used, so integer token ids work).
        device: ``"meta"`` (default) counts without memory or arithmetic; ``"cpu"`` or
            ``"cuda"`` run a real forward on a copy and give the same counts.
        dtype: floating dtype of the copy's parameters and of inputs given as shapes;
            it sets ``param_bytes`` and ``activation_bytes``.
        train: run the copy in training mode (default: eval mode).

    Returns:
        A :class:`Report` with one :class:`LayerStats` per module call and the totals.

    Raises:
        ValueError: a malformed ``input_size`` (wrong rank, a dimension < 1) or ``device``.
        TypeError: ``model`` is not an ``nn.Module`` or ``dtype`` is not a floating dtype.
        OneByOneError: the forward failed; the message names the module and the shapes it
            received, and the original exception is chained.
        InternalError: onebyone's own counting code (a rule, a hook) failed: a bug to report,
            raised with the original exception chained rather than as a user error.

    Example:
        >>> from torch import nn
        >>> import onebyone
        >>> m = nn.Sequential(nn.Conv2d(3, 512, 3, padding=1), nn.ReLU())
        >>> r = onebyone.analyze(m, (1, 3, 256, 256))
        >>> r.total_params, f"{r.total_macs:,}"
        (14336, '905,969,664')
        >>> r.rows[1].formula
        '3*3*3*512 + 512 = 14,336 params; 3*3*3*512 * 256*256 = 905,969,664 MACs'
    """
    if isinstance(model, (str, os.PathLike)) and str(model).lower().endswith(".onnx"):
        from onebyone.onnx import analyze_onnx  # an .onnx file (needs the onnx extra)

        return analyze_onnx(model, input_size)
    report, _ = _analyze(model, input_size, device=device, dtype=dtype, train=train)
    return report


# ---------------------------------------------------------------------------- internals


@dataclass
class _Call:
    """One module call being counted (internal, also read by the planner)."""

    module: nn.Module
    row: LayerStats
    formulas: list[str] = field(default_factory=list)
    flat_from: tuple[int, ...] | None = None  # (C, H, W) if the input was a flattened map
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)


class _Counter(TorchDispatchMode):
    """Adds the cost of each aten call to the module on top of the stack."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # By default torch wraps __torch_dispatch__ in a dynamo guard whose first call
        # imports torch._dynamo (about 2 s). The analyzer never compiles, so opt out.
        return False

    def __init__(self, stack: list[_Call], track_flatten: bool) -> None:
        super().__init__()
        self.stack = stack
        self.track_flatten = track_flatten
        self.flat_from: dict[int, tuple[tuple[int, ...], torch.Tensor]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out, shortcut_error = self._shortcut(func, args, kwargs)
        if out is NotImplemented:
            out = func(*args, **kwargs)  # the model's operator: its errors are the user's
            if shortcut_error is not None:  # the operator ran, so the shortcut was wrong
                raise InternalError(
                    f"the meta shortcut for {func} raised {type(shortcut_error).__name__}: "
                    f"{shortcut_error}"
                ) from shortcut_error
        self._count(func, args, kwargs, out)
        return out

    @staticmethod
    def _shortcut(func, args, kwargs):
        """``(output, None)``, or ``(NotImplemented, error or None)`` to run the operator."""
        shortcut = _META_SHORTCUTS.get(func) or _META_SHORTCUTS.get(func.overloadpacket)
        first = args[0] if args else None
        if isinstance(first, (list, tuple)) and first:
            first = first[0]
        if (
            shortcut is None
            or kwargs
            or not isinstance(first, torch.Tensor)
            or first.device.type != "meta"
        ):
            return NotImplemented, None
        # torch's Python meta kernels for these import torch._dynamo on first use
        # (seconds); their output shapes are simple arithmetic. A shortcut that raises
        # leaves the verdict to the operator: the input's fault if it raises too, else ours.
        try:
            return shortcut(*args), None
        except Exception as e:
            return NotImplemented, e

    @ours("counting an operator")
    def _count(self, func, args, kwargs, out) -> None:
        cost = count_op(func, args, kwargs, out)
        if cost is not None and self.stack:
            call = self.stack[-1]
            call.row.macs += cost.macs
            call.row.extra_flops += cost.extra_flops
            if cost.formula:
                call.formulas.append(cost.formula)
        if (
            self.track_flatten
            and func.overloadpacket in _VIEW_OPS
            and isinstance(out, torch.Tensor)
            and args
            and isinstance(args[0], torch.Tensor)
        ):
            src = args[0]
            if src.dim() == 4 and out.dim() == 2 and out.shape[0] == src.shape[0]:
                # keep `out` alive so its id stays unique while the forward runs
                self.flat_from[id(out)] = (tuple(int(d) for d in src.shape[1:]), out)


def _meta_convolution(
    x, weight, bias, stride, padding, dilation, transposed, output_padding, groups
):
    in_channels = weight.shape[0] if transposed else weight.shape[1] * groups
    channels = weight.shape[1] * groups if transposed else weight.shape[0]
    if (
        x.dim() != weight.dim()
        or x.shape[1] != in_channels
        or (bias is not None and tuple(bias.shape) != (channels,))
    ):
        return NotImplemented  # let torch raise its own error (a channel mismatch, say)
    spatial = []
    for i, size in enumerate(x.shape[2:]):
        k = weight.shape[2 + i]
        if transposed:
            size = (
                (size - 1) * stride[i]
                - 2 * padding[i]
                + dilation[i] * (k - 1)
                + output_padding[i]
                + 1
            )
        else:
            size = (size + 2 * padding[i] - dilation[i] * (k - 1) - 1) // stride[i] + 1
        spatial.append(size)
    if any(size < 1 for size in spatial):
        return NotImplemented
    shape = (x.shape[0], channels, *spatial)
    if (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.empty(shape, dtype=x.dtype, device="meta", memory_format=torch.channels_last)
    return torch.empty(shape, dtype=x.dtype, device="meta")


def _like(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    # torch.empty_like on meta runs Python reference code that imports sympy; this is C++.
    dtype = dtype or x.dtype
    if (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.empty(x.shape, dtype=dtype, device="meta", memory_format=torch.channels_last)
    return torch.empty(x.shape, dtype=dtype, device="meta")


def _meta_batch_norm(x, weight, bias, running_mean, running_var, training, *rest):
    channels = x.shape[1] if x.dim() > 1 else 0
    saved = channels if training else 0
    return (
        _like(x),
        torch.empty(saved, device="meta", dtype=x.dtype),
        torch.empty(saved, device="meta", dtype=x.dtype),
    )


def _meta_batch_norm_no_training(x, weight, bias, running_mean, running_var, *rest):
    return (
        _like(x),
        torch.empty(0, device="meta", dtype=x.dtype),
        torch.empty(0, device="meta", dtype=x.dtype),
    )


_A = torch.ops.aten
_UNARY = {
    _A.relu,
    _A.gelu,
    _A.hardtanh,
    _A.tanh,
    _A.leaky_relu,
    _A.hardswish,
    _A.hardsigmoid,
    _A.elu,
    _A.neg,
    _A.exp,
    _A.sqrt,
    _A.rsqrt,
    _A.clamp,
}
_BINARY = {_A.add, _A.sub, _A.mul, _A.div, _A.maximum, _A.minimum}
_INPLACE = {
    _A.relu_,
    _A.hardtanh_,
    _A.add_,
    _A.mul_,
    _A.sub_,
    _A.div_,
    _A.clamp_,
    _A.leaky_relu_,
    _A.hardswish_,
    _A.elu_,
}


def _meta_unary(x, *rest):
    if rest and any(isinstance(r, torch.Tensor) for r in rest):
        return NotImplemented
    return _like(x)


def _meta_binary(x, other, *rest):
    if isinstance(other, torch.Tensor):
        dtype = torch.result_type(x, other)
        if tuple(other.shape) == tuple(x.shape) or other.dim() == 0:
            return _like(x, dtype)
        return torch.empty(torch.broadcast_shapes(x.shape, other.shape), dtype=dtype, device="meta")
    if isinstance(other, (bool, int, float)):
        return _like(x, torch.result_type(x, other))
    return NotImplemented


def _meta_inplace(x, *rest):
    others = [r for r in rest if isinstance(r, torch.Tensor)]
    if any(torch.broadcast_shapes(x.shape, o.shape) != x.shape for o in others):
        return NotImplemented  # let torch raise its own error
    return x


def _meta_mean(x, dim, keepdim=False, dtype=None):
    if dtype is not None:
        return NotImplemented
    dims = {d % x.dim() for d in ([dim] if isinstance(dim, int) else (dim or range(x.dim())))}
    shape = [(1 if i in dims else n) for i, n in enumerate(x.shape) if keepdim or i not in dims]
    return torch.empty(shape, dtype=x.dtype, device="meta")


def _meta_addmm(bias, a, b, *rest):
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        return NotImplemented
    return torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device="meta")


def _meta_cat(tensors, dim=0):
    tensors = [t for t in tensors if not (t.dim() == 1 and t.shape[0] == 0)]
    if not tensors:
        return NotImplemented
    first = tensors[0]
    d = dim % first.dim()
    if any(
        t.dim() != first.dim()
        or t.dtype != first.dtype
        or any(t.shape[i] != first.shape[i] for i in range(first.dim()) if i != d)
        for t in tensors
    ):
        return NotImplemented
    shape = list(first.shape)
    shape[d] = sum(t.shape[d] for t in tensors)
    return torch.empty(shape, dtype=first.dtype, device="meta")


def _meta_layer_norm(x, normalized_shape, weight, bias, eps):
    axis = x.dim() - len(normalized_shape)
    stat = (*x.shape[:axis], *([1] * len(normalized_shape)))
    return (
        _like(x),
        torch.empty(stat, dtype=x.dtype, device="meta"),
        torch.empty(stat, dtype=x.dtype, device="meta"),
    )


def _pool_size(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pair(value, n):
    value = [value] if isinstance(value, int) else list(value)
    return value * n if len(value) == 1 else value


def _meta_pool(x, kernel, stride, padding, dilation, ceil_mode):
    n = 2
    if x.dim() not in (3, 4):
        return NotImplemented
    kernel = _pair(kernel, n)
    stride = _pair(stride, n) if stride else kernel
    padding, dilation = _pair(padding, n), _pair(dilation, n)
    spatial = [
        _pool_size(x.shape[-2 + i], kernel[i], stride[i], padding[i], dilation[i], ceil_mode)
        for i in range(n)
    ]
    if any(o < 1 for o in spatial) or any(p > k // 2 for p, k in zip(padding, kernel, strict=True)):
        return NotImplemented  # let torch raise its own error
    shape = (*x.shape[:-2], *spatial)
    return torch.empty(shape, dtype=x.dtype, device="meta")


def _meta_max_pool(x, kernel, stride=(), padding=0, dilation=1, ceil_mode=False):
    out = _meta_pool(x, kernel, stride, padding, dilation, ceil_mode)
    if out is NotImplemented:
        return out
    return out, torch.empty(out.shape, dtype=torch.int64, device="meta")


def _meta_avg_pool(x, kernel, stride=(), padding=0, ceil_mode=False, *rest):
    return _meta_pool(x, kernel, stride, padding, 1, ceil_mode)


_META_SHORTCUTS: dict[object, object] = {
    _A.max_pool2d_with_indices.default: _meta_max_pool,
    _A.avg_pool2d.default: _meta_avg_pool,
    **{op: _meta_unary for op in _UNARY},
    **{op: _meta_binary for op in _BINARY},
    **{op: _meta_inplace for op in _INPLACE},
    _A.mean.dim: _meta_mean,
    _A.addmm.default: _meta_addmm,
    _A.cat.default: _meta_cat,
    _A.native_layer_norm.default: _meta_layer_norm,
    torch.ops.aten.convolution.default: _meta_convolution,
    torch.ops.aten.native_batch_norm.default: _meta_batch_norm,
    torch.ops.aten._native_batch_norm_legit_no_training.default: _meta_batch_norm_no_training,
}


def _analyze(
    model: nn.Module,
    input_size: Any,
    *,
    device: str | torch.device = "meta",
    dtype: torch.dtype = torch.float32,
    train: bool = False,
    track_flatten: bool = False,
) -> tuple[Report, list[_Call]]:
    # Copying and counting allocate some ten thousand short-lived Python objects. With the
    # collector on, they trigger a full collection over everything `import torch` created,
    # which was most of the first call's time (0.17 s -> 0.06 s on resnet50). Any cycles
    # left behind are collected later, once the collector is back on.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _analyze_impl(
            model,
            input_size,
            device=device,
            dtype=dtype,
            train=train,
            track_flatten=track_flatten,
        )
    finally:
        if was_enabled:
            gc.enable()


def _analyze_impl(
    model: nn.Module,
    input_size: Any,
    *,
    device: str | torch.device,
    dtype: torch.dtype,
    train: bool,
    track_flatten: bool,
) -> tuple[Report, list[_Call]]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(
            f"dtype must be a floating torch.dtype such as torch.float32, got {dtype!r}"
        )
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be 'meta', 'cpu' or 'cuda[:N]', got {device!r}") from e
    if device.type not in ("meta", "cpu"):
        try:
            torch.empty(0, device=device)
        except (AssertionError, RuntimeError) as e:  # torch asserts when built without CUDA
            raise ValueError(
                f"device {str(device)!r} is not available here ({e}); use 'meta' (the default, "
                "no real forward) or 'cpu'"
            ) from e
    inputs = _make_inputs(input_size, device, dtype)
    _check_rank(model, inputs)

    work = _analysis_copy(model, device, dtype, clone=bool(train))
    work.train(bool(train))

    names: dict[int, tuple[str, int]] = {}
    for name, module in work.named_modules():
        names[id(module)] = (name, 0 if not name else name.count(".") + 1)

    stack: list[_Call] = []
    calls: list[_Call] = []
    counted: set[int] = set()
    times_called: dict[int, int] = {}
    counter = _Counter(stack, track_flatten)

    @ours("the analyzer's pre-hook")
    def pre_hook(module: nn.Module, args: tuple) -> None:
        name, depth = names.get(id(module), (type(module).__name__, len(stack)))
        shapes = [_shape(a) for a in _tensors(args)]
        row = LayerStats(
            name=name, type=type(module).__name__, depth=depth, input_shapes=shapes, output_shape=()
        )
        row.call_index = times_called.get(id(module), 0)
        times_called[id(module)] = row.call_index + 1
        row.is_leaf = next(iter(module.children()), None) is None
        param_terms = []
        for p in module._parameters.values():
            if p is None or id(p) in counted:
                continue
            counted.add(id(p))
            row.params += p.numel()
            if p.requires_grad:
                row.trainable += p.numel()
            param_terms.append(_param_term(p))
        call = _Call(module, row, input_shapes=shapes)
        call.row.formula = " + ".join(param_terms)  # completed in the post hook
        if track_flatten:
            for a in _tensors(args):
                if id(a) in counter.flat_from:
                    call.flat_from = counter.flat_from[id(a)][0]
        stack.append(call)
        calls.append(call)

    @ours("the analyzer's post-hook")
    def post_hook(module: nn.Module, args: tuple, output: Any) -> None:
        if not stack or stack[-1].module is not module:
            return
        call = stack.pop()
        row = call.row
        outs = list(_tensors(output))
        shapes = [_shape(t) for t in outs]
        row.output_shape = shapes[0] if len(shapes) == 1 else shapes
        row.activation_bytes = sum(t.numel() * t.element_size() for t in outs)
        row.formula = _formula(row, call.formulas)

    handles = []
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        for module in {id(m): m for m in work.modules()}.values():
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(post_hook))
        # Attention's CPU/CUDA inference fast path is one fused kernel with no counting rule
        # (and the meta device never takes it); turn it off so that every device runs the
        # same decomposed operators and gives the same counts.
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            with torch.no_grad(), counter:
                work(*inputs)
        except InternalError:
            raise  # our bug: the whole traceback, not a one-line user error
        except Exception as e:
            raise _forward_error(e, stack, device) from e
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for h in handles:
            h.remove()
        counter.flat_from.clear()

    report = _totals(model, work, inputs, device, dtype, [c.row for c in calls])
    return report, calls


def _totals(
    model: nn.Module,
    work: nn.Module,
    inputs: list[torch.Tensor],
    device,
    dtype,
    rows: list[LayerStats],
) -> Report:
    params = list(work.parameters())  # deduplicated: tied tensors once
    buffers = list(work.buffers())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    macs = sum(r.macs for r in rows)
    extra = sum(r.extra_flops for r in rows)
    return Report(
        model=type(model).__name__,
        input_shapes=[_shape(t) for t in inputs],
        dtype=str(dtype).replace("torch.", ""),
        device=str(device),
        rows=rows,
        total_params=total,
        trainable_params=trainable,
        non_trainable_params=total - trainable,
        buffers=sum(b.numel() for b in buffers),
        total_macs=macs,
        total_flops=2 * macs + extra,
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        buffer_bytes=sum(b.numel() * b.element_size() for b in buffers),
        activation_bytes=sum(r.activation_bytes for r in rows if r.is_leaf),
        input_bytes=sum(t.numel() * t.element_size() for t in inputs),
    )


def _formula(row: LayerStats, mac_terms: list[str]) -> str:
    parts = []
    if row.params:
        terms = row.formula
        parts.append(
            f"{terms} = {row.params:,} params"
            if "+" in terms or "*" in terms
            else f"{row.params:,} params"
        )
    if row.macs:
        parts.append(f"{' + '.join(mac_terms)} = {row.macs:,} MACs")
    return "; ".join(parts)


def _param_term(p: torch.Tensor) -> str:
    shape = [int(d) for d in p.shape]
    if len(shape) >= 2:
        # conv weight (out, in/groups, *kernel) reads kernel*in*out; linear (out, in) as in*out
        shape = [*shape[2:], shape[1], shape[0]]
    return "*".join(str(d) for d in shape) if shape else "1"


def _forward_error(e: Exception, stack: list[_Call], device: torch.device) -> OneByOneError:
    detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if stack:
        row = stack[-1].row
        where = f"module {row.name!r} ({row.type})" if row.name else f"the model ({row.type})"
        shapes = ", ".join(str(s) for s in row.input_shapes) or "no tensors"
        msg = f"forward failed in {where} on input shapes {shapes}: {type(e).__name__}: {detail}"
    else:
        msg = f"forward failed before any module ran: {type(e).__name__}: {detail}"
    if device.type == "meta" and ("meta" in str(e) or "item()" in str(e)):
        msg += " (data-dependent code cannot run on the meta device; try device='cpu')"
    return OneByOneError(msg)


def _tensors(obj: Any):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


# ---------------------------------------------------------------------------- inputs


def _is_shape(obj: Any) -> bool:
    return isinstance(obj, (tuple, list, torch.Size)) and all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in obj
    )


def _make_inputs(input_size: Any, device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
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
        if device.type == "meta":
            tensors.append(torch.empty(shape, device=device, dtype=dtype))
        else:
            tensors.append(torch.randn(shape, device=device, dtype=dtype))
    return tensors


def _check_rank(model: nn.Module, inputs: list[torch.Tensor]) -> None:
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


# ---------------------------------------------------------------------------- the copy


def _analysis_copy(
    model: nn.Module, device: torch.device, dtype: torch.dtype, *, clone: bool
) -> nn.Module:
    """Deep-copy the module structure with every tensor replaced on ``device`` / ``dtype``.

    Parameters and buffers are mapped through deepcopy's memo, so tied tensors stay tied
    and no real data is copied for the meta device.
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


def _prod(values: Sequence[int]) -> int:
    return int(math.prod(values))
