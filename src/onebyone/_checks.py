"""Argument checks shared by layers, blocks, models and surgery.

Every message names the argument, the value and what was expected.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.fx

#: Sizes, strides and counts must fit PyTorch's 64-bit integers.
MAX_INT = 2**63 - 1


def check_int(name: str, value: Any, *, minimum: int | None = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum`` (and at
    most :data:`MAX_INT`, the largest size PyTorch can hold).

    >>> check_int("pool_size", 4)
    4
    >>> check_int("pool_size", 0)
    Traceback (most recent call last):
    ...
    ValueError: pool_size must be an integer >= 1, got 0
    >>> check_int("offset", "3", minimum=None)
    Traceback (most recent call last):
    ...
    ValueError: offset must be an integer, got '3'
    >>> check_int("stride", 2**63)
    Traceback (most recent call last):
    ...
    ValueError: stride must be an integer <= 2**63 - 1 (a 64-bit size), got 9223372036854775808
    """
    expected = "an integer" if minimum is None else f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {expected}, got {value}")
    if abs(value) > MAX_INT:
        raise ValueError(f"{name} must be an integer <= 2**63 - 1 (a 64-bit size), got {value}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool, else raise TypeError (``"no"`` and ``None`` are not
    flags).

    >>> check_bool("bias", False)
    False
    >>> check_bool("bias", "no")
    Traceback (most recent call last):
    ...
    TypeError: bias must be a bool, got str 'no'
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def check_tensor(name: str, value: Any, *, optional: bool = False) -> None:
    """Raise TypeError unless ``value`` is a tensor (or ``None`` with ``optional``).

    >>> check_tensor("x", [1, 2])
    Traceback (most recent call last):
    ...
    TypeError: x must be a torch.Tensor, got list
    """
    if not isinstance(value, torch.Tensor) and not (optional and value is None):
        expected = "a torch.Tensor or None" if optional else "a torch.Tensor"
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}")


def check_pair(name: str, value: Any, *, minimum: int) -> tuple[int, int]:
    """Return an int or a pair of ints (each >= ``minimum``) as a pair, else raise.

    >>> check_pair("kernel_size", 3, minimum=1)
    (3, 3)
    >>> check_pair("padding", (1, -1), minimum=0)
    Traceback (most recent call last):
    ...
    ValueError: padding[1] must be an integer >= 0, got -1
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an integer or a pair of integers, got {value!r}")
        return (
            check_int(f"{name}[0]", value[0], minimum=minimum),
            check_int(f"{name}[1]", value[1], minimum=minimum),
        )
    value = check_int(name, value, minimum=minimum)
    return value, value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them.

    >>> check_choice("mode", "max", ("max", "avg"))
    'max'
    """
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_fraction(name: str, value: Any, *, low_open: bool = True, high_open: bool = False) -> float:
    """Return ``value`` as a float in (0, 1] (bounds configurable), else raise ValueError.

    >>> check_fraction("energy", 0.9)
    0.9
    >>> check_fraction("budget", 1.0, high_open=True)
    Traceback (most recent call last):
    ...
    ValueError: budget must be in (0, 1), got 1.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    low_ok = value > 0 if low_open else value >= 0
    high_ok = value < 1 if high_open else value <= 1
    if not (low_ok and high_ok):
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def check_number(name: str, value: Any, *, minimum: float = 0.0, inclusive: bool = False) -> float:
    """Return ``value`` as a finite float above ``minimum`` (or at it, with ``inclusive``).

    >>> check_number("lr", 0.05)
    0.05
    >>> check_number("weight_decay", 0, inclusive=True)
    0.0
    >>> check_number("--lr", float("inf"))
    Traceback (most recent call last):
    ...
    ValueError: --lr must be a number > 0, got inf
    """
    ok = (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and (value >= minimum if inclusive else value > minimum)
    )
    if not ok:
        bound = f"{'>=' if inclusive else '>'} {minimum:g}"
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")
    return float(value)


def check_layer_factory(name: str, value: Any, *, optional: bool = True) -> Any:
    """Return ``value`` if it is callable (a layer class or a factory) or, with ``optional``,
    ``None``; else raise TypeError.

    >>> check_layer_factory("norm_layer", None) is None
    True
    >>> check_layer_factory("norm_layer", 0.5)
    Traceback (most recent call last):
    ...
    TypeError: norm_layer must be a callable that builds a module (such as a layer class) or None, got float 0.5
    """
    if not callable(value) and not (optional and value is None):
        alternative = " or None" if optional else ""
        raise TypeError(
            f"{name} must be a callable that builds a module (such as a layer class)"
            f"{alternative}, got {type(value).__name__} {value!r}"
        )
    return value


# --------------------------------------------------------------------------------------------
# The channel layers: arguments of cross-channel pooling, and the tensors the layers receive.
# ``who`` names the caller in a message: a string, or a callable that builds it only when an
# error is raised (a layer's repr costs microseconds on every call otherwise).
# --------------------------------------------------------------------------------------------


def caller_name(who: str | Callable[[], str]) -> str:
    """The caller's name for an error message; ``who`` may be a callable that builds it.

    >>> caller_name(lambda: "CrossChannelPool(10)")
    'CrossChannelPool(10)'
    """
    return who() if callable(who) else who


def check_pool_args(
    pool_size: Any, mode: Any, grouping: Any, stride: Any, dim: Any, p: Any
) -> tuple[int, str, str, int, int, float]:
    """Validate the arguments of cross-channel pooling; return them normalised.

    ``stride=None`` becomes ``pool_size`` and ``p`` a float.

    >>> check_pool_args(10, "max", "contiguous", None, 1, 2)
    (10, 'max', 'contiguous', 10, 1, 2.0)
    >>> check_pool_args(2, "wta", "contiguous", 1, 1, 2.0)
    Traceback (most recent call last):
    ...
    ValueError: mode='wta' needs non-overlapping pools (stride == pool_size=2), got stride=1
    """
    from onebyone._kernels import POOL_GROUPINGS, POOL_MODES

    pool_size = check_int("pool_size", pool_size)
    mode = check_choice("mode", mode, POOL_MODES)
    grouping = check_choice("grouping", grouping, POOL_GROUPINGS)
    stride = pool_size if stride is None else check_int("stride", stride)
    if stride > pool_size:
        raise ValueError(
            f"stride must be <= pool_size={pool_size} (pools may overlap, not skip channels), "
            f"got {stride}"
        )
    if stride != pool_size and grouping != "contiguous":
        raise ValueError(
            f"stride={stride} < pool_size={pool_size} (overlapping pools) needs "
            f"grouping='contiguous', got grouping={grouping!r}"
        )
    if stride != pool_size and mode == "wta":
        raise ValueError(
            f"mode='wta' needs non-overlapping pools (stride == pool_size={pool_size}), "
            f"got stride={stride}"
        )
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise ValueError(f"dim must be an integer, got {dim!r}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not p > 0:
        raise ValueError(f"p must be a number > 0, got {p!r}")
    return pool_size, mode, grouping, stride, dim, float(p)


def pool_channels(
    channels: int, pool_size: int, stride: int, mode: str, who: str | Callable[[], str]
) -> int:
    """Output channels of pools over ``channels`` inputs (arguments checked); ValueError if
    the pools cannot cover them exactly.

    >>> pool_channels(7, 3, 2, "max", "cross_channel_pool")
    3
    >>> pool_channels(7, 2, 2, "max", "cross_channel_pool")
    Traceback (most recent call last):
    ...
    ValueError: cross_channel_pool: the channel count must be divisible by pool_size=2, got 7 channels
    """
    if stride == pool_size:
        if channels % pool_size:
            raise ValueError(
                f"{caller_name(who)}: the channel count must be divisible by "
                f"pool_size={pool_size}, got {channels} channels"
            )
        return channels if mode == "wta" else channels // pool_size
    if channels < pool_size or (channels - pool_size) % stride:
        raise ValueError(
            f"{caller_name(who)}: overlapping pools of pool_size={pool_size}, stride={stride} "
            f"cover pool_size + a multiple of stride channels (e.g. {pool_size}, "
            f"{pool_size + stride}, {pool_size + 2 * stride}), got {channels} channels"
        )
    return (channels - pool_size) // stride + 1


def check_pool_input(
    x: torch.Tensor, pool_size: int, stride: int, mode: str, dim: int, who: str | Callable[[], str]
) -> int:
    """Check that ``dim`` exists in ``x`` and that the pools cover it; return ``dim`` as >= 0.

    >>> check_pool_input(torch.zeros(2, 6), 3, 3, "max", -1, "cross_channel_pool")
    1
    """
    check_tensor("x", x)
    ndim = x.dim()
    if not -ndim <= dim < ndim or ndim == 0:
        raise ValueError(
            f"{caller_name(who)}: dim={dim} is out of range for a {ndim}-D input of shape "
            f"{tuple(x.shape)} (expected {-ndim} <= dim < {ndim})"
        )
    d = dim % ndim
    pool_channels(x.shape[d], pool_size, stride, mode, who)
    return d


def check_project_input(x: torch.Tensor, in_channels: int, who: str | Callable[[], str]) -> None:
    """Check that ``x`` is a ``(N, in_channels, H, W)`` or ``(in_channels, H, W)`` input with
    at least one pixel (``N = 0`` is allowed, as in ``nn.Conv2d``).

    >>> check_project_input(torch.zeros(3, 4, 4), 3, "channel_project")
    >>> check_project_input(torch.zeros(1, 4, 4, 4), 3, "channel_project")
    Traceback (most recent call last):
    ...
    ValueError: channel_project: expected 3 input channels (dim 1), got 4 (input shape (1, 4, 4, 4))
    """
    check_tensor("x", x)
    if x.dim() not in (3, 4):
        raise ValueError(
            f"{caller_name(who)}: expected a 4-D (N, C, H, W) or 3-D (C, H, W) input, "
            f"got {x.dim()}-D input of shape {tuple(x.shape)}"
        )
    channels = x.shape[-3]
    if channels != in_channels:
        raise ValueError(
            f"{caller_name(who)}: expected {in_channels} input channels (dim "
            f"{x.dim() - 3}), got {channels} (input shape {tuple(x.shape)})"
        )
    if not x.shape[-2] or not x.shape[-1]:
        # nn.Conv2d refuses these too ("Kernel size can't be greater than actual input size").
        raise ValueError(
            f"{caller_name(who)}: expected H and W >= 1, got input of shape {tuple(x.shape)}"
        )


def check_block_input(x: Any, in_channels: int, who: str | Callable[[], str]) -> None:
    """Check that a block's input is ``(N, in_channels, H, W)`` or ``(in_channels, H, W)``.

    Raises a ValueError naming the block and the shape before any convolution does (its
    message names a weight, not the block). Skipped while ``torch.fx`` traces the block.

    >>> check_block_input(torch.zeros(1, 3, 8, 8), 4, "BasicBlock(in_channels=4, ...)")
    Traceback (most recent call last):
    ...
    ValueError: BasicBlock(in_channels=4, ...): expected a 4-D (N, 4, H, W) or 3-D (4, H, W) input, got shape (1, 3, 8, 8)
    """
    if isinstance(x, torch.fx.Proxy):
        return
    check_tensor("x", x)
    if x.dim() not in (3, 4) or x.shape[-3] != in_channels:
        raise ValueError(
            f"{caller_name(who)}: expected a 4-D (N, {in_channels}, H, W) or 3-D "
            f"({in_channels}, H, W) input, got shape {tuple(x.shape)}"
        )


def check_speedup(speedup) -> float:
    """``speedup`` as a float, if it is a finite number above 1.

    >>> check_speedup(2)
    2.0
    >>> check_speedup(1.0)
    Traceback (most recent call last):
    ...
    ValueError: speedup must be a finite number > 1 (the target time is 1/speedup of the model's), got 1.0
    """
    if isinstance(speedup, bool) or not isinstance(speedup, numbers.Real):
        raise TypeError(f"speedup must be a number > 1, got {speedup!r}")
    speedup = float(speedup)
    if not math.isfinite(speedup) or speedup <= 1.0:
        raise ValueError(
            f"speedup must be a finite number > 1 (the target time is 1/speedup of the model's), got {speedup}"
        )
    return speedup


def check_max_error(name: str, value: Any) -> float:
    """``value`` as a float, if it is a number > 0 (a relative weight error cap; inf: no cap).

    >>> check_max_error("max_error", 0.25)
    0.25
    >>> check_max_error("--max-error", float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: --max-error must be a number > 0 (inf for no cap), got nan
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number > 0 (inf for no cap), got {value!r}")
    if not float(value) > 0:  # also refuses nan
        raise ValueError(f"{name} must be a number > 0 (inf for no cap), got {value!r}")
    return float(value)
