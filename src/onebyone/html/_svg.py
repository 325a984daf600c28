"""Hand-built inline SVG charts: bars, labelled bars, scatter plots (log axes), lines, images.

Every chart is a ``<figure>`` holding an ``<svg role="img">`` with a ``<title>`` and a
``<desc>`` (the alt text) and a ``<figcaption>``; every mark carries its own ``<title>``, which
browsers show on hover without any script. Colours come from CSS classes (``c0``..``c3`` fill,
``s0``..``s3`` stroke) so the page's light and dark themes apply to the charts too.
"""

from __future__ import annotations

import base64
import itertools
import math
import struct
import zlib
from collections.abc import Sequence
from typing import Any

from onebyone.html._page import esc

__all__ = ["bar_strip", "figure", "hbars", "line_chart", "png_data_url", "scatter"]

_ids = itertools.count()


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def figure(svg_body: str, *, width: float, height: float, title: str, desc: str, caption: str = "") -> str:
    """Wrap SVG elements into an accessible figure (``<title>`` and ``<desc>`` for screen readers).

    >>> svg = figure("<rect/>", width=10, height=5, title="t", desc="d")
    >>> 'role="img"' in svg, '<title id=' in svg, '<desc id=' in svg
    (True, True, True)
    """
    uid = next(_ids)
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (
        f'<figure><svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {_num(width)} '
        f'{_num(height)}" width="{_num(width)}" aria-labelledby="t{uid} d{uid}">'
        f'<title id="t{uid}">{esc(title)}</title><desc id="d{uid}">{esc(desc)}</desc>'
        f"{svg_body}</svg>{cap}</figure>"
    )


def bar_strip(
    values: Sequence[float],
    labels: Sequence[str],
    *,
    title: str,
    desc: str,
    fmt,
    color: int = 0,
    width: float = 1100,
    height: float = 90,
) -> str:
    """One thin vertical bar per item (in order), with a hover title per bar: a layer profile.

    >>> "<rect" in bar_strip([1, 3], ["a", "b"], title="MACs", desc="x", fmt=str)
    True
    """
    n = max(1, len(values))
    top = max((v for v in values if v is not None), default=0) or 1
    left, right, pad_top, pad_bottom = 60, 8, 18, 4
    step = (width - left - right) / n
    bar = max(step * 0.85, 0.6)
    parts = [
        f'<text x="0" y="12">{esc(title)}</text>',
        f'<text x="{left - 4}" y="{pad_top + 8}" text-anchor="end" class="muted">{esc(fmt(top))}</text>',
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{height - pad_bottom}" y2="{height - pad_bottom}"/>',
    ]
    span = height - pad_top - pad_bottom
    for i, (v, label) in enumerate(zip(values, labels, strict=True)):
        if not v:
            continue
        h = max(span * v / top, 0.8)
        x = left + i * step
        parts.append(
            f'<rect class="c{color}" x="{_num(x)}" y="{_num(height - pad_bottom - h)}" '
            f'width="{bar:.2f}" height="{_num(h)}"><title>{esc(label)}: {esc(fmt(v))}</title></rect>'
        )
    return figure("".join(parts), width=width, height=height, title=title, desc=desc)


def hbars(
    items: Sequence[tuple[str, Sequence[float | None]]],
    *,
    title: str,
    desc: str,
    fmt,
    series: Sequence[str] = (),
    caption: str = "",
    width: float = 760,
    label_width: float = 230,
    log: bool = False,
) -> str:
    """Labelled horizontal bars; each item may hold several values (one bar per series).

    >>> svg = hbars([("conv1", [10.0, 5.0])], title="MACs", desc="d", fmt=str, series=["a", "b"])
    >>> svg.count("<rect")
    4
    """
    k = max((len(v) for _, v in items), default=1)
    row_h, bar_h = 6 + 13 * k, 12
    legend_h = 18 if series else 0
    height = legend_h + row_h * len(items) + 6
    vals = [v for _, vs in items for v in vs if v]
    top = max(vals, default=1) or 1
    low = min(vals, default=1) or 1
    plot_w = width - label_width - 90

    def scale(v: float) -> float:
        if not log:
            return plot_w * v / top
        lo = math.log10(low) - 0.3
        return plot_w * (math.log10(v) - lo) / max(math.log10(top) - lo, 1e-9)

    parts = []
    for j, name in enumerate(series):
        parts.append(
            f'<rect class="c{j % 4}" x="{label_width + 120 * j}" y="3" width="10" height="10"/>'
            f'<text x="{label_width + 120 * j + 14}" y="12">{esc(name)}</text>'
        )
    for i, (label, vs) in enumerate(items):
        y0 = legend_h + i * row_h
        parts.append(
            f'<text x="{label_width - 6}" y="{y0 + row_h / 2 + 4:.1f}" text-anchor="end">{esc(label)}</text>'
        )
        for j, v in enumerate(vs):
            y = y0 + 3 + j * 13
            if v is None:
                parts.append(f'<text x="{label_width + 2}" y="{y + 10}" class="muted">n/a</text>')
                continue
            w = max(scale(v), 1.0) if v else 0.0
            name = f" ({series[j]})" if j < len(series) else ""
            parts.append(
                f'<rect class="c{j % 4}" x="{label_width}" y="{y}" width="{w:.1f}" height="{bar_h}">'
                f"<title>{esc(label)}{esc(name)}: {esc(fmt(v))}</title></rect>"
                f'<text x="{label_width + w + 4:.1f}" y="{y + 10}" class="muted">{esc(fmt(v))}</text>'
            )
    return figure(
        "".join(parts), width=width, height=height, title=title, desc=desc, caption=caption
    )


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        decades = range(math.floor(lo), math.ceil(hi) + 1)
        if hi - lo > 2.5:  # several decades: one tick each; fewer: 1, 2, 5 per decade
            return [10.0**e for e in decades]
        return [m * 10.0**e for e in decades for m in (1, 2, 5)]
    step = 10 ** math.floor(math.log10(max(hi - lo, 1e-12)))
    if (hi - lo) / step < 3:
        step /= 4
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


class _Axis:
    def __init__(self, values: Sequence[float], log: bool, size: float, offset: float, flip: bool) -> None:
        vals = [v for v in values if v is not None and (v > 0 or not log)]
        self.log = log
        if log:
            lo, hi = (math.log10(min(vals)), math.log10(max(vals))) if vals else (0.0, 1.0)
            lo, hi = math.floor(lo * 2) / 2 - 0.1, math.ceil(hi * 2) / 2 + 0.1
        else:
            lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
            pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
            lo, hi = lo - pad, hi + pad
        self.lo, self.hi, self.size, self.offset, self.flip = lo, hi, size, offset, flip

    def __call__(self, v: float) -> float:
        t = math.log10(v) if self.log else v
        f = (t - self.lo) / (self.hi - self.lo)
        return self.offset + (self.size * (1 - f) if self.flip else self.size * f)

    def ticks(self) -> list[float]:
        if self.log:
            return [t for t in _ticks(self.lo, self.hi, True) if self.lo <= math.log10(t) <= self.hi]
        return [t for t in _ticks(self.lo, self.hi, False) if self.lo <= t <= self.hi]


def scatter(
    points: Sequence[dict],
    *,
    title: str,
    desc: str,
    xlabel: str,
    ylabel: str,
    xfmt,
    yfmt,
    xlog: bool = False,
    ylog: bool = False,
    arrows: Sequence[tuple[int, int]] = (),
    lines: Sequence[tuple[Sequence[tuple[float, float]], str]] = (),
    caption: str = "",
    width: float = 720,
    height: float = 420,
) -> str:
    """A scatter plot: each point a dict ``x``, ``y``, optional ``r`` (radius), ``label``,
    ``tip`` (hover text) and ``color`` (0-3); ``arrows`` join point indices (from, to);
    ``lines`` are polylines in data coordinates with a label (a roofline's roofs).

    >>> svg = scatter([{"x": 1, "y": 2, "label": "a"}, {"x": 10, "y": 3}], title="t", desc="d",
    ...               xlabel="x", ylabel="y", xfmt=str, yfmt=str, xlog=True)
    >>> svg.count("<circle")
    2
    """
    left, bottom, top_pad, right = 70, 44, 14, 20
    xs = [p["x"] for p in points] + [x for pts, _ in lines for x, _ in pts]
    ys = [p["y"] for p in points] + [y for pts, _ in lines for _, y in pts]
    ax = _Axis(xs, xlog, width - left - right, left, False)
    ay = _Axis(ys, ylog, height - top_pad - bottom, top_pad, True)
    parts = ['<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" class="c3"/></marker></defs>']  # fmt: skip
    x0, x1, y0, y1 = left, width - right, top_pad, height - bottom
    for t in ax.ticks():
        x = ax(t)
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y1}"/>'
                     f'<text x="{x:.1f}" y="{y1 + 14}" text-anchor="middle" class="muted">{esc(xfmt(t))}</text>')  # fmt: skip
    parts += _y_grid_and_frame(ay, (x0, x1, y0, y1), height, xlabel, ylabel, yfmt)
    for pts, label in lines:
        d = " ".join(f"{ax(x):.1f},{ay(y):.1f}" for x, y in pts)
        lx, ly = ax(pts[-1][0]), ay(pts[-1][1])
        parts.append(f'<polyline class="roof" points="{d}"><title>{esc(label)}</title></polyline>'
                     f'<text x="{lx - 4:.1f}" y="{ly - 5:.1f}" text-anchor="end">{esc(label)}</text>')  # fmt: skip
    for a, b in arrows:
        pa, pb = points[a], points[b]
        parts.append(f'<line class="edge s3" x1="{ax(pa["x"]):.1f}" y1="{ay(pa["y"]):.1f}" '
                     f'x2="{ax(pb["x"]):.1f}" y2="{ay(pb["y"]):.1f}" marker-end="url(#arr)"/>')  # fmt: skip
    for p in points:
        x, y = ax(p["x"]), ay(p["y"])
        tip = p.get("tip") or f'{p.get("label", "")} {xfmt(p["x"])}, {yfmt(p["y"])}'
        parts.append(f'<circle class="c{p.get("color", 0)}" cx="{x:.1f}" cy="{y:.1f}" r="{p.get("r", 4):.1f}" '
                     f'fill-opacity="0.7"><title>{esc(tip)}</title></circle>')  # fmt: skip
        if p.get("label"):
            parts.append(f'<text x="{x + 6:.1f}" y="{y - 6:.1f}">{esc(p["label"])}</text>')
    return figure("".join(parts), width=width, height=height, title=title, desc=desc, caption=caption)


def line_chart(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    title: str,
    desc: str,
    xlabel: str,
    ylabel: str,
    yfmt=str,
    caption: str = "",
    width: float = 520,
    height: float = 300,
) -> str:
    """Lines through points, one per named series, with a legend.

    >>> line_chart([("a", [(1, 0.5), (2, 0.7)])], title="t", desc="d", xlabel="epoch",
    ...            ylabel="acc").count("<polyline")
    1
    """
    left, bottom, top_pad, right = 60, 44, 14 + 16 * len(series), 20
    ax = _Axis([x for _, pts in series for x, _ in pts], False, width - left - right, left, False)
    ay = _Axis([y for _, pts in series for _, y in pts], False, height - top_pad - bottom, top_pad, True)
    x0, x1, y0, y1 = left, width - right, top_pad, height - bottom
    parts = []
    for t in ax.ticks():
        parts.append(f'<text x="{ax(t):.1f}" y="{y1 + 14}" text-anchor="middle" class="muted">{_num(t)}</text>')
    parts += _y_grid_and_frame(ay, (x0, x1, y0, y1), height, xlabel, ylabel, yfmt)
    for j, (name, pts) in enumerate(series):
        parts.append(f'<rect class="c{j % 4}" x="{x0}" y="{4 + 16 * j}" width="10" height="10"/>'
                     f'<text x="{x0 + 14}" y="{13 + 16 * j}">{esc(name)}</text>')  # fmt: skip
        d = " ".join(f"{ax(x):.1f},{ay(y):.1f}" for x, y in pts)
        parts.append(f'<polyline class="s{j % 4}" fill="none" stroke-width="2" points="{d}"><title>{esc(name)}</title></polyline>')  # fmt: skip
        for x, y in pts:
            parts.append(f'<circle class="c{j % 4}" cx="{ax(x):.1f}" cy="{ay(y):.1f}" r="3">'
                         f"<title>{esc(name)}: {_num(x)}, {esc(yfmt(y))}</title></circle>")  # fmt: skip
    return figure("".join(parts), width=width, height=height, title=title, desc=desc, caption=caption)


def png_data_url(pixels: Sequence[Sequence[int]]) -> str:
    """Encode a grayscale image (rows of 0-255 ints) as a ``data:image/png`` URL, without Pillow.

    >>> png_data_url([[0, 255], [255, 0]])[:22]
    'data:image/png;base64,'
    """
    h, w = len(pixels), len(pixels[0])
    raw = b"".join(b"\x00" + bytes(int(v) & 255 for v in row) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _y_grid_and_frame(ay: Any, box: tuple, height: float, xlabel: str, ylabel: str, yfmt: Any) -> list[str]:
    """The horizontal grid lines with their labels, the plot's frame and both axis titles."""
    x0, x1, y0, y1 = box
    parts = []
    for t in ay.ticks():
        y = ay(t)
        parts.append(f'<line class="grid" x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" class="muted">{esc(yfmt(t))}</text>')  # fmt: skip
    parts.append(f'<rect class="axis" x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}"/>')
    parts.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{height - 6}" text-anchor="middle">{esc(xlabel)}</text>')
    parts.append(f'<text transform="translate(12 {(y0 + y1) / 2:.0f}) rotate(-90)" text-anchor="middle">{esc(ylabel)}</text>')  # fmt: skip
    return parts
