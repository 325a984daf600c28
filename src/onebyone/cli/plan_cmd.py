"""``onebyone plan``: the tutorial's what-if, a 1x1 projection before each expensive layer."""

from __future__ import annotations

import typer

from onebyone.cli._common import user_errors
from onebyone.cli.summary_cmd import (
    BATCH_OPTION,
    DEVICE_PROFILE_OPTION,
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
    sort: str = typer.Option(
        "macs", "--sort", help="Sort by 'macs', 'params' or estimated 'time' saved."
    ),
    format: str = typer.Option("table", "--format", help="table or json."),
    device_profile: str | None = DEVICE_PROFILE_OPTION,
) -> None:
    """For each convolution with kernel > 1 (and Linear over a flattened map), show the cost
    now and with a 1x1 projection in front of it, sorted by savings, and the model totals."""
    from onebyone._checks import check_choice, check_fraction, check_int
    from onebyone.analysis import plan as make_plan
    from onebyone.analysis.plan import PLAN_SORT_KEYS

    check_choice("--format", format, ("table", "json"))
    check_choice("--sort", sort, PLAN_SORT_KEYS)
    if channels is None:
        check_fraction("--ratio", ratio)
    else:
        check_int("--channels", channels)
    net, size = _model_and_input(model, input, batch)
    result = make_plan(
        net, size, ratio=ratio, channels=channels, sort=sort, device_profile=device_profile
    )
    if format == "json":
        typer.echo(result.to_json())
    else:
        from onebyone._tables import output_width

        typer.echo(result.render(width=output_width()), nl=False)
