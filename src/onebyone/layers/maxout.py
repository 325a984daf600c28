"""Maxout units (Goodfellow et al. 2013): a linear or convolutional layer, then a max over pieces."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from onebyone._checks import check_bool, check_choice, check_int, check_pair
from onebyone.functional import POOL_GROUPINGS
from onebyone.layers.channel_pool import CrossChannelPool

__all__ = ["Maxout", "MaxoutConv2d"]


class Maxout(nn.Module):
    """A linear layer with ``out_features * pieces`` units followed by a max over the pieces.

    Output unit ``j`` is the max of units ``j*pieces .. j*pieces + pieces - 1`` of
    ``self.linear`` (``grouping="contiguous"``, as pylearn2 does), or of units
    ``j, j + out_features, ...`` (``grouping="interleaved"``, as TensorFlow Addons does).

    Args:
        in_features: size of each input sample.
        out_features: number of maxout units.
        pieces: linear pieces per unit, >= 1.
        bias: give the linear layer a bias.
        grouping: ``"contiguous"`` or ``"interleaved"``.

    Raises:
        ValueError: on a bad size or grouping here, and at call time on an input whose last
            dimension is not ``in_features``.
        TypeError: on a ``bias`` that is not a bool.

    Example:
        >>> m = Maxout(20, 5, pieces=3)
        >>> m(torch.randn(4, 20)).shape
        torch.Size([4, 5])
        >>> m.linear.out_features
        15
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        pieces: int,
        bias: bool = True,
        grouping: str = "contiguous",
    ) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        self.pieces = check_int("pieces", pieces)
        self.grouping = check_choice("grouping", grouping, POOL_GROUPINGS)
        check_bool("bias", bias)
        self.linear = nn.Linear(self.in_features, self.out_features * self.pieces, bias=bias)
        self.pool = CrossChannelPool(self.pieces, mode="max", grouping=self.grouping, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The linear layer, then the max over each unit's pieces.

        Example:
            >>> Maxout(3, 2, pieces=2)(torch.randn(5, 3)).shape
            torch.Size([5, 2])
        """
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{self._get_name()}({self.in_features}, {self.out_features}): expected "
                f"{self.in_features} input features (last dim), got input of shape "
                f"{tuple(x.shape)}"
            )
        # ... x in_features -> ... x out_features*pieces -> ... x out_features
        return self.pool(self.linear(x))

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, pieces={self.pieces}, "
            f"bias={self.linear.bias is not None}, grouping={self.grouping!r}"
        )


def _check_conv_kwargs(
    in_channels: int, out_channels: int, kernel_size: Any, conv_kwargs: dict[str, Any]
) -> None:
    """Check the geometry ``nn.Conv2d`` would otherwise accept and fail on later (or never)."""
    check_pair("kernel_size", kernel_size, minimum=1)
    check_pair("stride", conv_kwargs.get("stride", 1), minimum=1)
    check_pair("dilation", conv_kwargs.get("dilation", 1), minimum=1)
    padding = conv_kwargs.get("padding", 0)
    if isinstance(padding, str):
        check_choice("padding", padding, ("valid", "same"))
    else:
        check_pair("padding", padding, minimum=0)
    groups = check_int("groups", conv_kwargs.get("groups", 1))
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups={groups} must divide in_channels={in_channels} and out_channels * pieces="
            f"{out_channels}"
        )
    check_bool("bias", conv_kwargs.get("bias", True))


class MaxoutConv2d(nn.Module):
    """A convolution with ``out_channels * pieces`` maps followed by a max over the pieces.

    Args:
        in_channels: channels of the input.
        out_channels: number of maxout feature maps.
        kernel_size: as in ``nn.Conv2d``.
        pieces: feature maps per output map, >= 1.
        grouping: ``"contiguous"`` or ``"interleaved"``.
        **conv_kwargs: passed on to ``nn.Conv2d`` (``stride``, ``padding``, ``bias``, ...).

    Raises:
        ValueError: on a bad size, geometry (``kernel_size``, ``stride``, ``padding``,
            ``dilation``, ``groups``) or grouping here, and at call time on an input that is
            not ``(N, in_channels, H, W)`` or ``(in_channels, H, W)``.
        TypeError: on a ``bias`` that is not a bool.

    Example:
        >>> m = MaxoutConv2d(3, 8, 3, pieces=2, padding=1)
        >>> m(torch.randn(1, 3, 16, 16)).shape
        torch.Size([1, 8, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        pieces: int,
        grouping: str = "contiguous",
        **conv_kwargs: Any,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.pieces = check_int("pieces", pieces)
        self.grouping = check_choice("grouping", grouping, POOL_GROUPINGS)
        _check_conv_kwargs(self.in_channels, self.out_channels * self.pieces, kernel_size, conv_kwargs)
        self.conv = nn.Conv2d(
            self.in_channels, self.out_channels * self.pieces, kernel_size, **conv_kwargs
        )
        # dim=-3 so that unbatched (C, H, W) input works as it does for nn.Conv2d.
        self.pool = CrossChannelPool(self.pieces, mode="max", grouping=self.grouping, dim=-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution, then the max over each output map's pieces.

        Example:
            >>> MaxoutConv2d(3, 2, 3, pieces=2)(torch.randn(1, 3, 5, 5)).shape
            torch.Size([1, 2, 3, 3])
        """
        if x.dim() not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ValueError(
                f"{self._get_name()}({self.in_channels}, {self.out_channels}): expected a 4-D "
                f"(N, {self.in_channels}, H, W) or 3-D ({self.in_channels}, H, W) input, got "
                f"shape {tuple(x.shape)}"
            )
        # N x in_channels x H x W -> N x out_channels*pieces x H' x W' -> N x out_channels x H' x W'
        return self.pool(self.conv(x))

    def extra_repr(self) -> str:
        c = self.conv
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={c.kernel_size}, pieces={self.pieces}"
        if c.stride != (1,) * len(c.stride):
            s += f", stride={c.stride}"
        if c.padding != (0,) * len(c.padding) and c.padding != "valid":
            s += f", padding={c.padding}"
        if c.bias is None:
            s += ", bias=False"
        return s + f", grouping={self.grouping!r}"
