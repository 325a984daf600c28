"""Inception modules: the naive one, the dimension-reduced one, and GoogLeNet's auxiliary head."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from onebyone._checks import check_block_input, check_fraction, check_int, check_layer_factory

from .conv_block import BasicConv2d

__all__ = ["Inception", "InceptionAux", "NaiveInception"]

ConvBlock = Callable[..., nn.Module]


class NaiveInception(nn.Module):
    """Parallel 1x1, 3x3 and 5x5 convolutions and a 3x3 max pool, concatenated on channels.

    The pool branch passes all ``in_channels`` through, so the output depth is
    ``in_channels + ch1x1 + ch3x3 + ch5x5``: stacking these modules makes the depth (and the
    cost of the 5x5 convolutions) grow stage after stage, the problem 1x1 reductions solve.

    Args:
        in_channels: channels of the input.
        ch1x1: filters of the 1x1 branch.
        ch3x3: filters of the 3x3 branch.
        ch5x5: filters of the 5x5 branch.
        conv_block: builds each convolution as
            ``conv_block(in_channels, out_channels, kernel_size=k, padding=p)``.

    Example:
        >>> import torch
        >>> block = NaiveInception(192, ch1x1=64, ch3x3=128, ch5x5=32)
        >>> block.out_channels
        416
        >>> block(torch.randn(2, 192, 4, 4)).shape
        torch.Size([2, 416, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        *,
        ch1x1: int,
        ch3x3: int,
        ch5x5: int,
        conv_block: ConvBlock = BasicConv2d,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.ch1x1 = check_int("ch1x1", ch1x1)
        self.ch3x3 = check_int("ch3x3", ch3x3)
        self.ch5x5 = check_int("ch5x5", ch5x5)
        check_layer_factory("conv_block", conv_block, optional=False)
        self.out_channels = in_channels + ch1x1 + ch3x3 + ch5x5
        self.branch1 = conv_block(in_channels, ch1x1, kernel_size=1)
        self.branch2 = conv_block(in_channels, ch3x3, kernel_size=3, padding=1)
        self.branch3 = conv_block(in_channels, ch5x5, kernel_size=5, padding=2)
        self.branch4 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """Run the four branches and concatenate them on channels.

        Example:
            >>> NaiveInception(8, ch1x1=2, ch3x3=2, ch5x5=2)(torch.randn(1, 8, 5, 5)).shape
            torch.Size([1, 14, 5, 5])
        """
        check_block_input(x, self.in_channels, self._who)
        # N x (in + ch1x1 + ch3x3 + ch5x5) x H x W
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)

    def _who(self) -> str:
        return f"{self._get_name()}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, ch1x1={self.ch1x1}, ch3x3={self.ch3x3}, "
            f"ch5x5={self.ch5x5}"
        )


class Inception(nn.Module):
    """The Inception module with dimension reduction (GoogLeNet).

    1x1 convolutions reduce the depth before the 3x3 and 5x5 convolutions, and a 1x1
    projection follows the 3x3 max pool, so the output depth is
    ``ch1x1 + ch3x3 + ch5x5 + pool_proj`` whatever ``in_channels`` is. Submodules are named as in
    torchvision (``branch1``, ``branch2.0``, ``branch2.1``, ``branch3.*``, ``branch4.1``).

    Args:
        in_channels: channels of the input.
        ch1x1: filters of the 1x1 branch.
        ch3x3red: 1x1 reduction before the 3x3 convolution.
        ch3x3: filters of the 3x3 convolution.
        ch5x5red: 1x1 reduction before the 5x5 convolution.
        ch5x5: filters of the 5x5 convolution.
        pool_proj: 1x1 projection after the max pool.
        ch5x5_kernel_size: kernel of the "5x5" branch; torchvision's GoogLeNet uses 3
            (pytorch/vision#906), the paper 5. Must be odd.
        conv_block: builds each convolution as
            ``conv_block(in_channels, out_channels, kernel_size=k, padding=p)``.

    Example:
        >>> import torch
        >>> block = Inception(192, ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32,
        ...                   pool_proj=32)
        >>> block.out_channels
        256
        >>> block(torch.randn(2, 192, 4, 4)).shape
        torch.Size([2, 256, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        *,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        ch5x5_kernel_size: int = 5,
        conv_block: ConvBlock = BasicConv2d,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.ch1x1 = check_int("ch1x1", ch1x1)
        self.ch3x3red = check_int("ch3x3red", ch3x3red)
        self.ch3x3 = check_int("ch3x3", ch3x3)
        self.ch5x5red = check_int("ch5x5red", ch5x5red)
        self.ch5x5 = check_int("ch5x5", ch5x5)
        self.pool_proj = check_int("pool_proj", pool_proj)
        k = check_int("ch5x5_kernel_size", ch5x5_kernel_size)
        if k % 2 == 0:
            raise ValueError(f"ch5x5_kernel_size must be odd to keep the size, got {k}")
        self.ch5x5_kernel_size = k
        check_layer_factory("conv_block", conv_block, optional=False)
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

        self.branch1 = conv_block(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            conv_block(in_channels, ch3x3red, kernel_size=1),
            conv_block(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            conv_block(in_channels, ch5x5red, kernel_size=1),
            conv_block(ch5x5red, ch5x5, kernel_size=k, padding=k // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            conv_block(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Run the four branches and concatenate them on channels.

        Example:
            >>> block = Inception(8, ch1x1=2, ch3x3red=2, ch3x3=2, ch5x5red=2, ch5x5=2, pool_proj=2)
            >>> block(torch.randn(1, 8, 5, 5)).shape
            torch.Size([1, 8, 5, 5])
        """
        check_block_input(x, self.in_channels, self._who)
        # N x (ch1x1 + ch3x3 + ch5x5 + pool_proj) x H x W
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)

    def _who(self) -> str:
        return f"{self._get_name()}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, ch1x1={self.ch1x1}, ch3x3red={self.ch3x3red}, "
            f"ch3x3={self.ch3x3}, ch5x5red={self.ch5x5red}, ch5x5={self.ch5x5}, "
            f"pool_proj={self.pool_proj}, ch5x5_kernel_size={self.ch5x5_kernel_size}"
        )


class InceptionAux(nn.Module):
    """GoogLeNet's auxiliary classifier: 4x4 average pool, 1x1 conv to 128, FC 1024, FC.

    Args:
        in_channels: channels of the input maps (512 or 528 in GoogLeNet).
        num_classes: outputs of the last layer; 0 replaces it with ``nn.Identity``.
        dropout: dropout probability before the last layer (0.7 in the paper).
        conv_block: builds the 1x1 convolution.

    Example:
        >>> import torch
        >>> head = InceptionAux(512, 10).eval()
        >>> head(torch.randn(2, 512, 14, 14)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        dropout: float = 0.7,
        conv_block: ConvBlock = BasicConv2d,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.num_classes = check_int("num_classes", num_classes, minimum=0)
        self.dropout_p = check_fraction("dropout", dropout, low_open=False, high_open=True)
        check_layer_factory("conv_block", conv_block, optional=False)
        self.conv = conv_block(in_channels, 128, kernel_size=1)
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.fc1 = nn.Linear(2048, 1024)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(p=dropout)
        self.fc2 = nn.Linear(1024, num_classes) if num_classes else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Pool to 4x4, project to 128 maps, then two fully-connected layers.

        Example:
            >>> InceptionAux(16, 3).eval()(torch.randn(1, 16, 8, 8)).shape
            torch.Size([1, 3])
        """
        check_block_input(x, self.in_channels, self._who)
        x = self.pool(x)
        # N x in_channels x 4 x 4
        x = self.conv(x)
        # N x 128 x 4 x 4
        x = torch.flatten(x, 1)
        # N x 2048
        x = self.dropout(self.act(self.fc1(x)))
        # N x 1024
        return self.fc2(x)  # N x num_classes

    def _who(self) -> str:
        return f"{self._get_name()}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, "
            f"dropout={self.dropout_p}"
        )
