"""``onebyone fuse``: fold BatchNorm and merge linear chains of a model, and save it."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from onebyone.cli._common import set_threads, threads_option, user_errors
from onebyone.cli._surgery_common import onnx_option
from onebyone.models import SPEC_HELP


@user_errors
def fuse(
    model: str = typer.Argument(..., metavar="MODEL", help=f"The model: {SPEC_HELP}."),
    out: str = typer.Option(..., "-o", "--out", help="Output path prefix: writes OUT.safetensors and OUT.json."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Trained weights: a .safetensors file or a folder from onebyone train."),
    input: str | None = typer.Option(None, "--input", help="Input CxHxW, default the model's own."),
    num_classes: int | None = typer.Option(None, "--num-classes", help="Passed to the model builder."),
    threads: int | None = threads_option(),
    no_onnx: bool = onnx_option(),
) -> None:
    """Fold BatchNorm into convolutions and merge consecutive linear convolutions; save the result."""
    from onebyone.cli._paths import check_out_prefix
    from onebyone.cli._surgery_common import build, echo_report_and_save, input_size
    from onebyone.surgery import fuse as fuse_model

    out_path = check_out_prefix(out)  # before any work
    set_threads(threads)
    net, kwargs = build(model, checkpoint, num_classes, input)
    size = input_size(net, input)
    fused, report = fuse_model(net, example_input=torch.randn(1, *size))
    echo_report_and_save(net, fused, report, size, out_path, model, kwargs, checkpoint, onnx=not no_onnx)
