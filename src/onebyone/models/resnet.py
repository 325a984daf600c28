"""ResNet (He et al., 2015): the ImageNet ResNets (torchvision-compatible) and the CIFAR ResNets.

The ImageNet models (``resnet18`` ... ``resnet152``) have torchvision's state_dict keys and
parameter counts, so its checkpoints load with ``strict=True``. The CIFAR models
(``resnet20`` ... ``resnet110``) have a 3x3 stem, three stages of 16/32/64 channels and the
paper's parameter-free option A shortcuts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from onebyone._checks import check_choice, check_int, check_layer_factory
from onebyone.blocks.residual import SHORTCUTS, BasicBlock, Bottleneck

from ._base import check_input, init_unless_meta, linear_or_identity
from ._registry import register_model

__all__ = ["ResNet"]


class ResNet(nn.Module):
    """A ResNet: a stem, stages of residual blocks, global average pooling and a linear layer.

    Args:
        block: the residual block class, ``BasicBlock`` or ``Bottleneck`` (or a class with
            the same constructor and an ``expansion`` attribute).
        layers: the number of blocks in each stage.
        in_channels: channels of the input images.
        num_classes: outputs of the classifier; 0 for none (``forward`` returns features).
        widths: ``mid_channels`` of each stage; the first is also the stem's width.
        stem: ``"imagenet"`` (7x7/2 convolution and 3x3/2 max pool) or ``"cifar"`` (3x3).
        shortcut: ``"A"``, ``"B"`` or ``"C"`` (see :mod:`onebyone.blocks.residual`).
        stride_in_1x1: Bottleneck only: stride in the first 1x1 (v1) instead of the 3x3 (v1.5).
        zero_init_residual: zero the last norm's weight of each block, so blocks start as
            identities.
        norm_layer: the norm layer, or ``None`` for none (the convolutions then have biases).

    Raises:
        ValueError: bad widths, depths, stem or shortcut, or mismatched ``layers``/``widths``.

    Example:
        >>> import torch
        >>> model = ResNet(BasicBlock, (1, 1), widths=(8, 16), stem="cifar", num_classes=3)
        >>> model(torch.randn(2, 3, 16, 16)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        block: type[nn.Module] = BasicBlock,
        layers: Sequence[int] = (2, 2, 2, 2),
        *,
        in_channels: int = 3,
        num_classes: int = 1000,
        widths: Sequence[int] = (64, 128, 256, 512),
        stem: str = "imagenet",
        shortcut: str = "B",
        stride_in_1x1: bool = False,
        zero_init_residual: bool = False,
        norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        block_kwargs = _block_kwargs(block, shortcut, stride_in_1x1, norm_layer)
        layers = tuple(check_int(f"layers[{i}]", n) for i, n in enumerate(layers))
        widths = tuple(check_int(f"widths[{i}]", w) for i, w in enumerate(widths))
        if not layers or len(layers) != len(widths):
            raise ValueError(
                f"layers and widths must have the same non-zero length, got layers={layers} "
                f"and widths={widths}"
            )
        self.in_channels = check_int("in_channels", in_channels)
        self.num_classes = check_int("num_classes", num_classes, minimum=0)
        self.stem = check_choice("stem", stem, ("imagenet", "cifar"))
        self.shortcut = shortcut
        self.block = block
        self.layers = layers
        self.widths = widths
        self.stride_in_1x1 = bool(stride_in_1x1)
        self.zero_init_residual = bool(zero_init_residual)
        self.model_name = "ResNet"
        size = 224 if stem == "imagenet" else 32
        self.default_input_size = (1, in_channels, size, size)

        self._make_stem(norm_layer)
        self.num_features = self._make_stages(block_kwargs)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = linear_or_identity(self.num_features, num_classes)
        init_unless_meta(self, zero_init_last=self.zero_init_residual)

    def _make_stem(self, norm_layer: Callable[[int], nn.Module] | None) -> None:
        """``conv1``, ``bn1``, ``relu`` and ``maxpool`` (torchvision's names)."""
        width, bias = self.widths[0], norm_layer is None
        if self.stem == "imagenet":
            self.conv1 = nn.Conv2d(self.in_channels, width, 7, stride=2, padding=3, bias=bias)
        else:
            self.conv1 = nn.Conv2d(self.in_channels, width, 3, padding=1, bias=bias)
        self.bn1 = nn.Identity() if norm_layer is None else norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        if self.stem == "imagenet":
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.maxpool = nn.Identity()

    def _make_stages(self, block_kwargs: dict[str, Any]) -> int:
        """``layer1``, ``layer2``, ...: each stage's first block (after the first stage)
        halves the size. Returns the channels of the last stage."""
        channels = self.widths[0]
        for i, (depth, width) in enumerate(zip(self.layers, self.widths, strict=True)):
            blocks = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(self.block(channels, width, stride=stride, **block_kwargs))
                channels = width * self.block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        return channels

    def init_weights(self, *, zero_init_last: bool = False) -> None:
        """Initialise every layer as torchvision does (Kaiming-normal convolutions, norms at
        one and zero); with ``zero_init_last``, each residual block's last norm weight is
        zero, so blocks start as identities (Goyal et al., 2017).

        The constructor calls it (with ``zero_init_residual``) unless the model is on the
        meta device. The classifier keeps ``nn.Linear``'s own initialisation.

        Example:
            >>> model = resnet20()
            >>> model.init_weights(zero_init_last=True)
            >>> model.layer1[0].bn2.weight.abs().sum().item()
            0.0
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    m.zero_init_last()

    def forward_features(self, x: Tensor) -> Tensor:
        """Return the last stage's feature maps (``N x num_features x H/32 x W/32``).

        Example:
            >>> import torch
            >>> resnet20().forward_features(torch.randn(1, 3, 32, 32)).shape
            torch.Size([1, 64, 8, 8])
        """
        check_input(x, in_channels=self.in_channels, model_name=self.model_name)
        # N x 3 x 224 x 224 (imagenet stem) | N x 3 x 32 x 32 (cifar stem)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(x)
        # N x 64 x 56 x 56 | N x 16 x 32 x 32
        for i in range(len(self.layers)):
            x = getattr(self, f"layer{i + 1}")(x)
        # resnet50: N x 2048 x 7 x 7 | resnet20: N x 64 x 8 x 8
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool the feature maps and classify them (or return the pooled vector).

        Example:
            >>> import torch
            >>> model, maps = resnet20(), torch.randn(2, 64, 8, 8)
            >>> model.forward_head(maps).shape, model.forward_head(maps, pre_logits=True).shape
            (torch.Size([2, 10]), torch.Size([2, 64]))
        """
        x = torch.flatten(self.avgpool(x), 1)
        # N x num_features
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        """Classify ``x``: ``forward_head(forward_features(x))``.

        Example:
            >>> import torch
            >>> resnet20(in_channels=1).eval()(torch.randn(2, 1, 28, 28)).shape
            torch.Size([2, 10])
        """
        x = self.forward_features(x)
        return self.forward_head(x)  # N x num_classes

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a fresh ``num_classes``-way layer (0: none).

        Example:
            >>> model = resnet20()
            >>> model.reset_classifier(3)
            >>> model.fc, model.num_classes
            (Linear(in_features=64, out_features=3, bias=True), 3)
        """
        self.fc = linear_or_identity(self.num_features, num_classes)
        self.num_classes = num_classes

    def extra_repr(self) -> str:
        return (
            f"model_name={self.model_name!r}, block={self.block.__name__}, layers={self.layers}, "
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, "
            f"widths={self.widths}, stem={self.stem!r}, shortcut={self.shortcut!r}"
        )


def _block_kwargs(
    block: Any,
    shortcut: Any,
    stride_in_1x1: Any,
    norm_layer: Any,
) -> dict[str, Any]:
    """Check the block class and the arguments ResNet passes on to every block."""
    if not (isinstance(block, type) and issubclass(block, nn.Module)) or not hasattr(
        block, "expansion"
    ):
        raise TypeError(f"block must be a residual block class such as Bottleneck, got {block!r}")
    kwargs: dict[str, Any] = {
        "shortcut": check_choice("shortcut", shortcut, SHORTCUTS),
        "norm_layer": check_layer_factory("norm_layer", norm_layer),
    }
    if stride_in_1x1:
        if not issubclass(block, Bottleneck):
            raise ValueError(
                f"stride_in_1x1=True needs Bottleneck blocks (a 1x1 to stride in), "
                f"got block={block.__name__}"
            )
        kwargs["stride_in_1x1"] = True
    return kwargs


def _resnet(name: str, block: type[nn.Module], layers: Sequence[int], **kwargs: Any) -> ResNet:
    model = ResNet(block, layers, **kwargs)
    model.model_name = name
    return model


def _cifar_resnet(name: str, depth: int, **kwargs: Any) -> ResNet:
    n = (depth - 2) // 6
    defaults: dict[str, Any] = {
        "num_classes": 10,
        "widths": (16, 32, 64),
        "stem": "cifar",
        "shortcut": "A",
    }
    return _resnet(name, BasicBlock, (n, n, n), **{**defaults, **kwargs})


@register_model
def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18 (11,689,512 parameters; torchvision's keys).

    Example:
        >>> resnet18(num_classes=7).fc
        Linear(in_features=512, out_features=7, bias=True)
    """
    return _resnet("resnet18", BasicBlock, (2, 2, 2, 2), **kwargs)


@register_model
def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34 (21,797,672 parameters; torchvision's keys).

    Example:
        >>> resnet34(num_classes=7).layers
        (3, 4, 6, 3)
    """
    return _resnet("resnet34", BasicBlock, (3, 4, 6, 3), **kwargs)


@register_model
def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50 v1.5 (25,557,032 parameters; torchvision's keys); ``stride_in_1x1=True``: v1.

    Example:
        >>> resnet50(num_classes=7).num_features
        2048
    """
    return _resnet("resnet50", Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model
def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101 v1.5 (44,549,160 parameters; torchvision's keys).

    Example:
        >>> resnet101.__name__
        'resnet101'
    """
    return _resnet("resnet101", Bottleneck, (3, 4, 23, 3), **kwargs)


@register_model
def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152 v1.5 (60,192,808 parameters; torchvision's keys).

    Example:
        >>> resnet152.__name__
        'resnet152'
    """
    return _resnet("resnet152", Bottleneck, (3, 8, 36, 3), **kwargs)


@register_model
def resnet20(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-20, option A shortcuts (269,722 parameters); ``shortcut="B"`` projects.

    Example:
        >>> import torch
        >>> resnet20()(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return _cifar_resnet("resnet20", 20, **kwargs)


@register_model
def resnet32(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-32, option A shortcuts (464,154 parameters).

    Example:
        >>> resnet32().layers
        (5, 5, 5)
    """
    return _cifar_resnet("resnet32", 32, **kwargs)


@register_model
def resnet44(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-44, option A shortcuts (658,586 parameters).

    Example:
        >>> resnet44().layers
        (7, 7, 7)
    """
    return _cifar_resnet("resnet44", 44, **kwargs)


@register_model
def resnet56(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-56, option A shortcuts (853,018 parameters).

    Example:
        >>> resnet56().layers
        (9, 9, 9)
    """
    return _cifar_resnet("resnet56", 56, **kwargs)


@register_model
def resnet110(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-110, option A shortcuts (1,727,962 parameters).

    Example:
        >>> resnet110().layers
        (18, 18, 18)
    """
    return _cifar_resnet("resnet110", 110, **kwargs)
