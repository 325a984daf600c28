"""torch.func transforms, forward-mode AD and empty batches through every path of the channel layers.

References are torch's own kernels under the same transform: ``F.conv2d`` for
ChannelProjection and reshape + ``amax`` for CrossChannelPool (issue 14, items 13 and 14).
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import forward_ad
from torch.func import functional_call, grad, jacfwd, jacrev, jvp, vmap

from onebyone import ChannelProjection, CrossChannelPool
from onebyone import _kernels as K

# torch.func's first use scripts helpers with torch.jit.script, which torch 2.13 deprecates.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)

LAYOUTS = ["nchw", "channels_last"]


def _layout(x, layout):
    return x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x


def _projection(bias=True):
    proj = ChannelProjection(3, 4, bias=bias, act_layer=None).double()
    conv = nn.Conv2d(3, 4, 1, bias=bias).double()
    conv.load_state_dict(proj.state_dict())
    return proj, conv


@pytest.fixture(params=["small", "gemm"])
def projection_path(request, monkeypatch):
    """``gemm`` lowers the batch-1 threshold so batch 1 takes torch.mm, not F.conv2d."""
    if request.param == "gemm":
        monkeypatch.setattr(K, "BATCH1_GEMM_MACS", 0)
    return request.param


# ---------------------------------------------------------------- ChannelProjection: transforms


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_projection_func_transforms_equal_conv2d(projection_path, n, layout):
    proj, conv = _projection()
    x = _layout(torch.randn(n, 3, 2, 3, dtype=torch.float64), layout)
    v = torch.randn_like(x)
    torch.testing.assert_close(jacrev(proj)(x), jacrev(conv)(x))
    torch.testing.assert_close(jacfwd(proj)(x), jacrev(conv)(x))
    loss = lambda m: (lambda t: m(t).square().sum())  # noqa: E731
    torch.testing.assert_close(grad(loss(proj))(x), grad(loss(conv))(x))
    got, ref = jvp(proj, (x,), (v,)), jvp(conv, (x,), (v,))
    torch.testing.assert_close(got, ref)
    batch = torch.randn(5, *x.shape, dtype=torch.float64)
    torch.testing.assert_close(vmap(proj)(batch), vmap(conv)(batch))


@pytest.mark.parametrize("n", [1, 2])
def test_projection_grad_over_parameters_equals_conv2d(projection_path, n):
    proj, conv = _projection()
    x = torch.randn(n, 3, 2, 3, dtype=torch.float64)
    params = {k: v.detach() for k, v in proj.named_parameters()}

    def loss(module):
        return lambda p: functional_call(module, p, (x,)).square().sum()

    got, ref = grad(loss(proj))(params), grad(loss(conv))(params)
    for key in params:
        torch.testing.assert_close(got[key], ref[key])
    # Per-sample gradients: vmap over the batch of grad over the parameters.
    per_sample = vmap(grad(lambda p, t: functional_call(proj, p, (t[None],)).sum()), (None, 0))
    ref_per_sample = vmap(grad(lambda p, t: functional_call(conv, p, (t[None],)).sum()), (None, 0))
    got, ref = per_sample(params, x), ref_per_sample(params, x)
    for key in params:
        torch.testing.assert_close(got[key], ref[key])


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("requires_grad", [False, True])
def test_projection_forward_mode_ad_equals_conv2d(projection_path, n, layout, requires_grad):
    proj, conv = _projection()
    x = _layout(torch.randn(n, 3, 2, 3, dtype=torch.float64), layout)
    x.requires_grad_(requires_grad)
    v, tw = torch.randn_like(x), torch.randn_like(proj.weight)
    with forward_ad.dual_level():
        got = forward_ad.unpack_dual(proj(forward_ad.make_dual(x, v))).tangent
        ref = forward_ad.unpack_dual(conv(forward_ad.make_dual(x, v))).tangent
        torch.testing.assert_close(got, ref)
        # A tangent on the weight too (dual parameters, as forward-mode training does).
        w = forward_ad.make_dual(proj.weight.detach(), tw)
        got = forward_ad.unpack_dual(
            functional_call(proj, {"weight": w, "bias": proj.bias.detach()}, (x,))
        ).tangent
        ref = forward_ad.unpack_dual(F.conv2d(x, w, conv.bias.detach())).tangent
        torch.testing.assert_close(got, ref)


def test_projection_double_backward_at_batch_2():
    proj, _ = _projection()
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(proj, (x,))


# --------------------------------------------------------------- ChannelProjection: empty input


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_projection_batch_0_like_conv2d(layout, stride, bias):
    proj = ChannelProjection(3, 2, stride=stride, bias=bias, act_layer=None)
    conv = proj.to_conv()
    x = _layout(torch.randn(0, 3, 5, 4), layout).requires_grad_()
    out, ref = proj(x), conv(x)
    assert out.shape == ref.shape == (0, 2, (5 - 1) // stride + 1, (4 - 1) // stride + 1)
    out.sum().backward()
    ref.sum().backward()
    assert x.grad.shape == x.shape
    torch.testing.assert_close(proj.weight.grad, conv.weight.grad)
    if bias:
        torch.testing.assert_close(proj.bias.grad, conv.bias.grad)


@pytest.mark.parametrize("shape", [(2, 3, 0, 2), (1, 3, 0, 0), (0, 3, 2, 0), (3, 0, 2)])
def test_projection_no_pixels_is_a_value_error_naming_the_layer(shape):
    with pytest.raises(RuntimeError):  # nn.Conv2d rejects these too
        nn.Conv2d(3, 2, 1)(torch.randn(*shape))
    with pytest.raises(ValueError, match=rf"ChannelProjection\(3, 2\): .*{tuple(shape)}"):
        ChannelProjection(3, 2)(torch.randn(*shape))


# ------------------------------------------------------------------ CrossChannelPool: transforms


def _amax_pool(x, k=2):
    return x.unflatten(1, (x.shape[1] // k, k)).amax(2)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("requires_grad", [False, True])
def test_max_pool_func_transforms_equal_amax(layout, requires_grad):
    pool = CrossChannelPool(2)
    # Values in {0, 1, 2}: ties inside groups, where the gradient split matters.
    x = _layout(torch.randint(0, 3, (2, 4, 3, 3)).double(), layout).requires_grad_(requires_grad)
    v = torch.randn_like(x)
    torch.testing.assert_close(jacrev(pool)(x), jacrev(_amax_pool)(x))
    torch.testing.assert_close(jacfwd(pool)(x), jacfwd(_amax_pool)(x))
    loss = lambda f: (lambda t: f(t).square().sum())  # noqa: E731
    torch.testing.assert_close(grad(loss(pool))(x), grad(loss(_amax_pool))(x))
    torch.testing.assert_close(jvp(pool, (x,), (v,)), jvp(_amax_pool, (x,), (v,)))
    batch = _layout(torch.randn(5, 8, 4, 3, 3, dtype=torch.float64).flatten(0, 1), layout)
    batch = batch.unflatten(0, (5, 8)).requires_grad_(requires_grad)
    torch.testing.assert_close(vmap(pool)(batch), vmap(_amax_pool)(batch))
    with forward_ad.dual_level():
        got = forward_ad.unpack_dual(pool(forward_ad.make_dual(x, v))).tangent
        ref = forward_ad.unpack_dual(_amax_pool(forward_ad.make_dual(x, v))).tangent
        torch.testing.assert_close(got, ref)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_max_pool_double_backward_and_hessian(layout):
    pool = CrossChannelPool(2)
    x = _layout(torch.randn(2, 4, 2, 2, dtype=torch.float64), layout).requires_grad_()
    assert torch.autograd.gradgradcheck(pool, (x,))
    f = lambda f_: (lambda t: f_(t).exp().sum())  # noqa: E731
    torch.testing.assert_close(torch.func.hessian(f(pool))(x), torch.func.hessian(f(_amax_pool))(x))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_max_pool_batch_0(layout):
    x = _layout(torch.randn(0, 4, 2, 2), layout).requires_grad_()
    out = CrossChannelPool(2)(x)
    assert out.shape == (0, 2, 2, 2)
    out.sum().backward()
    assert x.grad.shape == x.shape


def test_the_transforms_above_run_the_custom_functions(monkeypatch):
    # The tests above would pass through plain ops too: check that grad, jacrev and forward AD
    # with requires_grad really go through the hand-written autograd.Functions.
    calls = []

    def counted(real, name):
        def forward(*args):  # positional only: torch.func inspects the signature
            calls.append(name)
            return real(*args)

        return staticmethod(forward)

    for cls in (K._NCHWProject, K._GroupMax, K._GroupMaxLast):
        monkeypatch.setattr(cls, "forward", counted(cls.forward, cls.__name__))
    proj, _ = _projection()
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    jacrev(proj)(x)
    grad(lambda t: proj(t).sum())(x)
    pool = CrossChannelPool(2)
    y = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    jacrev(pool)(y)
    ycl = _layout(y, "channels_last").requires_grad_()
    with forward_ad.dual_level():
        pool(forward_ad.make_dual(ycl, torch.randn_like(ycl)))
    assert calls == ["_NCHWProject", "_NCHWProject", "_GroupMax", "_GroupMaxLast"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradcheck_with_forward_ad_every_tangent(layout):
    # Finite differences check jvp and backward of every input, bias-only tangents included.
    from onebyone.functional import channel_project, cross_channel_pool

    x = _layout(torch.randn(3, 4, 2, 2, dtype=torch.float64), layout).requires_grad_()
    w = torch.randn(5, 4, 1, 1, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(channel_project, (x, w, b), check_forward_ad=True)
    y = _layout(torch.randn(2, 6, 3, 3, dtype=torch.float64), layout).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: cross_channel_pool(t, 3), (y,), check_forward_ad=True)
