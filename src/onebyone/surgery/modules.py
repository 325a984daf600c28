"""The layers that :func:`~onebyone.surgery.decompose` puts in place of a convolution or a Linear.

Both are ``nn.Sequential`` subclasses, so a decomposed model's ``state_dict`` keys read
``features.3.0.weight``, ``features.3.1.weight``...; their constructors rebuild the structure
from the recorded ranks alone, which is how :func:`~onebyone.surgery.load` replays a plan.
"""

from __future__ import annotations

from torch import nn

from onebyone._checks import check_choice, check_int

__all__ = ["DecomposedConv2d", "DecomposedLinear"]

CONV_METHODS = ("tucker2", "reduce")


class DecomposedConv2d(nn.Sequential):
    """A kxk convolution rewritten as a chain of convolutions with a low-rank bottleneck.

    ``method="tucker2"``: 1x1 (in_channels -> ranks[1]), kxk (ranks[1] -> ranks[0]) with the
    original stride, padding and dilation, 1x1 (ranks[0] -> out_channels) carrying the bias.
    ``method="reduce"``: 1x1 (in_channels -> ranks[0]), then kxk (ranks[0] -> out_channels)
    with the bias: the tutorial's 1x1 reduction in front of an expensive convolution.
    Nothing nonlinear sits between the parts, so :func:`~onebyone.surgery.fuse` merges them back.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        kernel_size: the kxk convolution's kernel size.
        stride: the kxk convolution's stride.
        padding: the kxk convolution's padding.
        dilation: the kxk convolution's dilation.
        padding_mode: the kxk convolution's padding mode.
        bias: whether the last convolution has a bias.
        method: "tucker2" or "reduce".
        ranks: ``(rank_out, rank_in)`` for tucker2, ``(rank,)`` for reduce (required: the
            ranks are what the decomposition chose).

    Example:
        >>> m = DecomposedConv2d(64, 128, kernel_size=3, padding=1, ranks=(32, 16))
        >>> [tuple(c.weight.shape) for c in m]
        [(16, 64, 1, 1), (32, 16, 3, 3), (128, 32, 1, 1)]
        >>> [tuple(c.weight.shape) for c in DecomposedConv2d(64, 128, method="reduce", ranks=(8,))]
        [(8, 64, 1, 1), (128, 8, 3, 3)]
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        padding_mode: str = "zeros",
        bias: bool = True,
        method: str = "tucker2",
        ranks: tuple[int, ...],
    ) -> None:
        in_channels = check_int("in_channels", in_channels)
        out_channels = check_int("out_channels", out_channels)
        check_choice("method", method, CONV_METHODS)
        if isinstance(ranks, int) and not isinstance(ranks, bool):
            ranks = (ranks,)
        if not isinstance(ranks, tuple | list):
            raise TypeError(f"ranks must be a tuple of ints, got {ranks!r}")
        ranks = tuple(ranks)
        expected = 2 if method == "tucker2" else 1
        if len(ranks) != expected:
            raise ValueError(f"ranks for method {method!r} must have {expected} entries, got {ranks}")
        ranks = tuple(check_int("ranks", r) for r in ranks)
        geometry = dict(
            kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
            padding_mode=padding_mode,
        )
        if method == "tucker2":
            rank_out, rank_in = ranks
            layers = [
                nn.Conv2d(in_channels, rank_in, 1, bias=False),
                nn.Conv2d(rank_in, rank_out, bias=False, **geometry),
                nn.Conv2d(rank_out, out_channels, 1, bias=bias),
            ]
        else:
            (rank,) = ranks
            layers = [
                nn.Conv2d(in_channels, rank, 1, bias=False),
                nn.Conv2d(rank, out_channels, bias=bias, **geometry),
            ]
        super().__init__(*layers)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.method = method
        self.ranks = ranks

    def extra_repr(self) -> str:
        """The constructor's arguments, as ``print(model)`` shows them.

        >>> DecomposedConv2d(8, 4, method="reduce", ranks=(2,)).extra_repr()
        "8, 4, method='reduce', ranks=(2,)"
        """
        return f"{self.in_channels}, {self.out_channels}, method={self.method!r}, ranks={self.ranks}"


class DecomposedLinear(nn.Sequential):
    """A Linear layer rewritten as two Linears through ``rank`` features (truncated SVD).

    Args:
        in_features: features of the input.
        out_features: features of the output.
        rank: width of the bottleneck.
        bias: whether the second Linear has a bias.

    Example:
        >>> m = DecomposedLinear(512, 10, rank=8)
        >>> [tuple(l.weight.shape) for l in m]
        [(8, 512), (10, 8)]
    """

    def __init__(self, in_features: int, out_features: int, *, rank: int = 1, bias: bool = True) -> None:
        in_features = check_int("in_features", in_features)
        out_features = check_int("out_features", out_features)
        rank = check_int("rank", rank)
        super().__init__(nn.Linear(in_features, rank, bias=False), nn.Linear(rank, out_features, bias=bias))
        self.in_features = in_features
        self.out_features = out_features
        self.method = "svd"
        self.ranks = (rank,)

    def extra_repr(self) -> str:
        """The constructor's arguments, as ``print(model)`` shows them.

        >>> DecomposedLinear(512, 10, rank=8).extra_repr()
        '512, 10, rank=8'
        """
        return f"{self.in_features}, {self.out_features}, rank={self.ranks[0]}"
