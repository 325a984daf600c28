"""Render a :class:`Report`: a Keras-style table (rich), Markdown, formulas and a bar chart.

The text renderers live in ``_text`` (which the report itself uses) and are re-exported here
with the bar chart. Byte sizes use 1 KB = 1024 bytes, as Keras' ``model.summary()`` does;
MACs and FLOPs use powers of 1000 (M = 10^6, G = 10^9).
"""

from __future__ import annotations

import os
from pathlib import Path

from ._text import (
    CONVENTION,
    SORT_KEYS,
    ShownRow,
    fold_rows,
    format_shape,
    human_bytes,
    human_count,
    human_time,
    render_markdown,
    render_text,
    sort_rows,
    where_time_goes,
)
from .report import Report

__all__ = [
    "CONVENTION",
    "SORT_KEYS",
    "ShownRow",
    "fold_rows",
    "format_shape",
    "human_bytes",
    "human_count",
    "human_time",
    "plot_report",
    "render_markdown",
    "render_text",
    "sort_rows",
    "where_time_goes",
]


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
