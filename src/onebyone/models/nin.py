"""Network in Network (Lin, Chen & Yan, 2013): mlpconv layers and global average pooling.

The 1x1 convolutions inside each mlpconv are the paper's cross-channel parametric pooling;
the last one maps to one feature map per class, and global average pooling replaces the
fully-connected head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from onebyone._checks import check_choice, check_fraction, check_int, check_layer_factory
from onebyone.blocks.mlpconv import MLPConv

from ._base import check_input, init_unless_meta
from ._registry import register_model

__all__ = ["NiN"]

NIN_CIFAR10_CHANNELS = ((192, 160, 96), (192, 192, 192), (192, 192))


class NiN(nn.Module):
    """Network in Network: mlpconv stages separated by 3x3/2 pooling and dropout, then a 1x1
    convolution to ``num_classes`` maps, ReLU and global average pooling.

    The defaults are the authors' CIFAR-10 network (966,986 parameters): mlpconv 5x5
    192-160-96, 3x3/2 max pool, dropout; mlpconv 5x5 192-192-192, 3x3/2 average pool, dropout;
    mlpconv 3x3 192-192-``num_classes`` (its last 1x1 convolution is ``classifier``); global
    average pooling. Pools round up (``ceil_mode``) as in the original Caffe model, so a 32x32
    input gives 8x8 maps; global pooling makes any input size of at least 1 pixel work.

    Args:
        in_channels: channels of the input images.
        num_classes: maps produced by the last 1x1 convolution; 0 for none (``forward`` then
            returns the pooled features).
        channels: the widths of each mlpconv; the last stage's list leaves out the final
            ``num_classes`` layer.
        kernel_sizes: the spatial kernel of each mlpconv (same padding).
        pools: ``"max"`` or ``"avg"`` between consecutive mlpconvs.
        dropout: dropout probability after each pool.
        norm_layer: a norm after each convolution of the mlpconvs (e.g. ``nn.BatchNorm2d``);
            ``None`` (the paper) for none. The published network has no norm and is slow to
            start training; ``nin_cifar10_bn`` adds BatchNorm.

    Example:
        >>> import torch
        >>> model = NiN(num_classes=10).eval()
        >>> model(torch.randn(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_classes: int = 10,
        channels: Sequence[Sequence[int]] = NIN_CIFAR10_CHANNELS,
        kernel_sizes: Sequence[int] = (5, 5, 3),
        pools: Sequence[str] = ("max", "avg"),
        dropout: float = 0.5,
        norm_layer: Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.num_classes = check_int("num_classes", num_classes, minimum=0)
        if isinstance(channels, (str, bytes)) or not channels:
            raise ValueError(
                f"channels must be a non-empty sequence of width lists, got {channels!r}"
            )
        kernel_sizes = tuple(check_int(f"kernel_sizes[{i}]", k) for i, k in enumerate(kernel_sizes))
        if len(kernel_sizes) != len(channels):
            raise ValueError(
                f"kernel_sizes needs one entry per mlpconv ({len(channels)}), got {kernel_sizes}"
            )
        pools = tuple(check_choice(f"pools[{i}]", p, ("max", "avg")) for i, p in enumerate(pools))
        if len(pools) != len(channels) - 1:
            raise ValueError(
                f"pools needs one entry between each pair of mlpconvs ({len(channels) - 1}), "
                f"got {pools}"
            )
        check_fraction("dropout", dropout, low_open=False, high_open=True)
        check_layer_factory("norm_layer", norm_layer)
        self.model_name = "NiN"
        self.default_input_size = (1, in_channels, 32, 32)

        layers: list[nn.Module] = []
        previous = in_channels
        stages = []
        for i, (widths, k) in enumerate(zip(channels, kernel_sizes, strict=True)):
            if k % 2 == 0:
                raise ValueError(f"kernel_sizes[{i}] must be odd (same padding), got {k}")
            block = MLPConv(previous, widths, kernel_size=k, padding=k // 2, norm_layer=norm_layer)
            stages.append(block.channels)
            layers.append(block)
            previous = block.out_channels
            if i < len(pools):
                pool_cls = nn.MaxPool2d if pools[i] == "max" else nn.AvgPool2d
                layers.append(pool_cls(kernel_size=3, stride=2, ceil_mode=True))
                layers.append(nn.Dropout(dropout))
        self.channels = tuple(stages)
        self.kernel_sizes = kernel_sizes
        self.pools = pools
        self.norm = norm_layer is not None
        self.num_features = previous
        self.features = nn.Sequential(*layers)
        self.classifier: nn.Module = (
            nn.Conv2d(previous, num_classes, kernel_size=1) if num_classes else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)
        self.global_pool = nn.AdaptiveAvgPool2d((1, 1))

        init_unless_meta(self)

    def init_weights(self) -> None:
        """Initialise every convolution Kaiming-normal (fan in) with a zero bias; norms keep
        their own initialisation.

        The constructor calls it unless the model is on the meta device.

        Example:
            >>> model = NiN(num_classes=10)
            >>> model.init_weights()
            >>> model.classifier.bias.abs().sum().item()
            0.0
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """Return the last mlpconv's maps before the class layer (``N x 192 x 8 x 8`` at 32x32).

        Example:
            >>> NiN().eval().forward_features(torch.randn(1, 3, 32, 32)).shape
            torch.Size([1, 192, 8, 8])
        """
        check_input(x, in_channels=self.in_channels, model_name=self.model_name)
        # N x 3 x 32 x 32
        return self.features(x)  # N x 192 x 8 x 8

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Map to one feature map per class, ReLU, and average each map to a score.

        With ``pre_logits=True`` it returns the globally pooled ``N x num_features`` features
        (NiN classifies before pooling, so these are not the classifier's exact input).

        Example:
            >>> model, maps = NiN(num_classes=10), torch.randn(2, 192, 8, 8)
            >>> model.forward_head(maps).shape, model.forward_head(maps, pre_logits=True).shape
            (torch.Size([2, 10]), torch.Size([2, 192]))
        """
        if not pre_logits:
            x = self.act(self.classifier(x))
            # N x num_classes x 8 x 8
        return torch.flatten(self.global_pool(x), 1)  # N x num_classes

    def forward(self, x: Tensor) -> Tensor:
        """Classify ``x``: ``forward_head(forward_features(x))``.

        Example:
            >>> NiN(in_channels=1).eval()(torch.randn(2, 1, 28, 28)).shape
            torch.Size([2, 10])
        """
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the class layer (the last 1x1 convolution) for ``num_classes`` (0: none).

        Example:
            >>> model = NiN()
            >>> model.reset_classifier(4)
            >>> model.classifier
            Conv2d(192, 4, kernel_size=(1, 1), stride=(1, 1))
        """
        num_classes = check_int("num_classes", num_classes, minimum=0)
        self.classifier = (
            nn.Conv2d(self.num_features, num_classes, kernel_size=1)
            if num_classes
            else nn.Identity()
        )
        self.num_classes = num_classes

    def extra_repr(self) -> str:
        return (
            f"model_name={self.model_name!r}, in_channels={self.in_channels}, "
            f"num_classes={self.num_classes}, channels={self.channels}, "
            f"kernel_sizes={self.kernel_sizes}, pools={self.pools}"
            + (", norm_layer=..." if self.norm else "")
        )


@register_model
def nin_cifar10(**kwargs: Any) -> NiN:
    """The authors' CIFAR-10 Network in Network (966,986 parameters).

    Example:
        >>> sum(p.numel() for p in nin_cifar10().parameters())
        966986
    """
    model = NiN(**kwargs)
    model.model_name = "nin_cifar10"
    return model


@register_model
def nin_cifar10_bn(**kwargs: Any) -> NiN:
    """The CIFAR-10 Network in Network with BatchNorm after each mlpconv convolution.

    The published network has no norm; with the short training runs of ``onebyone train`` it
    often stays at chance, while this variant trains in an epoch or two.

    Example:
        >>> model = nin_cifar10_bn(in_channels=1)
        >>> sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
        8
    """
    model = NiN(norm_layer=nn.BatchNorm2d, **kwargs)
    model.model_name = "nin_cifar10_bn"
    return model
