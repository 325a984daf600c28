"""What a surgery did: one row per rewritten layer, the layers left alone and why, and totals."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

__all__ = ["LayerChange", "Skip", "SurgeryReport"]


@dataclass
class LayerChange:
    """One rewrite: the layer ``name``, how it was rewritten and what it cost before and after.

    ``macs_*`` are per example (batch 1) and ``None`` when no input shape was known.
    ``weight_error`` is ||W - W_hat|| / ||W|| (Frobenius); ``output_error`` is the same ratio on
    the layer's output for the example input; ``time_*_ms`` are measured CPU medians and ``est_time_*_ms`` roofline estimates (``speedup``).

    Example:
        >>> from onebyone.surgery import decompose
        >>> net = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU())
        >>> _, report = decompose(net, rank=0.25, example_input=torch.randn(1, 32, 8, 8))
        >>> c = report.changes[0]  # 1x1 32->8, 3x3 8->16, 1x1 16->64 (+ bias)
        >>> c.name, c.method, c.ranks, c.params_before, c.params_after
        ('0', 'tucker2', (16, 8), 18496, 2496)
        >>> c.macs_before, c.macs_after  # per 8x8 example
        (1179648, 155648)
    """

    name: str
    method: str
    ranks: tuple[int, ...] = ()
    params_before: int = 0
    params_after: int = 0
    macs_before: int | None = None
    macs_after: int | None = None
    weight_error: float | None = None
    output_error: float | None = None
    time_before_ms: float | None = None
    time_after_ms: float | None = None
    # issue 20 (decompose speedup=): the roofline estimate on the device profile
    est_time_before_ms: float | None = None
    est_time_after_ms: float | None = None


@dataclass
class Skip:
    """A layer the surgery left alone, and why.

    Example:
        >>> from onebyone.surgery import decompose
        >>> net = nn.Sequential(nn.Conv2d(8, 8, 1))
        >>> _, report = decompose(net, rank=4, example_input=torch.randn(1, 8, 4, 4))
        >>> report.skipped
        [Skip(name='0', reason='1x1 convolution (already a channel projection)')]
    """

    name: str
    reason: str


@dataclass
class SurgeryReport:
    """The report returned with the new model by ``decompose``, ``convolutionalize`` and ``fuse``.

    Example:
        >>> r = SurgeryReport("fuse", params_before=10, params_after=8)
        >>> r.skipped.append(Skip("head", "not a convolution"))
        >>> r.to_dict()["skipped"]
        [{'name': 'head', 'reason': 'not a convolution'}]
    """

    operation: str
    changes: list[LayerChange] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    macs_before: int | None = None
    macs_after: int | None = None
    output_error: float | None = None
    notes: list[str] = field(default_factory=list)
    # decompose(speedup=): the target, the whole-model speedup the chosen ranks should give
    # (by the layer times they were chosen on), whether the target was within reach (by the
    # end-to-end measurement when there is one) and that measurement
    speedup_target: float | None = None
    predicted_speedup: float | None = None
    speedup_reachable: bool | None = None
    measured_speedup: float | None = None  # with measure: the chosen model timed end to end

    def to_dict(self) -> dict:
        """The report as plain data (lists and numbers), ready for JSON.

        >>> SurgeryReport("fuse", [LayerChange("0", "fold-bn")]).to_dict()["changes"][0]["method"]
        'fold-bn'
        """
        return asdict(self)

    def to_json(self) -> str:
        """The report as a JSON string (tuples become lists).

        Example:
            >>> import json
            >>> r = SurgeryReport("decompose", [LayerChange("conv", "tucker2", ranks=(16, 8))])
            >>> json.loads(r.to_json())["changes"][0]["ranks"]
            [16, 8]
        """
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        """A plain-text table: one line per change, the skips, then totals before and after.

        With no change, one line says there was nothing to do and why instead of an empty table.

        Example:
            >>> r = SurgeryReport("decompose", params_before=36928, params_after=10320)
            >>> r.changes.append(LayerChange("features.3", "tucker2", ranks=(16, 16), params_before=36928,
            ...                              params_after=10320, macs_before=2359296, macs_after=655360,
            ...                              weight_error=0.412))
            >>> r.skipped.append(Skip("features.0", "3 input channels: nothing to reduce"))
            >>> print(r.to_text())
            layer       method   ranks  params            MACs                  weight error
            features.3  tucker2  16x16  36,928 -> 10,320  2,359,296 -> 655,360  0.412
            skipped features.0: 3 input channels: nothing to reduce
            params: 36,928 -> 10,320  (0.279x)
            >>> print(SurgeryReport("fuse", skipped=[Skip("0 + 1", "grouped convolutions are not merged")]).to_text())
            nothing to do: the one candidate was left alone, for the reason below
            skipped 0 + 1: grouped convolutions are not merged
            params: 0 -> 0
        """
        out = self._table() if self.changes else [self._why_nothing()]
        for s in self.skipped:
            out.append(f"skipped {s.name}: {s.reason}")
        out.extend(self.notes)
        out.append(f"params: {_num(self.params_before)} -> {_num(self.params_after)}{_ratio(self.params_before, self.params_after)}")
        if self.macs_before is not None:
            out.append(f"MACs:   {_num(self.macs_before)} -> {_num(self.macs_after)}{_ratio(self.macs_before, self.macs_after)}")
        if self.output_error is not None:
            out.append(f"relative output error on the example input: {self.output_error:.3g}")
        return "\n".join(out)

    def _why_nothing(self) -> str:
        # convolutionalize may still have removed the pooling (its notes say so): not "nothing".
        lead = "no layer rewritten" if self.operation == "convolutionalize" else "nothing to do"
        if len(self.skipped) == 1:
            return f"{lead}: the one candidate was left alone, for the reason below"
        if self.skipped:
            return f"{lead}: all {len(self.skipped)} candidates were left alone, for the reasons below"
        return f"{lead}: {_NOTHING.get(self.operation, 'no layer this operation applies to')}"

    def _table(self) -> list[str]:
        header = ["layer", "method", "ranks", "params", "MACs", "weight error", "output error",
                  "ms before/after", "est. ms"]  # fmt: skip
        lines = [header]
        for c in self.changes:
            times = "" if c.time_before_ms is None else f"{c.time_before_ms:.3f}/{c.time_after_ms:.3f}"
            est = "" if c.est_time_before_ms is None else f"{c.est_time_before_ms:.3f}/{c.est_time_after_ms:.3f}"
            lines.append([
                c.name,
                c.method,
                "x".join(map(str, c.ranks)) or "-",
                f"{_num(c.params_before)} -> {_num(c.params_after)}",
                f"{_num(c.macs_before)} -> {_num(c.macs_after)}",
                _err(c.weight_error),
                _err(c.output_error),
                times,
                est,
            ])
        # Columns with nothing to say for this operation (ranks for fuse, times unless measured) go.
        keep = [i for i in range(len(header)) if i < 2 or any(row[i] not in ("", "-", "- -> -") for row in lines[1:])]
        lines = [[row[i] for i in keep] for row in lines]
        return _render_table(lines[0], lines[1:]).splitlines()

    def __str__(self) -> str:
        return self.to_text()


#: Why an operation found nothing to do in a model where it skipped nothing.
_NOTHING = {
    "fuse": "no BatchNorm directly after a Conv2d or Linear, and no two linear layers in a row",
    "decompose": "no Conv2d or Linear layer to decompose",
    "convolutionalize": "the head has no Linear layer to rewrite",
}


def _render_table(header: list[str], rows: list[list[str]]) -> str:
    """``rows`` under ``header`` as plain text columns (rich lays them out), no trailing spaces.

    >>> print(_render_table(["layer", "ranks"], [["conv1", "8x8"], ["features.10", "16"]]))
    layer        ranks
    conv1        8x8
    features.10  16
    """
    from rich.table import Table
    from rich.text import Text

    from onebyone._tables import render_rich

    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), show_header=True, header_style=None)
    for name in header:
        table.add_column(Text(name), no_wrap=True, overflow="ignore")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: a "[x]" in a name is not markup
    return render_rich(table).rstrip("\n")


def _num(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _err(e: float | None) -> str:
    return "-" if e is None else f"{e:.3g}"


def _ratio(before: int | None, after: int | None) -> str:
    if not before or not after:
        return ""
    return f"  ({after / before:.3f}x)"


def count_params(module: nn.Module) -> int:
    """Parameters of ``module``, each shared tensor counted once.

    >>> count_params(nn.Linear(3, 2))
    8
    """
    seen = {id(p): p.numel() for p in module.parameters()}
    return sum(seen.values())


def relative_error(reference: torch.Tensor, value: torch.Tensor) -> float:
    """``||value - reference|| / ||reference||`` (0 when both are zero).

    >>> relative_error(torch.ones(4), torch.ones(4))
    0.0
    """
    ref = reference.detach().to(torch.float64)
    num = float(torch.linalg.vector_norm(value.detach().to(torch.float64) - ref))
    den = float(torch.linalg.vector_norm(ref))
    return num / den if den > 0 else num
