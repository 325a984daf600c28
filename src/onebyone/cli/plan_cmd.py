"""``onebyone plan``: the tutorial's what-if, a 1x1 projection before each expensive layer."""

from __future__ import annotations

import typer

from onebyone.cli._common import user_errors
from onebyone.cli.summary_cmd import (
    BATCH_OPTION,
    FORMATS,
    INPUT_OPTION,
    MODEL_ARGUMENT,
    _model_and_input,
)


@user_errors
def plan(
    model: str = MODEL_ARGUMENT,
    input: str | None = INPUT_OPTION,
    batch: int = BATCH_OPTION,
    ratio: float = typer.Option(
        0.25, "--ratio", help="Project to this fraction of each layer's in_channels."
    ),
    channels: int | None = typer.Option(
        None, "--channels", help="Project to this many channels (overrides --ratio)."
    ),
    sort: str = typer.Option("macs", "--sort", help="Sort by 'macs' or 'params' saved."),
    format: str = typer.Option("table", "--format", help="table, json, csv or markdown."),
) -> None:
    """For each convolution with kernel > 1 (and Linear over a flattened map), show the cost
    now and with a 1x1 projection in front of it, sorted by savings, and the model totals."""
    from onebyone._checks import check_choice, check_fraction, check_int
    from onebyone.analysis import plan as make_plan

    check_choice("--format", format, FORMATS)
    check_choice("--sort", sort, ("macs", "params"))
    if channels is None:
        check_fraction("--ratio", ratio)
    else:
        check_int("--channels", channels)
    net, size = _model_and_input(model, input, batch)
    result = make_plan(net, size, ratio=ratio, channels=channels, sort=sort)
    if format == "json":
        typer.echo(result.to_json())
    elif format in ("csv", "markdown"):
        typer.echo(_rows(result, format), nl=False)
    elif not result.entries:
        skipped = "; ".join(f"{name}: {reason}" for name, reason in result.skipped)
        typer.echo(f"nothing to do: no layer of {model} would be cheaper with a 1x1 projection in "
                   f"front of it" + (f" ({skipped})" if skipped else ""))  # fmt: skip
    else:
        typer.echo(result.render(), nl=False)


def _rows(result, format: str) -> str:
    """The plan's entries as CSV or a Markdown table (the report's own, where it has one)."""
    own = getattr(result, "to_csv" if format == "csv" else "to_markdown", None)
    if own is not None:
        return own()
    rows = [e.to_dict() for e in result.entries]
    keys = list(rows[0]) if rows else ["name"]
    if format == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"
