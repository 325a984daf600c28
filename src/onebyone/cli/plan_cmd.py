"""``onebyone plan``: the tutorial's what-if, a 1x1 projection before each expensive layer."""

from __future__ import annotations

import typer

from onebyone.cli._common import user_errors
from onebyone.models._spec import SPEC_HELP


@user_errors
def plan(
    model: str = typer.Argument(..., help=f"The model: {SPEC_HELP}."),
    input: str | None = typer.Option(
        None,
        "--input",
        help="Input CxHxW without the batch, e.g. 3x224x224 (default: the model's own).",
    ),
    batch: int = typer.Option(1, "--batch", help="Batch size placed in front of --input."),
    ratio: float = typer.Option(
        0.25, "--ratio", help="Project to this fraction of each layer's in_channels."
    ),
    channels: int | None = typer.Option(
        None, "--channels", help="Project to this many channels (overrides --ratio)."
    ),
    sort: str = typer.Option("macs", "--sort", help="Sort by 'macs' or 'params' saved."),
    format: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """For each convolution with kernel > 1 (and Linear over a flattened map), show the cost
    now and with a 1x1 projection in front of it, sorted by savings, and the model totals."""
    from onebyone._checks import check_choice
    from onebyone.analysis import plan as make_plan
    from onebyone.cli.summary_cmd import _model_and_input

    check_choice("--format", format, ("table", "json"))
    net, size = _model_and_input(model, input, batch)
    result = make_plan(net, size, ratio=ratio, channels=channels, sort=sort)
    typer.echo(result.to_json() if format == "json" else result.render(), nl=format == "json")
