"""The 1x1 convolution as a layer: a per-pixel linear projection across channels."""

from __future__ import annotations

import math

import torch
from torch import nn

from onebyone import _kernels
from onebyone._checks import check_bool, check_int, check_layer_factory, check_project_input

__all__ = ["ChannelProjection"]


class ChannelProjection(nn.Module):
    """A 1x1 convolution: project every pixel's channel vector, then optional norm and activation.

    It keeps, reduces or increases the number of feature maps (the tutorial's projection
    layer). ``stride > 1`` keeps every ``stride``-th row and column, as projection shortcuts
    do. Parameters: ``in_channels * out_channels`` (+ ``out_channels`` with bias), plus those of
    the norm layer. ``weight`` (shape ``(out_channels, in_channels, 1, 1)``) and ``bias`` have
    exactly ``nn.Conv2d(kernel_size=1)``'s shapes and state_dict keys, so :meth:`from_conv` and
    :meth:`to_conv` are exact. Accepts NCHW and channels_last input (and unbatched
    ``(C, H, W)``) and returns the same memory format; the fastest formulation for the input
    is chosen (see :func:`onebyone.functional.channel_project`).

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        stride: spatial subsampling, >= 1.
        bias: add a learnable bias.
        norm_layer: called as ``norm_layer(out_channels)`` after the projection; ``None`` for
            no norm.
        act_layer: called as ``act_layer()`` last; ``None`` for a purely linear projection.
        device: where the parameters live.
        dtype: dtype of the parameters.

    Example:
        >>> proj = ChannelProjection(512, 64)
        >>> proj(torch.randn(1, 512, 8, 8)).shape
        torch.Size([1, 64, 8, 8])
        >>> sum(p.numel() for p in proj.parameters())
        32832
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        bias: bool = True,
        norm_layer: type[nn.Module] | None = None,
        act_layer: type[nn.Module] | None = nn.ReLU,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.stride = check_int("stride", stride)
        check_bool("bias", bias)
        check_layer_factory("norm_layer", norm_layer)
        check_layer_factory("act_layer", act_layer)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty(self.out_channels, self.in_channels, 1, 1, **factory)
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(self.out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self.norm = nn.Identity() if norm_layer is None else norm_layer(self.out_channels)
        self.act = nn.Identity() if act_layer is None else act_layer()
        if norm_layer is not None and (device is not None or dtype is not None):
            self.norm.to(**{k: v for k, v in factory.items() if v is not None})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as ``nn.Conv2d`` does (Kaiming-uniform weight, uniform bias).

        Example:
            >>> proj = ChannelProjection(16, 4)
            >>> proj.reset_parameters()
            >>> bool(proj.bias.abs().max() <= 1 / 16**0.5)
            True
        """
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_channels)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project, then apply the norm and the activation (when present).

        Example:
            >>> ChannelProjection(4, 2, stride=2)(torch.randn(1, 4, 5, 5)).shape
            torch.Size([1, 2, 3, 3])
        """
        # N x in_channels x H x W -> N x out_channels x H/stride x W/stride
        check_project_input(x, self.in_channels, self._who)
        x = _kernels.project(x, self.weight, self.bias, self.stride)
        # Identity placeholders are skipped: a module call costs microseconds per layer, and so
        # does each nn.Module.__getattr__; small layers at batch 1 are that overhead-bound.
        # (weight and bias go through __getattr__: pruning and weight_norm hooks replace them.)
        modules = self._modules
        norm, act = modules["norm"], modules["act"]
        if not isinstance(norm, nn.Identity):
            x = norm(x)
        return x if isinstance(act, nn.Identity) else act(x)

    def _who(self) -> str:
        return f"ChannelProjection({self.in_channels}, {self.out_channels})"

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, stride={self.stride}, "
            f"bias={self.bias is not None}"
        )

    @classmethod
    def from_conv(
        cls,
        conv: nn.Conv2d,
        *,
        norm_layer: type[nn.Module] | None = None,
        act_layer: type[nn.Module] | None = None,
    ) -> ChannelProjection:
        """Build a projection equal to a 1x1 ``nn.Conv2d`` (weights copied, not shared).

        The defaults add no norm and no activation, so the result computes exactly what
        ``conv`` computes.

        Args:
            conv: an ``nn.Conv2d`` with ``kernel_size=1``, ``padding=0``, ``groups=1`` and equal
                strides.
            norm_layer: as in the constructor.
            act_layer: as in the constructor.

        Raises:
            TypeError: if ``conv`` is not an ``nn.Conv2d``.
            ValueError: if it is not a plain 1x1 convolution.

        Example:
            >>> conv = nn.Conv2d(8, 4, 1)
            >>> x = torch.randn(2, 8, 5, 5)
            >>> torch.allclose(ChannelProjection.from_conv(conv)(x), conv(x), atol=1e-6)
            True
        """
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
        problems = []
        if tuple(conv.kernel_size) != (1, 1):
            problems.append(f"kernel_size={tuple(conv.kernel_size)} (expected (1, 1))")
        if conv.padding not in ((0, 0), "valid"):
            problems.append(f"padding={conv.padding} (expected 0)")
        if conv.groups != 1:
            problems.append(f"groups={conv.groups} (expected 1)")
        if conv.stride[0] != conv.stride[1]:
            problems.append(f"stride={tuple(conv.stride)} (expected equal strides)")
        if problems:
            raise ValueError(
                "ChannelProjection.from_conv needs a plain 1x1 convolution, got "
                + ", ".join(problems)
            )
        proj = cls(
            conv.in_channels,
            conv.out_channels,
            stride=conv.stride[0],
            bias=conv.bias is not None,
            norm_layer=norm_layer,
            act_layer=act_layer,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        with torch.no_grad():
            proj.weight.copy_(conv.weight)
            if conv.bias is not None:
                proj.bias.copy_(conv.bias)
        return proj

    def to_conv(self) -> nn.Conv2d:
        """Return an ``nn.Conv2d(kernel_size=1)`` with a copy of the projection's weight and bias.

        Only the projection is converted: a norm or activation layer is not part of the
        result (apply ``self.norm`` and ``self.act`` after it).

        Example:
            >>> proj = ChannelProjection(8, 4, act_layer=None)
            >>> x = torch.randn(2, 8, 5, 5)
            >>> torch.allclose(proj.to_conv()(x), proj(x), atol=1e-6)
            True
        """
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            kernel_size=1,
            stride=self.stride,
            bias=self.bias is not None,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(self.weight)
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv
