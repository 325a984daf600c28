"""Text renderings of a report: the Keras-style table, Markdown, and the number formats.

This module reads a report by its attributes only and imports nothing from ``report``, so
``Report.__str__`` and ``Report.to_markdown`` can use it without an import cycle; the public
names are re-exported by ``render``. Byte sizes use 1 KB = 1024 bytes, as Keras'
``model.summary()`` does; MACs and FLOPs use powers of 1000 (M = 10^6, G = 10^9).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onebyone._tables import render_rich

from ._time_text import time_lines, where_time_goes
from ._train_text import train_lines
from ._units import human_bytes, human_count, human_time

__all__ = [
    "CONVENTION",
    "ShownRow",
    "fold_rows",
    "format_shape",
    "human_bytes",
    "human_count",
    "human_time",
    "render_markdown",
    "render_text",
    "sort_rows",
    "time_lines",
    "uncounted_note",
    "where_time_goes",
]

Shape = tuple[int, ...]

CONVENTION = (
    "MACs: multiply-accumulates of convolutions and matrix products, bias adds excluded "
    "(torchvision's convention). FLOPs = 2 x MACs + elementwise work (bias adds, norms, "
    "activations, pooling, adds), per element. A container's own row holds only the work "
    "of its own forward; a folded row (marked +) includes its children."
)


@dataclass
class ShownRow:
    """A row as displayed: the layer's own counts, or its subtree's when folded."""

    row: Any  # a LayerStats
    params: int
    macs: int
    extra_flops: int
    folded: int  # number of deeper rows folded into this one
    bytes: int = 0
    est_time_s: float = 0.0
    measured_time_s: float | None = None
    backward_macs: int = 0  # mode="train" (train-cost)
    saved_bytes: int = 0

    @property
    def flops(self) -> int:
        """``2 * macs + extra_flops`` of the shown row."""
        return 2 * self.macs + self.extra_flops


def fold_rows(report: Any, depth: int | None = None) -> list[ShownRow]:
    """Return the rows to display, with rows deeper than ``depth`` summed into their ancestor.

    The model's own row (depth 0) is shown only when its forward does work of its own
    (functional code) or the model is a single layer.

    Example:
        >>> from torch import nn
        >>> import onebyone
        >>> m = nn.Sequential(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), nn.Linear(3, 2))
        >>> [(s.row.name, s.params, s.folded) for s in fold_rows(onebyone.analyze(m, (1, 4)), 1)]
        [('0', 15, 2), ('1', 8, 0)]
    """
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise ValueError(f"depth must be an integer >= 0 or None, got {depth!r}")
    shown: list[ShownRow] = []
    latest: dict[str, ShownRow] = {}
    for row in report.rows:
        own_work = row.params or row.macs or row.extra_flops
        if row.depth == 0 and len(report.rows) > 1 and depth != 0 and not own_work:
            continue
        if depth is not None and row.depth > depth:
            key = ".".join(row.name.split(".")[:depth]) if depth else ""
            parent = latest.get(key)
            if parent is not None:
                parent.params += row.params
                parent.macs += row.macs
                parent.extra_flops += row.extra_flops
                parent.bytes += row.bytes_read + row.bytes_written
                parent.est_time_s += row.est_time_s
                if parent.measured_time_s is not None and row.measured_time_s is not None:
                    parent.measured_time_s += row.measured_time_s
                parent.backward_macs += row.backward_macs
                parent.saved_bytes += row.saved_bytes
                parent.folded += 1
                continue
        item = ShownRow(
            row,
            row.params,
            row.macs,
            row.extra_flops,
            0,
            row.bytes_read + row.bytes_written,
            row.est_time_s,
            row.measured_time_s,
            row.backward_macs,
            row.saved_bytes,
        )
        shown.append(item)
        latest[row.name] = item
    return shown


def format_shape(shape: Shape | list[Shape], *, channels_last: bool = False) -> str:
    """Format a shape as PyTorch shows it, or as Keras does with ``channels_last``.

    Example:
        >>> format_shape((1, 512, 256, 256))
        '(1, 512, 256, 256)'
        >>> format_shape((1, 512, 256, 256), channels_last=True)
        '(None, 256, 256, 512)'
    """
    if isinstance(shape, list):
        return ", ".join(format_shape(s, channels_last=channels_last) for s in shape)
    dims: list[object] = list(shape)
    if channels_last and dims:
        if len(dims) >= 3:
            dims = [dims[0], *dims[2:], dims[1]]
        dims[0] = "None"
    if len(dims) == 1:
        return f"({dims[0]},)"
    return "(" + ", ".join(str(d) for d in dims) + ")"


def _label(item: ShownRow) -> str:
    row = item.row
    indent = "  " * max(0, row.depth - 1)
    name = row.name or "(model)"
    suffix = "+" if item.folded else ""
    again = f" #{row.call_index + 1}" if row.call_index else ""
    return f"{indent}{name}{again} ({row.type}{suffix})"


def _count_cell(item: ShownRow, value: int) -> str:
    if value == 0 and not item.row.is_leaf and not item.folded:
        return "--"
    return f"{value:,}"


def _footer(report: Any, times: bool = True) -> list[str]:
    r = report
    per = r.param_bytes / r.total_params if r.total_params else 4
    return [
        f"Total params: {r.total_params:,} ({human_bytes(r.param_bytes)})",
        f"Trainable params: {r.trainable_params:,} ({human_bytes(int(r.trainable_params * per))})",
        f"Non-trainable params: {r.non_trainable_params:,} "
        f"({human_bytes(int(r.non_trainable_params * per))})",
        f"Buffers: {r.buffers:,} ({human_bytes(r.buffer_bytes)})",
        f"Total MACs: {r.total_macs:,} ({human_count(r.total_macs)})",
        f"Total FLOPs: {r.total_flops:,} ({human_count(r.total_flops)})",
        f"Input: {human_bytes(r.input_bytes)}; activations (leaf outputs): "
        f"{human_bytes(r.activation_bytes)}; parameters and buffers: "
        f"{human_bytes(r.param_bytes + r.buffer_bytes)}",
        *(time_lines(r) if times else []),
        *train_lines(r, human_bytes),
        *uncounted_note(r),
    ]


def uncounted_note(report: Any) -> list[str]:
    """One line naming the operators that ran without a counting rule (none: no line).

    Example:
        >>> from types import SimpleNamespace
        >>> uncounted_note(SimpleNamespace(uncounted_ops={"aten.foo": 2, "aten.bar": 1}))
        ['Not counted (no counting rule, counted as 0): aten.bar (1 call), aten.foo (2 calls)']
    """
    ops = getattr(report, "uncounted_ops", None) or {}
    if not ops:
        return []
    listed = ", ".join(
        f"{name} ({n} call{'s' if n != 1 else ''})" for name, n in sorted(ops.items())
    )
    return [f"Not counted (no counting rule, counted as 0): {listed}"]


SORT_KEYS = ("time", "macs", "params", "bytes")
# Columns dropped first when the terminal is narrow (under _WIDE columns).
_WIDE = 120


_TIME_COLUMNS = ("Bytes", "FLOP/B", "Est. time", "Bound", "Measured")


def _columns(explain: bool, measured: bool, width: int | None, train: bool = False) -> list[str]:
    """The columns shown: all of them without a width limit, fewer in a narrow terminal."""
    if train:  # mode="train": the backward's MACs and the saved bytes after the MACs
        cols = _columns(explain, measured, width)
        at = cols.index("MACs") + 1
        return [*cols[:at], "Bwd MACs", "Saved", *cols[at:]]
    if width is not None and width < _WIDE:
        if explain:  # the formula needs the room
            return ["Layer (type)", "Param #", "MACs", "Formula"]
        shape = [] if measured and width < 100 else ["Output Shape"]
        return ["Layer (type)", *shape, "Param #", "MACs", "Est. time"] + (
            ["Measured"] if measured else []
        )
    cols = ["Layer (type)", "Output Shape", "Param #", "MACs", "Bytes", "FLOP/B", "Est. time"]
    cols += ["Bound", *(["Measured"] if measured else [])]
    return [*cols, "Formula"] if explain else cols


def _cell(item: ShownRow, col: str, channels_last: bool, short: bool = False) -> str:
    if col == "Layer (type)":
        return _label(item)
    if col == "Output Shape":
        return format_shape(item.row.output_shape, channels_last=channels_last)
    if col == "Param #":
        return _count_cell(item, item.params)
    if col == "MACs":
        if short and item.macs:
            return human_count(item.macs)
        return _count_cell(item, item.macs)
    if col == "Bwd MACs":
        if short and item.backward_macs:
            return human_count(item.backward_macs)
        return _count_cell(item, item.backward_macs)
    if col == "Saved":
        return human_bytes(item.saved_bytes) if item.saved_bytes else _count_cell(item, 0)
    if col == "Bytes":
        return human_bytes(item.bytes) if item.bytes else _count_cell(item, 0)
    if col == "FLOP/B":
        return f"{item.flops / item.bytes:.1f}" if item.bytes else "--"
    if col == "Est. time":
        return human_time(item.est_time_s) if item.est_time_s else "--"
    if col == "Bound":
        return "(folded)" if item.folded else (item.row.bound or "--")
    if col == "Measured":
        return human_time(item.measured_time_s)
    return "(folded)" if item.folded else item.row.formula  # Formula


def _cells(item: ShownRow, cols: list[str], *, channels_last: bool, short: bool = False) -> list[str]:
    return [_cell(item, col, channels_last, short) for col in cols]


def sort_rows(items: list[ShownRow], sort: str | None) -> list[ShownRow]:
    """Order the shown rows by ``sort`` (largest first), or keep execution order for None.

    ``"time"`` sorts by the measured time where there is one, else by the estimate.

    Example:
        >>> rows = [ShownRow(None, 5, 1, 0, 0), ShownRow(None, 2, 9, 0, 0)]
        >>> [r.params for r in sort_rows(rows, "macs")]
        [2, 5]
    """
    if sort is None:
        return items
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
    key = {
        "time": lambda s: s.est_time_s if s.measured_time_s is None else s.measured_time_s,
        "macs": lambda s: s.macs,
        "params": lambda s: s.params,
        "bytes": lambda s: s.bytes,
    }[sort]
    return sorted(items, key=key, reverse=True)


def _is_train(report: Any) -> bool:
    return getattr(report, "train_cost", None) is not None


def _min_width(col: str, width: int | None) -> int | None:
    if col == "Formula" and width is not None:
        return width // 3
    return len(col) if col in ("Param #", "MACs", "Bwd MACs") else None


def render_text(
    report: Any,
    *,
    depth: int | None = None,
    channels_last: bool = False,
    explain: bool = False,
    width: int | None = None,
    color: bool = False,
    sort: str | None = None,
    top: int = 5,
    times: bool = True,
) -> str:
    """Render the Keras-style summary table with rich and return it as text.

    Args:
        report: a :class:`~onebyone.analysis.Report`.
        depth: fold rows deeper than this into their ancestor (None: show all).
        channels_last: show shapes as Keras does, ``(None, H, W, C)``.
        explain: add a column with each row's formula.
        width: lay the table out for this many columns, folding long cells (a terminal's
            width; 80 and more stay readable: under 120 columns MACs are shortened and only
            the layer, shape, params, MACs and times are shown (with ``explain``: the layer,
            params, MACs and formula); None lays it out without wrapping.
        color: keep colour codes.
        sort: order rows by ``"time"``, ``"macs"``, ``"params"`` or ``"bytes"`` (largest
            first) instead of execution order.
        top: how many layers "where the time goes" lists (0: none).
        times: False leaves out everything about bytes and time (the counts only, as
            before the time model; for teaching material).

    Example:
        >>> from torch import nn
        >>> import onebyone
        >>> text = render_text(onebyone.analyze(nn.Conv2d(3, 512, 3, padding=1), (1, 3, 256, 256)))
        >>> "Total params: 14,336 (56.00 KB)" in text
        True
    """
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"{report.model} on input "
        + ", ".join(format_shape(s, channels_last=channels_last) for s in report.input_shapes),
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    cols = _columns(explain, report.measured_time_s is not None, width, _is_train(report))
    if not times:
        cols = [c for c in cols if c not in _TIME_COLUMNS]
    for col in cols:
        numeric = col not in ("Layer (type)", "Output Shape", "Bound", "Formula")
        table.add_column(
            col,
            justify="right" if numeric else "left",
            overflow="fold",
            no_wrap=col not in ("Layer (type)", "Formula"),
            min_width=_min_width(col, width),
        )
    short = width is not None and width < _WIDE  # MACs as "1.81 G" in a narrow terminal
    for item in sort_rows(fold_rows(report, depth), sort):
        table.add_row(*_cells(item, cols, channels_last=channels_last, short=short))
    footer = [*_footer(report, times), *(where_time_goes(report, top) if top and times else [])]
    return render_rich(table, *footer, CONVENTION, width=width, color=color)


def render_markdown(
    report: Any,
    *,
    depth: int | None = None,
    channels_last: bool = False,
    explain: bool = False,
    sort: str | None = None,
) -> str:
    """Render the rows and totals as a Markdown table.

    Example:
        >>> from torch import nn
        >>> import onebyone
        >>> md = render_markdown(onebyone.analyze(nn.Linear(4, 2), (1, 4)))
        >>> md.splitlines()[2]
        '| (model) (Linear) | (1, 2) | 10 | 8 | 64.00 B | 0.3 | ...'
    """
    cols = _columns(explain, report.measured_time_s is not None, None, _is_train(report))
    lines = [
        "| " + " | ".join(cols) + " |",
        "|"
        + "|".join(
            "---" if c in ("Layer (type)", "Output Shape", "Bound", "Formula") else "---:"
            for c in cols
        )
        + "|",
    ]
    for item in sort_rows(fold_rows(report, depth), sort):
        cells = _cells(item, cols, channels_last=channels_last)
        cells[0] = cells[0].replace("  ", "&nbsp;&nbsp;")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    lines.extend(f"- {line}" for line in _footer(report))
    lines.append("")
    lines.append(f"_{CONVENTION}_")
    return "\n".join(lines) + "\n"
