"""The variants ``onebyone compare`` trains: naive networks and their 1x1-reduced twins at 28x28.

Each pair tells one of the seeds' stories with the same stem, depth and output widths:

- ``inception_naive`` / ``inception_reduced``: naive Inception modules (the max-pool branch
  passes every input channel on, so depth grows module after module) vs GoogLeNet's modules
  with 1x1 reductions before the 3x3 and 5x5 convolutions and a 1x1 projection after the pool;
- ``plain_5x5`` / ``nin_mlpconv``: a plain stack of 5x5 convolutions with a fully-connected
  head vs Network in Network: mlpconv blocks (kxk then 1x1 convolutions) and global average
  pooling instead of the fully-connected layers;
- ``resnet_basic`` / ``resnet_bottleneck``: residual stages of basic blocks (two 3x3) vs
  bottleneck blocks (1x1 reduce, 3x3, 1x1 restore) with the same stage widths (64, then 128).
  As in the ResNet paper, the bottleneck's savings buy depth: six bottleneck blocks (three per
  stage) against three basic blocks, still about 6x fewer MACs. (With only three bottleneck
  blocks, 3.7 M MACs, the net underfits the 3-epoch budget: 96.4% / 95.9% on seeds 0 / 1.)
- ``maxout``: convolutions followed by cross-channel max pooling (maxout units), no twin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = ["VARIANTS", "Variant", "build_variant", "list_variants"]


@dataclass(frozen=True)
class Variant:
    """A named network builder, and the name of the naive twin it is compared with.

    ``build(in_channels, num_classes, input_size=(H, W))`` returns a fresh model.

    Example:
        >>> v = VARIANTS["nin_mlpconv"]
        >>> v.twin, v.description
        ('plain_5x5', 'NiN mlpconv + global average pooling')
        >>> v.build(1, 10, input_size=(28, 28))[-1]
        Flatten(start_dim=1, end_dim=-1)
    """

    name: str
    build: Callable[..., nn.Module]
    twin: str | None
    description: str


def _head(in_channels: int, num_classes: int) -> list[nn.Module]:
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes)]


def _stem(in_channels: int, out_channels: int) -> list[nn.Module]:
    from onebyone.blocks import BasicConv2d

    # 28x28 -> 14x14
    return [BasicConv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.MaxPool2d(2)]


def inception_naive(
    in_channels: int = 1, num_classes: int = 10, *, input_size: tuple[int, int] = (28, 28)
) -> nn.Module:
    """Naive Inception modules after a 3x3 stem: 1x1, 3x3 and 5x5 convolutions and a 3x3
    max pool side by side, with no 1x1 reduction, so the pool branch passes every input channel
    on and the width grows module after module.

    Args:
        in_channels: image channels.
        num_classes: class scores returned.
        input_size: (H, W) of the images (the head pools globally, so any size works).

    Example:
        >>> net = inception_naive()
        >>> [net[i].out_channels for i in (2, 3, 5)]  # 16+32+16+32, 16+32+16+96, 32+64+32+160
        [96, 160, 288]
    """
    from onebyone.blocks import NaiveInception

    a = NaiveInception(32, ch1x1=16, ch3x3=32, ch5x5=16)  # 32 -> 96 @ 14x14
    b = NaiveInception(a.out_channels, ch1x1=16, ch3x3=32, ch5x5=16)  # 96 -> 160
    c = NaiveInception(b.out_channels, ch1x1=32, ch3x3=64, ch5x5=32)  # 160 -> 288 @ 7x7
    return nn.Sequential(
        *_stem(in_channels, 32), a, b, nn.MaxPool2d(2), c, *_head(c.out_channels, num_classes)
    )


def inception_reduced(
    in_channels: int = 1, num_classes: int = 10, *, input_size: tuple[int, int] = (28, 28)
) -> nn.Module:
    """GoogLeNet's Inception modules (1x1 reductions before the 3x3 and 5x5 convolutions, a
    1x1 projection after the pool) with the output widths of :func:`inception_naive`'s
    convolution branches.

    Args:
        in_channels: image channels.
        num_classes: class scores returned.
        input_size: (H, W) of the images (the head pools globally, so any size works).

    Example:
        >>> net = inception_reduced()
        >>> [net[i].out_channels for i in (2, 3, 5)]  # 16+32+16+16, 16+32+16+16, 32+64+32+32
        [80, 80, 160]
    """
    from onebyone.blocks import Inception

    a = Inception(32, ch1x1=16, ch3x3red=16, ch3x3=32, ch5x5red=8, ch5x5=16, pool_proj=16)
    b = Inception(
        a.out_channels, ch1x1=16, ch3x3red=16, ch3x3=32, ch5x5red=8, ch5x5=16, pool_proj=16
    )
    c = Inception(
        b.out_channels, ch1x1=32, ch3x3red=32, ch3x3=64, ch5x5red=16, ch5x5=32, pool_proj=32
    )
    return nn.Sequential(
        *_stem(in_channels, 32), a, b, nn.MaxPool2d(2), c, *_head(c.out_channels, num_classes)
    )


def plain_5x5(
    in_channels: int = 1, num_classes: int = 10, *, input_size: tuple[int, int] = (28, 28)
) -> nn.Module:
    """Two 5x5 convolutions, each followed by 2x2 max pooling, then a fully-connected head.

    Args:
        in_channels: image channels.
        num_classes: class scores returned.
        input_size: (H, W) of the images: the first Linear takes 64 * (H // 4) * (W // 4).

    Example:
        >>> plain_5x5()[9].in_features, plain_5x5(input_size=(32, 32))[9].in_features
        (3136, 4096)
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),  # 32 x 14 x 14
        nn.Conv2d(32, 64, 5, padding=2), nn.BatchNorm2d(64),
        nn.MaxPool2d(2), nn.ReLU(inplace=True),  # 64 x 7 x 7 (max and ReLU commute)
        nn.Flatten(), nn.Linear(64 * (input_size[0] // 4) * (input_size[1] // 4), 128), nn.ReLU(inplace=True), nn.Linear(128, num_classes),
    )  # fmt: skip


def nin_mlpconv(
    in_channels: int = 1, num_classes: int = 10, *, input_size: tuple[int, int] = (28, 28)
) -> nn.Module:
    """Network in Network: three mlpconv blocks (a kxk convolution then a 1x1), the last with
    ``num_classes`` output maps, averaged globally: no fully-connected layer.

    Args:
        in_channels: image channels.
        num_classes: output maps of the last block, one per class.
        input_size: (H, W) of the images (the head pools globally, so any size works).

    Example:
        >>> net = nin_mlpconv(num_classes=7)
        >>> net[4].out_channels, any(isinstance(m, nn.Linear) for m in net.modules())
        (7, False)
    """
    from onebyone.blocks import MLPConv

    bn = nn.BatchNorm2d
    return nn.Sequential(
        MLPConv(in_channels, (32, 16), kernel_size=5, padding=2, norm_layer=bn),
        nn.MaxPool2d(2),  # 16 x 14 x 14
        MLPConv(16, (32, 24), kernel_size=5, padding=2, norm_layer=bn),
        nn.MaxPool2d(2),  # 24 x 7 x 7
        MLPConv(24, (64, num_classes), kernel_size=3, padding=1, norm_layer=bn),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # global average pooling: no FC layer
    )  # fmt: skip


def resnet_basic(
    in_channels: int = 1, num_classes: int = 10, *, input_size: tuple[int, int] = (28, 28)
) -> nn.Module:
    """Residual stages of basic blocks (two 3x3 convolutions each): 64 channels at 14x14,
    then 128 at 7x7.

    Args:
        in_channels: image channels.
        num_classes: class scores returned.
        input_size: (H, W) of the images (the head pools globally, so any size works).

    Example:
        >>> net = resnet_basic()
        >>> [net[i].out_channels for i in (2, 3, 4)]
        [64, 64, 128]
    """
    from onebyone.blocks import BasicBlock

    return nn.Sequential(
        *_stem(in_channels, 32),
        BasicBlock(32, 64),  # 64 x 14 x 14
        BasicBlock(64, 64),
        BasicBlock(64, 128, stride=2),  # 128 x 7 x 7
        *_head(128, num_classes),
    )


def resnet_bottleneck(
    in_channels: int = 1, num_classes: int = 10, *, input_size: tuple[int, int] = (28, 28)
) -> nn.Module:
    """Residual stages of bottleneck blocks (1x1 reduce, 3x3, 1x1 restore to 4x the middle
    width), three per stage, with :func:`resnet_basic`'s stage widths (64, then 128).

    Args:
        in_channels: image channels.
        num_classes: class scores returned.
        input_size: (H, W) of the images (the head pools globally, so any size works).

    Example:
        >>> net = resnet_bottleneck()
        >>> [(net[i].mid_channels, net[i].out_channels) for i in (2, 5)]  # out = 4 * mid
        [(16, 64), (32, 128)]
    """
    from onebyone.blocks import Bottleneck

    return nn.Sequential(
        *_stem(in_channels, 32),
        Bottleneck(32, 16),  # 1x1 32->16, 3x3, 1x1 16->64: 64 x 14 x 14
        Bottleneck(64, 16),
        Bottleneck(64, 16),
        Bottleneck(64, 32, stride=2),  # 128 x 7 x 7
        Bottleneck(128, 32),
        Bottleneck(128, 32),
        *_head(128, num_classes),
    )


def maxout(
    in_channels: int = 1, num_classes: int = 10, *, input_size: tuple[int, int] = (28, 28)
) -> nn.Module:
    """Maxout convolutions: each convolution computes two maps per output channel and keeps
    their maximum (cross-channel max pooling), then a global-average-pool head.

    Args:
        in_channels: image channels.
        num_classes: class scores returned.
        input_size: (H, W) of the images (the head pools globally, so any size works).

    Example:
        >>> net = maxout()
        >>> net[0].conv.out_channels, net[0].out_channels  # 2 pieces per output channel
        (64, 32)
    """
    from onebyone.layers import MaxoutConv2d

    return nn.Sequential(
        MaxoutConv2d(in_channels, 32, kernel_size=5, padding=2, pieces=2), nn.BatchNorm2d(32),
        nn.MaxPool2d(2),  # 32 x 14 x 14
        MaxoutConv2d(32, 48, kernel_size=3, padding=1, pieces=2), nn.BatchNorm2d(48),
        nn.MaxPool2d(2),  # 48 x 7 x 7
        MaxoutConv2d(48, 64, kernel_size=3, padding=1, pieces=2),
        *_head(64, num_classes),
    )  # fmt: skip


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("inception_naive", inception_naive, None, "naive Inception modules"),
        Variant(
            "inception_reduced",
            inception_reduced,
            "inception_naive",
            "Inception with 1x1 reductions",
        ),
        Variant("plain_5x5", plain_5x5, None, "5x5 convolutions + FC head"),
        Variant("nin_mlpconv", nin_mlpconv, "plain_5x5", "NiN mlpconv + global average pooling"),
        Variant("resnet_basic", resnet_basic, None, "residual, basic blocks"),
        Variant(
            "resnet_bottleneck",
            resnet_bottleneck,
            "resnet_basic",
            "residual, twice as many bottleneck blocks",
        ),
        Variant("maxout", maxout, None, "maxout: conv + cross-channel max pooling"),
    )
}


def list_variants() -> list[str]:
    """The variant names, in the order ``onebyone compare`` runs them.

    >>> list_variants()[:2]
    ['inception_naive', 'inception_reduced']
    """
    return list(VARIANTS)


def build_variant(
    name: str,
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: tuple[int, int] = (28, 28),
) -> nn.Module:
    """Build a compare variant by name.

    Raises:
        ValueError: an unknown name, listing the known ones.

    Example:
        >>> build_variant("resnet_bottleneck")[2].mid_channels
        16
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; expected one of {', '.join(VARIANTS)}")
    return VARIANTS[name].build(in_channels, num_classes, input_size=tuple(input_size))
