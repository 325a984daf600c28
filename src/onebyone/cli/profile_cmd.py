"""``onebyone profile``: run a model for real and show measured times beside the estimates."""

from __future__ import annotations

import typer

from onebyone.cli._common import set_threads, threads_option, user_errors
from onebyone.cli.summary_cmd import (
    BATCH_OPTION,
    DEVICE_PROFILE_OPTION,
    FORMATS,
    INPUT_OPTION,
    MODEL_ARGUMENT,
    SORT_OPTION,
    _model_and_input,
    show,
)


@user_errors
def profile(
    model: str = MODEL_ARGUMENT,
    input: str | None = INPUT_OPTION,
    batch: int = BATCH_OPTION,
    device: str = typer.Option("cpu", "--device", help="Where to run: cpu or cuda."),
    repeats: int = typer.Option(10, "--repeats", help="Timed runs; each time is their median."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed runs before timing."),
    depth: int | None = typer.Option(
        None, "--depth", help="Fold rows deeper than N into their parent (default: show all)."
    ),
    sort: str | None = SORT_OPTION,
    format: str = typer.Option("table", "--format", help="table, json, csv or markdown."),
    device_profile: str | None = DEVICE_PROFILE_OPTION,
    threads: int | None = threads_option(),
) -> None:
    """Time every layer of a real forward (warm-up, repeats, medians) beside the estimate.

    MODEL may also be an .onnx file: it is timed whole in onnxruntime's CPU provider (median of
    --repeats runs after --warmup), at --input (needed for symbolic dimensions).
    """
    from onebyone._checks import check_choice, check_int
    from onebyone.analysis import analyze
    from onebyone.analysis.render import SORT_KEYS

    check_choice("--format", format, FORMATS)
    if sort is not None:
        check_choice("--sort", sort, SORT_KEYS)
    check_int("--repeats", repeats, minimum=1)
    check_int("--warmup", warmup, minimum=0)
    if device == "meta":
        raise ValueError("--device meta cannot run a model for real; use cpu or cuda")
    count = set_threads(threads)
    if model.lower().endswith(".onnx"):  # timed whole in onnxruntime (needs the onnx extra)
        from onebyone.cli._common import parse_shape
        from onebyone.onnx import profile as profile_onnx

        size = None if input is None else (batch, *parse_shape(input))
        result = profile_onnx(model, size, repeats=repeats, warmup=warmup, threads=count)
        if format == "json":
            import dataclasses
            import json

            fields = {**dataclasses.asdict(result), "spread": result.spread, "reliable": result.reliable}
            typer.echo(json.dumps(fields, indent=2))
        else:
            typer.echo(str(result))
        return
    net, size = _model_and_input(model, input, batch)
    report = analyze(
        net,
        size,
        device=device,
        device_profile=device_profile,
        measure=True,
        repeats=repeats,
        warmup=warmup,
    )
    show(report, format, depth=depth, sort=sort)
