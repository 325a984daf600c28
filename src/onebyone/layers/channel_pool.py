"""Cross-channel pooling: pool groups of feature maps into one (Maxout networks, NIN)."""

from __future__ import annotations

import torch
from torch import nn

from onebyone import _kernels
from onebyone._checks import check_pool_args, check_pool_input, pool_channels

__all__ = ["CrossChannelPool"]


class CrossChannelPool(nn.Module):
    """Pool groups of ``pool_size`` feature maps into one, at every position.

    The seed's example: 50 feature maps -> 5, each output point the max over the same point
    of 10 maps. See :func:`onebyone.functional.cross_channel_pool` for the exact grouping
    rules. Works on tensors of any rank (dense features, 1-D, 2-D and 3-D maps) along ``dim``
    and has no parameters.

    Args:
        pool_size: channels per group, >= 1.
        mode: ``"max"``, ``"avg"``, ``"sum"``, ``"lp"`` (p-norm, exponent ``p``) or ``"wta"``
            (winner-take-all: same shape, non-maxima zeroed).
        grouping: ``"contiguous"`` (output ``j`` pools channels ``j*k .. j*k+k-1``, as Lasagne
            and pylearn2 do) or ``"interleaved"`` (channels ``j, j+n, j+2n, ...``, as
            TensorFlow Addons' ``Maxout`` does).
        stride: distance between consecutive groups, ``<= pool_size``; ``None`` means
            ``pool_size``. Smaller values give overlapping pools (pylearn2's ``pool_stride``).
        dim: the channel dimension (negative counts from the end).
        p: exponent of ``"lp"`` pooling, > 0.

    Raises:
        ValueError: on bad arguments here, and at call time on a ``dim`` out of range or a
            channel count the pools cannot cover.

    Example:
        >>> pool = CrossChannelPool(10)
        >>> pool(torch.randn(2, 50, 7, 7)).shape
        torch.Size([2, 5, 7, 7])
        >>> pool
        CrossChannelPool(pool_size=10, mode='max', grouping='contiguous', stride=10, dim=1)
    """

    def __init__(
        self,
        pool_size: int,
        *,
        mode: str = "max",
        grouping: str = "contiguous",
        stride: int | None = None,
        dim: int = 1,
        p: float = 2.0,
    ) -> None:
        super().__init__()
        (self.pool_size, self.mode, self.grouping, self.stride, self.dim, self.p) = (
            check_pool_args(pool_size, mode, grouping, stride, dim, p)
        )

    def output_channels(self, in_channels: int) -> int:
        """Number of output channels for ``in_channels`` inputs along ``dim``.

        Raises:
            ValueError: if the pools cannot cover ``in_channels`` exactly.

        Example:
            >>> CrossChannelPool(10).output_channels(50)
            5
        """
        return pool_channels(in_channels, self.pool_size, self.stride, self.mode, self.__repr__)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool groups of ``pool_size`` entries along ``dim`` into one.

        Example:
            >>> CrossChannelPool(2, dim=-1)(torch.tensor([[1.0, 3.0, 2.0, 0.0]]))
            tensor([[3., 2.]])
        """
        d = check_pool_input(x, self.pool_size, self.stride, self.mode, self.dim, self.__repr__)
        return _kernels.pool(x, self.pool_size, self.mode, self.grouping, self.stride, d, self.p)

    def extra_repr(self) -> str:
        s = (
            f"pool_size={self.pool_size}, mode={self.mode!r}, grouping={self.grouping!r}, "
            f"stride={self.stride}, dim={self.dim}"
        )
        if self.mode == "lp":
            s += f", p={self.p}"
        return s
