"""The tutorial's models: a 3x3 convolution with 512 filters on 256x256x3 images, then 1x1
convolutions that project, reduce or increase the 512 feature maps, and the 7x7 example.

Each is what the tutorial builds with Keras ``Conv2D(..., activation='relu')`` layers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from onebyone._checks import check_int
from onebyone._sequential import PlainSlicesSequential

from ._base import check_input
from ._registry import register_model

__all__ = ["TutorialModel"]


class TutorialModel(PlainSlicesSequential):
    """A stack of ``Conv2d`` + ReLU layers with same padding, named ``conv1``, ``relu1``, ...

    A feature extractor, not a classifier: the output is the last layer's feature maps.

    Args:
        in_channels: channels of the input images.
        layers: ``(filters, kernel_size)`` for each convolution; kernels must be odd.
        input_size: the side of the square input the model was designed for (256).

    Example:
        >>> import torch
        >>> model = TutorialModel(3, layers=((512, 3), (64, 1)))
        >>> model(torch.randn(1, 3, 8, 8)).shape
        torch.Size([1, 64, 8, 8])
        >>> model.default_input_size
        (1, 3, 256, 256)
    """

    def __init__(
        self,
        in_channels: int = 3,
        *,
        layers: Sequence[tuple[int, int]] = ((512, 3),),
        input_size: int = 256,
    ) -> None:
        in_channels = check_int("in_channels", in_channels)
        if isinstance(layers, (str, bytes)) or not layers:
            raise ValueError(
                f"layers must be a non-empty sequence of (filters, kernel_size), got {layers!r}"
            )
        modules: OrderedDict[str, nn.Module] = OrderedDict()
        spec = []
        channels = in_channels
        for i, layer in enumerate(layers, start=1):
            if not isinstance(layer, Sequence) or len(layer) != 2:
                raise ValueError(f"layers[{i - 1}] must be (filters, kernel_size), got {layer!r}")
            filters = check_int(f"layers[{i - 1}] filters", layer[0])
            k = check_int(f"layers[{i - 1}] kernel_size", layer[1])
            if k % 2 == 0:
                raise ValueError(f"layers[{i - 1}] kernel_size must be odd (same padding), got {k}")
            modules[f"conv{i}"] = nn.Conv2d(channels, filters, kernel_size=k, padding=k // 2)
            modules[f"relu{i}"] = nn.ReLU(inplace=True)
            spec.append((filters, k))
            channels = filters
        super().__init__(modules)
        self.in_channels = in_channels
        self.out_channels = channels
        self.layer_spec = tuple(spec)
        self.model_name = "TutorialModel"
        self.default_input_size = (1, in_channels, check_int("input_size", input_size), input_size)

    def forward(self, x: Tensor) -> Tensor:
        """Run the convolutions (each followed by ReLU) after checking the input's channels.

        Example:
            >>> import torch
            >>> TutorialModel(layers=((8, 3), (4, 1)))(torch.randn(1, 3, 9, 9)).shape
            torch.Size([1, 4, 9, 9])
        """
        check_input(x, in_channels=self.in_channels, model_name=self.model_name)
        # N x 3 x 256 x 256
        return super().forward(x)  # N x out_channels x 256 x 256

    def extra_repr(self) -> str:
        return (
            f"model_name={self.model_name!r}, in_channels={self.in_channels}, "
            f"layers={self.layer_spec}, input_size={self.default_input_size[-1]}"
        )


def _tutorial(
    name: str, layers: tuple[tuple[int, int], ...], kwargs: dict[str, Any]
) -> TutorialModel:
    unknown = sorted(set(kwargs) - {"in_channels"})
    if unknown:
        raise ValueError(
            f"{name} is a feature extractor from the tutorial and takes only in_channels, "
            f"got {', '.join(unknown)}"
        )
    model = TutorialModel(kwargs.get("in_channels", 3), layers=layers)
    model.model_name = name
    return model


@register_model
def tutorial_base(**kwargs: Any) -> TutorialModel:
    """3x3 convolution, 512 filters, same padding, ReLU: 256x256x512 maps, 14,336 parameters.

    Example:
        >>> sum(p.numel() for p in tutorial_base().parameters())
        14336
    """
    return _tutorial("tutorial_base", ((512, 3),), kwargs)


@register_model
def tutorial_project(**kwargs: Any) -> TutorialModel:
    """The base model + a 1x1 projection to 512 maps (262,656 more parameters).

    Example:
        >>> tutorial_project().conv2
        Conv2d(512, 512, kernel_size=(1, 1), stride=(1, 1))
    """
    return _tutorial("tutorial_project", ((512, 3), (512, 1)), kwargs)


@register_model
def tutorial_reduce(**kwargs: Any) -> TutorialModel:
    """The base model + a 1x1 reduction to 64 maps (32,832 more parameters).

    Example:
        >>> tutorial_reduce().out_channels
        64
    """
    return _tutorial("tutorial_reduce", ((512, 3), (64, 1)), kwargs)


@register_model
def tutorial_increase(**kwargs: Any) -> TutorialModel:
    """The base model + a 1x1 increase to 1024 maps (525,312 more parameters).

    Example:
        >>> tutorial_increase().out_channels
        1024
    """
    return _tutorial("tutorial_increase", ((512, 3), (1024, 1)), kwargs)


@register_model
def tutorial_7x7(**kwargs: Any) -> TutorialModel:
    """The base model + a 7x7 convolution with 64 filters on the 512 maps (1,605,696 more).

    Example:
        >>> tutorial_7x7().conv2.weight.shape
        torch.Size([64, 512, 7, 7])
    """
    return _tutorial("tutorial_7x7", ((512, 3), (64, 7)), kwargs)


@register_model
def tutorial_7x7_reduced(**kwargs: Any) -> TutorialModel:
    """The base model + a 1x1 reduction to 64 (32,832) + the 7x7 convolution (200,768).

    Example:
        >>> tutorial_7x7_reduced().conv3.weight.shape
        torch.Size([64, 64, 7, 7])
    """
    return _tutorial("tutorial_7x7_reduced", ((512, 3), (64, 1), (64, 7)), kwargs)
