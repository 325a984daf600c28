"""``BasicConv2d``: convolution, BatchNorm and ReLU, the unit GoogLeNet is built from."""

from __future__ import annotations

from torch import Tensor, nn

from onebyone._checks import check_int

__all__ = ["BasicConv2d"]


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
        return self.act(self.bn(self.conv(x)))
