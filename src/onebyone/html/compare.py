"""The compare page (:func:`compare_html`): accuracy against MACs and against measured time.

It reads what ``onebyone compare`` writes (``report.json``: one entry per variant with
``name``, ``twin``, ``params``, ``macs``, ``latency_ms_b1``, ``latency_ms_b64``, ``accuracy``,
``train_seconds``), a :class:`~onebyone.experiments.CompareReport`, or the same dict. Learning
curves are drawn for variants that carry a per-epoch ``history`` (a list of records with
``epoch`` and ``train_loss``/``train_accuracy``/``val_accuracy``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from onebyone.html._page import check_page_path, esc, fmt_count, page, render_or_bug, write_page
from onebyone.html._svg import line_chart, scatter

__all__ = ["compare_html"]

_REQUIRED = ("name", "params", "macs", "accuracy")


def _load(source: Any) -> tuple[list[dict[str, Any]], str]:
    """The variants as dicts, and where they came from (for error messages and the subtitle)."""
    if hasattr(source, "to_dict") and hasattr(source, "variants"):
        data, where = source.to_dict(), "the CompareReport"
        # The report's own records may carry more than report.json (a history, if kept).
        for d, v in zip(data["variants"], source.variants, strict=True):
            if getattr(v, "history", None) is not None:
                d["history"] = list(v.history)
    elif isinstance(source, dict):
        data, where = source, "the dict"
    elif isinstance(source, (str, os.PathLike)):
        where = str(source)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{where!r} is not a JSON file written by onebyone compare") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where!r} is not valid JSON ({e.msg} at line {e.lineno}); expected "
                             "the report.json written by onebyone compare") from None  # fmt: skip
    else:
        raise TypeError(
            f"source must be a report.json path, a dict or a CompareReport, got {type(source).__name__}"
        )
    variants = data.get("variants") if isinstance(data, dict) else None
    if not isinstance(variants, list) or not variants:
        raise ValueError(f"{where!r} has no 'variants' list; expected the report.json of onebyone compare")
    for i, v in enumerate(variants):
        if not isinstance(v, dict):
            raise ValueError(f"{where!r}: variants[{i}] is not an object")
        for key in _REQUIRED:
            if not isinstance(v.get(key), (int, float, str)) or (key != "name" and isinstance(v[key], str)):
                raise ValueError(f"{where!r}: variants[{i}] has no numeric field {key!r}"
                                 if key != "name" else f"{where!r}: variants[{i}] has no 'name'")  # fmt: skip
    return variants, where


def _color(v: dict[str, Any], variants: list[dict[str, Any]]) -> int:
    if v.get("twin"):
        return 2  # a 1x1-reduced variant
    return 1 if any(u.get("twin") == v["name"] for u in variants) else 3


def _acc_chart(variants: list[dict[str, Any]], key: str, xlabel: str, xfmt: Any, what: str) -> str:
    shown = [v for v in variants if isinstance(v.get(key), (int, float)) and v[key] > 0]
    if not shown:
        return f'<p class="note">No {esc(what)} in this report (compare ran with --no-latency).</p>'
    index = {v["name"]: i for i, v in enumerate(shown)}
    points = [
        {"x": v[key], "y": 100 * v["accuracy"], "label": v["name"], "color": _color(v, shown),
         "tip": f"{v['name']}: {xfmt(v[key])}, {100 * v['accuracy']:.2f}% test accuracy"}
        for v in shown
    ]  # fmt: skip
    arrows = [(index[v["twin"]], index[v["name"]]) for v in shown if v.get("twin") in index]
    return scatter(
        points, arrows=arrows, xlog=True, xlabel=xlabel, ylabel="test accuracy (%)",
        xfmt=xfmt, yfmt=lambda y: f"{y:.3g}",
        title=f"Test accuracy against {what}",
        desc=f"Scatter plot of {len(points)} variants: {what} (log scale) against test accuracy; "
             "arrows go from each naive network to its 1x1-reduced twin.",
        caption="Arrows: naive (orange) -> 1x1-reduced twin (green); purple: no twin. "
                "Left is cheaper, up is more accurate.",
    )  # fmt: skip


def _curves(variants: list[dict[str, Any]]) -> str:
    with_history = {v["name"]: v for v in variants if isinstance(v.get("history"), list) and v["history"]}
    if not with_history:
        return ('<p class="note">This report has no per-epoch history (report.json records the '
                "final numbers only), so there are no learning curves to draw.</p>")  # fmt: skip
    groups: list[list[dict[str, Any]]] = []
    seen: set[str] = set()
    # Twins first (naive, reduced), then the variants without one.
    for v in sorted(variants, key=lambda v: not v.get("twin")):
        if v["name"] in seen or v["name"] not in with_history:
            continue
        twin = with_history.get(v.get("twin") or "")
        group = [twin, v] if twin is not None else [v]
        seen.update(g["name"] for g in group)
        groups.append(group)
    out = []
    for group in groups:
        for metric, label in (("val_accuracy", "validation accuracy"), ("train_accuracy", "training accuracy"),
                              ("train_loss", "training loss")):  # fmt: skip
            series = [
                (g["name"], [(float(r.get("epoch", k + 1)), float(r[metric]))
                             for k, r in enumerate(g["history"]) if isinstance(r.get(metric), (int, float))])
                for g in group
            ]  # fmt: skip
            series = [(n, pts) for n, pts in series if pts]
            if series:
                names = " vs ".join(n for n, _ in series)
                out.append(line_chart(
                    series, xlabel="epoch", ylabel=label, yfmt=lambda y: f"{y:.3g}",
                    title=f"{label} per epoch: {names}",
                    desc=f"Line chart of the {label} of {names} after each epoch.",
                    caption=f"{names}: {label}",
                ))  # fmt: skip
                break
    return f'<div class="pair">{"".join(out)}</div>'


def _table(variants: list[dict[str, Any]]) -> str:
    def num(v: Any, f: str) -> str:
        return (f'<td class="n" data-v="{v}">{format(v, f)}</td>' if isinstance(v, (int, float))
                else '<td class="n" data-v="-1">-</td>')  # fmt: skip

    body = "".join(
        f"<tr><td>{esc(v['name'])}</td><td>{esc(v.get('twin') or '-')}</td>"
        f'<td class="n" data-v="{v["params"]}">{v["params"]:,}</td>'
        f'<td class="n" data-v="{v["macs"]}">{esc(fmt_count(v["macs"]))}</td>'
        + num(v.get("latency_ms_b1"), ".3g") + num(v.get("latency_ms_b64"), ".3g")
        + f'<td class="n" data-v="{v["accuracy"]}">{100 * v["accuracy"]:.2f}%</td>'
        + num(v.get("train_seconds"), ".1f") + "</tr>"
        for v in variants
    )
    heads = ("variant", "twin", "params", "MACs", "ms, batch 1", "ms, batch 64", "test accuracy", "train s")
    th = "".join(f"<th{' class=n' if i > 1 else ''}>{esc(h)}</th>" for i, h in enumerate(heads))
    return (f'<div class="scroll"><table class="sortable" id="variants"><thead><tr>{th}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")  # fmt: skip


def render_compare(source: Any) -> str:
    """The compare page as a string (see :func:`compare_html`).

    >>> page = render_compare({"variants": [
    ...     {"name": "a", "twin": None, "params": 10, "macs": 400, "accuracy": 0.9},
    ...     {"name": "b", "twin": "a", "params": 5, "macs": 100, "accuracy": 0.95}]})
    >>> page.count("<circle")
    2
    """
    variants, where = _load(source)
    return render_or_bug(_render, variants, where)


def _render(variants: list[dict[str, Any]], where: str) -> str:
    pairs = []
    by_name = {v["name"]: v for v in variants}
    for v in variants:
        t = by_name.get(v.get("twin") or "")
        if t is not None and v["macs"]:
            pairs.append(f"<li><b>{esc(v['name'])}</b> vs {esc(t['name'])}: {t['macs'] / v['macs']:.1f}x "
                         f"fewer MACs, accuracy {100 * v['accuracy']:.2f}% vs {100 * t['accuracy']:.2f}%</li>")  # fmt: skip
    body = [
        f"<ul>{''.join(pairs)}</ul>" if pairs else "",
        "<h2>Accuracy against cost</h2>",
        '<div class="pair">',
        _acc_chart(variants, "macs", "MACs per image (log scale)", fmt_count, "MACs"),
        _acc_chart(variants, "latency_ms_b1", "measured CPU latency at batch 1, ms (log scale)",
                   lambda x: f"{x:.3g}", "measured time"),
        "</div>",
        "<h2>Learning curves</h2>", _curves(variants),
        "<h2>Variants</h2>", _table(variants),
    ]  # fmt: skip
    return page("onebyone compare", "\n".join(body), subtitle=f"{len(variants)} variants, from {where}")


def compare_html(source: Any, path: str | os.PathLike) -> Path:
    """Write the compare page: accuracy against MACs and against measured time, learning curves.

    Args:
        source: the ``report.json`` written by ``onebyone compare`` (a path), its dict, or a
            :class:`~onebyone.experiments.CompareReport`.
        path: the ``.html`` file to write, in an existing folder; written atomically.

    Returns:
        The path written.

    Raises:
        TypeError: ``source`` is of another type.
        ValueError: the file is not JSON, or has no variants or a variant without ``name``,
            ``params``, ``macs`` or ``accuracy`` (the message names the file and the field).
        OSError: ``source`` cannot be read, or the page's folder is missing or not writable.

    Example:
        >>> import tempfile, pathlib
        >>> from onebyone.experiments import CompareReport, VariantResult
        >>> r = CompareReport([VariantResult("plain_5x5", None, 10, 400, 1.0, 9.0, 0.95, 3.0),
        ...                    VariantResult("nin_mlpconv", "plain_5x5", 5, 100, 0.5, 4.0, 0.97, 2.0)])
        >>> compare_html(r, pathlib.Path(tempfile.mkdtemp()) / "compare.html").name
        'compare.html'
    """
    check_page_path(path)
    return write_page(path, render_compare(source))
