"""``onebyone.plan``: the tutorial's what-if, a 1x1 projection before every expensive layer.

For every convolution with a kernel larger than 1x1 (and every Linear that reads a
flattened feature map) the plan shows its cost now and its cost if a 1x1 convolution
first projected its ``in_channels`` maps down to ``mid_channels``. The projection has a
bias, as a Keras ``Conv2D`` does, and the layer keeps its own bias. The tutorial's example:
a 7x7 convolution with 64 filters on 512 maps has 7*7*512*64 + 64 = 1,605,696 parameters;
with a 1x1 reduction to 64 first, 32,832 + 200,768 = 233,600.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from onebyone._checks import check_choice, check_int
from onebyone._tables import render_rich

from ._plan_time import time_what_if
from ._text import format_shape, human_count, human_time
from .analyze import analyze
from .profiles import DeviceProfile, resolve_profile
from .report import LayerStats

__all__ = ["PLAN_LAYERS", "PLAN_SORT_KEYS", "Plan", "PlanEntry", "plan"]

PLAN_SORT_KEYS = ("macs", "params", "time")

# Layers the planner considers; users can add their own convolution subclasses.
PLAN_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass
class PlanEntry:
    """One layer's cost now and with a 1x1 projection to ``mid_channels`` in front of it.

    ``params_after = projection_params + layer_params_after`` and likewise for MACs.

    Example:
        >>> from torch import nn
        >>> m = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1))
        >>> e = plan(m, (1, 3, 8, 8), channels=16).entries[0]  # a 64 -> 16 1x1 in front of '1'
        >>> e.name, e.params_before, e.projection_params, e.layer_params_after
        ('1', 36928, 1040, 9280)
        >>> e.macs_before, e.macs_after, e.applied
        (2359296, 655360, True)
    """

    name: str
    type: str
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    mid_channels: int
    params_before: int
    macs_before: int
    projection_params: int
    projection_macs: int
    layer_params_after: int
    layer_macs_after: int
    applied: bool = False
    time_before_s: float = 0.0
    time_after_s: float = 0.0
    no_time_saved: str = ""

    @property
    def time_saved_s(self) -> float:
        """Estimated seconds saved (negative when the projection costs time)."""
        return self.time_before_s - self.time_after_s

    @property
    def params_after(self) -> int:
        """Parameters of the projection plus the slimmed layer."""
        return self.projection_params + self.layer_params_after

    @property
    def macs_after(self) -> int:
        """MACs of the projection plus the slimmed layer."""
        return self.projection_macs + self.layer_macs_after

    @property
    def params_saved(self) -> int:
        """``params_before - params_after`` (negative if the projection costs more)."""
        return self.params_before - self.params_after

    @property
    def macs_saved(self) -> int:
        """``macs_before - macs_after`` (negative if the projection costs more)."""
        return self.macs_before - self.macs_after

    @property
    def formula(self) -> str:
        """The tutorial's arithmetic, e.g. ``"1,605,696 -> 32,832 + 200,768 = 233,600 params"``."""
        return (
            f"{self.params_before:,} -> {self.projection_params:,} + "
            f"{self.layer_params_after:,} = {self.params_after:,} params"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the fields and the derived totals as JSON-ready values."""
        d = asdict(self)
        for key in ("kernel_size", "input_shape", "output_shape"):
            d[key] = list(d[key])
        d.update(
            params_after=self.params_after,
            macs_after=self.macs_after,
            params_saved=self.params_saved,
            macs_saved=self.macs_saved,
            time_saved_s=self.time_saved_s,
        )
        return d


@dataclass
class Plan:
    """The what-if for a whole model: entries sorted by savings and totals before and after.

    ``*_after`` totals apply every entry marked ``applied``: those that save MACs (or
    parameters, or estimated time, by the sort key). ``device_profile`` names the profile
    behind the time estimates; an entry's ``no_time_saved`` says why it cuts MACs but not time.

    Example:
        >>> from torch import nn
        >>> m = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1))
        >>> p = plan(m, (1, 3, 8, 8), channels=16)
        >>> p.total_params_before, p.total_params_after
        (38720, 12112)
        >>> p.skipped
        [('0', 'projecting 3 to 16 channels would not reduce them')]
    """

    model: str
    input_shapes: list[tuple[int, ...]]
    ratio: float | None
    channels: int | None
    entries: list[PlanEntry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    total_params_before: int = 0
    total_macs_before: int = 0
    device_profile: str = ""

    @property
    def total_params_after(self) -> int:
        """Model parameters with every projection applied."""
        return self.total_params_before - sum(e.params_saved for e in self.entries if e.applied)

    @property
    def total_macs_after(self) -> int:
        """Model MACs with every projection applied."""
        return self.total_macs_before - sum(e.macs_saved for e in self.entries if e.applied)

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as JSON-ready values."""
        return {
            "model": self.model,
            "input_shapes": [list(s) for s in self.input_shapes],
            "ratio": self.ratio,
            "channels": self.channels,
            "total_params_before": self.total_params_before,
            "total_params_after": self.total_params_after,
            "total_macs_before": self.total_macs_before,
            "total_macs_after": self.total_macs_after,
            "device_profile": self.device_profile,
            "entries": [e.to_dict() for e in self.entries],
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """Return :meth:`to_dict` as JSON."""
        return json.dumps(self.to_dict(), indent=indent)

    def render(self, *, width: int | None = None) -> str:
        """Return the plan as a rich table, as ``onebyone plan`` prints it (see ``render_plan``)."""
        return render_plan(self, width=width)

    def __str__(self) -> str:
        return self.render()


def plan(
    model: nn.Module,
    input_size: Any,
    *,
    ratio: float = 0.25,
    channels: int | None = None,
    sort: str = "macs",
    device: str | torch.device = "meta",
    dtype: torch.dtype | None = None,
    device_profile: DeviceProfile | str | None = None,
) -> Plan:
    """Show what a 1x1 projection in front of each expensive layer would save.

    Args:
        model: any ``nn.Module``; it is analyzed on a meta copy and never changed.
        input_size: as for :func:`onebyone.analyze`, e.g. ``(1, 3, 224, 224)``.
        ratio: project to ``round(ratio * in_channels)`` channels (at least 1).
        channels: project to this many channels instead of using ``ratio``.
        sort: order entries by ``"macs"`` saved (default), ``"params"`` saved or estimated
            ``"time"`` saved.
        device: where the analysis runs (``"meta"`` by default).
        dtype: floating dtype of the analysis (default: the model's own).
        device_profile: the device the time estimates are for (see :func:`onebyone.analyze`).

    Returns:
        A :class:`Plan`. Layers where the projection would not reduce the channels, and
        grouped convolutions, are listed in ``skipped`` with the reason.

    Raises:
        ValueError: ``ratio`` not in (0, 1], ``channels`` < 1, or a bad ``sort``.

    Example:
        >>> from torch import nn
        >>> import onebyone
        >>> m = nn.Sequential(nn.Conv2d(3, 512, 3, padding=1), nn.Conv2d(512, 64, 7, padding=3))
        >>> p = onebyone.plan(m, (1, 3, 256, 256), channels=64)
        >>> p.entries[0].formula
        '1,605,696 -> 32,832 + 200,768 = 233,600 params'
    """
    if channels is None:
        if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0 < ratio <= 1:
            raise ValueError(f"ratio must be a number in (0, 1], got {ratio!r}")
        ratio = float(ratio)
    else:
        channels = check_int("channels", channels, minimum=1)
        ratio = None
    check_choice("sort", sort, PLAN_SORT_KEYS)
    profile = resolve_profile(device_profile)
    report = analyze(model, input_size, device=device, dtype=dtype, device_profile=profile)

    # A module's calls share its qualified name (a shared module keeps its first name).
    by_module: dict[str, tuple[nn.Module, list[LayerStats]]] = {}
    modules = dict(model.named_modules())
    for row in report.rows:
        module = modules.get(row.name)
        if isinstance(module, PLAN_LAYERS):
            by_module.setdefault(row.name, (module, []))[1].append(row)

    result = Plan(
        model=report.model,
        input_shapes=report.input_shapes,
        ratio=ratio,
        channels=channels,
        total_params_before=report.total_params,
        total_macs_before=report.total_macs,
        device_profile=report.device_profile,
    )
    for module, rows in by_module.values():
        entry, reason = _entry(module, rows, ratio, channels, profile, report.dtype)
        if entry is not None:
            saved = {"macs": entry.macs_saved, "params": entry.params_saved, "time": entry.time_saved_s}
            entry.applied = saved[sort] > 0
            result.entries.append(entry)
        elif reason:
            result.skipped.append((rows[0].name, reason))
    key = {
        "macs": lambda e: (e.macs_saved, e.params_saved),
        "params": lambda e: (e.params_saved, e.macs_saved),
        "time": lambda e: (e.time_saved_s, e.macs_saved),
    }[sort]
    result.entries.sort(key=key, reverse=True)
    return result


def _mid(in_channels: int, ratio: float | None, channels: int | None) -> int:
    return channels if channels is not None else max(1, round(ratio * in_channels))


def _entry(
    module: nn.Module,
    rows: list[LayerStats],
    ratio: float | None,
    channels: int | None,
    profile: DeviceProfile,
    dtype: str,
) -> tuple[PlanEntry | None, str]:
    row = rows[0]
    has_bias = getattr(module, "bias", None) is not None
    bias_out = (
        module.out_features if isinstance(module, nn.Linear) else getattr(module, "out_channels", 0)
    )
    if isinstance(module, nn.Linear):
        if row.input_flattened_from is None:
            return None, ""  # a Linear on vectors: nothing spatial to project
        c, *spatial = row.input_flattened_from
        positions = math.prod(spatial)
        if c * positions != module.in_features:
            return None, ""
        in_channels, out_channels, kernel = c, module.out_features, tuple(spatial)
        weight_per_channel = positions * out_channels
    else:
        kernel = tuple(int(k) for k in module.kernel_size)
        if math.prod(kernel) == 1:
            return None, ""
        if module.groups != 1:
            return None, f"grouped convolution (groups={module.groups})"
        in_channels, out_channels = module.in_channels, module.out_channels
        weight_per_channel = math.prod(kernel) * out_channels
    mid = _mid(in_channels, ratio, channels)
    if mid >= in_channels:
        return None, f"projecting {in_channels} to {mid} channels would not reduce them"
    macs_before = sum(r.macs for r in rows)
    projection_macs = 0
    for r in rows:
        x = r.input_shapes[0]
        flat = r.input_flattened_from
        positions_in = math.prod(flat[1:]) if flat else math.prod(x[2:])
        projection_macs += x[0] * positions_in * in_channels * mid
    params_before = weight_per_channel * in_channels + (bias_out if has_bias else 0)
    entry = PlanEntry(
        name=row.name,
        type=row.type,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=kernel,
        input_shape=tuple(row.input_shapes[0]) if row.input_shapes else (),
        output_shape=tuple(row.output_shape) if isinstance(row.output_shape, tuple) else (),
        mid_channels=mid,
        params_before=params_before,
        macs_before=macs_before,
        projection_params=in_channels * mid + mid,
        projection_macs=projection_macs,
        layer_params_after=weight_per_channel * mid + (bias_out if has_bias else 0),
        layer_macs_after=macs_before // in_channels * mid,
    )
    entry.time_before_s, entry.time_after_s, entry.no_time_saved = time_what_if(
        rows,
        in_channels=in_channels,
        mid=mid,
        weight_after=entry.layer_params_after,
        macs_after_per_call=[r.macs // in_channels * mid for r in rows],
        profile=profile,
        dtype=dtype,
    )
    return entry, ""


def render_plan(p: Plan, *, width: int | None = None) -> str:
    """Render a :class:`Plan` as a rich table followed by the model totals.

    ``width``: lay out for a terminal this wide (cells fold); None: no wrapping.
    """
    from rich import box
    from rich.table import Table

    how = (
        f"{p.channels} channels" if p.channels is not None else f"ratio {p.ratio:g} of in_channels"
    )
    lines = []
    if any(not e.applied for e in p.entries):
        lines.append("* costs more than it saves: not applied in the totals")
    slow = [e for e in p.entries if e.no_time_saved and e.macs_saved > 0]
    if slow:
        lines.append("! cuts MACs but not the estimated time:")
        lines += [f"  {e.name or '(model)'}: {e.no_time_saved}" for e in slow]
    lines += [f"skipped {name or '(model)'}: {reason}" for name, reason in p.skipped]
    lines.append(
        f"Total params: {p.total_params_before:,} -> {p.total_params_after:,}; "
        f"total MACs: {p.total_macs_before:,} -> {p.total_macs_after:,} "
        f"({human_count(p.total_macs_before)} -> {human_count(p.total_macs_after)}), "
        f"with the projections above applied. Input "
        f"{', '.join(format_shape(s) for s in p.input_shapes)}. Times estimated on "
        f"{p.device_profile}."
    )
    title = f"{p.model}: a 1x1 projection ({how}) before each layer"
    if not p.entries:
        return render_rich(f"{title}: nothing to do, {_nothing_reason(p)}", *lines, width=width)
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for col in (
        "Layer (type)",
        "Channels",
        "Params now",
        "Params with 1x1",
        "MACs now",
        "MACs with 1x1",
        "MACs saved",
        "Est. time",
    ):
        table.add_column(
            col,
            justify="left" if col in ("Layer (type)", "Channels") else "right",
            overflow="fold",
            no_wrap=col != "Layer (type)",
        )
    for e in p.entries:
        k = "x".join(str(d) for d in e.kernel_size)
        what = f"{e.type} on {e.in_channels}x{k} map" if e.type == "Linear" else f"{e.type} {k}"
        mark = "" if e.applied else " *"
        table.add_row(
            f"{e.name or '(model)'} ({what}){mark}",
            f"{e.in_channels}->{e.mid_channels}->{e.out_channels}",
            f"{e.params_before:,}",
            f"{e.projection_params:,} + {e.layer_params_after:,} = {e.params_after:,}",
            human_count(e.macs_before),
            f"{human_count(e.projection_macs)} + {human_count(e.layer_macs_after)}",
            f"{100 * e.macs_saved / e.macs_before:.1f}%" if e.macs_before else "--",
            f"{human_time(e.time_before_s)} -> {human_time(e.time_after_s)}"
            + (" !" if e.no_time_saved and e.macs_saved > 0 else ""),
        )
    return render_rich(table, *lines, width=width)


def _nothing_reason(p: Plan) -> str:
    if p.skipped:
        return "every candidate layer was skipped (reasons below)"
    return (
        "the model has no convolution with a kernel larger than 1x1 and no Linear over a "
        "flattened feature map"
    )
