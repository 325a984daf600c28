"""Speed-tuned kernels of the 1x1 projection and cross-channel pooling (arguments already checked).

:mod:`onebyone.functional` and :mod:`onebyone.layers` validate their arguments and input
(see :mod:`onebyone._checks`) and then call :func:`project` or :func:`pool`, which pick the
fastest correct formulation for the input. Every formulation equals the plain PyTorch
reference (``nn.Conv2d(kernel_size=1)``, reshape + ``amax``) within float tolerance, and the
ratios that chose them are in ``BENCHMARKS.md`` (timed by ``benchmarks/bench_channel_ops.py``):

* :func:`project` on contiguous NCHW: one GEMM per image over the (C, H*W) matrix the memory
  already is (``mm`` at batch 1, its graph-free forward in column blocks that stay in cache
  for images of :data:`WIDE_PIXELS` pixels or more on the CPU; ``bmm`` with a broadcast weight
  and a hand-written backward of dense GEMMs at batch > 1). On channels_last (and any other
  layout): ``F.conv2d``, whose oneDNN kernel reads NHWC in place and measured fastest there.
* :func:`pool` on NCHW: reshape + a reduction over a non-innermost axis (one pass over
  memory). On channels_last: the (N*H*W, C) matrix view, ``max_pool1d`` for contiguous max
  groups (several pixels per row when channels are few) and a reduction over the outer axis
  for interleaved groups. Overlapping pools: ``unfold``. ``"max"`` always has ``amax``'s
  gradient, computed by a hand-written backward that makes fewer passes over memory.

Every custom ``autograd.Function`` here has a separate ``setup_context``, a generated vmap
rule, a forward-mode rule (``jvp``) and a backward that is itself differentiable, so
``torch.func`` transforms (``grad``, ``jacrev``, ``jacfwd``, ``jvp``, ``vmap``), forward-mode
AD and double backward work through every path, as they do through ``nn.Conv2d`` and
``amax``.

>>> import torch
>>> x = torch.randn(2, 50, 8, 8)
>>> pool(x, 10, "max", "contiguous", 10, 1, 2.0).shape
torch.Size([2, 5, 8, 8])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd import forward_ad

__all__ = [
    "BATCH1_GEMM_MACS",
    "GEMM_BLOCK",
    "POOL_GROUPINGS",
    "POOL_MODES",
    "POOL_ROW",
    "WIDE_PIXELS",
    "blocked_mm",
    "pool",
    "project",
    "project_nchw",
    "project_nhwc",
]

#: The reductions :func:`pool` knows.
POOL_MODES = ("max", "avg", "sum", "lp", "wta")
#: How channels are assigned to groups.
POOL_GROUPINGS = ("contiguous", "interleaved")

#: At batch 1, NCHW inputs with fewer multiply-adds than this go to ``F.conv2d``: the GEMM
#: measured no faster there, and one op has the least Python overhead.
BATCH1_GEMM_MACS = 2**27

#: On the CPU, the forward pass of a batch-1 NCHW image with at least this many pixels runs in
#: column blocks of ``GEMM_BLOCK`` pixels (one (out, C) x (C, block) GEMM each, written in place
#: into the output): the BLAS library's own blocking of such a wide, short product measured
#: 1.1-1.5x slower here (e.g. 512 -> 64 over 256x256 pixels). Training measured no faster
#: blocked, so it keeps autograd's own mm (which also keeps double backward, torch.func and
#: forward-mode AD working).
WIDE_PIXELS = 16384
GEMM_BLOCK = 2048

#: The channels_last max pool puts several pixels in one ``max_pool1d`` row while a row stays
#: at most this long.
POOL_ROW = 256


# --------------------------------------------------------------------------------------------
# 1x1 projection
# --------------------------------------------------------------------------------------------


def project(
    x: torch.Tensor, w4: torch.Tensor, bias: torch.Tensor | None, stride: int
) -> torch.Tensor:
    """``F.conv2d(x, w4, bias, stride=stride)`` by the fastest formulation for ``x``.

    Args:
        x: a checked ``(N, C, H, W)`` or ``(C, H, W)`` input.
        w4: the ``(out_channels, C, 1, 1)`` weight.
        bias: ``(out_channels,)`` or ``None``.
        stride: >= 1.

    Returns:
        The projection, in ``x``'s memory format.

    Example:
        >>> x, w = torch.randn(2, 3, 4, 4), torch.randn(5, 3, 1, 1)
        >>> torch.allclose(project(x, w, None, 2), F.conv2d(x, w, stride=2), atol=1e-6)
        True
    """
    if x.dim() == 3:
        return project(x.unsqueeze(0), w4, bias, stride).squeeze(0)
    if stride > 1:
        # Subsample first: a strided 1x1 convolution only ever reads these positions.
        fmt = _memory_format(x)
        x = x[:, :, ::stride, ::stride]
        if fmt is not None:
            x = x.contiguous(memory_format=fmt)
    if x.shape[0] == 0:
        # An empty batch: nothing to multiply; the convolution gives the empty result (and
        # its zero gradients) with the right shape, as nn.Conv2d does.
        return F.conv2d(x, w4, bias)
    if x.is_contiguous():
        return project_nchw(x, w4, bias)
    # channels_last, or any other layout: the convolution handles it.
    return project_nhwc(x, w4, bias)


def _memory_format(x: torch.Tensor) -> torch.memory_format | None:
    if _is_functorch_wrapped(x):
        # vmap cannot answer layout questions other than plain contiguity: keep the slice.
        return None
    if x.is_contiguous():
        return torch.contiguous_format
    if x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return None


def project_nchw(x: torch.Tensor, w4: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """NCHW: per image, a (out, C) x (C, H*W) matrix product; no layout change at all.

    ``nn.Conv2d`` on NCHW reorders the data for its kernel; the plain matrix product reads
    it in place (see BENCHMARKS.md for the measured ratios).

    Example:
        >>> x, w = torch.randn(3, 4, 2, 2), torch.randn(5, 4, 1, 1)
        >>> torch.allclose(project_nchw(x, w, None), F.conv2d(x, w), atol=1e-6)
        True
    """
    n, c, h, w = x.shape
    if n == 1:
        if w4.shape[0] * c * h * w < BATCH1_GEMM_MACS:
            # Small single images: the same speed, and one op has the least per-call overhead.
            return F.conv2d(x, w4, bias)
        x2, w2 = x.view(c, h * w), w4.view(-1, c)
        if h * w >= WIDE_PIXELS and x.device.type == "cpu" and _plain_forward(x2, w2, bias):
            # A wide, short GEMM: column blocks that stay in cache (see blocked_mm).
            return blocked_mm(w2, x2, bias).view(1, -1, h, w)
        # One GEMM; autograd's mm backward is already two dense GEMMs.
        out = torch.mm(w2, x2) if bias is None else torch.addmm(bias.unsqueeze(1), w2, x2)
        return out.view(1, -1, h, w)
    x3 = x.view(n, c, h * w)
    w2 = w4.view(-1, c)
    if _use_function(x3, w2, bias):
        return _NCHWProject.apply(x3, w2, bias).view(n, -1, h, w)
    return _bmm_project(x3, w2, bias).view(n, -1, h, w)


def project_nhwc(x: torch.Tensor, w4: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """channels_last (and other layouts): oneDNN's convolution reads NHWC in place and
    measured as fast as or faster than a GEMM over (N*H*W, C) here.

    Example:
        >>> x = torch.randn(1, 4, 2, 2).contiguous(memory_format=torch.channels_last)
        >>> project_nhwc(x, torch.randn(5, 4, 1, 1), None).is_contiguous(
        ...     memory_format=torch.channels_last)
        True
    """
    return F.conv2d(x, w4, bias)


def _use_function(*tensors: torch.Tensor | None) -> bool:
    """True when a custom ``autograd.Function`` should run: in eager mode, when autograd
    records a graph through one of these tensors (plain autograd, or ``torch.func.grad`` and
    ``jacrev``, whose inputs require grad). Otherwise the plain ops run: they have no Python
    overhead, and ``vmap``, ``jvp`` and forward-mode AD see ops with their own rules.

    Under ``torch.compile`` the plain ops run too: Dynamo cannot trace a custom ``jvp``, and
    the compiler derives (and fuses) the backward itself.
    """
    return (
        torch.is_grad_enabled()
        and any(t is not None and t.requires_grad for t in tensors)
        and not torch.compiler.is_compiling()
    )


def _plain_forward(*tensors: torch.Tensor | None) -> bool:
    """True when a plain, graph-free computation may stand in for autograd-visible ops: no
    tensor needs a gradient, and no autocast, torch.compile, torch.func transform or
    forward-mode AD is looking (``out=`` writes would bypass them)."""
    present = [t for t in tensors if t is not None]
    if torch.is_grad_enabled() and any(t.requires_grad for t in present):
        return False
    if torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu"):
        return False
    return not any(_is_functorch_wrapped(t) or _has_tangent(t) for t in present)


def _is_functorch_wrapped(t: torch.Tensor) -> bool:
    if torch.compiler.is_compiling():
        return False  # Dynamo cannot ask (and traces the transforms itself)
    check = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return check is not None and check(t)


def _has_tangent(t: torch.Tensor) -> bool:
    return forward_ad.unpack_dual(t).tangent is not None


def blocked_mm(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``a @ b (+ bias[:, None])`` for ``b`` of shape (K, P), ``GEMM_BLOCK`` columns at a time.

    Graph-free (``out=`` writes): call it only when :func:`_plain_forward` allows.

    Example:
        >>> a, b = torch.randn(3, 4), torch.randn(4, 5000)
        >>> torch.allclose(blocked_mm(a, b, None), a @ b, atol=1e-5)
        True
    """
    out = a.new_empty((a.shape[0], b.shape[1]))
    col = None if bias is None else bias.unsqueeze(1)
    for start in range(0, b.shape[1], GEMM_BLOCK):
        cols = slice(start, start + GEMM_BLOCK)
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


class _NCHWProject(torch.autograd.Function):
    """``out[n] = W @ x[n] (+ b)`` for ``x`` of shape (N, C, P), N > 1, with a hand-written backward.

    Plain autograd through ``torch.bmm(W.expand(N, ...), x)`` is slow in training: a
    zero-stride gradient (e.g. from ``out.sum().backward()``) sends the backward GEMMs down a
    slow path, and ``torch.matmul`` folds differently when an operand requires grad. Here every
    GEMM gets dense operands and the weight gradient is one batched GEMM summed over the batch.
    ``setup_context``, ``generate_vmap_rule`` and ``jvp`` let ``torch.func`` and forward-mode
    AD through (the backward is built from differentiable ops, so double backward works).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x3: torch.Tensor, w2: torch.Tensor, bias: torch.Tensor | None):
        return _bmm_project(x3, w2, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x3, w2, bias = inputs
        ctx.save_for_backward(x3, w2)
        ctx.save_for_forward(x3, w2)
        ctx.has_bias = bias is not None

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

    @staticmethod
    def jvp(ctx, dx, dw, db):
        # d(W x + b) = W dx + dW x + db: the primal inputs are saved by setup_context.
        x3, w2 = ctx.saved_tensors
        out = None
        if dx is not None:
            out = torch.matmul(w2, dx)
        if dw is not None:
            term = torch.matmul(dw, x3)
            out = term if out is None else out + term
        if db is not None:
            term = db.view(1, -1, 1)
            out = term.expand(x3.shape[0], -1, x3.shape[2]).clone() if out is None else out + term
        return out


# --------------------------------------------------------------------------------------------
# Cross-channel pooling
# --------------------------------------------------------------------------------------------


def pool(
    x: torch.Tensor, k: int, mode: str, grouping: str, stride: int, d: int, p: float
) -> torch.Tensor:
    """Pool groups of ``k`` entries along dimension ``d`` (checked: ``0 <= d < x.dim()``, and
    the pools cover ``x.shape[d]``); the rules are those of
    :func:`onebyone.functional.cross_channel_pool`.

    Example:
        >>> pool(torch.arange(6.0).view(1, 6), 3, "max", "contiguous", 3, 1, 2.0)
        tensor([[2., 5.]])
    """
    if stride != k:
        # Overlapping windows: unfold is a view with the window as the last dimension.
        return _reduce(x.unfold(d, k, stride), mode, -1, p)
    n = x.shape[d] // k
    if (
        x.dim() == 4
        and d == 1
        and mode != "wta"
        and k > 1
        and not _is_functorch_wrapped(x)  # vmap cannot answer layout questions
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return _pool_channels_last(x, k, n, mode, grouping, p)
    # reshape, not unflatten: the same view, without unflatten's Python-level overhead.
    if grouping == "contiguous":
        g, red = x.reshape((*x.shape[:d], n, k, *x.shape[d + 1 :])), d + 1
    else:
        g, red = x.reshape((*x.shape[:d], k, n, *x.shape[d + 1 :])), d
    if mode == "max" and k > 1 and _use_function(x):
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
        if torch.compiler.is_compiling():
            out = rows.view(-1, n, k).amax(2)  # the compiler fuses it (see _use_function)
        else:
            # A reduction over a tiny innermost axis is slow; max_pool1d's kernel is not.
            out = _GroupMaxLast.apply(rows, k)
    else:
        out = _reduce(rows.view(-1, n, k), mode, 2, p)
    return out.view(nb, h, w, n).permute(0, 3, 1, 2)


def _amax_grad(g: torch.Tensor, out: torch.Tensor, grad: torch.Tensor, red: int) -> torch.Tensor:
    """``torch.amax``'s gradient, ``grad / count * (g == out)``, in fewer passes over memory.

    Autograd's own formula materialises ``grad / count`` and the mask at full size and
    multiplies them out of place; here the float mask is the output buffer. Same arithmetic
    (a group with a NaN gets NaN gradients, as with ``amax``).
    """
    out, grad = out.unsqueeze(red), grad.unsqueeze(red)
    win = g == out
    share = grad / win.sum(red, keepdim=True, dtype=grad.dtype)
    if torch.is_grad_enabled() or _is_functorch_wrapped(share):
        # Double backward or a torch.func transform: out of place (an in-place product
        # cannot record a graph through the mask, nor write a batched value into it).
        return win.to(grad.dtype) * share
    return win.to(grad.dtype).mul_(share)


def _amax_jvp(g: torch.Tensor, out: torch.Tensor, dg: torch.Tensor, red: int) -> torch.Tensor:
    """``torch.amax``'s forward derivative: the mean of the tangent over the tied maxima."""
    win = (g == out.unsqueeze(red)).to(dg.dtype)
    return (dg * win).sum(red) / win.sum(red)


class _GroupMax(torch.autograd.Function):
    """``g.amax(red)`` with the same gradient as ``amax``, computed with less memory traffic."""

    generate_vmap_rule = True

    @staticmethod
    def forward(g: torch.Tensor, red: int):
        return g.amax(red)

    @staticmethod
    def setup_context(ctx, inputs, output):
        g, red = inputs
        ctx.save_for_backward(g, output)
        ctx.save_for_forward(g, output)
        ctx.red = red

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        g, out = ctx.saved_tensors
        return _amax_grad(g, out, grad, ctx.red), None

    @staticmethod
    def jvp(ctx, dg, _dred):
        g, out = ctx.saved_tensors
        return _amax_jvp(g, out, dg, ctx.red)


class _GroupMaxLast(torch.autograd.Function):
    """Max over consecutive groups of ``k`` columns of a (rows, C) matrix via ``max_pool1d``,
    with ``torch.amax``'s gradient (split evenly among tied maxima) instead of max_pool's
    (all to the first maximum)."""

    @staticmethod
    def forward(rows: torch.Tensor, k: int):
        m, c = rows.shape
        # Groups never straddle pixels, so several pixels can share one row: max_pool1d's
        # per-row loop then runs long enough to pay off on narrow tensors (50 channels:
        # 1.4-1.7x faster; rows of 200 to 800 values measured alike, wider ones no faster).
        per_row = math.gcd(m, 1 << max(0, (POOL_ROW // c).bit_length() - 1))
        return F.max_pool1d(rows.view(m // per_row, per_row * c), k).view(m, c // k)

    @staticmethod
    def setup_context(ctx, inputs, output):
        rows, k = inputs
        ctx.save_for_backward(rows, output)
        ctx.save_for_forward(rows, output)
        ctx.k = k

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        rows, out = ctx.saved_tensors
        g = rows.view(rows.shape[0], -1, ctx.k)
        return _amax_grad(g, out, grad, 2).view(rows.shape), None

    @staticmethod
    def jvp(ctx, drows, _dk):
        rows, out = ctx.saved_tensors
        m = rows.shape[0]
        return _amax_jvp(rows.view(m, -1, ctx.k), out, drows.reshape(m, -1, ctx.k), 2)


def _reduce(g: torch.Tensor, mode: str, red: int, p: float) -> torch.Tensor:
    if mode == "max":
        return g.amax(red)
    if mode == "avg":
        return g.mean(red)
    if mode == "sum":
        return g.sum(red)
    return torch.linalg.vector_norm(g, ord=p, dim=red)
