"""The time part of a report's text: durations, the traffic and time lines, where the time goes.

Like ``_text``, it reads a report by its attributes only and imports nothing from ``report``.
"""

from __future__ import annotations

from typing import Any

from ._units import human_bytes, human_time

__all__ = ["time_lines", "where_time_goes"]


def time_lines(report: Any) -> list[str]:
    """The footer lines about traffic and time: totals, the profile, the measurement.

    Example:
        >>> from torch import nn
        >>> import onebyone
        >>> r = onebyone.analyze(nn.Linear(4, 2), (1, 4), device_profile="t4")
        >>> print(time_lines(r)[0])
        Traffic: 56.00 B read, 8.00 B written (each op reads its inputs and writes its outputs once; views move nothing)
    """
    lines = [
        f"Traffic: {human_bytes(report.bytes_read)} read, {human_bytes(report.bytes_written)} "
        "written (each op reads its inputs and writes its outputs once; views move nothing)",
        f"Estimated time: {human_time(report.est_time_s)} on {report.device_profile} "
        "(per op: max(FLOPs / rate, bytes / bandwidth) + overhead)",
    ]
    if report.measured_time_s is not None:
        lines.append(
            f"Measured time: {human_time(report.measured_time_s)} (median of "
            f"{report.measured_repeats} runs on {report.measured_device}; a row's time is its own, "
            "children excluded)"
        )
    return lines


def where_time_goes(report: Any, top: int = 5) -> list[str]:
    """One line per layer among the ``top`` that take the most time (measured, else estimated).

    Example:
        >>> from torch import nn
        >>> import onebyone
        >>> m = nn.Sequential(nn.Conv2d(3, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3))
        >>> r = onebyone.analyze(m, (1, 3, 32, 32), device_profile="t4")
        >>> where_time_goes(r, top=1)[1].split()[:2]
        ['2', '(Conv2d):']
    """
    measured = report.measured_time_s is not None
    rows = [r for r in report.rows if (r.measured_time_s if measured else r.est_time_s)]
    if not rows:
        return []
    value = (lambda r: r.measured_time_s) if measured else (lambda r: r.est_time_s)
    total = sum(value(r) for r in rows)
    lines = [f"Where the time goes ({'measured' if measured else 'estimated'}), top {top}:"]
    for r in sorted(rows, key=value, reverse=True)[:top]:
        share = 100 * value(r) / total if total else 0.0
        bound = f", estimate {r.bound}-bound" if r.bound else ""
        lines.append(
            f"  {r.name or '(model)'} ({r.type}): {human_time(value(r))}, {share:.1f}%{bound}"
        )
    return lines

