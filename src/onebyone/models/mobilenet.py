"""MobileNetV2 (Sandler et al., 2018): inverted residual blocks, torchvision-compatible.

Depthwise 3x3 convolutions do the spatial filtering; the 1x1 convolutions around them hold
almost all of the weights and multiply-adds. The model has torchvision's state_dict keys and
parameter count (3,504,872 at 1000 classes), so its checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from onebyone._checks import check_fraction, check_int, check_layer_factory
from onebyone.blocks.conv_block import ConvNormAct
from onebyone.blocks.inverted_residual import InvertedResidual

from ._base import check_input, init_unless_meta, linear_or_identity
from ._registry import register_model

__all__ = ["MobileNetV2"]

#: (expand_ratio, out_channels, blocks, stride of the first block): the paper's Table 2.
MOBILENET_V2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a width to the nearest multiple of ``divisor``, never more than 10% below it
    (the rounding of torchvision and the reference implementation).

    Example:
        >>> make_divisible(32 * 0.75), make_divisible(1280 * 1.4), make_divisible(3)
        (24, 1792, 8)
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class MobileNetV2(nn.Module):
    """MobileNetV2: a 3x3/2 stem, seven stages of inverted residual blocks, a 1x1 convolution
    to ``num_features`` maps, global average pooling, dropout and a linear classifier.

    Args:
        in_channels: channels of the input images.
        num_classes: outputs of the classifier; 0 for none.
        width_mult: multiplies every width (rounded by :func:`make_divisible`); the last
            convolution never gets narrower than 1280.
        stages: ``(expand_ratio, out_channels, blocks, stride)`` per stage.
        dropout: dropout before the classifier.
        norm_layer: the norm after each convolution.

    Raises:
        ValueError: a width, ratio or dropout out of range, or an empty ``stages``.

    Example:
        >>> model = MobileNetV2(num_classes=7).eval()
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 7])
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        stages: Sequence[tuple[int, int, int, int]] = MOBILENET_V2_STAGES,
        dropout: float = 0.2,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.num_classes = check_int("num_classes", num_classes, minimum=0)
        if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or not (
            0 < width_mult <= 16
        ):
            raise ValueError(f"width_mult must be a number in (0, 16], got {width_mult!r}")
        self.width_mult = float(width_mult)
        self.stages = _check_stages(stages)
        check_fraction("dropout", dropout, low_open=False, high_open=True)
        check_layer_factory("norm_layer", norm_layer, optional=False)
        self.model_name = "MobileNetV2"
        self.default_input_size = (1, in_channels, 224, 224)

        channels = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [
            ConvNormAct(in_channels, channels, kernel_size=3, stride=2, norm_layer=norm_layer)
        ]
        for t, c, n, s in self.stages:
            out_channels = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(
                    InvertedResidual(
                        channels, out_channels, stride=s if i == 0 else 1, expand_ratio=t,
                        norm_layer=norm_layer,
                    )
                )  # fmt: skip
                channels = out_channels
        self.num_features = make_divisible(1280 * max(1.0, width_mult))
        layers.append(
            ConvNormAct(channels, self.num_features, kernel_size=1, norm_layer=norm_layer)
        )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), linear_or_identity(self.num_features, num_classes)
        )
        init_unless_meta(self)

    def init_weights(self) -> None:
        """Initialise as torchvision does: Kaiming-normal (fan out) convolutions, norms at one
        and zero, linear weights from N(0, 0.01), every bias at zero.

        The constructor calls it unless the model is on the meta device.

        Example:
            >>> model = MobileNetV2(num_classes=3)
            >>> model.init_weights()
            >>> model.classifier[1].bias.abs().sum().item()
            0.0
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """Return the last 1x1 convolution's maps (``N x 1280 x 7 x 7`` for 224x224 input).

        Example:
            >>> MobileNetV2().eval().forward_features(torch.randn(1, 3, 64, 64)).shape
            torch.Size([1, 1280, 2, 2])
        """
        check_input(x, in_channels=self.in_channels, model_name=self.model_name)
        # N x 3 x 224 x 224
        return self.features(x)  # N x 1280 x 7 x 7

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool, drop out and classify (or return the pooled ``N x num_features`` vector).

        Example:
            >>> model, maps = MobileNetV2(num_classes=5).eval(), torch.randn(2, 1280, 7, 7)
            >>> model.forward_head(maps).shape, model.forward_head(maps, pre_logits=True).shape
            (torch.Size([2, 5]), torch.Size([2, 1280]))
        """
        x = torch.flatten(self.avgpool(x), 1)
        # N x 1280
        return x if pre_logits else self.classifier(x)

    def forward(self, x: Tensor) -> Tensor:
        """Classify ``x``: ``forward_head(forward_features(x))``.

        Example:
            >>> MobileNetV2(num_classes=4).eval()(torch.randn(1, 3, 32, 32)).shape
            torch.Size([1, 4])
        """
        return self.forward_head(self.forward_features(x))  # N x num_classes

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the linear classifier with a fresh ``num_classes``-way one (0: none).

        Example:
            >>> model = MobileNetV2()
            >>> model.reset_classifier(10)
            >>> model.classifier[1]
            Linear(in_features=1280, out_features=10, bias=True)
        """
        self.classifier[1] = linear_or_identity(self.num_features, num_classes)
        self.num_classes = num_classes

    def extra_repr(self) -> str:
        return (
            f"model_name={self.model_name!r}, in_channels={self.in_channels}, "
            f"num_classes={self.num_classes}, width_mult={self.width_mult}"
        )


def _check_stages(stages: Any) -> tuple[tuple[int, int, int, int], ...]:
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
        raise ValueError(f"stages must be a non-empty sequence of 4-tuples, got {stages!r}")
    checked = []
    for i, stage in enumerate(stages):
        if not isinstance(stage, Sequence) or len(stage) != 4:
            raise ValueError(
                f"stages[{i}] must be (expand_ratio, out_channels, blocks, stride), got {stage!r}"
            )
        names = ("expand_ratio", "out_channels", "blocks", "stride")
        checked.append(tuple(check_int(f"stages[{i}].{n}", v) for n, v in zip(names, stage, strict=True)))
    return tuple(checked)  # type: ignore[return-value]


@register_model
def mobilenet_v2(**kwargs: Any) -> MobileNetV2:
    """MobileNetV2 (3,504,872 parameters at 1000 classes; torchvision's keys).

    Example:
        >>> with torch.device("meta"):
        ...     model = mobilenet_v2()
        >>> sum(p.numel() for p in model.parameters())
        3504872
    """
    model = MobileNetV2(**kwargs)
    model.model_name = "mobilenet_v2"
    return model
