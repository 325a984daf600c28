"""``onebyone diff``: two models side by side, per layer and in total."""

from __future__ import annotations

import typer

from onebyone.cli._common import user_errors
from onebyone.cli.summary_cmd import (
    BATCH_OPTION,
    DEVICE_PROFILE_OPTION,
    INPUT_OPTION,
    _model_and_input,
)
from onebyone.models._spec import SPEC_HELP

DIFF_FORMATS = ("table", "json", "csv", "markdown")


@user_errors
def diff(
    a: str = typer.Argument(..., metavar="A", help=f"The first model ('before'): {SPEC_HELP}."),
    b: str = typer.Argument(..., metavar="B", help="The second model ('after'), the same way."),
    input: str | None = INPUT_OPTION,
    batch: int = BATCH_OPTION,
    format: str = typer.Option("table", "--format", help="table, json, csv or markdown."),
    device_profile: str | None = DEVICE_PROFILE_OPTION,
    measure: bool = typer.Option(
        False, "--measure", help="Also run both models for real on the CPU and compare the times."
    ),
) -> None:
    """Compare params, MACs, bytes and estimated (or measured) time of two models, per layer.

    Layers are matched by name; layers found in one model only are listed apart.
    """
    from onebyone._checks import check_choice
    from onebyone._tables import output_width
    from onebyone.analysis import diff as make_diff

    check_choice("--format", format, DIFF_FORMATS)
    net_a, size = _model_and_input(a, input, batch)
    net_b, size_b = _model_and_input(b, input, batch)
    if size_b != size:
        raise ValueError(
            f"A and B take different inputs ({size[1:]} and {size_b[1:]}); pass --input to pick one"
        )
    result = make_diff(net_a, net_b, size, device_profile=device_profile, measure=measure)
    if format == "json":
        typer.echo(result.to_json())
    elif format == "csv":
        typer.echo(result.to_csv(), nl=False)
    elif format == "markdown":
        typer.echo(result.to_markdown(), nl=False)
    else:
        typer.echo(result.render(width=output_width()), nl=False)
