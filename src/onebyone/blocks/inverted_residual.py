"""``InvertedResidual``: MobileNetV2's block, a 1x1 expansion, a 3x3 depthwise convolution and
a linear 1x1 projection, with a shortcut when the shape stays."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from onebyone._checks import check_block_input, check_int, check_layer_factory

from .conv_block import ConvNormAct

__all__ = ["InvertedResidual"]


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual block (Sandler et al., 2018).

    A 1x1 convolution expands ``in_channels`` to ``mid_channels = in_channels * expand_ratio``
    (left out when ``expand_ratio`` is 1), a 3x3 depthwise convolution filters each map, and a
    1x1 convolution without activation projects to ``out_channels``: most of the block's
    weights and multiply-adds are in the two 1x1 convolutions. The input is added back when
    ``stride == 1`` and ``in_channels == out_channels``. Submodules are named as in
    torchvision (``conv.0.0``, ``conv.1.0``, ``conv.2``, ``conv.3``), so its checkpoints load.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        stride: stride of the depthwise convolution, 1 or 2.
        expand_ratio: ``mid_channels / in_channels``, >= 1.
        norm_layer: the norm after each convolution.
        act_layer: the activation after the expansion and the depthwise convolution.

    Raises:
        ValueError: a width, stride or ratio out of range.

    Example:
        >>> import torch
        >>> block = InvertedResidual(24, 24, stride=1, expand_ratio=6)
        >>> block.mid_channels, block.use_res_connect
        (144, True)
        >>> block(torch.randn(2, 24, 8, 8)).shape
        torch.Size([2, 24, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        expand_ratio: int = 6,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: Callable[..., nn.Module] = nn.ReLU6,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.stride = check_int("stride", stride)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.expand_ratio = check_int("expand_ratio", expand_ratio)
        check_layer_factory("norm_layer", norm_layer, optional=False)
        check_layer_factory("act_layer", act_layer, optional=False)
        self.mid_channels = in_channels * expand_ratio
        self.use_res_connect = stride == 1 and in_channels == out_channels

        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(
                ConvNormAct(
                    in_channels, self.mid_channels, kernel_size=1,
                    norm_layer=norm_layer, act_layer=act_layer,
                )
            )  # fmt: skip
        layers += [
            ConvNormAct(
                self.mid_channels, self.mid_channels, kernel_size=3, stride=stride,
                groups=self.mid_channels, norm_layer=norm_layer, act_layer=act_layer,
            ),
            nn.Conv2d(self.mid_channels, out_channels, 1, bias=False),
            norm_layer(out_channels),
        ]  # fmt: skip
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Expand, filter depthwise, project; add the input when the shape stays.

        Example:
            >>> import torch
            >>> InvertedResidual(8, 16, stride=2)(torch.randn(2, 8, 6, 6)).shape
            torch.Size([2, 16, 3, 3])
        """
        check_block_input(x, self.in_channels, self._who)
        # N x in x H x W -> N x mid x H x W -> N x mid x H/s x W/s -> N x out x H/s x W/s
        out = self.conv(x)
        return x + out if self.use_res_connect else out

    def zero_init_last(self) -> None:
        """Zero the last norm's weight, so a block with a shortcut starts as the identity.

        Example:
            >>> import torch
            >>> block = InvertedResidual(8, 8).eval()
            >>> block.zero_init_last()
            >>> x = torch.randn(1, 8, 4, 4)
            >>> torch.equal(block(x), x)
            True
        """
        weight = getattr(self.conv[-1], "weight", None)
        if isinstance(weight, nn.Parameter):
            nn.init.zeros_(weight)

    def _who(self) -> str:
        return f"{self._get_name()}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"stride={self.stride}, expand_ratio={self.expand_ratio}"
        )
