"""The exact algebra of fusion: fold a BatchNorm into the layer before it, merge two linear layers.

Each function returns a new layer computing the same thing as the pair (in eval mode), or
raises :class:`NotFusable` with the reason. Which pairs to try, and what the report says, is
:func:`~onebyone.surgery.fuse`'s business.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["NORM_TYPES", "NotFusable", "fold_norm", "is_pointwise", "merge_pair"]

#: BatchNorm types folded into the Conv2d or Linear before them (extend with your subclasses).
NORM_TYPES: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d)


class NotFusable(ValueError):
    """A pair of layers that cannot be folded or merged; the message is the reason.

    Example:
        >>> from torch import nn
        >>> from onebyone.surgery import merge_pair
        >>> try:
        ...     merge_pair(nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 3))
        ... except NotFusable as e:
        ...     print(e)
        neither convolution is a stride-1 unpadded 1x1: merging would grow the kernel
    """


NotFusable.__module__ = "onebyone.surgery"  # its public home


def fold_norm(layer: nn.Module, norm: nn.Module) -> nn.Module:
    """A copy of ``layer`` (Conv2d or Linear) with the BatchNorm ``norm`` after it folded in.

    Exact for a Conv2d and a BatchNorm2d. For a Linear, exact only when the Linear's output is
    2-D (N, C): on (N, L, C) a BatchNorm1d normalizes L. :func:`~onebyone.surgery.fuse` checks that on the example
    input; a caller of this function must know it.

    Raises:
        NotFusable: the fold is not possible; the message says why.

    Example:
        >>> conv, bn = nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3).eval()
        >>> bn.running_mean.fill_(0.5); bn.running_var.fill_(4.0)  # doctest: +ELLIPSIS
        tensor(...)...
        >>> x = torch.randn(1, 2, 5, 5)
        >>> torch.allclose(fold_norm(conv, bn)(x), bn(conv(x)), atol=1e-6)
        True
    """
    if not isinstance(norm, NORM_TYPES):
        raise NotFusable(f"{type(norm).__name__} is not a BatchNorm")
    if not isinstance(layer, nn.Conv2d | nn.Linear):
        raise NotFusable(f"the layer before it is a {type(layer).__name__}, not a Conv2d or Linear")
    if isinstance(norm, nn.BatchNorm1d) and isinstance(layer, nn.Conv2d):
        raise NotFusable("a BatchNorm1d after a Conv2d normalizes dim 1 of a 3-D map (height), not the channels")
    if isinstance(norm, nn.BatchNorm2d) and isinstance(layer, nn.Linear):
        raise NotFusable("a BatchNorm2d after a Linear normalizes dim 1 of a 4-D tensor, not the Linear's features")
    if norm.running_mean is None or norm.running_var is None:
        raise NotFusable("BatchNorm without running statistics (track_running_stats=False) uses batch statistics")
    out_channels = layer.weight.shape[0]
    if norm.num_features != out_channels:
        raise NotFusable(f"BatchNorm has {norm.num_features} features, the layer {out_channels} outputs")
    with torch.no_grad():
        scale = torch.rsqrt(norm.running_var.double() + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight.double()
        shift = -norm.running_mean.double() * scale
        if norm.bias is not None:
            shift = shift + norm.bias.double()
        bias = shift if layer.bias is None else layer.bias.double() * scale + shift
        fused = _like(layer, bias=True)
        shape = (-1,) + (1,) * (layer.weight.dim() - 1)
        fused.weight.copy_(layer.weight.double() * scale.reshape(shape))
        fused.bias.copy_(bias)
    return fused


def _like(layer: nn.Module, *, bias: bool, weight_shape: tuple[int, ...] | None = None) -> nn.Module:
    """An empty layer with ``layer``'s geometry (and the given weight shape)."""
    w = layer.weight
    shape = tuple(weight_shape or w.shape)
    kwargs = {"device": w.device, "dtype": w.dtype}
    if isinstance(layer, nn.Linear):
        return nn.Linear(shape[1], shape[0], bias=bias, **kwargs)
    # A grouped (or depthwise) weight is (out, in / groups, kh, kw): keep the groups.
    groups = layer.groups
    return nn.Conv2d(
        shape[1] * groups, shape[0], shape[2:], stride=layer.stride, padding=layer.padding,
        dilation=layer.dilation, groups=groups, padding_mode=layer.padding_mode, bias=bias, **kwargs,
    )


def is_pointwise(conv: nn.Conv2d) -> bool:
    """True for a stride-1, unpadded 1x1 convolution (a per-pixel channel projection).

    >>> is_pointwise(nn.Conv2d(4, 2, 1)), is_pointwise(nn.Conv2d(4, 2, 1, stride=2))
    (True, False)
    """
    padding = conv.padding if isinstance(conv.padding, tuple) else None
    no_padding = conv.padding == "valid" or padding == (0, 0)
    return tuple(conv.kernel_size) == (1, 1) and tuple(conv.stride) == (1, 1) and no_padding


def merge_pair(first: nn.Module, second: nn.Module) -> nn.Module:
    """One layer computing ``second(first(x))``.

    Handles Linear then Linear, kxk then 1x1 and 1x1 then kxk convolutions.

    Raises:
        NotFusable: the pair cannot be merged exactly; the message says why.

    Example:
        >>> a, b = nn.Conv2d(4, 2, 1, bias=False), nn.Conv2d(2, 5, 3, padding=1)
        >>> x = torch.randn(1, 4, 6, 6)
        >>> torch.allclose(merge_pair(a, b)(x), b(a(x)), atol=1e-6)
        True
        >>> a = nn.Conv2d(4, 2, 1)
        >>> merge_pair(a, nn.Conv2d(2, 5, 3, padding=1))
        Traceback (most recent call last):
        ...
        onebyone.surgery.NotFusable: a 1x1 with a bias before a zero-padded kxk convolution: the padded border would lose the bias
    """
    if isinstance(first, nn.Linear) and isinstance(second, nn.Linear):
        if first.out_features != second.in_features:
            raise NotFusable("feature counts do not chain")
        with torch.no_grad():
            fused = _like(first, bias=first.bias is not None or second.bias is not None,
                          weight_shape=(second.out_features, first.in_features))
            fused.weight.copy_(second.weight.double() @ first.weight.double())
            if fused.bias is not None:
                bias = second.weight.double() @ first.bias.double() if first.bias is not None else 0
                fused.bias.copy_(bias + (second.bias.double() if second.bias is not None else 0))
        return fused
    if not (isinstance(first, nn.Conv2d) and isinstance(second, nn.Conv2d)):
        raise NotFusable(f"{type(first).__name__} then {type(second).__name__} is not a pair of convolutions or Linears")
    if first.groups != 1 or second.groups != 1:
        raise NotFusable("grouped convolutions are not merged")
    if first.out_channels != second.in_channels:
        raise NotFusable("channel counts do not chain")
    w1, w2 = first.weight.double(), second.weight.double()
    has_bias = first.bias is not None or second.bias is not None
    if is_pointwise(second):  # kxk then 1x1: always exact
        with torch.no_grad():
            fused = _like(first, bias=has_bias, weight_shape=(second.out_channels, *w1.shape[1:]))
            fused.weight.copy_(torch.einsum("om,mikl->oikl", w2[:, :, 0, 0], w1))
            if has_bias:
                bias = w2[:, :, 0, 0] @ first.bias.double() if first.bias is not None else 0
                fused.bias.copy_(bias + (second.bias.double() if second.bias is not None else 0))
        return fused
    if is_pointwise(first):  # 1x1 then kxk
        padded = not (second.padding == "valid" or second.padding == (0, 0))
        if first.bias is not None and padded and second.padding_mode == "zeros":
            raise NotFusable("a 1x1 with a bias before a zero-padded kxk convolution: the padded border would lose the bias")
        with torch.no_grad():
            fused = _like(second, bias=has_bias, weight_shape=(second.out_channels, first.in_channels, *w2.shape[2:]))
            fused.weight.copy_(torch.einsum("omkl,mi->oikl", w2, w1[:, :, 0, 0]))
            if has_bias:
                # Replicate/reflect/circular padding copy interior values, so the bias survives them.
                bias = torch.einsum("omkl,m->o", w2, first.bias.double()) if first.bias is not None else 0
                fused.bias.copy_(bias + (second.bias.double() if second.bias is not None else 0))
        return fused
    raise NotFusable("neither convolution is a stride-1 unpadded 1x1: merging would grow the kernel")
