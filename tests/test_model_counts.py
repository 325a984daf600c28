"""Parameter counts of the zoo: the published figures AND counts derived here by hand from the
architectures as the papers / torchvision describe them (not from onebyone's code).

The big models are built on the meta device: no memory, no initialisation.
"""

from __future__ import annotations

import pytest
import torch

from onebyone.models import create_model


def conv(cin: int, cout: int, k: int, *, bias: bool) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def bn(c: int) -> int:
    return 2 * c  # weight and bias; running stats are buffers


def linear(i: int, o: int) -> int:
    return i * o + o


def count(name: str, **kwargs) -> int:
    with torch.device("meta"):
        model = create_model(name, **kwargs)
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- ResNet (ImageNet, option B)


def resnet_imagenet(kind: str, layers, *, in_channels=3, num_classes=1000) -> int:
    """torchvision's ResNet: 7x7/2 stem (64), four stages of widths 64..512, option B."""
    total = conv(in_channels, 64, 7, bias=False) + bn(64)
    cin = 64
    for stage, (n, width) in enumerate(zip(layers, (64, 128, 256, 512), strict=True)):
        for j in range(n):
            stride = 2 if stage > 0 and j == 0 else 1
            if kind == "basic":
                cout = width
                total += conv(cin, width, 3, bias=False) + bn(width)
                total += conv(width, width, 3, bias=False) + bn(width)
            else:
                cout = 4 * width
                total += conv(cin, width, 1, bias=False) + bn(width)
                total += conv(width, width, 3, bias=False) + bn(width)
                total += conv(width, cout, 1, bias=False) + bn(cout)
            if stride != 1 or cin != cout:
                total += conv(cin, cout, 1, bias=False) + bn(cout)
            cin = cout
    return total + linear(cin, num_classes)


RESNETS = [
    ("resnet18", "basic", (2, 2, 2, 2), 11_689_512),
    ("resnet34", "basic", (3, 4, 6, 3), 21_797_672),
    ("resnet50", "bottleneck", (3, 4, 6, 3), 25_557_032),
    ("resnet101", "bottleneck", (3, 4, 23, 3), 44_549_160),
    ("resnet152", "bottleneck", (3, 8, 36, 3), 60_192_808),
]


@pytest.mark.parametrize(("name", "kind", "layers", "published"), RESNETS)
def test_imagenet_resnet_counts(name, kind, layers, published):
    assert resnet_imagenet(kind, layers) == published  # our arithmetic vs the paper/torchvision
    assert count(name) == published
    assert count(name, in_channels=1, num_classes=7) == resnet_imagenet(
        kind, layers, in_channels=1, num_classes=7
    )


def test_resnet50_v1_has_the_same_count():
    # Moving the stride between the 1x1 and the 3x3 changes no weight shape.
    assert count("resnet50", stride_in_1x1=True) == 25_557_032


# ---------------------------------------------------------------- CIFAR ResNets


def resnet_cifar(depth: int, *, shortcut="A", num_classes=10, in_channels=3) -> int:
    """3x3 stem (16), three stages of n BasicBlocks at 16/32/64, n = (depth - 2) / 6."""
    n = (depth - 2) // 6
    total = conv(in_channels, 16, 3, bias=False) + bn(16)
    cin = 16
    for stage, width in enumerate((16, 32, 64)):
        for j in range(n):
            stride = 2 if stage > 0 and j == 0 else 1
            total += conv(cin, width, 3, bias=False) + bn(width)
            total += conv(width, width, 3, bias=False) + bn(width)
            changes = stride != 1 or cin != width
            if shortcut == "C" or (shortcut == "B" and changes):
                total += conv(cin, width, 1, bias=False) + bn(width)
            cin = width
    return total + linear(64, num_classes)


CIFAR = [
    ("resnet20", 20, 269_722),
    ("resnet32", 32, 464_154),
    ("resnet44", 44, 658_586),
    ("resnet56", 56, 853_018),
    ("resnet110", 110, 1_727_962),
]


@pytest.mark.parametrize(("name", "depth", "published"), CIFAR)
def test_cifar_resnet_counts(name, depth, published):
    assert resnet_cifar(depth) == published
    assert count(name) == published
    assert count(name, shortcut="B") == resnet_cifar(depth, shortcut="B")
    assert count(name, shortcut="C") == resnet_cifar(depth, shortcut="C")
    assert count(name, in_channels=1, num_classes=7) == resnet_cifar(
        depth, in_channels=1, num_classes=7
    )


def test_option_b_costs_exactly_two_projections_in_resnet20():
    # 16->32 and 32->64: conv1x1 + BN each.
    extra = conv(16, 32, 1, bias=False) + bn(32) + conv(32, 64, 1, bias=False) + bn(64)
    assert count("resnet20", shortcut="B") - count("resnet20") == extra == 2_752


# ---------------------------------------------------------------- GoogLeNet

# The paper's Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
TABLE1 = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def basic_conv(cin, cout, k):  # bias-free conv + BatchNorm, as in torchvision
    return conv(cin, cout, k, bias=False) + bn(cout)


def googlenet_count(*, k5=3, aux=False, in_channels=3, num_classes=1000) -> int:
    total = basic_conv(in_channels, 64, 7) + basic_conv(64, 64, 1) + basic_conv(64, 192, 3)
    cin = 192
    for c1, c3r, c3, c5r, c5, pp in TABLE1.values():
        total += basic_conv(cin, c1, 1)
        total += basic_conv(cin, c3r, 1) + basic_conv(c3r, c3, 3)
        total += basic_conv(cin, c5r, 1) + basic_conv(c5r, c5, k5)
        total += basic_conv(cin, pp, 1)
        cin = c1 + c3 + c5 + pp
    assert cin == 1024
    total += linear(1024, num_classes)
    if aux:
        for aux_in in (512, 528):  # after 4a and 4d
            total += basic_conv(aux_in, 128, 1) + linear(128 * 4 * 4, 1024)
            total += linear(1024, num_classes)
    return total


def test_googlenet_counts():
    assert googlenet_count() == 6_624_904
    assert googlenet_count(aux=True) == 13_004_888
    assert count("googlenet") == 6_624_904
    assert count("googlenet", aux_logits=True) == 13_004_888
    assert count("googlenet", torchvision_compat=False) == googlenet_count(k5=5)
    assert count("googlenet", aux_logits=True, in_channels=1, num_classes=7) == googlenet_count(
        aux=True, in_channels=1, num_classes=7
    )


# ---------------------------------------------------------------- VGG-16


def vgg16_count(*, in_channels=3, num_classes=1000) -> int:
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    total, cin = 0, in_channels
    for w in widths:
        total += conv(cin, w, 3, bias=True)
        cin = w
    return total + linear(512 * 7 * 7, 4096) + linear(4096, 4096) + linear(4096, num_classes)


def test_vgg16_count():
    assert vgg16_count() == 138_357_544
    assert count("vgg16") == 138_357_544
    assert count("vgg16", in_channels=1, num_classes=7) == vgg16_count(in_channels=1, num_classes=7)


# ---------------------------------------------------------------- Network in Network


def nin_count(*, in_channels=3, num_classes=10) -> int:
    total = conv(in_channels, 192, 5, bias=True) + conv(192, 160, 1, bias=True)
    total += conv(160, 96, 1, bias=True)
    total += conv(96, 192, 5, bias=True) + 2 * conv(192, 192, 1, bias=True)
    total += conv(192, 192, 3, bias=True) + conv(192, 192, 1, bias=True)
    return total + conv(192, num_classes, 1, bias=True)


def test_nin_count():
    assert nin_count() == 966_986
    assert count("nin_cifar10") == 966_986
    assert count("nin_cifar10", in_channels=1, num_classes=7) == nin_count(
        in_channels=1, num_classes=7
    )
    # BatchNorm (weight + bias) after each of the 8 mlpconv convolutions, not the classifier.
    bn_widths = [192, 160, 96, 192, 192, 192, 192, 192]
    assert count("nin_cifar10_bn") == 966_986 + 2 * sum(bn_widths)


# ---------------------------------------------------------------- the tutorial's models

BASE = conv(3, 512, 3, bias=True)  # Keras: 3*3*3*512 + 512
TUTORIAL = {
    "tutorial_base": [BASE],
    "tutorial_project": [BASE, conv(512, 512, 1, bias=True)],
    "tutorial_reduce": [BASE, conv(512, 64, 1, bias=True)],
    "tutorial_increase": [BASE, conv(512, 1024, 1, bias=True)],
    "tutorial_7x7": [BASE, conv(512, 64, 7, bias=True)],
    "tutorial_7x7_reduced": [BASE, conv(512, 64, 1, bias=True), conv(64, 64, 7, bias=True)],
}


def test_tutorial_published_layer_counts():
    # The figures the tutorial and the issue print for each layer.
    assert TUTORIAL["tutorial_base"] == [14_336]
    assert TUTORIAL["tutorial_project"][1] == 262_656
    assert TUTORIAL["tutorial_reduce"][1] == 32_832
    assert TUTORIAL["tutorial_increase"][1] == 525_312
    assert TUTORIAL["tutorial_7x7"][1] == 1_605_696  # "about a million" on 512 maps
    assert TUTORIAL["tutorial_7x7_reduced"][1:] == [32_832, 200_768]  # "about 200,000"


@pytest.mark.parametrize("name", sorted(TUTORIAL))
def test_tutorial_counts_per_layer(name):
    model = create_model(name)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [sum(p.numel() for p in c.parameters()) for c in convs] == TUTORIAL[name]
    assert count(name) == sum(TUTORIAL[name])


# ---------------------------------------------------------------------------------- MobileNetV2


def mobilenet_v2_count(num_classes=1000, in_channels=3) -> int:
    """The paper's Table 2 with torchvision's layers: BatchNorm after every convolution, no
    convolution biases; a block expands to in * t channels (no expansion conv when t = 1),
    filters them depthwise (one 3x3 kernel per map) and projects linearly."""
    total = conv(in_channels, 32, 3, bias=False) + bn(32)
    cin = 32
    for t, c, n, _ in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):  # fmt: skip
        for _ in range(n):
            hidden = cin * t
            if t != 1:
                total += conv(cin, hidden, 1, bias=False) + bn(hidden)
            total += hidden * 3 * 3 + bn(hidden)  # depthwise
            total += conv(hidden, c, 1, bias=False) + bn(c)
            cin = c
    total += conv(cin, 1280, 1, bias=False) + bn(1280)
    return total + linear(1280, num_classes)


def test_mobilenet_v2_count():
    assert mobilenet_v2_count() == 3_504_872  # our arithmetic vs torchvision's published figure
    assert count("mobilenet_v2") == 3_504_872
    assert count("mobilenet_v2", in_channels=1, num_classes=10) == mobilenet_v2_count(10, 1)


def mobilenet_v2_macs(size=224, num_classes=1000) -> int:
    """Multiply-adds by hand: a convolution costs out_h * out_w * (k * k * in / groups) * out;
    every 3x3 convolution pads by 1, so a stride-s layer maps h to ceil(h / s)."""
    h = (size + 1) // 2
    total = h * h * 3 * 3 * 3 * 32  # stem, stride 2
    cin = 32
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):  # fmt: skip
        for i in range(n):
            hidden, stride = cin * t, s if i == 0 else 1
            if t != 1:
                total += h * h * cin * hidden  # 1x1 expansion at the input size
            h = (h + stride - 1) // stride
            total += h * h * 9 * hidden  # depthwise: one 3x3 kernel per map
            total += h * h * hidden * c  # linear 1x1 projection
            cin = c
    total += h * h * cin * 1280
    return total + 1280 * num_classes


def test_mobilenet_v2_macs_by_hand_equal_the_analyzer():
    from onebyone import analyze

    assert round(mobilenet_v2_macs() / 1e6, 1) == 300.8  # the paper's "300M" multiply-adds
    with torch.device("meta"):
        model = create_model("mobilenet_v2")
    assert analyze(model, (1, 3, 224, 224)).total_macs == mobilenet_v2_macs()
    assert analyze(model, (2, 3, 96, 96)).total_macs == 2 * mobilenet_v2_macs(96)
