"""The functional 1x1 projection and cross-channel pooling: checked arguments, then a kernel.

The layers in :mod:`onebyone.layers` compute the same functions. Each one checks its
arguments and input, then runs the fastest correct formulation for the input (the
speed-tuned kernels live in the private ``onebyone._kernels``; the measured ratios that chose
them are in ``BENCHMARKS.md``). Every formulation equals the plain PyTorch reference
(``nn.Conv2d(kernel_size=1)``, reshape + ``amax``) within float tolerance, with the same
gradients.

>>> import torch
>>> from onebyone.functional import channel_project, cross_channel_pool
>>> x = torch.randn(2, 50, 8, 8)
>>> cross_channel_pool(x, 10).shape          # the seed's example: 50 maps -> 5 maps
torch.Size([2, 5, 8, 8])
>>> channel_project(x, torch.randn(64, 50, 1, 1)).shape
torch.Size([2, 64, 8, 8])
"""

from __future__ import annotations

import torch

from onebyone import _kernels
from onebyone._checks import (
    check_int,
    check_pool_args,
    check_pool_input,
    check_project_input,
    check_tensor,
    pool_channels,
)
from onebyone._kernels import POOL_GROUPINGS, POOL_MODES

__all__ = [
    "POOL_GROUPINGS",
    "POOL_MODES",
    "channel_project",
    "cross_channel_pool",
    "pool_output_size",
]


# --------------------------------------------------------------------------------------------
# 1x1 projection
# --------------------------------------------------------------------------------------------


def channel_project(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
) -> torch.Tensor:
    """Project every pixel's channel vector with ``weight``: a 1x1 convolution.

    Equal to ``F.conv2d(x, weight, bias, stride=stride)`` with a ``(out, in, 1, 1)`` weight, and
    to ``nn.Linear`` applied at every pixel. The output keeps the input's memory format
    (contiguous NCHW in, NCHW out; channels_last in, channels_last out).

    Args:
        x: input of shape ``(N, C, H, W)`` or unbatched ``(C, H, W)``.
        weight: ``(out_channels, C, 1, 1)`` (nn.Conv2d layout) or ``(out_channels, C)``.
        bias: optional ``(out_channels,)``.
        stride: keep every ``stride``-th row and column (as a strided 1x1 convolution does).

    Returns:
        ``(N, out_channels, ceil(H / stride), ceil(W / stride))`` (unbatched in, unbatched out).

    Raises:
        TypeError: if ``x``, ``weight`` or ``bias`` is not a tensor.
        ValueError: on a bad ``stride``, a weight that is not a 1x1 kernel, an input that is not
            3-D or 4-D (or has no pixels), or a channel count other than ``weight``'s.

    Example:
        >>> w = torch.randn(4, 3, 1, 1)
        >>> x = torch.randn(1, 3, 5, 5)
        >>> torch.allclose(channel_project(x, w), torch.nn.functional.conv2d(x, w), atol=1e-6)
        True
    """
    check_tensor("x", x)
    check_tensor("weight", weight)
    check_tensor("bias", bias, optional=True)
    stride = check_int("stride", stride)
    if weight.dim() == 4 and weight.shape[2:] == (1, 1):
        w4 = weight
    elif weight.dim() == 2:
        w4 = weight[:, :, None, None]
    else:
        raise ValueError(
            "channel_project: weight must have shape (out_channels, in_channels, 1, 1) or "
            f"(out_channels, in_channels), got {tuple(weight.shape)}"
        )
    out_channels = w4.shape[0]
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ValueError(
            f"channel_project: bias must have shape ({out_channels},), got {tuple(bias.shape)}"
        )
    check_project_input(x, w4.shape[1], "channel_project")
    return _kernels.project(x, w4, bias, stride)


# --------------------------------------------------------------------------------------------
# Cross-channel pooling
# --------------------------------------------------------------------------------------------


def cross_channel_pool(
    x: torch.Tensor,
    pool_size: int,
    *,
    mode: str = "max",
    grouping: str = "contiguous",
    stride: int | None = None,
    dim: int = 1,
    p: float = 2.0,
) -> torch.Tensor:
    """Pool groups of ``pool_size`` feature maps (entries along ``dim``) into one.

    With ``C`` channels and ``k = pool_size``:

    * ``grouping="contiguous"``: output ``j`` pools channels ``j*s .. j*s + k - 1`` where
      ``s = stride`` (default ``k``; ``s < k`` gives overlapping pools, as pylearn2's
      ``pool_stride``). Output size ``(C - k) // s + 1``; ``C - k`` must be a multiple of ``s``.
    * ``grouping="interleaved"``: with ``n = C // k`` outputs, output ``j`` pools channels
      ``j, j + n, j + 2n, ...`` (TensorFlow Addons' ``Maxout``). Needs ``C % k == 0``.

    Modes: ``"max"``, ``"avg"``, ``"sum"``, ``"lp"`` (the p-norm ``(sum |x|^p)^(1/p)`` of the
    group) and ``"wta"`` (winner-take-all: same shape as ``x``, entries that are not the
    maximum of their group set to zero; ties all win). ``"max"`` routes the gradient as
    ``torch.amax`` does (split evenly among tied maxima). NaN and inf propagate as PyTorch's
    reductions propagate them.

    Args:
        x: input of any rank >= 1.
        pool_size: channels per group, >= 1.
        mode: one of :data:`POOL_MODES`.
        grouping: ``"contiguous"`` or ``"interleaved"``.
        stride: distance between the first channels of consecutive groups; ``None`` means
            ``pool_size``. Only ``"contiguous"`` grouping and modes other than ``"wta"`` support
            ``stride < pool_size``.
        dim: the channel dimension; negative values count from the end.
        p: the exponent of ``"lp"`` pooling, > 0 (``float("inf")`` allowed).

    Returns:
        ``x`` with the size along ``dim`` reduced to the number of groups (``"wta"``: same
        shape as ``x``).

    Raises:
        ValueError: on a bad argument, a ``dim`` out of range, or a channel count the pools
            cannot cover exactly.

    Example:
        >>> x = torch.arange(6.0).view(1, 6)
        >>> cross_channel_pool(x, 3, dim=-1)
        tensor([[2., 5.]])
        >>> cross_channel_pool(x, 2, grouping="interleaved", dim=-1)
        tensor([[3., 4., 5.]])
        >>> cross_channel_pool(x, 2, mode="wta", dim=-1)
        tensor([[0., 1., 0., 3., 0., 5.]])
    """
    pool_size, mode, grouping, stride, dim, p = check_pool_args(
        pool_size, mode, grouping, stride, dim, p
    )
    d = check_pool_input(x, pool_size, stride, mode, dim, "cross_channel_pool")
    return _kernels.pool(x, pool_size, mode, grouping, stride, d, p)


def pool_output_size(
    channels: int,
    pool_size: int,
    stride: int | None = None,
    mode: str = "max",
) -> int:
    """Number of output channels :func:`cross_channel_pool` gives for ``channels`` inputs.

    Args:
        channels: size of the pooled dimension, >= 1.
        pool_size: channels per group, >= 1.
        stride: distance between consecutive groups; ``None`` means ``pool_size``.
        mode: one of :data:`POOL_MODES` (``"wta"`` keeps every channel).

    Returns:
        ``channels // pool_size`` for non-overlapping pools (``channels`` for ``"wta"``),
        ``(channels - pool_size) // stride + 1`` for overlapping ones.

    Raises:
        ValueError: on a bad argument, or a channel count the pools cannot cover exactly.

    Example:
        >>> pool_output_size(50, 10)
        5
        >>> pool_output_size(7, 3, 2)
        3
        >>> pool_output_size(8, 4, mode="wta")
        8
    """
    channels = check_int("channels", channels)
    pool_size, mode, _, stride, _, _ = check_pool_args(pool_size, mode, "contiguous", stride, 1, 2.0)
    return pool_channels(channels, pool_size, stride, mode, "pool_output_size")
