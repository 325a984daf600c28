"""Functional forms of the channel layers: the 1x1 projection and cross-channel pooling.

The layers in :mod:`onebyone.layers` call these functions. Each one picks the fastest correct
formulation for its input (see ``BENCHMARKS.md``), and every formulation equals the plain
PyTorch reference (``nn.Conv2d(kernel_size=1)``, reshape + ``amax``) within float tolerance.

Formulations (timed by ``benchmarks/bench_channel_ops.py``):

* :func:`channel_project` on contiguous NCHW: one GEMM per image over the (C, H*W) matrix the
  memory already is (``mm`` at batch 1, its graph-free forward in column blocks that stay in
  cache for images of 16,384 pixels or more on the CPU; ``bmm`` with a broadcast weight and a
  hand-written backward of dense GEMMs at batch > 1). On channels_last (and any other
  layout): ``F.conv2d``, whose oneDNN kernel reads NHWC in place and measured fastest there.
* :func:`cross_channel_pool` on NCHW: reshape + a reduction over a non-innermost axis (one
  pass over memory). On channels_last: the (N*H*W, C) matrix view, ``max_pool1d`` for
  contiguous max groups (several pixels per row when channels are few) and a reduction over
  the outer axis for interleaved groups.
  Overlapping pools: ``unfold``. ``"max"`` always has ``amax``'s gradient, computed by a
  hand-written backward that makes fewer passes over memory than autograd's formula.

>>> import torch
>>> from onebyone.functional import channel_project, cross_channel_pool
>>> x = torch.randn(2, 50, 8, 8)
>>> cross_channel_pool(x, 10).shape          # the seed's example: 50 maps -> 5 maps
torch.Size([2, 5, 8, 8])
>>> channel_project(x, torch.randn(64, 50, 1, 1)).shape
torch.Size([2, 64, 8, 8])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.autograd import forward_ad

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
    return _project(x, w4, bias, stride, "channel_project")


def _name(who: str | Callable[[], str]) -> str:
    """The caller's name for an error message; built only when an error is raised."""
    return who() if callable(who) else who


def _project(
    x: torch.Tensor,
    w4: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    who: str | Callable[[], str],
) -> torch.Tensor:
    """Dispatch to the fastest formulation; ``w4`` is ``(out, in, 1, 1)``; arguments valid."""
    if x.dim() == 3:
        return _project(x.unsqueeze(0), w4, bias, stride, who).squeeze(0)
    if x.dim() != 4:
        raise ValueError(
            f"{_name(who)}: expected a 4-D (N, C, H, W) or 3-D (C, H, W) input, "
            f"got {x.dim()}-D input of shape {tuple(x.shape)}"
        )
    in_channels = w4.shape[1]
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
        return _project_nchw(x, w4, bias)
    # channels_last, or any other layout: the convolution handles it.
    return _project_nhwc(x, w4, bias)


def _memory_format(x: torch.Tensor) -> torch.memory_format | None:
    if x.is_contiguous():
        return torch.contiguous_format
    if x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return None


def _project_nchw(x: torch.Tensor, w4: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """NCHW: per image, a (out, C) x (C, H*W) matrix product; no layout change at all.

    ``nn.Conv2d`` on NCHW reorders the data for its kernel; the plain matrix product reads
    it in place (see BENCHMARKS.md for the measured ratios).
    """
    n, c, h, w = x.shape
    if n == 1:
        if w4.shape[0] * c * h * w < _BATCH1_GEMM_MACS:
            # Small single images: the same speed, and one op has the least per-call overhead.
            return F.conv2d(x, w4, bias)
        x2, w2 = x.view(c, h * w), w4.view(-1, c)
        if h * w >= _WIDE_PIXELS and x.device.type == "cpu" and _plain_forward(x2, w2, bias):
            # A wide, short GEMM: column blocks that stay in cache (see _blocked_mm).
            return _blocked_mm(w2, x2, bias).view(1, -1, h, w)
        # One GEMM; autograd's mm backward is already two dense GEMMs.
        out = torch.mm(w2, x2) if bias is None else torch.addmm(bias.unsqueeze(1), w2, x2)
        return out.view(1, -1, h, w)
    x3 = x.view(n, c, h * w)
    w2 = w4.view(-1, c)
    if torch.is_grad_enabled() and (
        x.requires_grad or w2.requires_grad or (bias is not None and bias.requires_grad)
    ):
        return _NCHWProject.apply(x3, w2, bias).view(n, -1, h, w)
    return _bmm_project(x3, w2, bias).view(n, -1, h, w)


#: At batch 1, NCHW inputs with fewer multiply-adds than this go to ``F.conv2d``: the GEMM
#: measured no faster there, and one op has the least Python overhead.
_BATCH1_GEMM_MACS = 2**27


#: On the CPU, the forward pass of a batch-1 NCHW image with at least this many pixels runs in
#: column blocks of ``_GEMM_BLOCK`` pixels (one (out, C) x (C, block) GEMM each, written in place
#: into the output): the BLAS library's own blocking of such a wide, short product measured
#: 1.1-1.5x slower here (e.g. 512 -> 64 over 256x256 pixels). Training measured no faster
#: blocked, so it keeps autograd's own mm (which also keeps double backward, torch.func and
#: forward-mode AD working).
_WIDE_PIXELS = 16384
_GEMM_BLOCK = 2048


def _plain_forward(*tensors: torch.Tensor | None) -> bool:
    """True when a plain, graph-free computation may stand in for autograd-visible ops: no
    tensor needs a gradient, and no autocast, torch.compile, torch.func transform or
    forward-mode AD is looking (``out=`` writes would bypass them)."""
    present = [t for t in tensors if t is not None]
    if torch.is_grad_enabled() and any(t.requires_grad for t in present):
        return False
    if torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu"):
        return False
    return not any(
        _is_functorch_wrapped(t) or forward_ad.unpack_dual(t).tangent is not None for t in present
    )


def _is_functorch_wrapped(t: torch.Tensor) -> bool:
    check = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return check is not None and check(t)


def _blocked_mm(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``a @ b (+ bias[:, None])`` for ``b`` of shape (K, P), ``_GEMM_BLOCK`` columns at a time
    (no autograd: see :func:`_plain_forward`)."""
    out = a.new_empty((a.shape[0], b.shape[1]))
    col = None if bias is None else bias.unsqueeze(1)
    for start in range(0, b.shape[1], _GEMM_BLOCK):
        cols = slice(start, start + _GEMM_BLOCK)
        if col is None:
            torch.mm(a, b[:, cols], out=out[:, cols])
        else:
            torch.addmm(col, a, b[:, cols], out=out[:, cols])
    return out


def _bmm_project(x3: torch.Tensor, w2: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    n, c, _ = x3.shape
    out = torch.bmm(w2.expand(n, -1, c), x3)
    if bias is not None:
        out.add_(bias.view(1, -1, 1))
    return out


def _project_nhwc(x: torch.Tensor, w4: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """channels_last (and other layouts): oneDNN's convolution reads NHWC in place and
    measured as fast as or faster than a GEMM over (N*H*W, C) here."""
    return F.conv2d(x, w4, bias)


class _NCHWProject(torch.autograd.Function):
    """``out[n] = W @ x[n] (+ b)`` for ``x`` of shape (N, C, P), N > 1, with a hand-written backward.

    Plain autograd through ``torch.bmm(W.expand(N, ...), x)`` is slow in training: a
    zero-stride gradient (e.g. from ``out.sum().backward()``) sends the backward GEMMs down a
    slow path, and ``torch.matmul`` folds differently when an operand requires grad. Here every
    GEMM gets dense operands and the weight gradient is one batched GEMM summed over the batch.
    """

    @staticmethod
    def forward(ctx, x3: torch.Tensor, w2: torch.Tensor, bias: torch.Tensor | None):
        ctx.save_for_backward(x3, w2)
        ctx.has_bias = bias is not None
        return _bmm_project(x3, w2, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x3, w2 = ctx.saved_tensors
        grad = grad.contiguous()
        n, c, _ = x3.shape
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.bmm(w2.t().expand(n, c, -1), grad)
        if ctx.needs_input_grad[1]:
            gw = torch.bmm(grad, x3.transpose(1, 2)).sum(0)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad.sum((0, 2))
        return gx, gw, gb


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
    if (
        ndim == 4
        and d == 1
        and mode != "wta"
        and k > 1
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return _pool_channels_last(x, k, n, mode, grouping, p)
    # reshape, not unflatten: the same view, without unflatten's Python-level overhead.
    if grouping == "contiguous":
        g, red = x.reshape((*x.shape[:d], n, k, *x.shape[d + 1 :])), d + 1
    else:
        g, red = x.reshape((*x.shape[:d], k, n, *x.shape[d + 1 :])), d
    if mode == "max" and k > 1 and _needs_grad(x):
        return _GroupMax.apply(g, red)
    if mode == "wta":
        m = g.amax(red, keepdim=True)
        win = (g == m) | g.isnan()
        return torch.where(win, g, torch.zeros((), dtype=g.dtype, device=g.device)).flatten(
            d, d + 1
        )
    return _reduce(g, mode, red, p)


def _pool_channels_last(
    x: torch.Tensor, k: int, n: int, mode: str, grouping: str, p: float
) -> torch.Tensor:
    """channels_last: work on the (N*H*W, C) matrix the memory already is; output channels_last.

    Reducing a view whose channel axis is not the innermost one makes PyTorch allocate an
    NCHW output and read the input with large strides (about 4x slower than a copy).
    """
    nb, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(nb * h * w, c)  # a view, no copy
    if grouping == "interleaved":
        out = _reduce(rows.view(-1, k, n), mode, 1, p)
    elif mode == "max":
        # A reduction over a tiny innermost axis is slow; max_pool1d's kernel is not.
        out = _GroupMaxLast.apply(rows, k)
    else:
        out = _reduce(rows.view(-1, n, k), mode, 2, p)
    return out.view(nb, h, w, n).permute(0, 3, 1, 2)


def _needs_grad(x: torch.Tensor) -> bool:
    return x.requires_grad and torch.is_grad_enabled()


def _amax_grad(g: torch.Tensor, out: torch.Tensor, grad: torch.Tensor, red: int) -> torch.Tensor:
    """``torch.amax``'s gradient, ``grad / count * (g == out)``, in fewer passes over memory.

    Autograd's own formula materialises ``grad / count`` and the mask at full size and
    multiplies them out of place; here the float mask is the output buffer. Same arithmetic
    (a group with a NaN gets NaN gradients, as with ``amax``).
    """
    out, grad = out.unsqueeze(red), grad.unsqueeze(red)
    win = g == out
    share = grad / win.sum(red, keepdim=True, dtype=grad.dtype)
    return win.to(grad.dtype).mul_(share)


class _GroupMax(torch.autograd.Function):
    """``g.amax(red)`` with the same gradient as ``amax``, computed with less memory traffic."""

    @staticmethod
    def forward(ctx, g: torch.Tensor, red: int):
        out = g.amax(red)
        ctx.save_for_backward(g, out)
        ctx.red = red
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        g, out = ctx.saved_tensors
        return _amax_grad(g, out, grad, ctx.red), None


#: ``_GroupMaxLast`` puts several pixels in one row while a row stays at most this long.
_POOL_ROW = 256


class _GroupMaxLast(torch.autograd.Function):
    """Max over consecutive groups of ``k`` columns of a (rows, C) matrix via ``max_pool1d``,
    with ``torch.amax``'s gradient (split evenly among tied maxima) instead of max_pool's
    (all to the first maximum)."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, k: int):
        m, c = rows.shape
        # Groups never straddle pixels, so several pixels can share one row: max_pool1d's
        # per-row loop then runs long enough to pay off on narrow tensors (50 channels:
        # 1.4-1.7x faster; rows of 200 to 800 values measured alike, wider ones no faster).
        per_row = math.gcd(m, 1 << max(0, (_POOL_ROW // c).bit_length() - 1))
        out = F.max_pool1d(rows.view(m // per_row, per_row * c), k).view(m, c // k)
        ctx.save_for_backward(rows, out)
        ctx.k = k
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        rows, out = ctx.saved_tensors
        g = rows.view(rows.shape[0], -1, ctx.k)
        return _amax_grad(g, out, grad, 2).view(rows.shape), None


def _reduce(g: torch.Tensor, mode: str, red: int, p: float) -> torch.Tensor:
    if mode == "max":
        return g.amax(red)
    if mode == "avg":
        return g.mean(red)
    if mode == "sum":
        return g.sum(red)
    return torch.linalg.vector_norm(g, ord=p, dim=red)
