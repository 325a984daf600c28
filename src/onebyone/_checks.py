"""Argument checks shared by layers, blocks, models and surgery.

Every message names the argument, the value and what was expected.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any


def check_int(name: str, value: Any, *, minimum: int | None = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``.

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
    """
    expected = "an integer" if minimum is None else f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {expected}, got {value}")
    return value


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
