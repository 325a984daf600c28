"""ChannelProjection against independent references: nn.Linear per pixel and nn.Conv2d(k=1)."""

import copy
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from onebyone import ChannelProjection
from onebyone.layers import ChannelProjection as LayersChannelProjection


def _linear_reference(x, weight, bias, stride):
    """nn.Linear applied at every pixel: permute to N,H,W,C, linear, permute back."""
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(weight.flatten(1))
        if bias is not None:
            lin.bias.copy_(bias)
    xs = x[:, :, ::stride, ::stride]
    return lin(xs.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _conv_reference(proj):
    conv = nn.Conv2d(
        proj.in_channels, proj.out_channels, 1, stride=proj.stride, bias=proj.bias is not None
    )
    with torch.no_grad():
        conv.weight.copy_(proj.weight)
        if proj.bias is not None:
            conv.bias.copy_(proj.bias)
    return conv


def test_exported_from_package_root():
    assert ChannelProjection is LayersChannelProjection


@pytest.mark.parametrize(
    ("in_channels", "out_channels", "expected"),
    [(512, 512, 262_656), (512, 64, 32_832), (512, 1024, 525_312)],
)
def test_parameter_counts_from_the_issue(in_channels, out_channels, expected):
    proj = ChannelProjection(in_channels, out_channels, device="meta")
    assert sum(p.numel() for p in proj.parameters()) == expected
    no_bias = ChannelProjection(in_channels, out_channels, bias=False, device="meta")
    assert sum(p.numel() for p in no_bias.parameters()) == in_channels * out_channels


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3),
    cin=st.integers(1, 9),
    cout=st.integers(1, 9),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    stride=st.integers(1, 3),
    bias=st.booleans(),
    channels_last=st.booleans(),
)
def test_equals_linear_and_conv_with_gradients(n, cin, cout, h, w, stride, bias, channels_last):
    proj = ChannelProjection(cin, cout, stride=stride, bias=bias, act_layer=None)
    conv = _conv_reference(proj)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(n, cin, h, w).contiguous(memory_format=fmt).requires_grad_()
    # The reference runs on NCHW: torch 2.13's CPU nn.Conv2d(kernel_size=1, stride > 1) on
    # channels_last input with fewer than 8 input channels returns wrong weight gradients (and
    # can corrupt the heap); see test_strided_channels_last_weight_grad_vs_einsum.
    x_ref = x.detach().contiguous().requires_grad_()

    out = proj(x)
    ref_conv = conv(x_ref)
    ref_lin = _linear_reference(
        x.detach(), proj.weight.detach(), None if proj.bias is None else proj.bias.detach(), stride
    )
    torch.testing.assert_close(out, ref_conv, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, ref_lin, rtol=1e-5, atol=1e-5)
    assert out.shape == (n, cout, -(-h // stride), -(-w // stride))
    if cin > 1 and cout > 1 and out.shape[2] * out.shape[3] > 1:
        # Unambiguous layouts only: with C == 1 or H*W == 1 a tensor is both formats at once.
        assert out.is_contiguous(memory_format=fmt)

    g = torch.randn_like(out)
    out.backward(g)
    ref_conv.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(proj.weight.grad, conv.weight.grad, rtol=1e-4, atol=1e-5)
    if bias:
        torch.testing.assert_close(proj.bias.grad, conv.bias.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("in_channels", [2, 3, 5, 7, 8])
def test_strided_channels_last_weight_grad_vs_einsum(in_channels):
    # The case where nn.Conv2d(kernel_size=1, stride=2) on channels_last gets the weight
    # gradient wrong on the CPU (torch 2.13, in_channels < 8): ours subsamples first and must
    # be right every time. Reference: the gradient written out as one einsum, in float64.
    for _ in range(10):
        proj = ChannelProjection(in_channels, 8, stride=2, bias=False, act_layer=None)
        x = torch.randn(4, in_channels, 14, 14).contiguous(memory_format=torch.channels_last)
        out = proj(x)
        g = torch.randn_like(out)
        out.backward(g)
        expected = torch.einsum("nohw,nchw->oc", g.double(), x[:, :, ::2, ::2].double())
        torch.testing.assert_close(proj.weight.grad[:, :, 0, 0].double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_memory_format_is_kept(channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 6, 5, 4).contiguous(memory_format=fmt)
    out = ChannelProjection(6, 3)(x)
    assert out.is_contiguous(memory_format=fmt)
    assert out.shape == (2, 3, 5, 4)


def test_non_contiguous_input_is_correct():
    proj = ChannelProjection(5, 3, act_layer=None)
    x = torch.randn(2, 5, 6, 8)[..., ::2].transpose(2, 3)  # neither NCHW nor NHWC
    assert not x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(proj(x), _conv_reference(proj)(x), rtol=1e-5, atol=1e-5)


def test_unbatched_input_like_conv2d():
    proj = ChannelProjection(4, 3, act_layer=None)
    x = torch.randn(4, 5, 5)
    torch.testing.assert_close(proj(x), _conv_reference(proj)(x), rtol=1e-5, atol=1e-5)


def test_default_activation_is_relu_and_norm_layer_is_applied():
    proj = ChannelProjection(6, 4, norm_layer=nn.BatchNorm2d).eval()
    with torch.no_grad():
        proj.norm.running_mean.uniform_(-1, 1)
        proj.norm.running_var.uniform_(0.5, 2)
        proj.norm.weight.uniform_(0.5, 2)
    x = torch.randn(2, 6, 3, 3)
    ref = torch.relu(proj.norm(_conv_reference(proj)(x)))
    torch.testing.assert_close(proj(x), ref, rtol=1e-5, atol=1e-5)
    assert isinstance(proj.act, nn.ReLU)
    assert (proj(x) >= 0).all()


def test_from_conv_and_to_conv_are_exact_and_state_dicts_match():
    conv = nn.Conv2d(8, 5, 1, stride=2)
    proj = ChannelProjection.from_conv(conv)
    x = torch.randn(2, 8, 7, 7)
    torch.testing.assert_close(proj(x), conv(x), rtol=1e-5, atol=1e-5)
    assert set(proj.state_dict()) == set(conv.state_dict()) == {"weight", "bias"}
    back = proj.to_conv()
    assert back.stride == (2, 2) and back.kernel_size == (1, 1)
    torch.testing.assert_close(back(x), conv(x), rtol=0, atol=0)
    # Weights are copied, not shared.
    with torch.no_grad():
        proj.weight.zero_()
    assert conv.weight.abs().sum() > 0
    # A conv can load a projection's state_dict and vice versa.
    fresh = ChannelProjection(8, 5, stride=2, act_layer=None)
    fresh.load_state_dict(conv.state_dict())
    torch.testing.assert_close(fresh(x), conv(x), rtol=1e-5, atol=1e-5)


def test_from_conv_keeps_dtype_and_bias_false():
    conv = nn.Conv2d(4, 2, 1, bias=False, dtype=torch.float64)
    proj = ChannelProjection.from_conv(conv, act_layer=nn.ReLU)
    assert proj.bias is None and proj.weight.dtype == torch.float64
    assert isinstance(proj.act, nn.ReLU)


@pytest.mark.parametrize(
    ("conv", "match"),
    [
        (nn.Conv2d(4, 2, 3), "kernel_size=\\(3, 3\\)"),
        (nn.Conv2d(4, 2, 1, padding=1), "padding=\\(1, 1\\)"),
        (nn.Conv2d(4, 2, 1, groups=2), "groups=2"),
        (nn.Conv2d(4, 2, 1, stride=(1, 2)), "stride=\\(1, 2\\)"),
    ],
)
def test_from_conv_rejects_non_1x1(conv, match):
    with pytest.raises(ValueError, match=match):
        ChannelProjection.from_conv(conv)


def test_from_conv_rejects_other_modules():
    with pytest.raises(TypeError, match=r"nn\.Conv2d"):
        ChannelProjection.from_conv(nn.Linear(4, 2))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_channels": 0, "out_channels": 4}, "in_channels must be an integer >= 1, got 0"),
        ({"in_channels": -3, "out_channels": 4}, "in_channels must be an integer >= 1, got -3"),
        ({"in_channels": 2.5, "out_channels": 4}, "in_channels must be an integer >= 1, got 2.5"),
        ({"in_channels": 4, "out_channels": "8"}, "out_channels must be an integer >= 1, got '8'"),
        (
            {"in_channels": 4, "out_channels": 8, "stride": 0},
            "stride must be an integer >= 1, got 0",
        ),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ChannelProjection(**kwargs)


def test_bad_bias_type():
    with pytest.raises(TypeError, match="bias must be a bool"):
        ChannelProjection(4, 4, bias="yes")


def test_wrong_channel_count_names_layer_expected_and_actual():
    proj = ChannelProjection(8, 4)
    with pytest.raises(
        ValueError, match=r"ChannelProjection\(8, 4\).*expected 8 input channels.*got 6"
    ):
        proj(torch.randn(1, 6, 3, 3))


@pytest.mark.parametrize("shape", [(8,), (2, 8), (1, 8, 2, 2, 2)])
def test_wrong_rank(shape):
    with pytest.raises(ValueError, match=f"got {len(shape)}-D input"):
        ChannelProjection(8, 4)(torch.randn(shape))


def test_nan_and_inf_stay_at_their_pixel():
    proj = ChannelProjection(4, 3, act_layer=None)
    x = torch.randn(1, 4, 3, 3)
    x[0, 2, 1, 1] = float("nan")
    x[0, 0, 0, 2] = float("inf")
    out = proj(x)
    ref = _conv_reference(proj)(x)
    assert out[0, :, 1, 1].isnan().all()
    torch.testing.assert_close(out, ref, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_low_precision_matches_conv(dtype, channels_last):
    proj = ChannelProjection(16, 8, act_layer=None, dtype=dtype)
    conv = _conv_reference(proj).to(dtype)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 16, 5, 5, dtype=dtype).contiguous(memory_format=fmt)
    out = proj(x)
    assert out.dtype == dtype
    ref32 = nn.functional.conv2d(x.float(), proj.weight.float(), proj.bias.float())
    torch.testing.assert_close(out.float(), ref32, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(out, conv(x), rtol=2e-2, atol=2e-2)


def test_pickle_deepcopy_and_repr():
    proj = ChannelProjection(8, 4, stride=2, bias=False, norm_layer=nn.BatchNorm2d).eval()
    text = repr(proj)
    assert "8, 4, stride=2, bias=False" in text
    assert "BatchNorm2d(4" in text and "ReLU()" in text
    x = torch.randn(1, 8, 6, 6)
    for clone in (pickle.loads(pickle.dumps(proj)), copy.deepcopy(proj)):
        assert repr(clone) == text
        torch.testing.assert_close(clone(x), proj(x))
        assert clone.weight.data_ptr() != proj.weight.data_ptr()


@pytest.mark.parametrize("channels_last", [False, True])
def test_torch_compile_fullgraph(channels_last):
    torch._dynamo.reset()
    proj = ChannelProjection(6, 4, stride=2)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 6, 8, 8).contiguous(memory_format=fmt)
    compiled = torch.compile(proj, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), proj(x))


# ------------------------------------------------ argument checks (issue 14, item 20)


@pytest.mark.parametrize(
    ("args", "kind", "match"),
    [
        (([1, 2], torch.randn(2, 2)), TypeError, "x must be a torch.Tensor, got list"),
        ((torch.randn(1, 2, 2, 2), [[1.0, 2.0]]), TypeError, "weight must be a torch.Tensor"),
        (
            (torch.randn(1, 2, 2, 2), torch.randn(1, 2), [1.0]),
            TypeError,
            "bias must be a torch.Tensor or None, got list",
        ),
        (
            (torch.randn(1, 2, 2, 2), torch.randn(1, 2), None, 2**63),
            ValueError,
            r"stride must be an integer <= 2\*\*63 - 1 \(a 64-bit size\), got 9223372036854775808",
        ),
    ],
)
def test_channel_project_argument_types_and_sizes(args, kind, match):
    from onebyone.functional import channel_project

    with pytest.raises(kind, match=match):
        channel_project(*args)


def test_layer_sizes_of_2_to_the_63_name_the_argument():
    # stride=2**63 used to reach the slicing and say "Negative strides".
    with pytest.raises(ValueError, match=r"stride must be an integer <= 2\*\*63 - 1"):
        ChannelProjection(3, 2, stride=2**63)
    with pytest.raises(ValueError, match=r"in_channels must be an integer <= 2\*\*63 - 1"):
        ChannelProjection(2**63, 2)


def test_non_tensor_input_to_the_layer_is_a_type_error():
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor, got list"):
        ChannelProjection(3, 2)([1, 2, 3])


@pytest.mark.parametrize("name", ["norm_layer", "act_layer"])
def test_layer_factories_must_be_callable(name):
    with pytest.raises(TypeError, match=f"{name} must be a callable .* got float 0.5"):
        ChannelProjection(3, 2, **{name: 0.5})
