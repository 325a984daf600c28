"""Maxout / MaxoutConv2d against Linear/Conv2d + max, TensorFlow Addons' grouping; ChannelSum/Mean."""

import copy
import pickle
import re

import numpy as np
import pytest
import torch
from torch import nn

from onebyone import ChannelMean, ChannelSum, CrossChannelPool, Maxout, MaxoutConv2d


def tfa_maxout_numpy(x: np.ndarray, num_units: int, axis: int) -> np.ndarray:
    """TensorFlow Addons ``Maxout.call`` transcribed to numpy: insert k = C // num_units
    *before* num_units at ``axis`` and reduce_max over ``axis``."""
    shape = list(x.shape)
    axis = axis % len(shape)
    k = shape[axis] // num_units
    expand = shape[:]
    expand[axis] = num_units
    expand.insert(axis, k)
    return x.reshape(expand).max(axis=axis)


@pytest.mark.parametrize("grouping", ["contiguous", "interleaved"])
def test_maxout_equals_linear_then_max_over_pieces(grouping):
    m = Maxout(7, 4, pieces=3, grouping=grouping)
    x = torch.randn(5, 7, requires_grad=True)
    out = m(x)
    # Independent: the affine map written out, then max over the pieces' axis.
    z = x @ m.linear.weight.T + m.linear.bias  # 5 x 12
    # contiguous: unit j uses rows 3j, 3j+1, 3j+2; interleaved: rows j, j+4, j+8.
    ref = z.view(5, 4, 3).amax(-1) if grouping == "contiguous" else z.view(5, 3, 4).amax(-2)
    torch.testing.assert_close(out, ref)
    # And Linear followed by CrossChannelPool(max).
    torch.testing.assert_close(out, CrossChannelPool(3, grouping=grouping, dim=-1)(m.linear(x)))
    out.sum().backward()
    assert m.linear.weight.grad is not None and x.grad is not None


def test_maxout_any_leading_dims_and_param_count():
    m = Maxout(6, 2, pieces=4, bias=False)
    assert m(torch.randn(2, 3, 6)).shape == (2, 3, 2)
    assert sum(p.numel() for p in m.parameters()) == 6 * 2 * 4


@pytest.mark.parametrize("grouping", ["contiguous", "interleaved"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_maxout_conv_equals_conv_then_pool(grouping, channels_last):
    m = MaxoutConv2d(3, 4, 3, pieces=2, padding=1, stride=2, grouping=grouping)
    conv = nn.Conv2d(3, 8, 3, padding=1, stride=2)
    conv.load_state_dict(m.conv.state_dict())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 3, 9, 9).contiguous(memory_format=fmt)
    out = m(x)
    z = conv(x)
    loop = torch.stack(
        [
            torch.maximum(z[:, 2 * j], z[:, 2 * j + 1])
            if grouping == "contiguous"
            else torch.maximum(z[:, j], z[:, j + 4])
            for j in range(4)
        ],
        dim=1,
    )
    torch.testing.assert_close(out, loop)
    torch.testing.assert_close(out, CrossChannelPool(2, grouping=grouping)(z))
    assert out.shape == (2, 4, 5, 5)


def test_maxout_conv_unbatched():
    m = MaxoutConv2d(3, 4, 1, pieces=3)
    x = torch.randn(3, 5, 5)
    torch.testing.assert_close(m(x), m(x.unsqueeze(0)).squeeze(0))


@pytest.mark.parametrize(
    ("shape", "num_units", "axis"),
    [((5, 4, 2, 18), 3, -1), ((2, 20, 3, 6), 4, 1), ((2, 20, 3, 6), 4, -3)],
)
def test_interleaved_grouping_equals_tensorflow_addons(shape, num_units, axis):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    k = shape[axis] // num_units
    ours = CrossChannelPool(k, grouping="interleaved", dim=axis)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, tfa_maxout_numpy(x, num_units, axis))


def test_interleaved_small_example_by_hand():
    # 6 channels, 3 units (TFA num_units=3): unit j takes channels j and j + 3.
    x = torch.tensor([[5.0, 1.0, 0.0, 2.0, 4.0, 9.0]])
    assert torch.equal(
        CrossChannelPool(2, grouping="interleaved", dim=-1)(x), torch.tensor([[5.0, 4.0, 9.0]])
    )
    assert torch.equal(CrossChannelPool(2, dim=-1)(x), torch.tensor([[5.0, 2.0, 9.0]]))


def test_maxout_interleaved_equals_tfa_after_linear():
    m = Maxout(5, 3, pieces=4, grouping="interleaved")
    x = torch.randn(2, 5)
    z = m.linear(x).detach().numpy()
    np.testing.assert_allclose(m(x).detach().numpy(), tfa_maxout_numpy(z, 3, -1), rtol=1e-6)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: Maxout(4, 2, pieces=0), "pieces must be an integer >= 1, got 0"),
        (lambda: Maxout(0, 2, pieces=2), "in_features must be an integer >= 1, got 0"),
        (lambda: Maxout(4, 2.0, pieces=2), "out_features must be an integer >= 1, got 2.0"),
        (lambda: Maxout(4, 2, pieces=2, grouping="x"), "grouping must be one of .*'x'"),
        (lambda: MaxoutConv2d(3, 4, 3, pieces=-1), "pieces must be an integer >= 1, got -1"),
        (lambda: MaxoutConv2d(3, 0, 3, pieces=2), "out_channels must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


@pytest.mark.parametrize("shape", [(1, 5, 4, 4), (5, 4, 4), (4, 4), (1, 1, 3, 4, 4)])
def test_maxout_conv_wrong_input_names_layer_expected_and_actual(shape):
    with pytest.raises(
        ValueError,
        match=rf"MaxoutConv2d\(3, 4\): expected .*\(N, 3, H, W\).*got shape {re.escape(str(shape))}",
    ):
        MaxoutConv2d(3, 4, 1, pieces=2)(torch.randn(shape))


@pytest.mark.parametrize("shape", [(3, 5), (5,), (2, 4, 3), ()])
def test_maxout_wrong_features_names_layer_expected_and_actual(shape):
    with pytest.raises(
        ValueError,
        match=rf"Maxout\(4, 2\): expected 4 input features .*got input of shape {re.escape(str(shape))}",
    ):
        Maxout(4, 2, pieces=2)(torch.randn(shape))


def test_repr_pickle_deepcopy():
    m = Maxout(7, 4, pieces=3, grouping="interleaved")
    mc = MaxoutConv2d(3, 4, 3, pieces=2, padding=1, bias=False)
    assert "7, 4, pieces=3, bias=True, grouping='interleaved'" in repr(m)
    assert "3, 4, kernel_size=(3, 3), pieces=2, padding=(1, 1), bias=False" in repr(mc)
    for mod, x in ((m, torch.randn(2, 7)), (mc, torch.randn(1, 3, 6, 6))):
        for clone in (pickle.loads(pickle.dumps(mod)), copy.deepcopy(mod)):
            assert repr(clone) == repr(mod)
            torch.testing.assert_close(clone(x), mod(x))


def test_maxout_compiles_fullgraph():
    torch._dynamo.reset()
    m = MaxoutConv2d(3, 4, 3, pieces=2, padding=1)
    x = torch.randn(1, 3, 6, 6)
    torch.testing.assert_close(torch.compile(m, fullgraph=True, backend="eager")(x), m(x))


# ---------------------------------------------------------------- ChannelSum / ChannelMean


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [1, -1, 0])
def test_channel_sum_and_mean_equal_a_loop(keepdim, dim):
    x = torch.randn(3, 5, 4, 2)
    slices = list(x.movedim(dim, 0))
    ref_sum = sum(slices)
    ref_mean = ref_sum / len(slices)
    if keepdim:
        ref_sum, ref_mean = ref_sum.unsqueeze(dim), ref_mean.unsqueeze(dim)
    torch.testing.assert_close(ChannelSum(dim=dim, keepdim=keepdim)(x), ref_sum)
    torch.testing.assert_close(ChannelMean(dim=dim, keepdim=keepdim)(x), ref_mean)


def test_channel_reduce_defaults_and_repr():
    assert ChannelSum()(torch.ones(2, 6, 3, 3)).shape == (2, 3, 3)
    assert repr(ChannelMean(keepdim=True)) == "ChannelMean(dim=1, keepdim=True)"
    assert repr(copy.deepcopy(ChannelSum(dim=-1))) == "ChannelSum(dim=-1, keepdim=False)"
    assert repr(pickle.loads(pickle.dumps(ChannelSum(dim=2)))) == "ChannelSum(dim=2, keepdim=False)"


def test_channel_reduce_bad_input():
    with pytest.raises(ValueError, match="dim must be an integer, got '1'"):
        ChannelSum(dim="1")
    with pytest.raises(TypeError, match="keepdim must be a bool"):
        ChannelMean(keepdim=1)
    with pytest.raises(
        ValueError, match=r"ChannelSum\(dim=4.*out of range for a 4-D input.*-4 <= dim < 4"
    ):
        ChannelSum(dim=4)(torch.randn(1, 2, 3, 4))


# ------------------------------------------------ argument checks (issue 14, item 20)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kernel_size": 0}, "kernel_size must be an integer >= 1, got 0"),
        ({"kernel_size": -1}, "kernel_size must be an integer >= 1, got -1"),
        ({"kernel_size": (2, 0)}, r"kernel_size\[1\] must be an integer >= 1, got 0"),
        ({"kernel_size": 1, "stride": 0}, "stride must be an integer >= 1, got 0"),
        ({"kernel_size": 1, "padding": -1}, "padding must be an integer >= 0, got -1"),
        ({"kernel_size": 1, "padding": "full"}, "padding must be one of 'valid', 'same'"),
        ({"kernel_size": 3, "dilation": 0}, "dilation must be an integer >= 1, got 0"),
        ({"kernel_size": 1, "groups": 2}, "groups=2 must divide in_channels=3"),
        ({"kernel_size": 1, "stride": 2**63}, r"stride must be an integer <= 2\*\*63 - 1"),
        ({"kernel_size": 2**64}, r"kernel_size must be an integer <= 2\*\*63 - 1"),
    ],
)
def test_maxout_conv_geometry_checked_before_building(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaxoutConv2d(3, 2, pieces=2, **kwargs)


def test_maxout_conv_valid_geometry_equals_conv2d_then_max():
    m = MaxoutConv2d(4, 3, (3, 1), pieces=2, stride=(2, 1), padding=(1, 0), bias=False)
    x = torch.randn(2, 4, 6, 5)
    ref = torch.nn.functional.conv2d(x, m.conv.weight, None, stride=(2, 1), padding=(1, 0))
    torch.testing.assert_close(m(x), ref.unflatten(1, (3, 2)).amax(2))


@pytest.mark.parametrize("bias", ["no", None, 0, 1])
def test_bias_must_be_a_bool(bias):
    # 'no' used to enable a bias and None to disable it.
    with pytest.raises(TypeError, match=f"bias must be a bool, got {type(bias).__name__}"):
        Maxout(3, 2, pieces=2, bias=bias)
    with pytest.raises(TypeError, match=f"bias must be a bool, got {type(bias).__name__}"):
        MaxoutConv2d(3, 2, 1, pieces=2, bias=bias)


@pytest.mark.parametrize("size", [2**63, 2**70])
def test_huge_sizes_name_the_argument(size):
    with pytest.raises(ValueError, match=r"pieces must be an integer <= 2\*\*63 - 1"):
        Maxout(3, 2, pieces=size)
    with pytest.raises(ValueError, match=r"in_channels must be an integer <= 2\*\*63 - 1"):
        MaxoutConv2d(size, 2, 1, pieces=2)
