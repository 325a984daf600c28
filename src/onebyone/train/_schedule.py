"""The learning-rate schedule of :func:`~onebyone.train.fit`, per optimizer step."""

from __future__ import annotations

import math

__all__ = ["SCHEDULES", "lr_at"]

SCHEDULES = ("cosine", "constant")


def lr_at(schedule: str, base: float, step: int, total: int) -> float:
    """The learning rate at optimizer step ``step`` (0-based) of ``total`` steps.

    ``"cosine"``: a linear warm-up over the first 5% of the steps (at least one), then cosine
    decay from ``base`` to zero at the last step. ``"constant"``: ``base`` throughout.

    Example:
        >>> [round(lr_at("cosine", 1.0, s, 40), 3) for s in (0, 1, 2, 21, 39)]
        [0.5, 1.0, 1.0, 0.5, 0.002]
        >>> lr_at("constant", 0.1, 7, 40)
        0.1
    """
    if schedule == "constant" or total <= 0:
        return base
    warmup = max(1, total // 20)
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * base * (1.0 + math.cos(math.pi * min(progress, 1.0)))
