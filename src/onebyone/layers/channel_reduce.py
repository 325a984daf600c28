"""Parameter-free channel reductions: ``tensor.sum(dim)`` and ``tensor.mean(dim)`` as layers."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ChannelMean", "ChannelSum"]


def _check_dim(dim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise ValueError(f"dim must be an integer, got {dim!r}")
    return dim


def _check_keepdim(keepdim: bool) -> bool:
    if not isinstance(keepdim, bool):
        raise TypeError(f"keepdim must be a bool, got {type(keepdim).__name__} {keepdim!r}")
    return keepdim


class _ChannelReduce(nn.Module):
    def __init__(self, *, dim: int = 1, keepdim: bool = False) -> None:
        super().__init__()
        self.dim = _check_dim(dim)
        self.keepdim = _check_keepdim(keepdim)

    def _checked(self, x: torch.Tensor) -> None:
        if not -x.dim() <= self.dim < x.dim():
            raise ValueError(
                f"{self!r}: dim={self.dim} is out of range for a {x.dim()}-D input of shape "
                f"{tuple(x.shape)} (expected {-x.dim()} <= dim < {x.dim()})"
            )

    def extra_repr(self) -> str:
        return f"dim={self.dim}, keepdim={self.keepdim}"


class ChannelSum(_ChannelReduce):
    """Sum the feature maps: ``x.sum(dim, keepdim)``, the parameter-free channel reduction.

    Args:
        dim: the channel dimension (negative counts from the end).
        keepdim: keep ``dim`` with size 1 (one feature map) instead of dropping it.

    Example:
        >>> ChannelSum(keepdim=True)(torch.ones(2, 50, 4, 4)).shape
        torch.Size([2, 1, 4, 4])
        >>> ChannelSum()(torch.ones(2, 50, 4, 4))[0, 0, 0]
        tensor(50.)
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over ``dim``.

        Example:
            >>> ChannelSum(dim=-1)(torch.tensor([[1.0, 2.0, 3.0]]))
            tensor([6.])
        """
        self._checked(x)
        return x.sum(self.dim, keepdim=self.keepdim)


class ChannelMean(_ChannelReduce):
    """Average the feature maps: ``x.mean(dim, keepdim)``.

    Args:
        dim: the channel dimension (negative counts from the end).
        keepdim: keep ``dim`` with size 1 instead of dropping it.

    Example:
        >>> ChannelMean()(torch.arange(4.0).view(1, 4, 1, 1)).flatten()
        tensor([1.5000])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Average over ``dim``.

        Example:
            >>> ChannelMean(dim=-1)(torch.tensor([[1.0, 2.0, 3.0]]))
            tensor([2.])
        """
        self._checked(x)
        return x.mean(self.dim, keepdim=self.keepdim)
