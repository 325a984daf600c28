"""Hand-written meta kernels: output shapes of common operators, without torch's Python metas.

On the meta device torch computes many output shapes with Python reference kernels whose first
call imports ``torch._dynamo`` and sympy (seconds). The shapes of these operators are simple
arithmetic, so the analyzer computes them here. A kernel returns ``NotImplemented`` for any
case it does not handle (the operator then runs as usual and raises its own error for a bad
input). ``tests/test_analysis.py`` checks each kernel's shape and dtype against torch's own.
"""

from __future__ import annotations

import torch

__all__ = ["META_CHECKS", "META_SHORTCUTS", "check_meta"]


def _meta_convolution(
    x, weight, bias, stride, padding, dilation, transposed, output_padding, groups
):
    if any(p < 0 for p in padding) or any(v < 1 for v in (*stride, *dilation)):
        return NotImplemented  # invalid geometry: META_CHECKS raises the real kernels' error
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
    if not x.is_floating_point() or any(isinstance(r, torch.Tensor) for r in rest):
        return NotImplemented  # integer inputs promote (sqrt) or raise (gelu): torch decides
    return _like(x)


def _meta_binary(x, other, *rest):
    if not x.is_floating_point():
        return NotImplemented  # integer division promotes to float: torch's rules decide
    if isinstance(other, torch.Tensor):
        dtype = torch.result_type(x, other)
        if tuple(other.shape) == tuple(x.shape) or other.dim() == 0:
            return _like(x, dtype)
        return torch.empty(torch.broadcast_shapes(x.shape, other.shape), dtype=dtype, device="meta")
    if isinstance(other, (bool, int, float)):
        return _like(x, torch.result_type(x, other))
    return NotImplemented


def _meta_inplace(x, *rest):
    if not x.is_floating_point():
        return NotImplemented  # a float written into an integer tensor raises: torch decides
    others = [r for r in rest if isinstance(r, torch.Tensor)]
    if any(torch.broadcast_shapes(x.shape, o.shape) != x.shape for o in others):
        return NotImplemented  # let torch raise its own error
    if any(not torch.can_cast(torch.result_type(x, o), x.dtype) for o in others):
        return NotImplemented
    return x


def _meta_mean(x, dim, keepdim=False, dtype=None):
    if dtype is not None or x.dim() == 0 or not x.is_floating_point():
        return NotImplemented
    listed = [dim] if isinstance(dim, int) else list(dim or range(x.dim()))
    if any(not -x.dim() <= d < x.dim() for d in listed):
        return NotImplemented  # torch raises "Dimension out of range"
    dims = {d % x.dim() for d in listed}
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
    if first.dim() == 0 or not -first.dim() <= dim < first.dim():
        return NotImplemented  # torch raises "Dimension out of range"
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
    normalized_shape = tuple(normalized_shape)
    axis = x.dim() - len(normalized_shape)
    if (
        axis < 0
        or tuple(x.shape[axis:]) != normalized_shape
        or any(t is not None and tuple(t.shape) != normalized_shape for t in (weight, bias))
    ):
        return NotImplemented  # torch raises its own shape error
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


META_SHORTCUTS: dict[object, object] = {
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


# ---------------------------------------------------------------------------- checks
#
# torch's own meta kernels accept a few inputs that every real kernel refuses (negative
# convolution padding, gelu of an integer tensor). On the meta device the analyzer checks
# those inputs itself and raises the real kernels' error, so that meta and a real run agree.


def _check_convolution(x, weight, bias, stride, padding, dilation, transposed, *rest):
    if any(p < 0 for p in padding):
        raise RuntimeError("negative padding is not supported")
    if any(s < 1 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d < 1 for d in dilation):
        raise RuntimeError("dilation should be greater than zero")
    _check_not_bool(x)


def _check_float_input(x, *rest):
    if isinstance(x, torch.Tensor) and not (x.is_floating_point() or x.is_complex()):
        raise RuntimeError(f"this operator is not implemented for {x.dtype} inputs")


def _check_not_bool(x, *rest):
    if isinstance(x, torch.Tensor) and x.dtype == torch.bool:
        raise RuntimeError("this operator is not implemented for torch.bool inputs")


# Operators whose CPU kernels refuse integer inputs (checked against CPU in the tests).
_FLOAT_ONLY = {
    _A.gelu,
    _A.hardswish,
    _A.hardsigmoid,
    _A.silu,
    _A.mish,
    _A.softplus,
    _A._softmax,
    _A._log_softmax,
    _A.native_batch_norm,
    _A._native_batch_norm_legit_no_training,
    _A._native_batch_norm_legit,
}
# ... and those whose CPU kernels refuse only bool inputs.
_NOT_BOOL = {_A.relu, _A.max_pool2d_with_indices, _A.avg_pool2d, _A.addmm, _A.mm, _A.bmm}

META_CHECKS: dict[object, object] = {
    _A.convolution: _check_convolution,
    **{op: _check_float_input for op in _FLOAT_ONLY},
    **{op: _check_not_bool for op in _NOT_BOOL},
}


def check_meta(func, args) -> None:
    """On meta inputs, raise the error a real kernel raises for ``func(*args)`` where torch's meta does not.

    Example:
        >>> x = torch.empty(1, 3, 8, 8, device="meta")
        >>> w = torch.empty(4, 3, 3, 3, device="meta")
        >>> check_meta(torch.ops.aten.convolution.default, (x, w, None, [1, 1], [-1, -1], [1, 1], False, [0, 0], 1))
        Traceback (most recent call last):
        ...
        RuntimeError: negative padding is not supported
    """
    check = META_CHECKS.get(func.overloadpacket)
    if check is not None and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
        check(*args)
