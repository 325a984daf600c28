"""Functional forms of the channel layers: the 1x1 projection and cross-channel pooling.

The layers in :mod:`onebyone.layers` call these functions. Each one picks the fastest correct
formulation for its input (see ``BENCHMARKS.md``), and every formulation equals the plain
PyTorch reference (``nn.Conv2d(kernel_size=1)``, reshape + ``amax``) within float tolerance.

>>> import torch
>>> from onebyone.functional import channel_project, cross_channel_pool
>>> x = torch.randn(2, 50, 8, 8)
>>> cross_channel_pool(x, 10).shape          # the seed's example: 50 maps -> 5 maps
torch.Size([2, 5, 8, 8])
>>> channel_project(x, torch.randn(64, 50, 1, 1)).shape
torch.Size([2, 64, 8, 8])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from onebyone._checks import check_choice, check_int

__all__ = ["POOL_GROUPINGS", "POOL_MODES", "channel_project", "cross_channel_pool"]

#: The reductions :func:`cross_channel_pool` knows.
POOL_MODES = ("max", "avg", "sum", "lp", "wta")
#: How channels are assigned to groups.
POOL_GROUPINGS = ("contiguous", "interleaved")


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
        ValueError: on a bad ``stride``, a weight that is not a 1x1 kernel, an input that is not
            3-D or 4-D, or a channel count other than ``weight``'s.

    Example:
        >>> w = torch.randn(4, 3, 1, 1)
        >>> x = torch.randn(1, 3, 5, 5)
        >>> torch.allclose(channel_project(x, w), torch.nn.functional.conv2d(x, w), atol=1e-6)
        True
    """
    stride = check_int("stride", stride)
    if weight.dim() == 4 and weight.shape[2:] == (1, 1):
        w2 = weight.flatten(1)
    elif weight.dim() == 2:
        w2 = weight
    else:
        raise ValueError(
            "channel_project: weight must have shape (out_channels, in_channels, 1, 1) or "
            f"(out_channels, in_channels), got {tuple(weight.shape)}"
        )
    out_channels = w2.shape[0]
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ValueError(
            f"channel_project: bias must have shape ({out_channels},), got {tuple(bias.shape)}"
        )
    return _project(x, w2, bias, stride, "channel_project")


def _name(who: str | Callable[[], str]) -> str:
    """The caller's name for an error message; built only when an error is raised."""
    return who() if callable(who) else who


def _project(
    x: torch.Tensor,
    w2: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    who: str | Callable[[], str],
) -> torch.Tensor:
    """Dispatch to the fastest formulation; ``w2`` is ``(out, in)``; arguments already valid."""
    if x.dim() == 3:
        return _project(x.unsqueeze(0), w2, bias, stride, who).squeeze(0)
    if x.dim() != 4:
        raise ValueError(
            f"{_name(who)}: expected a 4-D (N, C, H, W) or 3-D (C, H, W) input, "
            f"got {x.dim()}-D input of shape {tuple(x.shape)}"
        )
    in_channels = w2.shape[1]
    if x.shape[1] != in_channels:
        raise ValueError(
            f"{_name(who)}: expected {in_channels} input channels (dim 1), got {x.shape[1]} "
            f"(input shape {tuple(x.shape)})"
        )
    if stride > 1:
        # Subsample first: a strided 1x1 convolution only ever reads these positions.
        fmt = _memory_format(x)
        x = x[:, :, ::stride, ::stride]
        if fmt is not None:
            x = x.contiguous(memory_format=fmt)
    if x.is_contiguous():
        return _project_nchw(x, w2, bias)
    if x.is_contiguous(memory_format=torch.channels_last):
        return _project_nhwc(x, w2, bias)
    return F.conv2d(x, w2[:, :, None, None], bias)


def _memory_format(x: torch.Tensor) -> torch.memory_format | None:
    if x.is_contiguous():
        return torch.contiguous_format
    if x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return None


def _project_nchw(x: torch.Tensor, w2: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """NCHW: per image, a (out, C) x (C, H*W) matrix product; no layout change at all."""
    n, c, h, w = x.shape
    xs = x.reshape(n, c, h * w)
    if n == 1:
        x2 = xs[0]
        out = torch.mm(w2, x2) if bias is None else torch.addmm(bias.unsqueeze(1), w2, x2)
        return out.view(1, -1, h, w)
    out = torch.matmul(w2, xs)
    if bias is not None:
        out = out + bias.view(1, -1, 1)
    return out.view(n, -1, h, w)


def _project_nhwc(x: torch.Tensor, w2: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """channels_last: the memory already is an (N*H*W, C) matrix; one GEMM with weight.T."""
    out = F.linear(x.permute(0, 2, 3, 1), w2, bias)  # N x H x W x out, contiguous
    return out.permute(0, 3, 1, 2)  # a channels_last view in NCHW order


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
    pool_size, mode, grouping, stride, dim, p = _check_pool_args(
        pool_size, mode, grouping, stride, dim, p
    )
    return _pool(x, pool_size, mode, grouping, stride, dim, p, "cross_channel_pool")


def _check_pool_args(
    pool_size: int, mode: str, grouping: str, stride: int | None, dim: int, p: float
) -> tuple[int, str, str, int, int, float]:
    """Validate pooling arguments; return them normalised (``stride`` filled in)."""
    pool_size = check_int("pool_size", pool_size)
    mode = check_choice("mode", mode, POOL_MODES)
    grouping = check_choice("grouping", grouping, POOL_GROUPINGS)
    stride = pool_size if stride is None else check_int("stride", stride)
    if stride > pool_size:
        raise ValueError(
            f"stride must be <= pool_size={pool_size} (pools may overlap, not skip channels), "
            f"got {stride}"
        )
    if stride != pool_size and grouping != "contiguous":
        raise ValueError(
            f"stride={stride} < pool_size={pool_size} (overlapping pools) needs "
            f"grouping='contiguous', got grouping={grouping!r}"
        )
    if stride != pool_size and mode == "wta":
        raise ValueError(
            f"mode='wta' needs non-overlapping pools (stride == pool_size={pool_size}), "
            f"got stride={stride}"
        )
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise ValueError(f"dim must be an integer, got {dim!r}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not p > 0:
        raise ValueError(f"p must be a number > 0, got {p!r}")
    return pool_size, mode, grouping, stride, dim, float(p)


def pool_output_size(
    channels: int,
    pool_size: int,
    stride: int,
    mode: str,
    who: str | Callable[[], str] = "cross_channel_pool",
) -> int:
    """Number of output channels for ``channels`` inputs; ValueError if pools cannot cover them.

    >>> pool_output_size(50, 10, 10, "max")
    5
    >>> pool_output_size(7, 3, 2, "max")
    3
    """
    if stride == pool_size:
        if channels % pool_size:
            raise ValueError(
                f"{_name(who)}: the channel count must be divisible by pool_size={pool_size}, "
                f"got {channels} channels"
            )
        return channels if mode == "wta" else channels // pool_size
    if channels < pool_size or (channels - pool_size) % stride:
        raise ValueError(
            f"{_name(who)}: overlapping pools of pool_size={pool_size}, stride={stride} cover "
            f"pool_size + a multiple of stride channels (e.g. {pool_size}, "
            f"{pool_size + stride}, {pool_size + 2 * stride}), got {channels} channels"
        )
    return (channels - pool_size) // stride + 1


def _pool(
    x: torch.Tensor,
    k: int,
    mode: str,
    grouping: str,
    stride: int,
    dim: int,
    p: float,
    who: str | Callable[[], str],
) -> torch.Tensor:
    """Pool with already validated arguments; ``who`` names the caller in error messages."""
    ndim = x.dim()
    if not -ndim <= dim < ndim or ndim == 0:
        raise ValueError(
            f"{_name(who)}: dim={dim} is out of range for a {ndim}-D input of shape {tuple(x.shape)} "
            f"(expected {-ndim} <= dim < {ndim})"
        )
    d = dim % ndim
    channels = x.shape[d]
    pool_output_size(channels, k, stride, mode, who)
    if stride != k:
        # Overlapping windows: unfold is a view with the window as the last dimension.
        g = x.unfold(d, k, stride)
        return _reduce(g, mode, -1, p)
    n = channels // k
    if grouping == "contiguous":
        g, red = x.unflatten(d, (n, k)), d + 1
    else:
        g, red = x.unflatten(d, (k, n)), d
    if mode == "wta":
        m = g.amax(red, keepdim=True)
        win = (g == m) | g.isnan()
        return torch.where(win, g, torch.zeros((), dtype=g.dtype, device=g.device)).flatten(
            d, d + 1
        )
    return _reduce(g, mode, red, p)


def _reduce(g: torch.Tensor, mode: str, red: int, p: float) -> torch.Tensor:
    if mode == "max":
        return g.amax(red)
    if mode == "avg":
        return g.mean(red)
    if mode == "sum":
        return g.sum(red)
    return torch.linalg.vector_norm(g, ord=p, dim=red)
