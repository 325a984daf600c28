"""Footer lines of a ``mode="train"`` report: the backward's work and a training step's memory.

Kept apart from ``_text`` (which renders any report) so that the renderer only reads records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["train_lines"]


def train_lines(report: Any, human_bytes: Callable[[int], str], top: int = 5) -> list[str]:
    """Lines about the training step of a ``mode="train"`` report (none for a forward report).

    ``human_bytes`` formats a number of bytes (``_text.human_bytes``; passed in, as ``_text``
    imports this module).

    Example:
        >>> from torch import nn
        >>> import onebyone
        >>> r = onebyone.analyze(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), (2, 4), mode="train")
        >>> train_lines(r, str)[0]
        'Backward MACs: 24; backward FLOPs: 60 (weight and input gradients that really run)'
    """
    cost = getattr(report, "train_cost", None)
    if cost is None:
        return []
    split = cost.peak_split
    lines = [
        f"Backward MACs: {report.backward_macs:,}; backward FLOPs: {report.backward_flops:,} "
        "(weight and input gradients that really run)",
        f"Training step ({cost.optimizer}): saved activations {human_bytes(cost.saved_bytes)}; "
        f"gradients {human_bytes(cost.grad_bytes)}; optimizer state {human_bytes(cost.optimizer_bytes)}",
        f"Peak memory estimate: {human_bytes(cost.peak_bytes)} in the {cost.peak_phase} = "
        + " + ".join(f"{k} {human_bytes(v)}" for k, v in split.items()),
    ]
    rows = sorted((r for r in report.rows if r.saved_bytes), key=lambda r: -r.saved_bytes)
    if rows and top:
        lines.append(
            f"Most saved memory (top {min(top, len(rows))}): "
            + ", ".join(
                f"{r.name or '(model)'} {human_bytes(r.saved_bytes)} "
                f"({100 * r.saved_bytes / cost.saved_bytes:.0f}%)"
                for r in rows[:top]
            )
        )
    return lines
