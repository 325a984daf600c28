"""Number formats of the reports: byte sizes (1 KB = 1024 B), counts (powers of 1000), durations."""

from __future__ import annotations

__all__ = ["human_bytes", "human_count", "human_time"]


def human_bytes(n: int) -> str:
    """Format a byte count as Keras does (1 KB = 1024 bytes), from B up to PB.

    Example:
        >>> human_bytes(57344)
        '56.00 KB'
        >>> human_bytes(23785.98 * 2**30)
        '23.23 TB'
    """
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024:
            return f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} PB"


def human_count(n: int) -> str:
    """Format a count in powers of 1000, from units up to P (10^15).

    Example:
        >>> human_count(4_089_184_256)
        '4.09 G'
        >>> human_count(814_560 * 10**9), human_count(3 * 10**18)
        ('814.56 T', '3000.00 P')
    """
    value = float(n)
    for unit in ("", "K", "M", "G", "T"):
        if abs(value) < 1000:
            return f"{value:.2f} {unit}" if unit else f"{int(n)}"
        value /= 1000
    return f"{value:.2f} P"


def human_time(seconds: float | None) -> str:
    """Format seconds as s, ms or us with three significant digits ("--" for None).

    Example:
        >>> human_time(0.01234), human_time(4.5e-6), human_time(2.0), human_time(None)
        ('12.3 ms', '4.50 us', '2.00 s', '--')
    """
    if seconds is None:
        return "--"
    unit, scale = next(
        ((u, s) for u, s in (("s", 1.0), ("ms", 1e-3)) if abs(seconds) >= s), ("us", 1e-6)
    )
    value = seconds / scale
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    return f"{value:.{digits}f} {unit}"
