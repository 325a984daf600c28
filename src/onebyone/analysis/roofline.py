"""The roofline time model: each operator's estimated time on a device profile.

For one operator with ``F`` FLOPs moving ``B`` bytes, on a profile with rate ``R`` for the
operator's class, bandwidth ``W`` and per-op overhead ``o``::

    time = max(F / R, B / W) + o

``W`` is the profile's cache bandwidth when ``B`` fits in its ``cache_bytes`` (an operator on
small tensors that the previous operator just wrote), else its memory bandwidth.

and its bound is ``compute`` when ``F / R`` is the larger term, ``memory`` when ``B / W`` is,
and ``overhead`` when ``o`` exceeds both. A row's estimate sums its own operators; its bound is
the one that accounts for most of its time. The assumptions (each operator reads its inputs and
writes its outputs once, no reuse across operators, views free, sustained rates) are those of
``_traffic``; fused kernels, caches and parallel streams make real runs differ.
"""

from __future__ import annotations

import copy
import os

from .profiles import DeviceProfile, resolve_profile
from .report import OpCost, Report

__all__ = ["estimate", "op_time"]


def op_time(cost: OpCost, profile: DeviceProfile, dtype: str = "float32") -> tuple[float, str]:
    """Estimated seconds of one operator and its bound.

    Example:
        >>> from onebyone.analysis.profiles import PRESETS
        >>> t4 = PRESETS["t4"]  # 8.1 TFLOP/s float32, 320 GB/s, 5 us per op
        >>> t, bound = op_time(OpCost("aten.convolution", "conv", 8_100_000_000, 3_200_000), t4)
        >>> round(t * 1e3, 3), bound  # 1 ms of compute against 0.01 ms of traffic, + 5 us
        (1.005, 'compute')
        >>> op_time(OpCost("aten.relu", "elementwise", 1000, 8000), t4)[1]
        'overhead'
    """
    compute = cost.flops / profile.rate(cost.op_class, dtype)
    memory = profile.memory_time(cost.bytes)
    work = max(compute, memory)
    if profile.overhead_s > work:
        bound = "overhead"
    else:
        bound = "compute" if compute >= memory else "memory"
    return work + profile.overhead_s, bound


def apply_estimate(report: Report, profile: DeviceProfile) -> None:
    """Fill ``est_time_s`` and ``bound`` of every row and the total, in place."""
    total = 0.0
    for row in report.rows:
        parts = {"compute": 0.0, "memory": 0.0, "overhead": 0.0}
        for cost in row.op_costs:
            compute = cost.flops / profile.rate(cost.op_class, report.dtype)
            memory = profile.memory_time(cost.bytes)
            parts["compute" if compute >= memory else "memory"] += max(compute, memory)
            parts["overhead"] += profile.overhead_s
        row.est_time_s = sum(parts.values())
        row.bound = max(parts, key=parts.__getitem__) if row.op_costs else ""
        total += row.est_time_s
    report.est_time_s = total
    report.device_profile = profile.label


def estimate(report: Report, device_profile: DeviceProfile | str | os.PathLike | None = None) -> Report:
    """Return a copy of ``report`` with its time estimates redone on another device profile.

    Args:
        report: a report from :func:`onebyone.analyze`.
        device_profile: a :class:`DeviceProfile`, a preset name (``"t4"``), a profile file,
            or None for this machine's default (see ``profiles``).

    Example:
        >>> from torch import nn
        >>> import onebyone
        >>> r = onebyone.analyze(nn.Conv2d(64, 64, 3, padding=1), (8, 64, 56, 56))
        >>> t4, h200 = estimate(r, "t4"), estimate(r, "h200")
        >>> t4.est_time_s > h200.est_time_s, t4.device_profile.startswith("t4 (")
        (True, True)
    """
    profile = resolve_profile(device_profile)
    new = copy.copy(report)
    new.rows = [copy.copy(row) for row in report.rows]
    apply_estimate(new, profile)
    return new
