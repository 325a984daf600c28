"""Convolution + norm + activation units: GoogLeNet's ``BasicConv2d`` and MobileNet's
``ConvNormAct``."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from onebyone._checks import check_int, check_layer_factory
from onebyone._sequential import PlainSlicesSequential

__all__ = ["BasicConv2d", "ConvNormAct"]


class BasicConv2d(nn.Module):
    """A bias-free convolution followed by BatchNorm (``eps=1e-3``) and ReLU.

    The submodules are named ``conv`` and ``bn`` as in torchvision's GoogLeNet, so its
    checkpoints load unchanged.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output (number of filters).
        kernel_size: side of the square kernel.
        stride: stride of the convolution.
        padding: zero padding on each side.
        eps: BatchNorm epsilon; 1e-3 matches the TensorFlow-ported weights.

    Example:
        >>> import torch
        >>> block = BasicConv2d(3, 8, kernel_size=3, padding=1)
        >>> block(torch.randn(1, 3, 5, 5)).shape
        torch.Size([1, 8, 5, 5])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        eps: float = 1e-3,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.kernel_size = check_int("kernel_size", kernel_size)
        self.stride = check_int("stride", stride)
        self.padding = check_int("padding", padding, minimum=0)
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=eps)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """Convolution, BatchNorm, ReLU.

        Example:
            >>> import torch
            >>> BasicConv2d(3, 4, kernel_size=3, stride=2)(torch.randn(1, 3, 7, 7)).shape
            torch.Size([1, 4, 3, 3])
        """
        return self.act(self.bn(self.conv(x)))


class ConvNormAct(PlainSlicesSequential):
    """A convolution, a norm and an activation held in order (``0``, ``1``, ``2``), as
    torchvision's ``Conv2dNormActivation``, so its state_dict keys match.

    The padding keeps the size (``(kernel_size - 1) // 2``); the convolution has a bias only
    without a norm. ``groups=in_channels`` makes it depthwise.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        kernel_size: side of the square kernel (odd).
        stride: stride of the convolution.
        groups: convolution groups; must divide both channel counts.
        norm_layer: built as ``norm_layer(out_channels)``, or ``None`` for none.
        act_layer: built as ``act_layer(inplace=True)``, or ``None`` for none.

    Example:
        >>> import torch
        >>> block = ConvNormAct(8, 8, kernel_size=3, stride=2, groups=8)  # depthwise
        >>> block(torch.randn(1, 8, 6, 6)).shape, [k for k, _ in block.named_children()]
        (torch.Size([1, 8, 3, 3]), ['0', '1', '2'])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
        act_layer: Callable[..., nn.Module] | None = nn.ReLU6,
    ) -> None:
        in_channels = check_int("in_channels", in_channels)
        out_channels = check_int("out_channels", out_channels)
        kernel_size = check_int("kernel_size", kernel_size)
        stride = check_int("stride", stride)
        groups = check_int("groups", groups)
        check_layer_factory("norm_layer", norm_layer)
        check_layer_factory("act_layer", act_layer)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=(kernel_size - 1) // 2,
                groups=groups,
                bias=norm_layer is None,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if act_layer is not None:
            try:
                layers.append(act_layer(inplace=True))
            except TypeError:  # an activation without an inplace flag
                layers.append(act_layer())
        super().__init__(*layers)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.groups = groups

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, groups={self.groups}"
        )
