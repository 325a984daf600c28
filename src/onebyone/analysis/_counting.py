"""Counting rules per aten operator, applied by a ``TorchDispatchMode``.

The analyzer sees every operator that reaches the dispatcher, so functional code
(``F.conv2d``, ``x + y``, ``matmul``, ``einsum``) is counted as well as modules.

Conventions (the same as torchvision's published figures):

* **MACs** are the multiply-accumulates of convolutions and matrix products only.
  Bias additions are not MACs.
* **Extra FLOPs** are the elementwise work around them, counted per element:
  bias adds (1 per output element), activations and pointwise arithmetic (1 per output
  element), normalisations (2 per element to normalise, 2 more with an affine scale and
  shift), softmax (3 per element), windowed pooling (kernel size per output element),
  global pooling and reductions (1 per input element). Views, copies and concatenations
  move data and cost nothing.
* ``total_flops = 2 * total_macs + extra FLOPs``.

``MAC_RULES`` and ``FLOP_RULES`` are plain dicts from an operator overload packet
(``torch.ops.aten.convolution``) to a function; users can extend them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["FLOP_RULES", "MAC_RULES", "OpCount", "count_op"]

aten = torch.ops.aten


@dataclass
class OpCount:
    """The cost of one operator call: MACs, extra FLOPs and a formula for the MACs."""

    macs: int = 0
    extra_flops: int = 0
    formula: str = ""


def _shape(t) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


def _numel(t) -> int:
    return int(math.prod(_shape(t)))


def _out_numel(out) -> int:
    if isinstance(out, torch.Tensor):
        return _numel(out)
    if isinstance(out, (list, tuple)) and out and isinstance(out[0], torch.Tensor):
        return _numel(out[0])
    return 0


def _join(factors: Sequence[int]) -> str:
    return "*".join(str(int(f)) for f in factors)


# ----------------------------------------------------------------------------- MACs


def _conv(args, kwargs, out) -> OpCount:
    x, w = args[0], args[1]
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    transposed = bool(args[6]) if len(args) > 6 else bool(kwargs.get("transposed", False))
    x_shape, w_shape = _shape(x), _shape(w)
    out_shape = _shape(out)
    n = x_shape[0]
    kernel = w_shape[2:]
    if transposed:
        # weight is (in_channels, out_channels / groups, *kernel); every input pixel is
        # scattered through the whole kernel into out_channels / groups maps.
        c_in, c_out_g = w_shape[0], w_shape[1]
        spatial = x_shape[2:]
        factors = [*kernel, c_in, c_out_g]
    else:
        # weight is (out_channels, in_channels / groups, *kernel); every output pixel
        # is a dot product over the kernel and in_channels / groups maps.
        c_out, c_in_g = w_shape[0], w_shape[1]
        spatial = out_shape[2:]
        factors = [*kernel, c_in_g, c_out]
    macs = n * math.prod(factors) * math.prod(spatial)
    formula = _join(factors) + " * " + _join(spatial)
    if n != 1:
        formula += f" * {n}"
    extra = _numel(out) if bias is not None else 0
    return OpCount(macs, extra, formula)


def _mm(args, kwargs, out) -> OpCount:
    a, b = args[0], args[1]
    m, k = _shape(a)
    n = _shape(b)[1]
    return OpCount(m * k * n, 0, f"{k}*{n} * {m}")


def _addmm(args, kwargs, out) -> OpCount:
    c = _mm(args[1:], kwargs, out)
    c.extra_flops = _numel(out)  # the bias (or accumulator) add
    return c


def _bmm(args, kwargs, out) -> OpCount:
    b, m, k = _shape(args[0])
    n = _shape(args[1])[2]
    return OpCount(b * m * k * n, 0, f"{k}*{n} * {m}*{b}")


def _baddbmm(args, kwargs, out) -> OpCount:
    c = _bmm(args[1:], kwargs, out)
    c.extra_flops = _numel(out)
    return c


def _mv(args, kwargs, out) -> OpCount:
    m, k = _shape(args[0])
    return OpCount(m * k, 0, _join([m, k]))


def _dot(args, kwargs, out) -> OpCount:
    k = _shape(args[0])[0]
    return OpCount(k, 0, str(k))


def _sdpa(args, kwargs, out) -> OpCount:
    # Two matrix products: Q @ K^T and softmax(.) @ V. The extra work mirrors the
    # decomposition the meta device uses: scaling Q and K, then a softmax.
    q, k, v = (_shape(t) for t in args[:3])
    *batch, s_q, d = q
    s_k = k[-2]
    d_v = v[-1]
    b = math.prod(batch)
    macs = b * s_q * s_k * d + b * s_q * s_k * d_v
    extra = _numel(args[0]) + _numel(args[1]) + 3 * b * s_q * s_k
    return OpCount(macs, extra, f"{_join([b, s_q, d, s_k])} + {_join([b, s_q, s_k, d_v])}")


MAC_RULES: dict[object, Callable[..., OpCount]] = {
    aten.convolution: _conv,
    aten._convolution: _conv,
    aten.mm: _mm,
    aten.addmm: _addmm,
    aten.bmm: _bmm,
    aten.baddbmm: _baddbmm,
    aten.mv: _mv,
    aten.dot: _dot,
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa,
    aten._scaled_dot_product_flash_attention: _sdpa,
    aten._scaled_dot_product_efficient_attention: _sdpa,
    aten._scaled_dot_product_cudnn_attention: _sdpa,
}

# ----------------------------------------------------------------------------- extra FLOPs


def _per_output(cost: int) -> Callable[..., int]:
    def rule(args, kwargs, out) -> int:
        return cost * _out_numel(out)

    return rule


def _per_input(args, kwargs, out) -> int:
    return _numel(args[0])


def _norm(weight_index: int) -> Callable[..., int]:
    def rule(args, kwargs, out) -> int:
        n = _numel(args[0])
        affine = len(args) > weight_index and args[weight_index] is not None
        return (4 if affine else 2) * n

    return rule


def _window(args, kwargs, out) -> int:
    x = args[0]
    kernel = args[1] if len(args) > 1 else kwargs.get("kernel_size")
    dims = x.dim() - 2 if x.dim() > 2 else 1
    if isinstance(kernel, int):
        kernel = [kernel] * dims
    kernel = list(kernel)
    if len(kernel) == 1:
        kernel = kernel * dims
    return math.prod(kernel) * _out_numel(out)


_ELEMENTWISE = [
    # activations
    "relu",
    "relu_",
    "relu6",
    "gelu",
    "silu",
    "silu_",
    "sigmoid",
    "sigmoid_",
    "tanh",
    "tanh_",
    "hardtanh",
    "hardtanh_",
    "hardswish",
    "hardswish_",
    "hardsigmoid",
    "hardsigmoid_",
    "leaky_relu",
    "leaky_relu_",
    "elu",
    "elu_",
    "selu",
    "celu",
    "mish",
    "softplus",
    "_prelu_kernel",
    "threshold",
    "glu",
    "log_sigmoid_forward",
    "clamp",
    "clamp_",
    "clamp_min",
    "clamp_min_",
    "clamp_max",
    "clamp_max_",
    # pointwise arithmetic
    "add",
    "add_",
    "sub",
    "sub_",
    "rsub",
    "mul",
    "mul_",
    "div",
    "div_",
    "neg",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "pow",
    "reciprocal",
    "abs",
    "maximum",
    "minimum",
    "addcmul",
    "addcdiv",
    "sin",
    "cos",
    "erf",
]

FLOP_RULES: dict[object, Callable[..., int]] = {
    getattr(aten, name): _per_output(1) for name in _ELEMENTWISE if hasattr(aten, name)
}
FLOP_RULES.update(
    {
        aten.native_batch_norm: _norm(1),
        aten._native_batch_norm_legit: _norm(1),
        aten._native_batch_norm_legit_no_training: _norm(1),
        aten.native_layer_norm: _norm(2),
        aten.native_group_norm: _norm(1),
        aten._softmax: _per_output(3),
        aten._log_softmax: _per_output(3),
        aten._safe_softmax: _per_output(3),
        aten.max_pool1d: _window,
        aten.max_pool2d: _window,
        aten.max_pool2d_with_indices: _window,
        aten.max_pool3d_with_indices: _window,
        aten.avg_pool1d: _window,
        aten.avg_pool2d: _window,
        aten.avg_pool3d: _window,
        aten._adaptive_avg_pool2d: _per_input,
        aten._adaptive_avg_pool3d: _per_input,
        aten.adaptive_max_pool2d: _per_input,
        aten.adaptive_max_pool3d: _per_input,
        aten.mean: _per_input,
        aten.sum: _per_input,
        aten.amax: _per_input,
        aten.max: _per_input,
    }
)


def count_op(func, args: tuple, kwargs: dict, out) -> OpCount | None:
    """Return the cost of one aten call, or None if it costs nothing.

    Example:
        >>> import torch
        >>> x, w = torch.empty(1, 3, 8, 8), torch.empty(4, 3, 3, 3)
        >>> out = torch.ops.aten.convolution(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
        >>> count_op(torch.ops.aten.convolution.default, (x, w, None, [1, 1], [0, 0], [1, 1],
        ...          False, [0, 0], 1), {}, out)
        OpCount(macs=3888, extra_flops=0, formula='3*3*3*4 * 6*6')
    """
    packet = getattr(func, "overloadpacket", func)
    rule = MAC_RULES.get(packet)
    if rule is not None:
        return rule(args, kwargs, out)
    flop_rule = FLOP_RULES.get(packet)
    if flop_rule is not None:
        extra = flop_rule(args, kwargs, out)
        return OpCount(0, extra, "") if extra else None
    return None
