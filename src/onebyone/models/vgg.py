"""VGG (Simonyan & Zisserman, 2014) with its fully-connected head, torchvision-compatible.

The 4096-wide fully-connected layers hold most of VGG-16's 138 million parameters; they are
the seeds' example of a head that becomes convolutions (see ``onebyone.surgery``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from onebyone._checks import check_fraction, check_int

from ._base import check_input, init_unless_meta, linear_or_identity
from ._registry import register_model

__all__ = ["VGG"]

VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class VGG(nn.Module):
    """A VGG network: stages of 3x3 convolutions, each stage closed by a 2x2 max pool, then
    a 7x7 adaptive average pool and three fully-connected layers.

    Each convolution is followed by ReLU (and BatchNorm before it with ``batch_norm=True``);
    the layers sit in ``features`` and ``classifier`` at torchvision's indices.

    Args:
        stages: the widths of the 3x3 convolutions, one tuple per stage.
        in_channels: channels of the input images.
        num_classes: outputs of the last layer; 0 for none.
        batch_norm: add BatchNorm after each convolution (the ``_bn`` variants).
        hidden_features: width of the two hidden fully-connected layers (4096).
        dropout: dropout after each hidden layer.

    Raises:
        ValueError: an empty stage or a width < 1; at ``forward``, an input smaller than
            ``2 ** len(stages)`` pixels or with the wrong number of channels.

    Example:
        >>> import torch
        >>> model = VGG(((8,), (16,)), num_classes=3, hidden_features=32).eval()
        >>> model(torch.randn(1, 3, 8, 8)).shape
        torch.Size([1, 3])
    """

    def __init__(
        self,
        stages: Sequence[Sequence[int]] = VGG16_STAGES,
        *,
        in_channels: int = 3,
        num_classes: int = 1000,
        batch_norm: bool = False,
        hidden_features: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if isinstance(stages, (str, bytes)) or not stages:
            raise ValueError(f"stages must be a non-empty sequence of width tuples, got {stages!r}")
        checked = []
        for i, stage in enumerate(stages):
            if isinstance(stage, (str, bytes)) or not isinstance(stage, Sequence) or not stage:
                raise ValueError(
                    f"stages[{i}] must be a non-empty sequence of widths, got {stage!r}"
                )
            checked.append(tuple(check_int(f"stages[{i}][{j}]", w) for j, w in enumerate(stage)))
        self.stages = tuple(checked)
        self.in_channels = check_int("in_channels", in_channels)
        self.num_classes = check_int("num_classes", num_classes, minimum=0)
        self.hidden_features = check_int("hidden_features", hidden_features)
        check_fraction("dropout", dropout, low_open=False, high_open=True)
        self.batch_norm = bool(batch_norm)
        self.model_name = "VGG"
        self.default_input_size = (1, in_channels, 224, 224)
        self.min_input_size = 2 ** len(self.stages)
        self.num_features = hidden_features

        layers: list[nn.Module] = []
        channels = in_channels
        for stage in self.stages:
            for width in stage:
                layers.append(nn.Conv2d(channels, width, kernel_size=3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU(inplace=True))
                channels = width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, hidden_features),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden_features, hidden_features),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            linear_or_identity(hidden_features, num_classes),
        )

        init_unless_meta(self)

    def init_weights(self) -> None:
        """Initialise every layer as torchvision's VGG does: Kaiming-normal convolutions,
        linear weights from N(0, 0.01), BatchNorm at one, every bias at zero.

        The constructor calls it unless the model is on the meta device.

        Example:
            >>> model = VGG(((8,), (16,)), num_classes=3, hidden_features=32)
            >>> model.init_weights()
            >>> model.features[0].bias.abs().sum().item()
            0.0
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """Return the last stage's pooled maps (``N x 512 x 7 x 7`` for 224x224 input).

        Example:
            >>> model = VGG(((8,), (16,)), num_classes=3, hidden_features=32)
            >>> model.forward_features(torch.randn(1, 3, 8, 8)).shape
            torch.Size([1, 16, 2, 2])
        """
        check_input(x, in_channels=self.in_channels, model_name=self.model_name)
        if not isinstance(x, torch.fx.Proxy) and min(x.shape[-2:]) < self.min_input_size:
            raise ValueError(
                f"{self.model_name} halves the input {len(self.stages)} times, so it needs at "
                f"least {self.min_input_size}x{self.min_input_size} pixels, got "
                f"{tuple(x.shape[-2:])}; resize or pad the input"
            )
        # N x 3 x 224 x 224
        return self.features(x)  # N x 512 x 7 x 7

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool to 7x7, flatten and run the fully-connected layers (all but the last if
        ``pre_logits``).

        Example:
            >>> model = VGG(((8,), (16,)), num_classes=3, hidden_features=32).eval()
            >>> maps = torch.randn(2, 16, 2, 2)
            >>> model.forward_head(maps).shape, model.forward_head(maps, pre_logits=True).shape
            (torch.Size([2, 3]), torch.Size([2, 32]))
        """
        x = torch.flatten(self.avgpool(x), 1)
        # N x 25088
        if pre_logits:
            return self.classifier[:-1](x)  # N x 4096
        return self.classifier(x)  # N x num_classes

    def forward(self, x: Tensor) -> Tensor:
        """Classify ``x``: ``forward_head(forward_features(x))``.

        Example:
            >>> model = VGG(((8,), (16,)), num_classes=3, hidden_features=32).eval()
            >>> model(torch.randn(2, 3, 8, 8)).shape
            torch.Size([2, 3])
        """
        return self.forward_head(self.forward_features(x))  # N x num_classes

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last fully-connected layer with a fresh ``num_classes``-way one.

        Example:
            >>> model = VGG(((8,), (16,)), num_classes=3, hidden_features=32)
            >>> model.reset_classifier(5)
            >>> model.classifier[-1]
            Linear(in_features=32, out_features=5, bias=True)
        """
        self.classifier[-1] = linear_or_identity(self.hidden_features, num_classes)
        self.num_classes = num_classes

    def extra_repr(self) -> str:
        return (
            f"model_name={self.model_name!r}, stages={self.stages}, in_channels={self.in_channels}, "
            f"num_classes={self.num_classes}, batch_norm={self.batch_norm}, "
            f"hidden_features={self.hidden_features}"
        )


@register_model
def vgg16(**kwargs: Any) -> VGG:
    """VGG-16, configuration D, with the fully-connected head (138,357,544 parameters).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = vgg16()
        >>> sum(p.numel() for p in model.parameters())
        138357544
    """
    model = VGG(VGG16_STAGES, **kwargs)
    model.model_name = "vgg16"
    return model
