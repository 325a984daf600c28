"""The complexity analyzer: parameters, MACs and FLOPs per layer, and the 1x1 what-if planner.

>>> from torch import nn
>>> from onebyone.analysis import analyze
>>> analyze(nn.Conv2d(512, 64, 1), (1, 512, 256, 256)).total_params
32832
"""

from ._counting import FLOP_RULES, MAC_RULES
from .analyze import INPUT_RANK, analyze
from .plan import PLAN_LAYERS, Plan, PlanEntry, plan
from .render import plot_report, render_markdown, render_text
from .report import LayerStats, Report

__all__ = [
    "FLOP_RULES",
    "INPUT_RANK",
    "MAC_RULES",
    "PLAN_LAYERS",
    "LayerStats",
    "Plan",
    "PlanEntry",
    "Report",
    "analyze",
    "plan",
    "plot_report",
    "render_markdown",
    "render_text",
]
