"""The analyzer: parameters, MACs, FLOPs, traffic and time per layer, the 1x1 planner and diffs.

>>> from torch import nn
>>> from onebyone.analysis import analyze
>>> analyze(nn.Conv2d(512, 64, 1), (1, 512, 256, 256)).total_params
32832
"""

from ._calibrate import calibrate
from ._counting import FLOP_RULES, MAC_RULES
from ._diff import Diff, DiffRow, diff
from .analyze import INPUT_RANK, analyze
from .plan import PLAN_LAYERS, Plan, PlanEntry, plan
from .profiles import PRESETS, DeviceProfile, load_profile, resolve_profile
from .render import plot_report, render_markdown, render_text
from .report import LayerStats, OpCost, Report
from .roofline import estimate

__all__ = [
    "FLOP_RULES",
    "INPUT_RANK",
    "MAC_RULES",
    "PLAN_LAYERS",
    "PRESETS",
    "DeviceProfile",
    "Diff",
    "DiffRow",
    "LayerStats",
    "OpCost",
    "Plan",
    "PlanEntry",
    "Report",
    "analyze",
    "calibrate",
    "diff",
    "estimate",
    "load_profile",
    "plan",
    "plot_report",
    "render_markdown",
    "render_text",
    "resolve_profile",
]
