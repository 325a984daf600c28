"""Footer lines of a ``mode="train"`` report: the backward's work and a training step's memory.

Kept apart from ``_text`` (which renders any report) so that the renderer only reads records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["train_lines", "whatif_lines"]


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


def whatif_lines(
    checkpoint: Any, layout: Any, reduction: Any, human_bytes: Callable[[int], str]
) -> list[str]:
    """Short lines for the what-ifs of ``onebyone.analysis.memory`` (None: not applicable).

    ``checkpoint`` is a ``CheckpointWhatIf``, ``layout`` a ``LayoutWhatIf`` and
    ``reduction`` a ``ReductionWhatIf``.

    Example:
        >>> from onebyone.analysis.memory import LayoutWhatIf
        >>> whatif_lines(None, LayoutWhatIf((8, 8), (20, 20)), None, str)[1]
        'What if channels_last: nothing changes (saved 8, peak 20)'
    """

    def change(pair: tuple[int, int]) -> str:
        return f"{human_bytes(pair[0])} -> {human_bytes(pair[1])}"

    lines = []
    if checkpoint is None:
        lines.append("What if a block is checkpointed: no direct child saves activations")
    else:
        lines.append(
            f"What if {checkpoint.name} is checkpointed: saved {change(checkpoint.saved_bytes)}, "
            f"peak {change(checkpoint.peak_bytes)}, backward MACs "
            f"{checkpoint.backward_macs[0]:,} -> {checkpoint.backward_macs[1]:,}"
        )
    if not layout.changed:
        lines.append(
            f"What if channels_last: nothing changes (saved {human_bytes(layout.saved_bytes[0])}, "
            f"peak {human_bytes(layout.peak_bytes[0])})"
        )
    else:
        lines.append(
            f"What if channels_last: saved {change(layout.saved_bytes)}, "
            f"peak {change(layout.peak_bytes)}"
        )
    if reduction is None:
        lines.append("What if a 1x1 reduction: no kxk Conv2d (groups=1) saves activations")
    else:
        lines.append(
            f"What if a 1x1 reduction to {reduction.mid_channels} of {reduction.in_channels} "
            f"channels precedes {reduction.name}: saved {change(reduction.saved_bytes)}, "
            f"peak {change(reduction.peak_bytes)}, MACs {reduction.macs[0]:,} -> {reduction.macs[1]:,}"
        )
    return lines
