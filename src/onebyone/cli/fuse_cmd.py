"""``onebyone fuse``: fold BatchNorm and merge linear chains of a model, and save it."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from onebyone.cli._common import user_errors
from onebyone.models._spec import SPEC_HELP


@user_errors
def fuse(
    model: str = typer.Argument(..., help=f"The model: {SPEC_HELP}."),
    out: str = typer.Option(..., "-o", "--out", help="Output path prefix: writes OUT.safetensors and OUT.json."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Trained weights (.safetensors)."),
    input: str | None = typer.Option(None, "--input", help="Input CxHxW, default the model's own."),
    num_classes: int | None = typer.Option(None, "--num-classes", help="Passed to the model builder."),
) -> None:
    """Fold BatchNorm into convolutions and merge consecutive linear convolutions; save the result."""
    from onebyone.cli._surgery_common import (
        build,
        check_out,
        echo_totals,
        input_size,
        latency_pair,
        torch_threads_note,
    )
    from onebyone.surgery import fuse as fuse_model
    from onebyone.surgery import save

    out_path = check_out(out)  # before any work
    net, kwargs = build(model, checkpoint, num_classes)
    size = input_size(net, input)
    fused, report = fuse_model(net, example_input=torch.randn(1, *size))
    typer.echo(report.to_text())
    typer.echo("")
    (b1, b8), (a1, a8) = latency_pair(net, fused, size)
    typer.echo(f"totals at input {'x'.join(map(str, size))} ({torch_threads_note()}):")
    echo_totals(
        {"params": report.params_before, "macs": report.macs_before, "b1": b1, "b8": b8},
        {"params": report.params_after, "macs": report.macs_after, "b1": a1, "b8": a8},
    )
    plan = save(fused, out_path, base=model, base_kwargs=kwargs)
    typer.echo(f"wrote {plan} and {plan.with_suffix('.safetensors')}")
