"""``onebyone.diff``: two models side by side, per layer and in total.

Rows are matched by qualified name and call (``layer1.0.conv1``, first call); rows whose names
appear in only one model are listed apart. Each matched row and the totals show params, MACs,
bytes, the estimated time and, when both reports were measured, the measured time, with the
ratio ``b / a`` (below 1: model ``b`` is smaller or faster).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ._text import human_bytes, human_count, human_time
from .report import LayerStats, Report

__all__ = ["METRICS", "Diff", "DiffRow", "diff"]

METRICS = ("params", "macs", "bytes", "est_time_s", "measured_time_s")


def _value(row: LayerStats | Report, metric: str) -> float | None:
    if isinstance(row, Report):
        return {
            "params": row.total_params,
            "macs": row.total_macs,
            "bytes": row.bytes_read + row.bytes_written,
            "est_time_s": row.est_time_s,
            "measured_time_s": row.measured_time_s,
        }[metric]
    if metric == "bytes":
        return row.bytes_read + row.bytes_written
    return getattr(row, metric)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not a:
        return None
    return b / a


@dataclass
class DiffRow:
    """One layer in both models (or in one of them): its values in ``a`` and in ``b``.

    ``a`` or ``b`` is None for a row found in one model only.

    Example:
        >>> row = DiffRow("fc", "Linear", {"macs": 8}, {"macs": 4})
        >>> row.ratio("macs")
        0.5
    """

    name: str
    type: str
    a: dict[str, float | None] | None
    b: dict[str, float | None] | None

    def ratio(self, metric: str) -> float | None:
        """``b / a`` for ``metric`` (None when a side is missing or zero)."""
        if self.a is None or self.b is None:
            return None
        return _ratio(self.a.get(metric), self.b.get(metric))


@dataclass
class Diff:
    """The comparison of two reports; build it with :func:`diff`.

    Attributes:
        a: the first report ("before").
        b: the second report ("after").
        rows: matched rows in ``a``'s order, then rows only in ``a``, then rows only in ``b``.
    """

    a: Report
    b: Report
    rows: list[DiffRow] = field(default_factory=list)

    def total(self, metric: str) -> tuple[float | None, float | None, float | None]:
        """``(a, b, b / a)`` of a model total (``params``, ``macs``, ``bytes``, ``est_time_s``...)."""
        va, vb = _value(self.a, metric), _value(self.b, metric)
        return va, vb, _ratio(va, vb)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values: the totals with ratios and every row."""
        return {
            "a": {"model": self.a.model, "input_shapes": [list(s) for s in self.a.input_shapes]},
            "b": {"model": self.b.model, "input_shapes": [list(s) for s in self.b.input_shapes]},
            "device_profile": self.a.device_profile,
            "totals": {
                m: dict(zip(("a", "b", "ratio"), self.total(m), strict=True)) for m in METRICS
            },
            "rows": [
                {"name": r.name, "type": r.type, "a": r.a, "b": r.b,
                 "ratios": {m: r.ratio(m) for m in METRICS}}
                for r in self.rows
            ],
        }  # fmt: skip

    def to_json(self, *, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self) -> str:
        """One line per row: name, type, then ``a``, ``b`` and ratio of each metric."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(
            ["name", "type", *[f"{m}_{side}" for m in METRICS for side in ("a", "b", "ratio")]]
        )
        for r in self.rows:
            cells: list[Any] = [r.name, r.type]
            for m in METRICS:
                va = None if r.a is None else r.a.get(m)
                vb = None if r.b is None else r.b.get(m)
                cells += ["" if v is None else v for v in (va, vb, r.ratio(m))]
            writer.writerow(cells)
        return buf.getvalue()

    def _table_rows(self) -> tuple[list[str], list[list[str]]]:
        measured = self.a.measured_time_s is not None and self.b.measured_time_s is not None
        cols = ["Layer (type)", "Params", "MACs", "Bytes", "Est. time", "Est. ratio"]
        if measured:
            cols += ["Measured", "Meas. ratio"]
        out = []
        for r in self.rows:
            cells = [f"{r.name or '(model)'} ({r.type})" + ("" if r.a and r.b else
                     " [only in a]" if r.a else " [only in b]")]  # fmt: skip
            for m, fmt in (("params", _n), ("macs", human_count), ("bytes", human_bytes),
                           ("est_time_s", human_time)):  # fmt: skip
                cells.append(_pair(r, m, fmt))
            cells.append(_x(r.ratio("est_time_s")))
            if measured:
                cells += [_pair(r, "measured_time_s", human_time), _x(r.ratio("measured_time_s"))]
            out.append(cells)
        return cols, out

    def _total_lines(self) -> list[str]:
        lines = []
        for m, label, fmt in (("params", "Params", _n), ("macs", "MACs", _n),
                              ("bytes", "Bytes moved", human_bytes),
                              ("est_time_s", "Estimated time", human_time),
                              ("measured_time_s", "Measured time", human_time)):  # fmt: skip
            va, vb, ratio = self.total(m)
            if va is None or vb is None:
                continue
            speed = ""
            if m.endswith("time_s") and vb:
                speed = f", speedup {va / vb:.2f}x"
            lines.append(f"{label}: {fmt(va)} -> {fmt(vb)} ({_x(ratio)}{speed})")
        lines.append(f"Estimates on {self.a.device_profile}.")
        return lines

    def render(self, *, width: int | None = None) -> str:
        """The diff as a rich table and the totals, as ``onebyone diff`` prints it."""
        from rich import box
        from rich.table import Table

        from onebyone._tables import render_rich

        cols, rows = self._table_rows()
        table = Table(title=f"a: {self.a.model}  b: {self.b.model}  (a -> b)", box=box.SIMPLE_HEAD,
                      title_justify="left")  # fmt: skip
        for col in cols:
            table.add_column(col, justify="left" if col == "Layer (type)" else "right",
                             overflow="fold", no_wrap=col != "Layer (type)")  # fmt: skip
        for cells in rows:
            table.add_row(*cells)
        return render_rich(table, *self._total_lines(), width=width)

    def to_markdown(self) -> str:
        """The diff as a Markdown table and a list of totals."""
        cols, rows = self._table_rows()
        lines = ["| " + " | ".join(cols) + " |", "|---" + "|---:" * (len(cols) - 1) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in rows]
        return "\n".join([*lines, "", *(f"- {t}" for t in self._total_lines())]) + "\n"

    def __str__(self) -> str:
        return self.render()


def _n(v: float | None) -> str:
    return "--" if v is None else f"{int(v):,}"


def _x(ratio: float | None) -> str:
    return "--" if ratio is None else f"{ratio:.2f}x"


def _pair(r: DiffRow, metric: str, fmt) -> str:
    va = None if r.a is None else r.a.get(metric)
    vb = None if r.b is None else r.b.get(metric)
    return f"{fmt(va) if va is not None else '--'} -> {fmt(vb) if vb is not None else '--'}"


def _key(row: LayerStats) -> tuple[str, int]:
    return row.name, row.call_index


def _values(row: LayerStats) -> dict[str, float | None]:
    return {m: _value(row, m) for m in METRICS}


def diff(a: Report | nn.Module, b: Report | nn.Module, input_size: Any = None, **options) -> Diff:
    """Compare two models (or two reports) per layer and in total.

    Args:
        a: the first model or its :class:`Report` ("before").
        b: the second model or its report ("after").
        input_size: the input for models (as for :func:`onebyone.analyze`); ``b`` gets the
            same input.
        **options: passed to :func:`onebyone.analyze` for models (``device_profile``,
            ``measure``...).

    Raises:
        ValueError: a model without ``input_size``.
        TypeError: ``a`` or ``b`` is neither a model nor a report.

    Example:
        >>> import onebyone
        >>> d = onebyone.diff(onebyone.create_model("tutorial_7x7"),
        ...                   onebyone.create_model("tutorial_7x7_reduced"), (1, 3, 32, 32))
        >>> a, b, ratio = d.total("macs")
        >>> f"{ratio:.3f}", [r.name for r in d.rows if r.b is None]
        ('0.153', [])
    """
    from .analyze import analyze

    reports = []
    for side, x in (("a", a), ("b", b)):
        if isinstance(x, Report):
            reports.append(x)
        elif isinstance(x, nn.Module):
            if input_size is None:
                raise ValueError(f"diff: {side} is a model, so input_size is needed, e.g. (1, 3, 224, 224)")
            reports.append(analyze(x, input_size, **options))
        else:
            raise TypeError(f"diff: {side} must be an nn.Module or a Report, got {type(x).__name__}")
    ra, rb = reports

    def worth(row: LayerStats) -> bool:
        return bool(row.is_leaf or row.op_costs or row.params)

    rows_b = {_key(r): r for r in rb.rows if worth(r)}
    result = Diff(ra, rb)
    only_a = []
    for row in ra.rows:
        if not worth(row):
            continue
        other = rows_b.pop(_key(row), None)
        if other is None:
            only_a.append(DiffRow(row.name, row.type, _values(row), None))
        else:
            kind = row.type if row.type == other.type else f"{row.type} -> {other.type}"
            result.rows.append(DiffRow(row.name, kind, _values(row), _values(other)))
    result.rows += only_a
    result.rows += [DiffRow(r.name, r.type, None, _values(r)) for r in rows_b.values()]
    return result
