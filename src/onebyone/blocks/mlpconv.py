"""``MLPConv``: Network in Network's mlpconv layer (a kxk convolution, then 1x1 convolutions)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from onebyone._checks import check_block_input, check_int, check_layer_factory
from onebyone._sequential import PlainSlicesSequential

__all__ = ["MLPConv"]


class MLPConv(PlainSlicesSequential):
    """A kxk convolution followed by 1x1 convolutions, each followed by an activation.

    The 1x1 convolutions are Network in Network's *cascaded cross-channel parametric pooling*:
    at every pixel a small MLP mixes the feature maps. The layers are plain ``nn.Conv2d`` held
    in order (``0`` conv, ``1`` act, ``2`` 1x1 conv, ...), so state_dict keys stay standard.

    Args:
        in_channels: channels of the input.
        channels: widths of the layers; the first is the kxk convolution, the rest are 1x1.
        kernel_size: side of the first (spatial) convolution's kernel.
        stride: stride of the first convolution.
        padding: zero padding of the first convolution.
        norm_layer: a norm built as ``norm_layer(width)`` after each convolution, or ``None``
            for none (the paper has none).
        act_layer: the activation after each convolution (and norm), or ``None`` for none
            (the block is then one linear map: ``onebyone.surgery.fuse`` merges it).

    Example:
        >>> import torch
        >>> block = MLPConv(3, (192, 160, 96), kernel_size=5, padding=2)
        >>> block.out_channels
        96
        >>> block(torch.randn(1, 3, 8, 8)).shape
        torch.Size([1, 96, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        *,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        norm_layer: Callable[[int], nn.Module] | None = None,
        act_layer: Callable[..., nn.Module] | None = nn.ReLU,
    ) -> None:
        in_channels = check_int("in_channels", in_channels)
        if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence) or not channels:
            raise ValueError(f"channels must be a non-empty sequence of widths, got {channels!r}")
        widths = tuple(check_int(f"channels[{i}]", c) for i, c in enumerate(channels))
        kernel_size = check_int("kernel_size", kernel_size)
        stride = check_int("stride", stride)
        padding = check_int("padding", padding, minimum=0)
        check_layer_factory("norm_layer", norm_layer)
        check_layer_factory("act_layer", act_layer)
        layers: list[nn.Module] = []
        previous = in_channels
        for i, width in enumerate(widths):
            if i == 0:
                conv = nn.Conv2d(previous, width, kernel_size, stride=stride, padding=padding)
            else:
                conv = nn.Conv2d(previous, width, kernel_size=1)
            layers.append(conv)
            if norm_layer is not None:
                layers.append(norm_layer(width))
            if act_layer is not None:
                layers.append(act_layer())
            previous = width
        super().__init__(*layers)
        self.in_channels = in_channels
        self.channels = widths
        self.out_channels = widths[-1]
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        """Check the input's channels, then run the layers in order.

        Example:
            >>> import torch
            >>> MLPConv(3, (8, 4), kernel_size=3)(torch.randn(1, 3, 5, 5)).shape
            torch.Size([1, 4, 3, 3])
        """
        check_block_input(x, self.in_channels, self._who)
        # N x in_channels x H x W -> N x out_channels x H' x W'
        return super().forward(x)

    def _who(self) -> str:
        return f"{self._get_name()}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, channels={self.channels}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        )
