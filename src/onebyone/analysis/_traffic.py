"""Memory traffic per operator: the bytes it reads and writes, and its class for the roofline.

The model (stated in the summary's notes and in ``docs``):

* each operator reads every tensor argument once (inputs and weights) and writes its outputs
  once, at the tensors' real dtypes; nothing is reused across operators (no fusion, no cache);
* views and reshapes (``VIEW_OPS``) move no bytes and do no arithmetic;
* copies (``COPY_OPS``: ``cat``, ``clone``, padding, ...) move bytes but do no arithmetic;
* the indices of a max pooling are not written (the inference kernels do not produce them).

The class of an operator picks the rate of a device profile: ``conv1x1``, ``conv`` (kxk),
``depthwise``, ``gemm`` (matrix products and attention), ``pool`` (windowed max and average
pooling, whose CPU kernels are far slower per FLOP than elementwise work) and ``elementwise``
(everything else).
"""

from __future__ import annotations

import math

import torch

__all__ = ["COPY_OPS", "OP_CLASSES", "REQUIRED_CLASSES", "VIEW_OPS", "op_bytes", "op_class"]

aten = torch.ops.aten

# Every profile has a rate for these; "pool" is optional (profiles without it use elementwise).
REQUIRED_CLASSES = ("conv1x1", "conv", "depthwise", "gemm", "elementwise")
OP_CLASSES = (*REQUIRED_CLASSES, "pool")


def _ops(*names: str) -> frozenset:
    return frozenset(getattr(aten, n) for n in names if hasattr(aten, n))


VIEW_OPS = _ops(
    "view", "_unsafe_view", "reshape", "_reshape_alias", "flatten", "unflatten", "t",
    "transpose", "permute", "expand", "unsqueeze", "squeeze", "select", "slice", "narrow",
    "unbind", "split", "unsafe_split", "split_with_sizes", "chunk", "alias", "detach",
    "as_strided", "view_as", "expand_as", "lift_fresh", "empty", "empty_like",
    "empty_strided", "new_empty", "_unsafe_split", "unsafe_chunk", "dropout", "feature_dropout",
)  # fmt: skip

COPY_OPS = _ops(
    "cat", "stack", "clone", "contiguous", "copy_", "_to_copy", "constant_pad_nd", "pad",
    "reflection_pad2d", "replication_pad2d", "embedding", "index_select", "gather", "index",
    "_unsafe_index", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like",
    "new_zeros", "new_ones", "new_full", "fill_", "zero_", "scalar_tensor", "arange", "repeat",
    "roll", "flip", "upsample_nearest2d", "pixel_shuffle", "channel_shuffle", "masked_fill",
    "masked_fill_", "where",
)  # fmt: skip

_GEMM = _ops(
    "mm", "addmm", "bmm", "baddbmm", "mv", "dot", "matmul",
    "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
)  # fmt: skip

_CONV = _ops("convolution", "_convolution")
_POOL = _ops(
    "max_pool1d", "max_pool2d", "max_pool2d_with_indices", "max_pool3d_with_indices",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
)  # fmt: skip
_WITH_INDICES = _ops(
    "max_pool2d_with_indices", "max_pool3d_with_indices", "adaptive_max_pool2d",
    "adaptive_max_pool3d",
)  # fmt: skip


# isinstance(x, torch.Tensor) goes through a Python __instancecheck__ (about 1 us); the
# analyzer calls this for every argument of every operator, so test exact types first.
_NOT_TENSORS = frozenset({int, float, bool, str, type(None), torch.dtype, torch.device, torch.layout})
_TensorBase = torch._C.TensorBase


def _tensor_bytes(obj) -> int:
    cls = type(obj)
    if cls in _NOT_TENSORS:
        return 0
    if cls is list or cls is tuple:
        total = 0
        for o in obj:
            if type(o) not in _NOT_TENSORS:
                total += _tensor_bytes(o)
        return total
    if isinstance(obj, _TensorBase):
        return obj.numel() * obj.element_size()
    return 0


def op_bytes(packet, args: tuple, kwargs: dict, out) -> tuple[int, int]:
    """``(bytes read, bytes written)`` of one operator call under the traffic model above.

    Example:
        >>> x = torch.empty(1, 3, 8, 8, device="meta")
        >>> w = torch.empty(4, 3, 3, 3, device="meta")
        >>> out = torch.empty(1, 4, 6, 6, device="meta")
        >>> op_bytes(torch.ops.aten.convolution, (x, w, None), {}, out)  # (192 + 108) * 4, 144 * 4
        (1200, 576)
    """
    if packet in VIEW_OPS:
        return 0, 0
    read = _tensor_bytes(args) + (_tensor_bytes(list(kwargs.values())) if kwargs else 0)
    if packet in _WITH_INDICES and isinstance(out, (list, tuple)):
        out = out[0]
    return read, _tensor_bytes(out)


def op_class(packet, args: tuple) -> str:
    """The roofline class of an operator: one of ``OP_CLASSES``.

    Example:
        >>> x, w = torch.empty(1, 8, 4, 4, device="meta"), torch.empty(8, 1, 3, 3, device="meta")
        >>> op_class(torch.ops.aten.convolution, (x, w))
        'depthwise'
    """
    if packet in _GEMM:
        return "gemm"
    if packet in _POOL:
        return "pool"
    if packet in _CONV and len(args) > 1:
        x, w = args[0], args[1]
        in_channels = int(x.shape[1]) if x.dim() > 1 else 0
        if int(w.shape[1]) == 1 and in_channels > 1:
            return "depthwise"
        if math.prod(int(k) for k in w.shape[2:]) == 1:
            return "conv1x1"
        return "conv"
    return "elementwise"
