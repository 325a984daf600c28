"""Blocks against independent references: hand-written functional forwards, hand-counted
parameters, and the shape rules the papers state."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from onebyone.blocks import (
    BasicBlock,
    BasicConv2d,
    Bottleneck,
    ConvNormAct,
    Inception,
    InceptionAux,
    InvertedResidual,
    MLPConv,
    NaiveInception,
    ZeroPadShortcut,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomize_bn(module: nn.Module) -> None:
    """Give every BatchNorm non-trivial statistics, so eval-mode checks exercise them."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)


def basic_conv_ref(block: BasicConv2d, x: torch.Tensor, *, stride=1, padding=0) -> torch.Tensor:
    y = F.conv2d(x, block.conv.weight, None, stride, padding)
    y = F.batch_norm(y, block.bn.running_mean, block.bn.running_var, block.bn.weight,
                     block.bn.bias, False, 0.0, 1e-3)  # fmt: skip
    return F.relu(y)


# ------------------------------------------------------------------ MLPConv


def test_mlpconv_equals_conv_then_per_pixel_mlp():
    block = MLPConv(3, (8, 6, 4), kernel_size=3, padding=1)
    x = torch.randn(2, 3, 7, 5)
    convs = [m for m in block if isinstance(m, nn.Conv2d)]
    h = F.relu(F.conv2d(x, convs[0].weight, convs[0].bias, padding=1))
    # The 1x1 layers are an MLP applied at every pixel: a Linear on channels-last features.
    h = h.permute(0, 2, 3, 1)
    for c in convs[1:]:
        h = F.relu(F.linear(h, c.weight.flatten(1), c.bias))
    expected = h.permute(0, 3, 1, 2)
    torch.testing.assert_close(block(x), expected)
    assert block.out_channels == 4


def test_mlpconv_layout_and_count():
    block = MLPConv(96, (192, 192, 192), kernel_size=5, padding=2)
    kinds = [type(m) for m in block]
    assert kinds == [nn.Conv2d, nn.ReLU] * 3
    assert block[0].kernel_size == (5, 5)
    assert block[2].kernel_size == block[4].kernel_size == (1, 1)
    assert n_params(block) == (96 * 25 * 192 + 192) + 2 * (192 * 192 + 192)
    assert "channels=(192, 192, 192)" in repr(block)
    assert "kernel_size=5" in repr(block)


def test_mlpconv_norm_layer_and_stride():
    block = MLPConv(3, (4, 4), kernel_size=3, stride=2, padding=1, norm_layer=nn.BatchNorm2d)
    assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 2
    assert block(torch.randn(2, 3, 8, 8)).shape == (2, 4, 4, 4)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"channels": ()}, "channels"),
        ({"channels": (8, 0)}, "channels[1]"),
        ({"channels": "abc"}, "channels"),
        ({"channels": (8,), "kernel_size": 0}, "kernel_size"),
        ({"channels": (8,), "padding": -1}, "padding"),
    ],
)
def test_mlpconv_bad_arguments(kwargs, needle):
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        MLPConv(3, **{"kernel_size": 3, **kwargs})


# ------------------------------------------------------------------ Inception modules


def test_naive_inception_depth_grows_by_in_channels():
    block = NaiveInception(192, ch1x1=64, ch3x3=128, ch5x5=32).eval()
    randomize_bn(block)
    x = torch.randn(2, 192, 6, 6)
    y = block(x)
    assert y.shape == (2, 192 + 64 + 128 + 32, 6, 6) and block.out_channels == 416
    # The last in_channels maps are the 3x3/1 max pool of the input, untouched.
    torch.testing.assert_close(y[:, 224:], F.max_pool2d(x, 3, 1, 1))
    torch.testing.assert_close(y[:, 64:192], basic_conv_ref(block.branch2, x, padding=1))
    torch.testing.assert_close(y[:, 192:224], basic_conv_ref(block.branch3, x, padding=2))
    expected = sum(192 * c * k * k + 2 * c for c, k in ((64, 1), (128, 3), (32, 5)))
    assert n_params(block) == expected


def test_naive_inception_stacking_compounds_depth():
    depth = 192
    for _ in range(3):
        depth = NaiveInception(depth, ch1x1=64, ch3x3=128, ch5x5=32).out_channels
    assert depth == 192 + 3 * 224


def inception_ref(block: Inception, x: torch.Tensor) -> torch.Tensor:
    k = block.ch5x5_kernel_size
    b1 = basic_conv_ref(block.branch1, x)
    b2 = basic_conv_ref(block.branch2[1], basic_conv_ref(block.branch2[0], x), padding=1)
    b3 = basic_conv_ref(block.branch3[1], basic_conv_ref(block.branch3[0], x), padding=k // 2)
    b4 = basic_conv_ref(block.branch4[1], F.max_pool2d(x, 3, 1, 1))
    return torch.cat([b1, b2, b3, b4], 1)


@pytest.mark.parametrize("k5", [5, 3])
def test_inception_matches_functional_reference(k5):
    block = Inception(
        16, ch1x1=4, ch3x3red=3, ch3x3=5, ch5x5red=2, ch5x5=6, pool_proj=7, ch5x5_kernel_size=k5
    ).eval()
    randomize_bn(block)
    x = torch.randn(2, 16, 7, 7)
    y = block(x)
    assert y.shape == (2, 4 + 5 + 6 + 7, 7, 7) and block.out_channels == 22
    torch.testing.assert_close(y, inception_ref(block, x))
    assert block.branch3[1].conv.kernel_size == (k5, k5)


def test_inception_keys_are_torchvisions():
    block = Inception(192, ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32, pool_proj=32)
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    expected = []
    for prefix in ["branch1", "branch2.0", "branch2.1", "branch3.0", "branch3.1", "branch4.1"]:
        expected += [f"{prefix}.conv.weight"] + [f"{prefix}.bn.{k}" for k in bn]
    assert list(block.state_dict()) == expected
    assert block.branch1.bn.eps == 1e-3
    assert block.branch1.conv.bias is None


def test_inception_reduces_the_5x5_cost():
    # The paper's point: 1x1 reductions before the 5x5 make the module far cheaper.
    naive = NaiveInception(192, ch1x1=64, ch3x3=128, ch5x5=32)
    reduced = Inception(192, ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32, pool_proj=32)
    assert n_params(reduced) < n_params(naive) / 2
    assert reduced.out_channels < naive.out_channels


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"ch1x1": 0}, "ch1x1"),
        ({"pool_proj": -2}, "pool_proj"),
        ({"ch5x5_kernel_size": 4}, "ch5x5_kernel_size"),
    ],
)
def test_inception_bad_arguments(kwargs, needle):
    base = dict(ch1x1=4, ch3x3red=3, ch3x3=5, ch5x5red=2, ch5x5=6, pool_proj=7)
    with pytest.raises(ValueError, match=needle):
        Inception(16, **{**base, **kwargs})


def test_inception_aux_head():
    head = InceptionAux(512, 7)
    assert [k for k in head.state_dict() if not k.startswith("conv.bn")] == [
        "conv.conv.weight",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    ]
    assert head.fc1.in_features == 128 * 4 * 4
    assert head(torch.randn(2, 512, 14, 14)).shape == (2, 7)
    assert head(torch.randn(2, 512, 3, 3)).shape == (2, 7)  # adaptive pooling
    with pytest.raises(ValueError, match="dropout"):
        InceptionAux(512, 7, dropout=1.0)


# ------------------------------------------------------------------ residual blocks


def test_zero_pad_shortcut_matches_subsample_and_pad():
    x = torch.randn(2, 16, 7, 7)
    y = ZeroPadShortcut(16, 32, stride=2)(x)
    expected = torch.zeros(2, 32, 4, 4)
    expected[:, 8:24] = x[:, :, ::2, ::2]
    torch.testing.assert_close(y, expected)
    assert n_params(ZeroPadShortcut(16, 32, stride=2)) == 0
    with pytest.raises(ValueError, match="out_channels"):
        ZeroPadShortcut(32, 16)


def zero_residual(block: nn.Module) -> None:
    last = block.bn3 if isinstance(block, Bottleneck) else block.bn2
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()


@pytest.mark.parametrize("block_cls", [BasicBlock, Bottleneck])
def test_shortcut_a_is_parameter_free_and_pads(block_cls):
    mid = 8
    block = block_cls(8, mid, stride=2, shortcut="A").eval()
    zero_residual(block)  # the block now computes relu(shortcut(x))
    x = torch.randn(2, 8, 6, 6)
    out = mid * block_cls.expansion
    expected = torch.zeros(2, out, 3, 3)
    before = (out - 8) // 2
    expected[:, before : before + 8] = x[:, :, ::2, ::2]
    torch.testing.assert_close(block(x), F.relu(expected))
    assert isinstance(block.downsample, ZeroPadShortcut)


@pytest.mark.parametrize("block_cls", [BasicBlock, Bottleneck])
def test_shortcut_b_projects_only_where_shape_changes(block_cls):
    exp = block_cls.expansion
    same = block_cls(16 * exp, 16, shortcut="B")
    assert same.downsample is None
    changed = block_cls(16, 16, stride=2, shortcut="B")
    conv, norm = changed.downsample
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2) and conv.bias is None
    assert isinstance(norm, nn.BatchNorm2d)
    assert n_params(changed) - n_params(block_cls(16, 16, stride=2, shortcut="A")) == (
        16 * 16 * exp + 2 * 16 * exp
    )


@pytest.mark.parametrize("block_cls", [BasicBlock, Bottleneck])
def test_shortcut_c_always_projects(block_cls):
    exp = block_cls.expansion
    block = block_cls(16 * exp, 16, shortcut="C")
    assert isinstance(block.downsample, nn.Sequential)
    assert n_params(block) - n_params(block_cls(16 * exp, 16, shortcut="B")) == (
        (16 * exp) ** 2 + 2 * 16 * exp
    )


def test_identity_shortcut_adds_the_input():
    block = BasicBlock(8, 8).eval()
    zero_residual(block)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(block(x), F.relu(x))


def test_bottleneck_matches_functional_reference():
    block = Bottleneck(16, 8, stride=2, shortcut="B").eval()
    randomize_bn(block)
    x = torch.randn(2, 16, 9, 9)

    def cbn(conv, bn_, h, stride, padding):
        h = F.conv2d(h, conv.weight, None, stride, padding)
        return F.batch_norm(h, bn_.running_mean, bn_.running_var, bn_.weight, bn_.bias, False)

    h = F.relu(cbn(block.conv1, block.bn1, x, 1, 0))
    h = F.relu(cbn(block.conv2, block.bn2, h, 2, 1))  # v1.5: stride in the 3x3
    h = cbn(block.conv3, block.bn3, h, 1, 0)
    s = cbn(block.downsample[0], block.downsample[1], x, 2, 0)
    torch.testing.assert_close(block(x), F.relu(h + s))
    assert block.out_channels == 32


def test_stride_in_1x1_moves_the_stride():
    v15 = Bottleneck(16, 8, stride=2)
    v1 = Bottleneck(16, 8, stride=2, stride_in_1x1=True)
    assert (v15.conv1.stride, v15.conv2.stride) == ((1, 1), (2, 2))
    assert (v1.conv1.stride, v1.conv2.stride) == ((2, 2), (1, 1))
    assert v1.downsample[0].stride == (2, 2)
    x = torch.randn(2, 16, 8, 8)
    assert v1(x).shape == v15(x).shape == (2, 32, 4, 4)
    assert "stride_in_1x1=True" in repr(v1)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: BasicBlock(8, 8, shortcut="D"), "shortcut"),
        (lambda: Bottleneck(8, 8, shortcut="b"), "shortcut"),
        (lambda: BasicBlock(8, 0), "mid_channels"),
        (lambda: BasicBlock(0, 8), "in_channels"),
        (lambda: Bottleneck(8, 8, stride=0), "stride"),
        (lambda: BasicBlock(32, 16, shortcut="A"), "shortcut 'A'"),
        (lambda: Bottleneck(256, 16, shortcut="A"), "shortcut 'A'"),
    ],
)
def test_residual_bad_arguments(make, needle):
    with pytest.raises(ValueError, match=needle):
        make()


def test_residual_blocks_expose_channels_and_repr():
    block = Bottleneck(64, 64)
    assert (block.in_channels, block.mid_channels, block.out_channels) == (64, 64, 256)
    assert block.expansion == 4 and BasicBlock.expansion == 1
    assert "in_channels=64, mid_channels=64, stride=1, shortcut='B'" in repr(block)


@settings(max_examples=15, deadline=None)
@given(
    block_cls=st.sampled_from([BasicBlock, Bottleneck]),
    in_channels=st.integers(1, 8),
    mid=st.integers(2, 6),
    stride=st.integers(1, 3),
    size=st.integers(1, 9),
    shortcut=st.sampled_from(["A", "B", "C"]),
)
def test_residual_output_shape_property(block_cls, in_channels, mid, stride, size, shortcut):
    out = mid * block_cls.expansion
    if shortcut == "A" and out < in_channels:
        with pytest.raises(ValueError, match="shortcut 'A'"):
            block_cls(in_channels, mid, stride=stride, shortcut=shortcut)
        return
    block = block_cls(in_channels, mid, stride=stride, shortcut=shortcut).eval()
    y = block(torch.randn(1, in_channels, size, size))
    side = math.ceil(size / stride)
    assert y.shape == (1, out, side, side)
    assert bool((y >= 0).all())  # the final ReLU


def test_mlpconv_slices_are_plain_sequentials():
    block = MLPConv(3, (4, 5), kernel_size=3)
    tail = block[2:]
    assert type(tail) is nn.Sequential and isinstance(tail[0], nn.Conv2d)
    assert tail(torch.randn(1, 4, 2, 2)).shape == (1, 5, 2, 2)


def test_mlpconv_without_activation_is_one_linear_map():
    block = MLPConv(3, (8, 6, 4), kernel_size=3, padding=1, act_layer=None)
    assert not any(isinstance(m, nn.ReLU) for m in block.modules())
    convs = [m for m in block if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 and len(block) == 3
    x = torch.randn(2, 3, 6, 6)
    # Reference: the three convolutions applied by hand, nothing between them.
    ref = F.conv2d(x, convs[0].weight, convs[0].bias, padding=1)
    ref = F.conv2d(ref, convs[1].weight, convs[1].bias)
    ref = F.conv2d(ref, convs[2].weight, convs[2].bias)
    torch.testing.assert_close(block(x), ref)


def test_residual_blocks_without_norm_and_activation():
    x = torch.randn(2, 8, 6, 6)
    block = BasicBlock(8, 8, norm_layer=None, act_layer=None).eval()
    assert not any(isinstance(m, nn.BatchNorm2d | nn.ReLU) for m in block.modules())
    c1, c2 = block.conv1, block.conv2
    assert c1.bias is not None and c2.bias is not None  # no norm to supply the shift
    ref = F.conv2d(F.conv2d(x, c1.weight, c1.bias, padding=1), c2.weight, c2.bias, padding=1) + x
    torch.testing.assert_close(block(x), ref)

    block = Bottleneck(8, 4, stride=2, shortcut="B", norm_layer=None, act_layer=None).eval()
    assert not any(isinstance(m, nn.BatchNorm2d | nn.ReLU) for m in block.modules())
    proj = block.downsample[0]
    out = F.conv2d(x, block.conv1.weight, block.conv1.bias)
    out = F.conv2d(out, block.conv2.weight, block.conv2.bias, stride=2, padding=1)
    out = F.conv2d(out, block.conv3.weight, block.conv3.bias)
    ref = out + F.conv2d(x, proj.weight, proj.bias, stride=2)
    torch.testing.assert_close(block(x), ref)


def test_residual_blocks_accept_activations_without_inplace():
    block = BasicBlock(4, 4, act_layer=nn.GELU).eval()
    assert isinstance(block.act1, nn.GELU)
    assert block(torch.randn(1, 4, 5, 5)).shape == (1, 4, 5, 5)


def test_resnet_without_norm():
    from onebyone.models import create_model

    net = create_model("resnet20", num_classes=7, norm_layer=None)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


# ------------------------------------- wrong inputs and injected layers (issue 14, 20-21)

_INCEPTION_KW = {"ch1x1": 2, "ch3x3red": 2, "ch3x3": 2, "ch5x5red": 2, "ch5x5": 2, "pool_proj": 2}
WRONG_INPUT_BLOCKS = [
    ("BasicBlock", lambda: BasicBlock(8, 8), 8),
    ("Bottleneck", lambda: Bottleneck(32, 8), 32),
    ("Inception", lambda: Inception(8, **_INCEPTION_KW), 8),
    ("NaiveInception", lambda: NaiveInception(8, ch1x1=2, ch3x3=2, ch5x5=2), 8),
    ("MLPConv", lambda: MLPConv(8, (4, 4), kernel_size=3, padding=1), 8),
    ("InceptionAux", lambda: InceptionAux(8, 3), 8),
    ("InvertedResidual", lambda: InvertedResidual(8, 8), 8),
]


@pytest.mark.parametrize(("name", "make", "channels"), WRONG_INPUT_BLOCKS)
@pytest.mark.parametrize("shape", [(1, 5, 6, 6), (5, 6, 6), (1, 1, 8, 6, 6), (8, 6)])
def test_wrong_input_is_a_value_error_naming_the_block_and_shape(name, make, channels, shape):
    block = make().eval()
    with pytest.raises(ValueError, match=rf"^{name}\(in_channels={channels}.*got shape {re.escape(str(shape))}"):
        block(torch.randn(shape))


@pytest.mark.parametrize(("name", "make", "channels"), WRONG_INPUT_BLOCKS)
def test_right_input_still_runs_and_traces(name, make, channels):
    block = make().eval()
    x = torch.randn(2, channels, 6, 6)
    torch.testing.assert_close(torch.fx.symbolic_trace(block)(x), block(x))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: BasicBlock(4, 4, norm_layer=0.5), "norm_layer must be a callable .* got float 0.5"),
        (lambda: Bottleneck(4, 4, act_layer="relu"), "act_layer must be a callable .* got str"),
        (lambda: MLPConv(3, (4,), kernel_size=1, norm_layer=1), "norm_layer must be a callable"),
        (lambda: Inception(4, conv_block=None, **_INCEPTION_KW), "conv_block must be a callable"),
        (lambda: NaiveInception(4, ch1x1=1, ch3x3=1, ch5x5=1, conv_block=3), "conv_block must"),
        (lambda: InceptionAux(4, 3, conv_block="x"), "conv_block must be a callable"),
    ],
)
def test_injected_layers_must_be_callables(make, match):
    with pytest.raises(TypeError, match=match):
        make()


def test_conv_norm_act_keys_padding_and_checks():
    block = ConvNormAct(4, 8, kernel_size=3, stride=2, groups=4, act_layer=nn.GELU)
    assert [k for k, _ in block.named_parameters()] == ["0.weight", "1.weight", "1.bias"]
    x = torch.randn(1, 4, 7, 7)
    ref = F.gelu(F.batch_norm(F.conv2d(x, block[0].weight, stride=2, padding=1, groups=4),
                              None, None, block[1].weight, block[1].bias, True))  # fmt: skip
    torch.testing.assert_close(block(x), ref)
    assert ConvNormAct(4, 8, norm_layer=None)[0].bias is not None
    with pytest.raises(ValueError, match="groups=3 must divide in_channels=4"):
        ConvNormAct(4, 6, groups=3)
    with pytest.raises(ValueError, match="stride must be 1 or 2, got 3"):
        InvertedResidual(4, 4, stride=3)
