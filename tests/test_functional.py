"""onebyone.functional and the kernels behind it (onebyone._kernels): every formulation of the
1x1 projection and of cross-channel pooling against F.conv2d and reshape + amax."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import forward_ad

from onebyone import _kernels as K
from onebyone import functional as OF
from onebyone.functional import channel_project


def _formulations():
    """(name, function(x, w2, bias)) for every private formulation the dispatcher can pick."""
    return [
        ("nchw", K.project_nchw, torch.contiguous_format),
        ("nhwc", K.project_nhwc, torch.channels_last),
    ]


def _assert_equals_conv2d(out, x, w, b, fmt):
    """``out`` (in memory format ``fmt``) and the gradients it sends to ``x``, ``w`` and ``b``
    equal ``F.conv2d``'s on detached copies; ``w`` is (out, in) or (out, in, 1, 1)."""
    xr, wr = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    br = None if b is None else b.detach().clone().requires_grad_()
    ref = F.conv2d(xr, wr.view(wr.shape[0], -1, 1, 1), br)
    bf16 = x.dtype == torch.bfloat16
    tol = {"rtol": 2e-2, "atol": 5e-2} if bf16 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(out, ref, **tol)
    assert out.is_contiguous(memory_format=fmt)
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    for got, want in ((x, xr), (w, wr), (b, br)):
        if got is not None:
            torch.testing.assert_close(got.grad, want.grad, **tol)


@pytest.mark.parametrize(("name", "fn", "fmt"), _formulations())
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_each_formulation_equals_conv2d_with_gradients(name, fn, fmt, n, bias, dtype):
    x = torch.randn(n, 6, 5, 7, dtype=dtype).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(4, 6, dtype=dtype, requires_grad=True)
    b = torch.randn(4, dtype=dtype, requires_grad=True) if bias else None
    _assert_equals_conv2d(fn(x, w[:, :, None, None], b), x, w, b, fmt)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3),
    cin=st.integers(1, 8),
    cout=st.integers(1, 8),
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    stride=st.integers(1, 3),
    layout=st.sampled_from(["nchw", "nhwc", "strided"]),
    weight_2d=st.booleans(),
)
def test_channel_project_equals_conv2d(n, cin, cout, h, w, stride, layout, weight_2d):
    x = torch.randn(n, cin, h, w)
    if layout == "nhwc":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        x = torch.randn(n, cin, h, 2 * w)[..., ::2]
    weight = torch.randn(cout, cin, 1, 1)
    bias = torch.randn(cout)
    out = channel_project(x, weight.flatten(1) if weight_2d else weight, bias, stride)
    torch.testing.assert_close(out, F.conv2d(x, weight, bias, stride=stride), rtol=1e-5, atol=1e-5)


def test_channel_project_in_no_grad_and_inference_mode():
    x = torch.randn(2, 8, 4, 4)
    w = torch.nn.Parameter(torch.randn(3, 8, 1, 1))
    ref = F.conv2d(x, w)
    with torch.no_grad():
        torch.testing.assert_close(channel_project(x, w), ref.detach())
    with torch.inference_mode():
        torch.testing.assert_close(channel_project(x, w), ref.detach())


@pytest.mark.parametrize(
    ("weight", "bias", "stride", "match"),
    [
        (torch.randn(4, 6, 3, 3), None, 1, r"weight must have shape .* got \(4, 6, 3, 3\)"),
        (torch.randn(4), None, 1, r"weight must have shape .* got \(4,\)"),
        (torch.randn(4, 6), torch.randn(3), 1, r"bias must have shape \(4,\), got \(3,\)"),
        (torch.randn(4, 6), None, 0, "stride must be an integer >= 1, got 0"),
        (
            torch.randn(4, 5),
            None,
            1,
            r"channel_project: expected 5 input channels \(dim 1\), got 6",
        ),
    ],
)
def test_channel_project_bad_input(weight, bias, stride, match):
    with pytest.raises(ValueError, match=match):
        channel_project(torch.randn(2, 6, 3, 3), weight, bias, stride)


@pytest.mark.parametrize("n", [1, 4])
def test_nchw_inference_path_equals_conv2d(n):
    x = torch.randn(n, 6, 5, 7)
    w = torch.randn(4, 6, 1, 1)
    b = torch.randn(4)
    with torch.no_grad():  # the plain batched GEMM, no custom autograd
        out = K.project_nchw(x, w, b)
    torch.testing.assert_close(out, F.conv2d(x, w, b), rtol=1e-5, atol=1e-5)
    assert out.is_contiguous()


@pytest.mark.parametrize("channels_last", [False, True])
def test_zero_stride_gradient_from_sum_backward(channels_last):
    # out.sum().backward() hands the backward an expanded (zero-stride) gradient.
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, 5, 4, 4).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(2, 5, 1, 1, requires_grad=True)
    b = torch.randn(2, requires_grad=True)
    channel_project(x, w, b).sum().backward()
    xr, wr, br = (t.detach().clone().requires_grad_() for t in (x, w, b))
    F.conv2d(xr, wr, br).sum().backward()
    for got, ref in ((x.grad, xr.grad), (w.grad, wr.grad), (b.grad, br.grad)):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_gradcheck_nchw_custom_backward_float64():
    x = torch.randn(3, 4, 2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, 1, 1, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(channel_project, (x, w, b))
    assert torch.autograd.gradcheck(lambda w_: channel_project(x.detach(), w_), (w,))


@pytest.mark.parametrize("channels_last", [False, True])
def test_projection_compiles_with_backward(channels_last):
    torch._dynamo.reset()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, 6, 4, 4).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(4, 6, 1, 1, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    compiled = torch.compile(channel_project, fullgraph=True, backend="aot_eager")
    compiled(x, w, b).square().sum().backward()
    grads = [t.grad.clone() for t in (x, w, b)]
    xr, wr, br = (t.detach().clone().requires_grad_() for t in (x, w, b))
    F.conv2d(xr, wr, br).square().sum().backward()
    for got, ref in zip(grads, (xr.grad, wr.grad, br.grad), strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ cross-channel pooling paths


@pytest.mark.parametrize("mode", ["max", "avg", "sum", "lp"])
@pytest.mark.parametrize("grouping", ["contiguous", "interleaved"])
def test_channels_last_pool_path_equals_nchw_path(mode, grouping):
    x = torch.randn(2, 12, 5, 3, dtype=torch.float64)
    xcl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    xr = x.clone().requires_grad_()
    out = OF.cross_channel_pool(xcl, 4, mode=mode, grouping=grouping)
    ref = OF.cross_channel_pool(xr, 4, mode=mode, grouping=grouping)
    torch.testing.assert_close(out, ref)
    assert out.is_contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(xcl.grad, xr.grad)
    assert torch.autograd.gradcheck(
        lambda t: OF.cross_channel_pool(t, 4, mode=mode, grouping=grouping),
        (x[:1, :, :2].contiguous(memory_format=torch.channels_last).requires_grad_(),),
    )


def test_channels_last_max_routes_gradient_like_amax_on_ties():
    x = torch.zeros(1, 4, 2, 2)
    x[:, 1] = 1.0
    x[:, 2] = 1.0  # group (0..3) has a two-way tie at every pixel
    xcl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    OF.cross_channel_pool(xcl, 4).sum().backward()
    expected = torch.tensor([0.0, 0.5, 0.5, 0.0]).view(1, 4, 1, 1).expand(1, 4, 2, 2)
    assert torch.equal(xcl.grad, expected)


def test_channels_last_pool_nan_and_bf16():
    x = torch.randn(1, 8, 3, 3)
    x[0, 5, 1, 1] = float("nan")
    out = OF.cross_channel_pool(x.contiguous(memory_format=torch.channels_last), 4)
    assert out[0, 1, 1, 1].isnan() and not out[0, 0].isnan().any()
    xb = torch.randn(2, 8, 3, 3).to(torch.bfloat16)
    out = OF.cross_channel_pool(xb.contiguous(memory_format=torch.channels_last), 4)
    assert torch.equal(out, OF.cross_channel_pool(xb, 4))


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_max_pool_compiles_with_backward(fmt):
    torch._dynamo.reset()
    x = torch.randn(2, 8, 3, 3).contiguous(memory_format=fmt).requires_grad_()
    compiled = torch.compile(
        lambda t: OF.cross_channel_pool(t, 4), fullgraph=True, backend="aot_eager"
    )
    compiled(x).square().sum().backward()
    xr = x.detach().clone().requires_grad_()
    xr.unflatten(1, (2, 4)).amax(2).square().sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)


# ------------------------------------------------------- batch-1 GEMM path and the max backward


def _backward_nodes(t):
    """The class names of every node in ``t``'s autograd graph."""
    names, todo = set(), [t.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None:
            names.add(type(node).__name__)
            todo.extend(nxt for nxt, _ in node.next_functions)
    return names


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_batch1_gemm_path_equals_conv2d_with_gradients(monkeypatch, bias, dtype):
    # Large single images take torch.mm/addmm; lower the threshold so a small one does too.
    monkeypatch.setattr(K, "BATCH1_GEMM_MACS", 0)
    x = torch.randn(1, 6, 5, 7, dtype=dtype, requires_grad=True)
    w = torch.randn(4, 6, 1, 1, dtype=dtype, requires_grad=True)
    b = torch.randn(4, dtype=dtype, requires_grad=True) if bias else None
    out = K.project_nchw(x, w, b)
    assert "ConvolutionBackward0" not in _backward_nodes(out)
    _assert_equals_conv2d(out, x, w, b, torch.contiguous_format)


@pytest.fixture
def blocked_calls(monkeypatch):
    """Send every batch-1 NCHW image to the column-blocked forward (blocks of 3 pixels, so
    5x7 images end in a partial block) and record each call of it."""
    monkeypatch.setattr(K, "BATCH1_GEMM_MACS", 0)
    monkeypatch.setattr(K, "WIDE_PIXELS", 1)
    monkeypatch.setattr(K, "GEMM_BLOCK", 3)
    return _record_blocked_calls(monkeypatch)


def _record_blocked_calls(monkeypatch):
    """A list that gets one entry per call of the column-blocked forward."""
    calls, real = [], K.blocked_mm
    monkeypatch.setattr(K, "blocked_mm", lambda *args: calls.append(1) or real(*args))
    return calls


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_blocked_forward_equals_conv2d(blocked_calls, bias, dtype):
    x, w = torch.randn(1, 6, 5, 7, dtype=dtype), torch.randn(4, 6, 1, 1, dtype=dtype)
    b = torch.randn(4, dtype=dtype) if bias else None
    ref = F.conv2d(x, w, b)
    tol = {"rtol": 2e-2, "atol": 5e-2} if dtype == torch.bfloat16 else {"rtol": 1e-5, "atol": 1e-5}
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            out = channel_project(x, w, b)
        torch.testing.assert_close(out, ref, **tol)
        assert out.is_contiguous()
    x.requires_grad_()
    with torch.no_grad():  # a leaf that requires grad, but no graph is being recorded
        channel_project(x, w, b)
    assert len(blocked_calls) == 3
    out = channel_project(x, w, b)  # training: autograd's own mm, not the blocked path
    assert len(blocked_calls) == 3 and out.grad_fn is not None


def test_blocked_forward_at_the_real_thresholds(monkeypatch):
    x = torch.randn(1, 64, 128, 128)  # 16,384 pixels and 2**27 multiply-adds
    w, b = torch.randn(128, 64, 1, 1), torch.randn(128)
    calls = _record_blocked_calls(monkeypatch)
    with torch.no_grad():
        out = channel_project(x, w, b)
    assert calls == [1]
    torch.testing.assert_close(out, F.conv2d(x, w, b), rtol=1e-4, atol=1e-4)


# torch.func's first use scripts helpers with torch.jit.script, which torch 2.13 deprecates.
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_autograd_transforms_never_take_the_blocked_forward(blocked_calls):
    # out= writes would escape them: double backward, torch.func and forward-mode AD must see
    # differentiable ops and agree with F.conv2d.
    x = torch.randn(1, 6, 5, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    v = torch.randn_like(x)

    def conv(t, weight=w):
        return F.conv2d(t, weight[:, :, None, None], b)

    assert torch.autograd.gradgradcheck(channel_project, (x, w, b))
    loss = lambda f: (lambda t: f(t).square().sum())  # noqa: E731
    got = torch.func.grad(loss(lambda t: channel_project(t, w, b)))(x.detach())
    torch.testing.assert_close(got, torch.func.grad(loss(conv))(x.detach()))
    images = torch.randn(3, 6, 5, 7, dtype=torch.float64)
    with torch.no_grad():
        got = torch.vmap(lambda t: channel_project(t, w, b))(images)
        torch.testing.assert_close(got, conv(images))
        _, got = torch.func.jvp(lambda t: channel_project(t, w, b), (x,), (v,))
        torch.testing.assert_close(got, conv(v) - conv(torch.zeros_like(v)))
        with forward_ad.dual_level():
            dual = channel_project(forward_ad.make_dual(x, v), w, b)
            torch.testing.assert_close(forward_ad.unpack_dual(dual).tangent, got)
    assert blocked_calls == []


@pytest.mark.parametrize("hw", [8, 128])  # 128x128: the column-blocked path without autocast
def test_projection_under_cpu_autocast_has_conv2d_dtype(hw):
    x, w, b = torch.randn(1, 64, hw, hw), torch.randn(128, 64, 1, 1), torch.randn(128)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, ref = channel_project(x, w, b), F.conv2d(x, w, b)
    assert out.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref, rtol=2e-2, atol=0.1)


@pytest.mark.parametrize(
    ("n", "c", "h", "w", "k"),
    [
        (1, 6, 3, 5, 2),  # 15 pixels: odd, one pixel per max_pool1d row
        (2, 6, 2, 2, 3),  # 8 pixels in one row of 48 channels
        (4, 50, 2, 3, 10),  # the seed's 50 -> 5: 4 pixels per row
        (2, 300, 2, 2, 3),  # wider than a row: one pixel per row
    ],
)
def test_channels_last_max_pool_rows_of_several_pixels(n, c, h, w, k):
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    xcl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    out = OF.cross_channel_pool(xcl, k)
    ref = x.unflatten(1, (c // k, k)).amax(2)
    assert torch.equal(out, ref)
    assert out.is_contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(ref)
    out.backward(g)
    xr = x.clone().requires_grad_()
    xr.unflatten(1, (c // k, k)).amax(2).backward(g)
    torch.testing.assert_close(xcl.grad, xr.grad)


def _amax_reference(x, k, grouping, dim):
    """reshape + amax on a copy with the channel axis moved last (autograd's own gradient)."""
    xm = x.movedim(dim, -1)
    n = xm.shape[-1] // k
    if grouping == "contiguous":
        out = xm.unflatten(-1, (n, k)).amax(-1)
    else:
        out = xm.unflatten(-1, (k, n)).amax(-2)
    return out.movedim(-1, dim)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_max_pool_gradient_equals_amax_any_rank_and_layout(data):
    rank = data.draw(st.integers(1, 5), label="rank")
    dim = data.draw(st.integers(-rank, rank - 1), label="dim")
    k = data.draw(st.integers(1, 4), label="k")
    grouping = data.draw(st.sampled_from(["contiguous", "interleaved"]), label="grouping")
    shape = [data.draw(st.integers(1, 3)) for _ in range(rank)]
    shape[dim] = k * data.draw(st.integers(1, 3), label="groups")
    # Few distinct values: ties within groups are common, so the split of the gradient matters.
    x = torch.randint(0, 3, shape).double()
    if rank == 4 and dim % 4 == 1 and data.draw(st.booleans(), label="channels_last"):
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    xr = x.detach().clone().requires_grad_()
    out = OF.cross_channel_pool(x, k, grouping=grouping, dim=dim)
    ref = _amax_reference(xr, k, grouping, dim)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, xr.grad)


@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_nan_gradient_like_amax(channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 8, 3, 3)
    x[0, 5, 1, 1] = float("nan")
    x = x.contiguous(memory_format=fmt).requires_grad_()
    xr = x.detach().clone().requires_grad_()
    out = OF.cross_channel_pool(x, 4)
    ref = xr.unflatten(1, (2, 4)).amax(2)
    torch.testing.assert_close(out, ref, equal_nan=True)
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, xr.grad, equal_nan=True)
    assert x.grad[0, 4:, 1, 1].isnan().all()  # amax's gradient: the NaN group is NaN


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_max_pool_low_precision_gradient_like_amax(channels_last, dtype):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 12, 3, 4).to(dtype).contiguous(memory_format=fmt).requires_grad_()
    xr = x.detach().clone().requires_grad_()
    out = OF.cross_channel_pool(x, 3)
    ref = xr.unflatten(1, (4, 3)).amax(2)
    assert torch.equal(out, ref)
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    assert x.grad.dtype == dtype
    torch.testing.assert_close(x.grad, xr.grad)


# ------------------------------------------------------------------------- pool_output_size


@pytest.mark.parametrize(
    ("channels", "k", "stride", "mode"),
    [(50, 10, None, "max"), (12, 3, 3, "avg"), (7, 3, 2, "max"), (9, 3, 1, "sum"), (8, 4, None, "wta")],
)
def test_pool_output_size_counts_the_groups_a_loop_finds(channels, k, stride, mode):
    s = k if stride is None else stride
    groups = sum(1 for start in range(0, channels, s) if start + k <= channels)
    expected = channels if mode == "wta" else groups
    assert OF.pool_output_size(channels, k, stride, mode) == expected
    x = torch.randn(2, channels, 3)
    assert OF.cross_channel_pool(x, k, mode=mode, stride=stride).shape[1] == expected


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((7, 2), "pool_output_size: the channel count must be divisible by pool_size=2, got 7"),
        ((8, 3, 2), "overlapping pools of pool_size=3, stride=2 .* got 8 channels"),
        ((0, 2), "channels must be an integer >= 1, got 0"),
        ((8, 2, 3), "stride must be <= pool_size=2"),
        ((8, 2, None, "median"), "mode must be one of"),
    ],
)
def test_pool_output_size_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        OF.pool_output_size(*args)
