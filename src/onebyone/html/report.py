"""The model page (:func:`report_html`) and the two-model page (:func:`diff_html`).

Both read a :class:`~onebyone.analysis.Report` and nothing else (a renderer only reads
records). The time columns (bytes read and written, estimated and measured time) are shown
when the report's rows carry them, so the page works with reports that have none.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from onebyone.html._page import (
    check_page_path,
    esc,
    fmt_bytes,
    fmt_count,
    fmt_ratio,
    fmt_seconds,
    page,
    render_or_bug,
    write_page,
)
from onebyone.html._svg import bar_strip, hbars, scatter

__all__ = ["diff_html", "report_html"]

# Optional per-row fields (from the time analysis), in column order: attribute, header, format.
# Read with getattr, so the page works for reports with or without them.
TIME_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("bytes_read", "bytes read", fmt_bytes),
    ("bytes_written", "bytes written", fmt_bytes),
    ("intensity", "FLOPs/byte", lambda v: f"{v:.3g}"),
    ("bound", "bound", str),
    ("est_time_s", "est. time", fmt_seconds),
    ("measured_time_s", "measured", fmt_seconds),
)
_TIME_KEYS = ("measured_time_s", "est_time_s")
_TOGGLE = '<span class="tog" role="button" tabindex="0" aria-expanded="true" aria-label="fold">\u25be</span>'


def _present(rows: Sequence[Any], attr: str) -> bool:
    return any(getattr(r, attr, None) is not None for r in rows)


def _as_report(report_or_model: Any, input_size: Any, device: str, arg: str = "report_or_model") -> Any:
    """A Report as is, or the Report of analyzing a model on ``input_size``."""
    from torch import nn

    from onebyone.analysis import Report, analyze

    if isinstance(report_or_model, Report):
        return report_or_model
    if isinstance(report_or_model, nn.Module):
        if input_size is None:
            raise ValueError(
                f"input_size is needed to analyze a model given as {arg}, e.g. "
                "input_size=(1, 3, 224, 224); got None"
            )
        return analyze(report_or_model, input_size, device=device)
    raise TypeError(f"{arg} must be an onebyone Report or an nn.Module, got {type(report_or_model).__name__}")


def _shape(shape: Any) -> str:
    if isinstance(shape, list):
        return " ".join(_shape(s) for s in shape)
    return "x".join(str(d) for d in shape) if shape else "scalar"


def _total(report: Any, attr: str) -> float | None:
    value = getattr(report, attr, None)
    if value is not None:
        return value
    rows = [getattr(r, attr, None) for r in report.rows if r.is_leaf]
    vals = [v for v in rows if isinstance(v, (int, float))]
    return sum(vals) if vals else None


def _cards(report: Any) -> str:
    items = [
        ("parameters", fmt_count(report.total_params), f"{report.total_params:,}"),
        ("MACs", fmt_count(report.total_macs), f"{report.total_macs:,}"),
        ("FLOPs", fmt_count(report.total_flops), f"{report.total_flops:,}"),
        ("parameter memory", fmt_bytes(report.param_bytes), f"{report.param_bytes:,} bytes"),
        ("activations (sum of outputs)", fmt_bytes(report.activation_bytes), f"{report.activation_bytes:,} bytes"),
    ]  # fmt: skip
    for attr, label, fmt in (
        ("bytes_read", "bytes read", fmt_bytes),
        ("bytes_written", "bytes written", fmt_bytes),
        ("est_time_s", "estimated time", fmt_seconds),
        ("measured_time_s", "measured time", fmt_seconds),
    ):
        if _present(report.rows, attr) or getattr(report, attr, None) is not None:
            v = _total(report, attr)
            items.append((label, fmt(v), f"{v}"))
    cards = "".join(
        f'<div class="card" title="{esc(full)}"><b>{esc(v)}</b><span>{esc(k)}</span></div>'
        for k, v, full in items
    )
    return f'<div class="cards">{cards}</div>'


def _label(row: Any) -> str:
    again = f" #{row.call_index + 1}" if row.call_index else ""
    return f"{row.name or '(model)'}{again} ({row.type})"


def _layer_charts(report: Any) -> str:
    leaves = [r for r in report.rows if r.is_leaf]
    labels = [_label(r) for r in leaves]
    out = [
        f"<p class=\"note\">One bar per leaf layer ({len(leaves)} of them, execution order from "
        "left to right; containers are left out so nothing counts twice). Hover a bar for the "
        "layer and its value.</p>"
    ]
    metrics = [
        ("MACs", [r.macs for r in leaves], fmt_count, 0),
        ("params", [r.params for r in leaves], fmt_count, 1),
        ("activation bytes", [r.activation_bytes for r in leaves], fmt_bytes, 2),
    ]
    if _present(leaves, "bytes_read") or _present(leaves, "bytes_written"):
        moved = [(getattr(r, "bytes_read", None) or 0) + (getattr(r, "bytes_written", None) or 0) for r in leaves]
        metrics.append(("bytes moved (read + written)", moved, fmt_bytes, 1))
    for attr, label in (("est_time_s", "estimated time"), ("measured_time_s", "measured time")):
        if _present(leaves, attr):
            metrics.append((label, [getattr(r, attr, None) or 0 for r in leaves], fmt_seconds, 3))
    for name, values, fmt, color in metrics:
        out.append(
            bar_strip(values, labels, title=f"{name} per layer", fmt=fmt, color=color,
                      desc=f"Bar chart of {name} for each of the {len(leaves)} leaf layers of "
                           f"{report.model}, in execution order; the tallest is {fmt(max(values, default=0))}.")
        )  # fmt: skip
    key = "measured_time_s" if _present(leaves, "measured_time_s") else (
        "est_time_s" if _present(leaves, "est_time_s") else "macs")  # fmt: skip
    fmt = fmt_seconds if key != "macs" else fmt_count
    top = sorted(leaves, key=lambda r: getattr(r, key, 0) or 0, reverse=True)[:12]
    top = [r for r in top if getattr(r, key, 0)]
    if top:
        what = {"macs": "MACs", "est_time_s": "estimated time", "measured_time_s": "measured time"}[key]
        out.append(hbars(
            [(_label(r), [getattr(r, key)]) for r in top], fmt=fmt,
            title=f"The {len(top)} layers with the most {what}",
            desc=f"Horizontal bars of the {len(top)} leaf layers of {report.model} with the most {what}.",
            caption=f"The {len(top)} layers with the most {what}.",
        ))  # fmt: skip
    return "\n".join(out)


def _table(report: Any) -> str:
    extra = [(a, h, f) for a, h, f in TIME_FIELDS if _present(report.rows, a)]
    heads = ["#", "layer", "type", "output shape", "params", "MACs", "FLOPs", "activations"]
    heads += [h for _, h, _ in extra]
    numeric = {0, 4, 5, 6, 7} | {8 + i for i, (a, _, _) in enumerate(extra) if a != "bound"}
    th = "".join(f'<th scope="col"{" class=n" if i in numeric else ""}>{esc(h)}</th>' for i, h in enumerate(heads))
    body = []
    rows = report.rows
    for i, r in enumerate(rows):
        indent = 0.9 * max(r.depth - 1, 0) if r.name else 0
        again = f" #{r.call_index + 1}" if r.call_index else ""
        # A fold toggle where the next row is deeper (a child); the script makes it work.
        tog = _TOGGLE if i + 1 < len(rows) and rows[i + 1].depth > r.depth else ""
        cells = [
            f'<td class="n" data-v="{i}">{i}</td>',
            f'<td class="name" style="padding-left:{indent + 1.7:.1f}rem" title="{esc(r.formula)}">'
            f"{tog}{esc(r.name or '(model)')}{esc(again)}</td>",
            f"<td>{esc(r.type)}</td>",
            f"<td>{esc(_shape(r.output_shape))}</td>",
            f'<td class="n" data-v="{r.params}">{r.params:,}</td>',
            f'<td class="n" data-v="{r.macs}">{fmt_count(r.macs)}</td>',
            f'<td class="n" data-v="{r.flops}">{fmt_count(r.flops)}</td>',
            f'<td class="n" data-v="{r.activation_bytes}">{fmt_bytes(r.activation_bytes)}</td>',
        ]
        for attr, _, fmt in extra:
            v = getattr(r, attr, None)
            if attr == "bound":
                cells.append(f"<td>{esc(v or '')}</td>")
            else:
                cells.append(f'<td class="n" data-v="{v if v is not None else -1}">{esc(fmt(v))}</td>')
        body.append(f'<tr data-depth="{r.depth}">{"".join(cells)}</tr>')
    return (
        '<p class="note">Click a column header to sort (again to reverse); <b>#</b> brings back '
        "execution order, where the triangles fold a module's children. Hover a name for its "
        "formula. Containers' rows count only their own work (their children have their own rows).</p>"
        f'<div class="scroll"><table class="sortable tree" id="layers"><thead><tr>{th}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _tree(report: Any) -> str:
    """Nested details/summary by module hierarchy with subtree totals: folds without JavaScript."""
    firsts = [r for r in report.rows if r.call_index == 0]
    sums: dict[str, list[int]] = {}
    for r in report.rows:
        parts = r.name.split(".") if r.name else []
        for k in range(len(parts) + 1):
            s = sums.setdefault(".".join(parts[:k]), [0, 0])
            s[0] += r.params
            s[1] += r.macs
    names = {r.name for r in firsts}
    children: dict[str, list[Any]] = {}
    for r in firsts:
        if not r.name:
            continue
        parent = r.name.rsplit(".", 1)[0] if "." in r.name else ""
        while parent and parent not in names:  # a child of a module that was never called
            parent = parent.rsplit(".", 1)[0] if "." in parent else ""
        children.setdefault(parent, []).append(r)

    def node(r: Any, depth: int) -> str:
        s = sums.get(r.name, [0, 0])
        text = (f"<code>{esc(r.name.rsplit('.', 1)[-1] or '(model)')}</code> {esc(r.type)} "
                f'<span class="n">{esc(_shape(r.output_shape))} · {s[0]:,} params · {esc(fmt_count(s[1]))} MACs</span>')  # fmt: skip
        kids = children.get(r.name, [])
        if not kids:
            return f'<div class="leaf">{text}</div>'
        inner = "".join(node(k, depth + 1) for k in kids)
        return f"<details{' open' if depth < 1 else ''}><summary>{text}</summary>{inner}</details>"

    root = next((r for r in firsts if r.name == ""), None)
    if root is None:
        return ""
    return f'<div class="tree">{node(root, 0)}</div>'


def _profile_roof(report: Any) -> tuple[float, float, str] | None:
    """(peak FLOP/s, bandwidth bytes/s, name) of the report's device profile, when it can be known.

    ``Report.device_profile`` may be a profile object or dict (``rates`` per op class, or a
    ``peak_flops``, and a ``bandwidth``) or its label, ``"name (source)"``, which is looked up
    with ``onebyone.analysis.resolve_profile`` where that exists. Anything else: no roof.
    """
    prof = getattr(report, "device_profile", None)
    if isinstance(prof, str) and prof:
        prof = _resolve_label(prof)
    if prof is None or isinstance(prof, str):
        return None

    def get(name: str) -> Any:
        return prof.get(name) if isinstance(prof, dict) else getattr(prof, name, None)

    rates = get("rates")
    peak = max((v for v in rates.values() if isinstance(v, (int, float))), default=None) if isinstance(rates, dict) else None
    peak = peak or get("peak_flops")
    bw = get("bandwidth")
    name = get("name") or "device"
    ok = all(isinstance(v, (int, float)) and v > 0 for v in (peak, bw))
    return (float(peak), float(bw), str(name)) if ok else None


def _resolve_label(label: str) -> Any:
    """The profile behind a report's ``"name (source)"`` label, or None if it cannot be found."""
    try:
        from onebyone.analysis import resolve_profile  # the time analysis, where it exists
    except ImportError:
        return None
    name = label.split(" (", 1)[0]
    for candidate in (name, None):  # a preset by name, else this machine's default profile
        try:
            prof = resolve_profile(candidate)
        except (ValueError, TypeError, OSError):
            continue
        label_of = getattr(prof, "label", None)
        if getattr(prof, "name", None) == name and (not callable(label_of) or label_of() == label):
            return prof
    return None


def _roofline(report: Any) -> str:
    key = "measured_time_s" if _present(report.rows, "measured_time_s") else "est_time_s"
    pts = []
    for r in report.rows:
        t = getattr(r, key, None)
        moved = (getattr(r, "bytes_read", None) or 0) + (getattr(r, "bytes_written", None) or 0)
        if not r.is_leaf or not t or not r.flops or not moved:
            continue
        pts.append((r, r.flops / moved, r.flops / t, t))
    if not pts:
        return ""
    total = sum(t for *_, t in pts)
    points = [
        {"x": i, "y": y, "r": 2 + 14 * (t / total) ** 0.5, "color": 1 if key == "measured_time_s" else 0,
         "tip": f"{_label(r)}: {i:.3g} FLOPs/byte, {fmt_count(y)}FLOP/s, {fmt_seconds(t)}"}
        for r, i, y, t in pts
    ]  # fmt: skip
    lines = []
    roof = _profile_roof(report)
    note = "No device profile on the report, so no roof is drawn."
    if roof:
        peak, bw, name = roof
        lo = min(p["x"] for p in points) / 2
        hi = max(p["x"] for p in points) * 2
        ridge = peak / bw
        pts_line = [(lo, lo * bw)] + ([(ridge, peak)] if lo < ridge < hi else []) + [(hi, min(peak, hi * bw))]
        lines.append((pts_line, f"{name}: {fmt_count(peak)}FLOP/s, {fmt_bytes(bw)}/s"))
        note = f"The roof is the profile {name!r}: bandwidth x intensity up to the peak rate."
    which = "measured" if key == "measured_time_s" else "estimated"
    return scatter(
        points, xlog=True, ylog=True, lines=lines,
        title=f"Roofline: each layer's FLOPs per byte against its FLOP rate ({which} time)",
        desc=f"Log-log scatter plot of {len(points)} layers of {report.model}: arithmetic intensity "
             f"against the FLOP rate of the {which} time; a point's area is its share of the time.",
        xlabel="arithmetic intensity (FLOPs per byte moved)", ylabel="FLOP/s",
        xfmt=lambda v: f"{v:g}", yfmt=lambda v: fmt_count(v),
        caption=f"A point's area is the layer's share of the {which} time. {note}",
    )  # fmt: skip


def render_report(report: Any, *, title: str | None = None) -> str:
    """The model page as a string (see :func:`report_html`).

    >>> from torch import nn
    >>> import onebyone
    >>> text = render_report(onebyone.analyze(nn.Conv2d(3, 8, 1), (1, 3, 4, 4)))
    >>> text.count('<tr data-depth=')
    1
    """
    sections = [
        _cards(report),
        "<h2>Per layer</h2>", _layer_charts(report),
    ]  # fmt: skip
    roof = _roofline(report)
    if roof:
        sections += ["<h2>Roofline</h2>", roof]
    sections += ["<h2>Layers</h2>", _table(report)]
    tree = _tree(report)
    if tree:
        sections += [
            "<h2>Module hierarchy</h2>",
            '<p class="note">Each module with the totals of everything inside it; click to fold '
            "(works without JavaScript).</p>",
            tree,
        ]
    inputs = ", ".join(_shape(s) for s in report.input_shapes)
    sub = f"input {inputs} · {report.dtype} · counted on {report.device} · {len(report.rows)} rows"
    return page(title or report.model, "\n".join(sections), subtitle=sub)


def report_html(
    report_or_model: Any,
    path: str | os.PathLike,
    *,
    input_size: Any = None,
    device: str = "meta",
    title: str | None = None,
) -> Path:
    """Write one self-contained HTML page for a model: totals, per-layer charts, sortable table.

    The page holds the totals; a bar per layer of MACs, params, activation bytes (and time, when
    the report has it); the layers with the most work; a roofline (when the rows carry time and
    bytes); the layer table (sortable by any column, foldable by module); and the module
    hierarchy with subtotals. Nothing is loaded from the network; it reads without JavaScript.

    Args:
        report_or_model: a :class:`~onebyone.analysis.Report`, or an ``nn.Module`` to analyze.
        path: the ``.html`` file to write, in an existing folder; written atomically.
        input_size: the input shape with the batch, when a model is given.
        device: where a model is analyzed (``"meta"``: no memory, no arithmetic).
        title: the page title (default: the model's name).

    Returns:
        The path written.

    Raises:
        TypeError: ``report_or_model`` is neither a Report nor a module.
        ValueError: a model without ``input_size``.
        OneByOneError: the model's forward failed during the analysis (no file is written).
        OSError: the folder is missing or not writable (checked before the analysis).

    Example:
        >>> import tempfile, pathlib
        >>> from torch import nn
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "conv.html"
        >>> report_html(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), out, input_size=(1, 3, 8, 8)).name
        'conv.html'
        >>> out.read_text().count("<tr data-depth=")
        3
    """
    check_page_path(path)
    report = _as_report(report_or_model, input_size, device)
    return write_page(path, render_or_bug(render_report, report, title=title))


def _diff_rows(a: Any, b: Any) -> tuple[list[tuple[str, Any, Any]], list[Any], list[Any]]:
    """Rows matched by name (first calls), then the rows only in A and only in B."""
    ma, mb = a.by_name(), b.by_name()
    matched = [(n, ma[n], mb[n]) for n in ma if n in mb]
    return matched, [r for n, r in ma.items() if n not in mb], [r for n, r in mb.items() if n not in ma]


def render_diff(a: Any, b: Any, *, labels: Sequence[str] = ("A", "B"), title: str | None = None) -> str:
    """The two-model page as a string (see :func:`diff_html`).

    >>> from torch import nn
    >>> import onebyone
    >>> ra = onebyone.analyze(nn.Sequential(nn.Conv2d(8, 8, 3)), (1, 8, 6, 6))
    >>> rb = onebyone.analyze(nn.Sequential(nn.Conv2d(8, 2, 3)), (1, 8, 6, 6))
    >>> "0.25x" in render_diff(ra, rb)
    True
    """
    la, lb = labels
    totals = [
        ("parameters", a.total_params, b.total_params, fmt_count),
        ("MACs", a.total_macs, b.total_macs, fmt_count),
        ("FLOPs", a.total_flops, b.total_flops, fmt_count),
        ("parameter memory", a.param_bytes, b.param_bytes, fmt_bytes),
        ("activations (sum of outputs)", a.activation_bytes, b.activation_bytes, fmt_bytes),
    ]
    for attr, label, fmt in (("bytes_read", "bytes read", fmt_bytes), ("bytes_written", "bytes written", fmt_bytes),
                             ("est_time_s", "estimated time", fmt_seconds),
                             ("measured_time_s", "measured time", fmt_seconds)):  # fmt: skip
        if _present(a.rows, attr) or _present(b.rows, attr):
            totals.append((label, _total(a, attr), _total(b, attr), fmt))
    trows = "".join(
        f'<tr><td>{esc(k)}</td><td class="n" data-v="{va if va is not None else -1}">{esc(f(va))}</td>'
        f'<td class="n" data-v="{vb if vb is not None else -1}">{esc(f(vb))}</td>'
        f'<td class="n">{esc(fmt_ratio(va, vb))}</td></tr>'
        for k, va, vb, f in totals
    )
    heads = f"<th>total</th><th class=n>{esc(la)}</th><th class=n>{esc(lb)}</th><th class=n>{esc(lb)} / {esc(la)}</th>"
    sections = [
        f'<div class="scroll"><table id="totals"><thead><tr>{heads}</tr></thead><tbody>{trows}</tbody></table></div>',
        hbars(
            [(k, [va, vb]) for k, va, vb, _ in totals[:3]] , fmt=fmt_count, series=[la, lb], log=True,
            title=f"{la} and {lb}: parameters, MACs and FLOPs",
            desc=f"Paired horizontal bars (log scale) of the totals of {la} ({a.model}) and {lb} ({b.model}).",
            caption="Log scale: equal steps are equal ratios.",
        ),
    ]  # fmt: skip
    matched, only_a, only_b = _diff_rows(a, b)
    # Top-level modules side by side: where the difference is.
    tops = [(n, ra, rb) for n, ra, rb in matched if n and "." not in n]
    if tops:
        suba = {n: a.subtree(n)["macs"] for n, _, _ in tops}
        subb = {n: b.subtree(n)["macs"] for n, _, _ in tops}
        sections.append(hbars(
            [(n, [suba[n], subb[n]]) for n, _, _ in tops], fmt=fmt_count, series=[la, lb],
            title="MACs per top-level module",
            desc=f"Paired bars of the MACs inside each top-level module of {la} and {lb}.",
        ))  # fmt: skip
    cols = ["#", "layer", f"type {la}", f"type {lb}", f"params {la}", f"params {lb}", "ratio",
            f"MACs {la}", f"MACs {lb}", "ratio"]  # fmt: skip
    time_attr = next((k for k in _TIME_KEYS if _present(a.rows, k) and _present(b.rows, k)), None)
    if time_attr:
        cols += [f"time {la}", f"time {lb}", "ratio"]
    th = "".join(f"<th{' class=n' if i not in (1, 2, 3) else ''}>{esc(c)}</th>" for i, c in enumerate(cols))
    body = []

    def ratio_cell(x: float | None, y: float | None) -> str:
        v = y / x if x and y is not None else -1
        return f'<td class="n" data-v="{v}">{esc(fmt_ratio(x, y))}</td>'

    for i, (n, ra, rb) in enumerate(matched):
        cells = [f'<td class="n" data-v="{i}">{i}</td>', f"<td>{esc(n or '(model)')}</td>",
                 f"<td>{esc(ra.type)}</td>", f"<td>{esc(rb.type)}</td>",
                 f'<td class="n" data-v="{ra.params}">{ra.params:,}</td>',
                 f'<td class="n" data-v="{rb.params}">{rb.params:,}</td>', ratio_cell(ra.params, rb.params),
                 f'<td class="n" data-v="{ra.macs}">{fmt_count(ra.macs)}</td>',
                 f'<td class="n" data-v="{rb.macs}">{fmt_count(rb.macs)}</td>', ratio_cell(ra.macs, rb.macs)]  # fmt: skip
        if time_attr:
            ta, tb = getattr(ra, time_attr, None), getattr(rb, time_attr, None)
            cells += [f'<td class="n" data-v="{ta or -1}">{fmt_seconds(ta)}</td>',
                      f'<td class="n" data-v="{tb or -1}">{fmt_seconds(tb)}</td>', ratio_cell(ta, tb)]  # fmt: skip
        body.append(f"<tr>{''.join(cells)}</tr>")
    sections += [
        "<h2>Layers matched by name</h2>",
        f'<p class="note">{len(matched)} modules have the same name in both; ratios are {esc(lb)} / {esc(la)}. '
        "Click a header to sort.</p>",
        f'<div class="scroll"><table class="sortable" id="matched"><thead><tr>{th}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>",
    ]  # fmt: skip
    for label, rows in ((la, only_a), (lb, only_b)):
        if not rows:
            continue
        lis = "".join(
            f'<tr><td>{esc(r.name)}</td><td>{esc(r.type)}</td><td class="n" data-v="{r.params}">{r.params:,}</td>'
            f'<td class="n" data-v="{r.macs}">{fmt_count(r.macs)}</td></tr>'
            for r in rows
        )
        sections += [
            f"<h2>Only in {esc(label)} ({len(rows)})</h2>",
            '<div class="scroll"><table class="sortable"><thead><tr><th>layer</th><th>type</th>'
            f"<th class=n>params</th><th class=n>MACs</th></tr></thead><tbody>{lis}</tbody></table></div>",
        ]
    sub = f"{la}: {a.model} on {', '.join(map(_shape, a.input_shapes))} · {lb}: {b.model} on {', '.join(map(_shape, b.input_shapes))}"
    return page(title or f"{a.model} vs {b.model}", "\n".join(sections), subtitle=sub)


def diff_html(
    report_a: Any,
    report_b: Any,
    path: str | os.PathLike,
    *,
    input_size: Any = None,
    labels: Sequence[str] = ("A", "B"),
    device: str = "meta",
    title: str | None = None,
) -> Path:
    """Write one HTML page comparing two models side by side, with ratios (B / A).

    Totals (and time, when the reports have it), paired bars, the MACs of each top-level
    module, a sortable table of the layers matched by name, and the layers found in only one.

    Args:
        report_a: the first Report (or an ``nn.Module``, analyzed on ``input_size``).
        report_b: the second Report or module.
        path: the ``.html`` file to write, in an existing folder; written atomically.
        input_size: the input shape with the batch, for models given as modules.
        labels: what to call the two models on the page.
        device: where modules are analyzed.
        title: the page title (default: ``"A vs B"`` with the models' names).

    Returns:
        The path written.

    Raises:
        TypeError: an argument is neither a Report nor a module.
        ValueError: a module without ``input_size``, or ``labels`` not two strings.
        OneByOneError: a model's forward failed during the analysis (no file is written).
        OSError: the folder is missing or not writable (checked first).

    Example:
        >>> import tempfile, pathlib
        >>> from onebyone.blocks import Inception, NaiveInception
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "diff.html"
        >>> naive = NaiveInception(192, ch1x1=64, ch3x3=128, ch5x5=32)
        >>> reduced = Inception(192, ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32, pool_proj=32)
        >>> diff_html(naive, reduced, out, input_size=(1, 192, 28, 28), labels=("naive", "reduced")).name
        'diff.html'
    """
    check_page_path(path)
    if (
        isinstance(labels, str)
        or len(labels) != 2
        or not all(isinstance(s, str) for s in labels)
    ):
        raise ValueError(f"labels must be two strings, e.g. ('before', 'after'), got {labels!r}")
    a = _as_report(report_a, input_size, device, "report_a")
    b = _as_report(report_b, input_size, device, "report_b")
    return write_page(path, render_or_bug(render_diff, a, b, labels=labels, title=title))
