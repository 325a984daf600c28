"""``onebyone summary``: a Keras-style per-layer table of parameters, MACs and shapes."""

from __future__ import annotations

from pathlib import Path

import typer

from onebyone.cli._common import parse_shape, user_errors
from onebyone.cli._paths import check_out_file
from onebyone.models._spec import SPEC_HELP

FORMATS = ("table", "json", "csv", "markdown")


def _plot_suffixes() -> tuple[str, ...]:
    """The file types matplotlib can write; a ValueError naming --plot if it is not installed."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'onebyone[plot]'") from None
    return tuple(sorted(f".{ext}" for ext in FigureCanvasBase.get_supported_filetypes()))

# The model/input/batch parameters of ``summary`` and ``plan`` (read by ``_model_and_input``).
MODEL_ARGUMENT = typer.Argument(..., help=f"The model: {SPEC_HELP}.")
INPUT_OPTION = typer.Option(
    None,
    "--input",
    help="Input CxHxW without the batch, e.g. 3x224x224 (default: the model's own).",
)
BATCH_OPTION = typer.Option(1, "--batch", help="Batch size placed in front of --input.")
DEVICE_PROFILE_OPTION = typer.Option(
    None,
    "--device-profile",
    help="Estimate times for this device: a preset (h100-sxm, h200, a100-80gb, l4, t4, "
    "cpu-fallback) or a profile file (default: this machine's, from 'onebyone calibrate').",
)
SORT_OPTION = typer.Option(
    None, "--sort", help="Order rows by time, macs, params or bytes (default: execution order)."
)


def _model_and_input(model: str, input: str | None, batch: int) -> tuple[object, tuple[int, ...]]:
    """Load a model spec and the input size with the batch first (shared with ``plan``).

    A zoo model is built for ``--input``'s channels (``--input 1x28x28``: ``in_channels=1``).
    """
    from onebyone._checks import check_int
    from onebyone.cli._model import build_kwargs, default_shape, load_spec

    batch = check_int("--batch", batch, minimum=1)
    shape = parse_shape(input) if input is not None else None
    net = load_spec(model, **build_kwargs(model, input_shape=shape))
    default = default_shape(net)
    if shape is not None:
        if default is not None and len(shape) == len(default) + 1:
            raise ValueError(
                f"--input takes the shape without the batch (the batch is --batch), e.g. "
                f"--input {'x'.join(map(str, default))}; got {input!r}"
            )
        return net, (batch, *shape)
    if default is None:
        raise ValueError(
            f"{model!r} has no default_input_size; pass --input CxHxW, e.g. --input 3x224x224"
        )
    return net, (batch, *default)


@user_errors
def summary(
    model: str = MODEL_ARGUMENT,
    input: str | None = INPUT_OPTION,
    batch: int = BATCH_OPTION,
    depth: int | None = typer.Option(
        None, "--depth", help="Fold rows deeper than N into their parent (default: show all)."
    ),
    format: str = typer.Option("table", "--format", help="table, json, csv or markdown."),
    channels_last: bool = typer.Option(
        False, "--channels-last", help="Show shapes as Keras does: (None, H, W, C)."
    ),
    explain: bool = typer.Option(
        False, "--explain", help="Add a column with each layer's formula."
    ),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        help="Also save a bar chart of MACs and params per layer, e.g. plot.png or plot.svg "
        "(needs matplotlib).",
    ),
    device: str = typer.Option("meta", "--device", help="meta (no real forward), cpu or cuda."),
    device_profile: str | None = DEVICE_PROFILE_OPTION,
    sort: str | None = SORT_OPTION,
    measure: bool = typer.Option(
        False,
        "--measure",
        help="Also run the model for real (on --device, or the CPU) and show measured times.",
    ),
) -> None:
    """Count parameters, MACs and FLOPs per layer, without a real forward pass by default.

    MACs are the multiply-accumulates of convolutions and matrix products (bias adds
    excluded, as in torchvision's figures); FLOPs = 2 x MACs + elementwise work.
    """
    from onebyone._checks import check_choice
    from onebyone.analysis import analyze
    from onebyone.analysis.render import SORT_KEYS, plot_report

    check_choice("--format", format, FORMATS)
    if sort is not None:
        check_choice("--sort", sort, SORT_KEYS)
    if depth is not None and depth < 0:
        raise ValueError(f"--depth must be >= 0, got {depth}")
    if plot is not None:
        check_out_file(plot, "--plot", _plot_suffixes())  # before any work
    net, size = _model_and_input(model, input, batch)
    report = analyze(net, size, device=device, device_profile=device_profile, measure=measure)
    show(report, format, depth=depth, channels_last=channels_last, explain=explain, sort=sort)
    if plot is not None:
        path = plot_report(report, plot, depth=depth)
        typer.echo(f"wrote {path}", err=True)


def show(report, format: str, **options) -> None:
    """Print a report in one of ``FORMATS`` (shared with ``profile``)."""
    from onebyone._tables import output_width
    from onebyone.analysis.render import render_markdown, render_text

    depth, channels_last = options.get("depth"), options.get("channels_last", False)
    explain, sort = options.get("explain", False), options.get("sort")
    if format == "json":
        typer.echo(report.to_json())
    elif format == "csv":
        typer.echo(report.to_csv(), nl=False)
    elif format == "markdown":
        typer.echo(
            render_markdown(
                report, depth=depth, channels_last=channels_last, explain=explain, sort=sort
            ),
            nl=False,
        )
    else:
        typer.echo(
            render_text(
                report,
                depth=depth,
                channels_last=channels_last,
                explain=explain,
                width=output_width(),
                sort=sort,
            ),
            nl=False,
        )
