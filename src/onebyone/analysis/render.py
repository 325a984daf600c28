"""Render a :class:`Report`: a Keras-style table (rich), Markdown, formulas and a bar chart.

Byte sizes use 1 KB = 1024 bytes, as Keras' ``model.summary()`` does; MACs and FLOPs use
powers of 1000 (M = 10^6, G = 10^9).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from .report import LayerStats, Report, Shape

__all__ = [
    "CONVENTION",
    "fold_rows",
    "format_shape",
    "human_bytes",
    "human_count",
    "plot_report",
    "render_markdown",
    "render_text",
]

CONVENTION = (
    "MACs: multiply-accumulates of convolutions and matrix products, bias adds excluded "
    "(torchvision's convention). FLOPs = 2 x MACs + elementwise work (bias adds, norms, "
    "activations, pooling, adds), per element. A container's own row holds only the work "
    "of its own forward; a folded row (marked +) includes its children."
)


@dataclass
class ShownRow:
    """A row as displayed: the layer's own counts, or its subtree's when folded."""

    row: LayerStats
    params: int
    macs: int
    extra_flops: int
    folded: int  # number of deeper rows folded into this one


def fold_rows(report: Report, depth: int | None = None) -> list[ShownRow]:
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
                parent.folded += 1
                continue
        item = ShownRow(row, row.params, row.macs, row.extra_flops, 0)
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


def human_bytes(n: int) -> str:
    """Format a byte count as Keras does (1 KB = 1024 bytes).

    Example:
        >>> human_bytes(57344)
        '56.00 KB'
    """
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            return f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} TB"  # pragma: no cover


def human_count(n: int) -> str:
    """Format a count in powers of 1000.

    Example:
        >>> human_count(4_089_184_256)
        '4.09 G'
    """
    value = float(n)
    for unit in ("", "K", "M", "G"):
        if abs(value) < 1000 or unit == "G":
            return f"{value:.2f} {unit}".rstrip() if unit else f"{int(n)}"
        value /= 1000
    return f"{value:.2f} T"  # pragma: no cover


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


def _footer(report: Report) -> list[str]:
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
    ]


def _columns(explain: bool) -> list[str]:
    cols = ["Layer (type)", "Output Shape", "Param #", "MACs"]
    return [*cols, "Formula"] if explain else cols


def _cells(item: ShownRow, *, channels_last: bool, explain: bool) -> list[str]:
    cells = [
        _label(item),
        format_shape(item.row.output_shape, channels_last=channels_last),
        _count_cell(item, item.params),
        _count_cell(item, item.macs),
    ]
    if explain:
        cells.append("(folded)" if item.folded else item.row.formula)
    return cells


def render_text(
    report: Report,
    *,
    depth: int | None = None,
    channels_last: bool = False,
    explain: bool = False,
    width: int | None = 120,
    color: bool = False,
) -> str:
    """Render the Keras-style summary table with rich and return it as text.

    Example:
        >>> from torch import nn
        >>> import onebyone
        >>> text = render_text(onebyone.analyze(nn.Conv2d(3, 512, 3, padding=1), (1, 3, 256, 256)))
        >>> "Total params: 14,336 (56.00 KB)" in text
        True
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{report.model} on input "
        + ", ".join(format_shape(s, channels_last=channels_last) for s in report.input_shapes),
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    for i, col in enumerate(_columns(explain)):
        table.add_column(
            col, justify="right" if i in (2, 3) else "left", overflow="fold", no_wrap=(i != 4)
        )
    for item in fold_rows(report, depth):
        table.add_row(*_cells(item, channels_last=channels_last, explain=explain))
    console = Console(
        width=width,
        record=True,
        no_color=not color,
        force_terminal=color,
        color_system="auto" if color else None,
        file=io.StringIO(),
    )
    try:
        console.print(table)
        for line in _footer(report):
            console.print(line, highlight=False)
        console.print(CONVENTION, highlight=False, style="dim")
        text = console.export_text(styles=color)
        return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
    finally:
        console.file.close()


def render_markdown(
    report: Report, *, depth: int | None = None, channels_last: bool = False, explain: bool = False
) -> str:
    """Render the rows and totals as a Markdown table.

    Example:
        >>> from torch import nn
        >>> import onebyone
        >>> md = render_markdown(onebyone.analyze(nn.Linear(4, 2), (1, 4)))
        >>> md.splitlines()[2]
        '| (model) (Linear) | (1, 2) | 10 | 8 |'
    """
    cols = _columns(explain)
    lines = [
        "| " + " | ".join(cols) + " |",
        "|" + "|".join(["---", "---", "---:", "---:", "---"][: len(cols)]) + "|",
    ]
    for item in fold_rows(report, depth):
        cells = _cells(item, channels_last=channels_last, explain=explain)
        cells[0] = cells[0].replace("  ", "&nbsp;&nbsp;")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    lines.extend(f"- {line}" for line in _footer(report))
    lines.append("")
    lines.append(f"_{CONVENTION}_")
    return "\n".join(lines) + "\n"


def plot_report(
    report: Report, path: str | os.PathLike, *, depth: int | None = None, top: int = 40
) -> Path:
    """Save a bar chart of MACs and parameters per layer (the ``top`` largest by MACs).

    Needs matplotlib (the ``plot`` extra); the file is written atomically. The format follows
    the suffix (``.png``, ``.svg``, ``.pdf``...).

    Raises:
        ImportError: matplotlib is not installed.

    Example:
        >>> import tempfile, pathlib
        >>> from torch import nn
        >>> from onebyone.analysis import analyze
        >>> report = analyze(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), (1, 3, 16, 16))
        >>> path = plot_report(report, pathlib.Path(tempfile.mkdtemp()) / "layers.png")
        >>> path.name, path.read_bytes()[:4]
        ('layers.png', b'\\x89PNG')
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("--plot needs matplotlib: pip install 'onebyone[plot]'") from e
    from onebyone._io import atomic_path

    items = [s for s in fold_rows(report, depth) if s.macs or s.params]
    items = sorted(items, key=lambda s: s.macs, reverse=True)[:top]
    items.sort(key=lambda s: report.rows.index(s.row))
    labels = [s.row.name or s.row.type for s in items]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(6.0, 0.3 * len(items) + 2), 7), sharex=True)
    ax1.bar(range(len(items)), [s.macs / 1e6 for s in items], color="#4c72b0")
    ax1.set_ylabel("MACs (M)")
    ax1.set_title(
        f"{report.model}: {human_count(report.total_macs)} MACs, {report.total_params:,} params"
    )
    ax2.bar(range(len(items)), [s.params / 1e3 for s in items], color="#dd8452")
    ax2.set_ylabel("params (K)")
    ax2.set_xticks(range(len(items)))
    ax2.set_xticklabels(labels, rotation=90, fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120)
    finally:
        plt.close(fig)
    return path
