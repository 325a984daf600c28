"""``onebyone summary``: a Keras-style per-layer table of parameters, MACs and shapes."""

from __future__ import annotations

from pathlib import Path

import typer

from onebyone.cli._common import (
    MAX_DIM,
    check_elements,
    check_memory,
    parse_shape,
    set_threads,
    threads_option,
    user_errors,
)
from onebyone.cli._paths import check_out_file
from onebyone.models import SPEC_HELP

FORMATS = ("table", "json", "csv", "markdown")


def _plot_suffixes() -> tuple[str, ...]:
    """The file types matplotlib can write; a ValueError naming --plot if it is not installed."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'onebyone[plot]'") from None
    return tuple(sorted(f".{ext}" for ext in FigureCanvasBase.get_supported_filetypes()))

# The model/input/batch parameters of ``summary`` and ``plan`` (read by ``_model_and_input``).
MODEL_ARGUMENT = typer.Argument(..., metavar="MODEL", help=f"The model: {SPEC_HELP}.")
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
    if batch > MAX_DIM:
        raise ValueError(f"--batch must be at most {MAX_DIM:,} (2^31 - 1), got {batch}")
    shape = parse_shape(input) if input is not None else None
    net = load_spec(model, **build_kwargs(model, input_shape=shape))
    default = default_shape(net)
    if shape is not None:
        if default is not None and len(shape) == len(default) + 1:
            raise ValueError(
                f"--input takes the shape without the batch (the batch is --batch), e.g. "
                f"--input {'x'.join(map(str, default))}; got {input!r}"
            )
        check_elements((batch, *shape), f"--batch {batch} with --input", input)
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
    roofline: Path | None = typer.Option(
        None,
        "--roofline",
        help="Also save the device's roofline with each layer as a point, e.g. roof.png "
        "(needs matplotlib).",
    ),
    train: bool = typer.Option(
        False,
        "--train",
        help="Also count a training step: backward MACs, saved activations, gradients, "
        "optimizer state and the peak memory (on the meta device).",
    ),
    optimizer: str = typer.Option(
        "adamw", "--optimizer", help="For --train/--max-batch: sgd, sgd-momentum, adam or adamw."
    ),
    max_batch: str | None = typer.Option(
        None,
        "--max-batch",
        help="Print the largest batch whose training step fits in this memory, e.g. 16GiB "
        "or 512MB (by the --train peak estimate), instead of the table.",
    ),
    what_if: bool = typer.Option(  # w18: the training what-ifs
        False,
        "--what-if",
        help="With --train: also print what checkpointing the block that saves most, "
        "channels_last and a 1x1 reduction in front of the conv that saves most would change.",
    ),
    threads: int | None = threads_option(),
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
    if roofline is not None:
        check_out_file(roofline, "--roofline", _plot_suffixes())
    set_threads(threads)
    if what_if and model.lower().endswith(".onnx"):  # w18
        raise ValueError("--what-if needs a PyTorch model (it rebuilds the model), not an .onnx file")
    if model.lower().endswith(".onnx"):  # an .onnx file: analysed by onebyone.onnx
        from onebyone.analysis.roofline import estimate
        from onebyone.onnx import analyze_onnx

        size = None if input is None else (batch, *parse_shape(input))
        report = estimate(analyze_onnx(model, size), device_profile)
    else:
        net, size = _model_and_input(model, input, batch)
        if max_batch is not None:
            _print_max_batch(net, size[1:], max_batch, optimizer)
            return
        if what_if and not train:  # w18
            raise ValueError("--what-if needs --train (the what-ifs are about a training step)")
        if what_if and format in ("json", "csv"):  # w18: lines after JSON/CSV would break it
            raise ValueError(f"--what-if prints text lines: use --format text or markdown, not {format}")
        if train:
            from onebyone.analysis.memory import check_optimizer

            check_optimizer(optimizer)
        if device != "meta":  # counted first without memory: say what the real run would need
            counted = analyze(net, size, device="meta")
            needed = (counted.input_bytes + counted.activation_bytes + counted.param_bytes
                      + counted.buffer_bytes)  # fmt: skip
            check_memory(needed, device, f"a real forward at input {'x'.join(map(str, size))}")
        report = analyze(
            net,
            size,
            device=device,
            device_profile=device_profile,
            measure=measure,
            mode="train" if train else "forward",
            optimizer=optimizer,
        )
    show(report, format, depth=depth, channels_last=channels_last, explain=explain, sort=sort)
    if what_if:  # w18
        _print_what_if(net, size, optimizer)
    if plot is not None:
        path = plot_report(report, plot, depth=depth)
        typer.echo(f"wrote {path}", err=True)
    if roofline is not None:
        from onebyone.analysis.render import plot_roofline

        path = plot_roofline(report, roofline, device_profile=device_profile)
        typer.echo(f"wrote {path}", err=True)


def _print_max_batch(net, input_size: tuple[int, ...], memory: str, optimizer: str) -> None:
    """``summary --max-batch``: the largest batch that fits, and the peak it needs."""
    from onebyone.analysis import analyze, max_batch, parse_memory
    from onebyone.analysis.render import human_bytes

    try:
        budget = parse_memory(memory)
    except ValueError as e:
        raise ValueError(f"--max-batch: {e}") from None
    batch = max_batch(net, input_size, memory=budget, optimizer=optimizer)
    if batch == 0:
        typer.echo(f"no batch fits in {human_bytes(budget)} ({optimizer}): even batch 1 does not")
        return
    cost = analyze(net, (batch, *input_size), mode="train", optimizer=optimizer).train_cost
    typer.echo(
        f"max batch: {batch} (training step with {optimizer}, peak estimate "
        f"{human_bytes(cost.peak_bytes)} of {human_bytes(budget)})"
    )


def _print_what_if(net, size: tuple[int, ...], optimizer: str) -> None:
    """``summary --train --what-if``: three what-ifs on the meta device, one line each (w18)."""
    from onebyone.analysis import analyze
    from onebyone.analysis._train_text import whatif_lines
    from onebyone.analysis.memory import (
        _saved_under,
        channels_last_whatif,
        checkpoint_whatif,
        reduction_whatif,
    )
    from onebyone.analysis.render import human_bytes

    # the direct child whose subtree saves the most bytes, the one checkpointing helps most
    base = analyze(net, size, mode="train", optimizer=optimizer)
    children = [n for n, _ in net.named_children() if _saved_under(base, n)]
    name = max(children, key=lambda n: _saved_under(base, n), default=None)
    best = None if name is None else checkpoint_whatif(net, size, [name], optimizer=optimizer)[0]
    layout = channels_last_whatif(net, size, optimizer=optimizer)
    reduction = reduction_whatif(net, size, optimizer=optimizer)
    for line in whatif_lines(best, layout, reduction, human_bytes):
        typer.echo(line)


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
