"""Residual blocks: ``BasicBlock``, ``Bottleneck`` and the parameter-free ``ZeroPadShortcut``.

Shortcut options follow He et al. (2015):

- ``"A"``: identity; where the shape changes, subsample and zero-pad the new channels
  (no parameters; the CIFAR ResNets).
- ``"B"``: identity; where the shape changes, a 1x1 projection and a norm (torchvision's
  choice; the 1x1 convolution matches the depth the seed describes).
- ``"C"``: always a 1x1 projection and a norm.

Submodules are named as in torchvision (``conv1``, ``bn1``, ..., ``downsample.0``,
``downsample.1``), so its checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from onebyone._checks import check_block_input, check_choice, check_int, check_layer_factory

__all__ = ["SHORTCUTS", "BasicBlock", "Bottleneck", "ZeroPadShortcut"]

SHORTCUTS = ("A", "B", "C")


class ZeroPadShortcut(nn.Module):
    """Option A shortcut: take every ``stride``-th pixel and zero-pad the channels.

    The new channels are split evenly before and after the input's (as in the widely used
    CIFAR ResNet checkpoints). It has no parameters.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output; must be >= ``in_channels``.
        stride: spatial subsampling factor.

    Raises:
        ValueError: ``out_channels < in_channels`` (zero-padding cannot remove channels).

    Example:
        >>> import torch
        >>> shortcut = ZeroPadShortcut(16, 32, stride=2)
        >>> y = shortcut(torch.ones(1, 16, 8, 8))
        >>> y.shape, y.sum().item()
        (torch.Size([1, 32, 4, 4]), 256.0)
    """

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.stride = check_int("stride", stride)
        if out_channels < in_channels:
            raise ValueError(
                f"shortcut 'A' zero-pads channels, so out_channels must be >= in_channels "
                f"({in_channels}), got {out_channels}; use shortcut 'B' or 'C' to project"
            )
        extra = out_channels - in_channels
        self.pad_before = extra // 2
        self.pad_after = extra - extra // 2

    def forward(self, x: Tensor) -> Tensor:
        """Subsample and zero-pad the channels.

        Example:
            >>> import torch
            >>> ZeroPadShortcut(2, 4)(torch.ones(1, 2, 1, 1)).flatten().tolist()
            [0.0, 1.0, 1.0, 0.0]
        """
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad_before or self.pad_after:
            x = F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))
        return x

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, stride={self.stride}"


def _norm(norm_layer: Callable[[int], nn.Module] | None, channels: int) -> nn.Module:
    # None means no norm: an Identity keeps the attribute (and the forward) in place.
    return nn.Identity() if norm_layer is None else norm_layer(channels)


def _zero_weight(norm: nn.Module) -> None:
    weight = getattr(norm, "weight", None)
    if isinstance(weight, nn.Parameter):
        nn.init.zeros_(weight)


def _act(act_layer: Callable[..., nn.Module] | None) -> nn.Module:
    if act_layer is None:
        return nn.Identity()
    try:
        return act_layer(inplace=True)
    except TypeError:  # an activation without an inplace flag (GELU, SiLU subclasses...)
        return act_layer()


def _shortcut(
    shortcut: str,
    in_channels: int,
    out_channels: int,
    stride: int,
    norm_layer: Callable[[int], nn.Module] | None,
) -> nn.Module | None:
    same_shape = stride == 1 and in_channels == out_channels
    if shortcut == "A":
        return None if same_shape else ZeroPadShortcut(in_channels, out_channels, stride=stride)
    if shortcut == "B" and same_shape:
        return None
    if norm_layer is None:
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride))
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        norm_layer(out_channels),
    )


def _check_block(
    block: nn.Module,
    in_channels: int,
    mid_channels: int,
    stride: int,
    shortcut: str,
    norm_layer: Callable[[int], nn.Module] | None,
    act_layer: Callable[..., nn.Module] | None,
) -> None:
    # The arguments BasicBlock and Bottleneck share, checked and set on the block (with
    # out_channels = mid_channels * expansion); an "A" shortcut cannot remove channels.
    check_layer_factory("norm_layer", norm_layer)
    check_layer_factory("act_layer", act_layer)
    block.in_channels = check_int("in_channels", in_channels)
    block.mid_channels = check_int("mid_channels", mid_channels)
    block.stride = check_int("stride", stride)
    block.shortcut = check_choice("shortcut", shortcut, SHORTCUTS)
    block.out_channels = mid_channels * block.expansion
    if shortcut == "A" and block.out_channels < in_channels:
        raise ValueError(
            f"shortcut 'A' cannot pad {in_channels} input channels down to "
            f"{block.out_channels}; use shortcut 'B' or 'C'"
        )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (ResNet-18/34 and the CIFAR ResNets).

    Args:
        in_channels: channels of the input.
        mid_channels: width of both convolutions; the output has
            ``mid_channels * expansion`` (= ``mid_channels``) channels.
        stride: stride of the first convolution (and of the shortcut).
        shortcut: ``"A"``, ``"B"`` or ``"C"`` (see the module docstring).
        norm_layer: the norm after each convolution and in projection shortcuts, or ``None``
            for none (the convolutions then have biases).
        act_layer: the activation, built as ``act_layer(inplace=True)`` (or ``act_layer()``
            when it has no ``inplace``), or ``None`` for none.

    Raises:
        ValueError: a width or stride < 1, an unknown ``shortcut``, or an ``"A"`` shortcut
            that would have to remove channels.

    Example:
        >>> import torch
        >>> block = BasicBlock(16, 32, stride=2, shortcut="A")
        >>> block(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 32, 4, 4])
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        *,
        stride: int = 1,
        shortcut: str = "B",
        norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
        act_layer: Callable[..., nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        _check_block(self, in_channels, mid_channels, stride, shortcut, norm_layer, act_layer)
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 3, stride=stride, padding=1, bias=norm_layer is None)
        self.bn1 = _norm(norm_layer, mid_channels)
        self.act1 = _act(act_layer)
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, padding=1, bias=norm_layer is None)
        self.bn2 = _norm(norm_layer, mid_channels)
        self.downsample = _shortcut(shortcut, in_channels, self.out_channels, stride, norm_layer)
        self.act2 = _act(act_layer)

    def zero_init_last(self) -> None:
        """Zero the last norm's weight (``bn2``), so the block starts as its shortcut alone.

        Does nothing without an affine norm (``norm_layer=None``).

        Example:
            >>> import torch
            >>> block = BasicBlock(8, 8).eval()
            >>> block.zero_init_last()
            >>> x = torch.randn(1, 8, 4, 4)
            >>> torch.equal(block(x), torch.relu(x))
            True
        """
        _zero_weight(self.bn2)

    def forward(self, x: Tensor) -> Tensor:
        """Two 3x3 convolutions plus the shortcut, then the activation.

        Example:
            >>> import torch
            >>> BasicBlock(8, 16, stride=2)(torch.randn(2, 8, 6, 6)).shape
            torch.Size([2, 16, 3, 3])
        """
        check_block_input(x, self.in_channels, self._who)
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + identity)

    def _who(self) -> str:
        return f"{self._get_name()}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, mid_channels={self.mid_channels}, "
            f"stride={self.stride}, shortcut={self.shortcut!r}"
        )


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 restore (x4), with a shortcut (ResNet-50/101/152).

    Args:
        in_channels: channels of the input.
        mid_channels: width of the 1x1 reduction and the 3x3 convolution; the output has
            ``mid_channels * expansion`` (= 4 * ``mid_channels``) channels.
        stride: spatial stride of the block (and of the shortcut).
        shortcut: ``"A"``, ``"B"`` or ``"C"`` (see the module docstring).
        stride_in_1x1: put the stride in the first 1x1 convolution (ResNet v1, the paper)
            instead of the 3x3 (v1.5, torchvision).
        norm_layer: the norm after each convolution and in projection shortcuts, or ``None``
            for none (the convolutions then have biases).
        act_layer: the activation, built as ``act_layer(inplace=True)`` (or ``act_layer()``
            when it has no ``inplace``), or ``None`` for none.

    Raises:
        ValueError: a width or stride < 1, an unknown ``shortcut``, or an ``"A"`` shortcut
            that would have to remove channels.

    Example:
        >>> import torch
        >>> block = Bottleneck(256, 128, stride=2)
        >>> block.out_channels
        512
        >>> block(torch.randn(2, 256, 8, 8)).shape
        torch.Size([2, 512, 4, 4])
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        *,
        stride: int = 1,
        shortcut: str = "B",
        stride_in_1x1: bool = False,
        norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
        act_layer: Callable[..., nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        _check_block(self, in_channels, mid_channels, stride, shortcut, norm_layer, act_layer)
        if not isinstance(stride_in_1x1, bool):
            raise TypeError(f"stride_in_1x1 must be a bool, got {stride_in_1x1!r}")
        self.stride_in_1x1 = stride_in_1x1
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1, stride=stride_1x1, bias=norm_layer is None)
        self.bn1 = _norm(norm_layer, mid_channels)
        self.act1 = _act(act_layer)
        self.conv2 = nn.Conv2d(
            mid_channels, mid_channels, 3, stride=stride_3x3, padding=1, bias=norm_layer is None
        )
        self.bn2 = _norm(norm_layer, mid_channels)
        self.act2 = _act(act_layer)
        self.conv3 = nn.Conv2d(mid_channels, self.out_channels, 1, bias=norm_layer is None)
        self.bn3 = _norm(norm_layer, self.out_channels)
        self.downsample = _shortcut(shortcut, in_channels, self.out_channels, stride, norm_layer)
        self.act3 = _act(act_layer)

    def zero_init_last(self) -> None:
        """Zero the last norm's weight (``bn3``), so the block starts as its shortcut alone.

        Does nothing without an affine norm (``norm_layer=None``).

        Example:
            >>> block = Bottleneck(64, 16)
            >>> block.zero_init_last()
            >>> block.bn3.weight.abs().sum().item()
            0.0
        """
        _zero_weight(self.bn3)

    def forward(self, x: Tensor) -> Tensor:
        """1x1 reduce, 3x3, 1x1 restore plus the shortcut, then the activation.

        Example:
            >>> import torch
            >>> Bottleneck(16, 4)(torch.randn(2, 16, 5, 5)).shape
            torch.Size([2, 16, 5, 5])
        """
        check_block_input(x, self.in_channels, self._who)
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        # N x mid x H x W (v1: already subsampled)
        out = self.act2(self.bn2(self.conv2(out)))
        # N x mid x H/stride x W/stride
        out = self.bn3(self.conv3(out))
        # N x 4*mid x H/stride x W/stride
        return self.act3(out + identity)

    def _who(self) -> str:
        return f"{self._get_name()}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, mid_channels={self.mid_channels}, "
            f"stride={self.stride}, shortcut={self.shortcut!r}, stride_in_1x1={self.stride_in_1x1}"
        )
