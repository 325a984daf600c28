"""``onebyone export``: write a model to ONNX, checked in onnxruntime before it is written."""

from __future__ import annotations

from pathlib import Path

import typer

from onebyone.cli._common import user_errors
from onebyone.models import SPEC_HELP


@user_errors
def export(
    model: str | None = typer.Argument(
        None, help=f"The model: {SPEC_HELP}. Omit it with --plan."
    ),
    onnx: Path = typer.Option(..., "--onnx", help="The .onnx file to write (its folder must exist)."),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Trained weights: a .safetensors file or a folder from onebyone train."
    ),
    plan: Path | None = typer.Option(
        None, "--plan", help="A model saved by compress, fuse or convolutionalize (OUT.json)."
    ),
    input: str | None = typer.Option(
        None, "--input", help="Input CxHxW without the batch, e.g. 3x224x224 (default: the model's own)."
    ),
    batch: int = typer.Option(1, "--batch", help="Batch size of the export input."),
    dynamic_batch: bool = typer.Option(
        True, "--dynamic-batch/--static-batch", help="Make the batch axis dynamic."
    ),
    dynamic_spatial: bool = typer.Option(
        False, "--dynamic-spatial", help="Make the height and width dynamic (e.g. a convolutionalized model)."
    ),
    opset: int | None = typer.Option(None, "--opset", help="ONNX opset (default: the exporter's)."),
) -> None:
    """Export a model to ONNX; onnxruntime must reproduce PyTorch's outputs before the file is written.

    The dynamo exporter is used, and the TorchScript exporter only if it fails (the output says
    so). The model runs in onnxruntime (CPU) at the export size and, for dynamic axes, at a
    second size, and must match PyTorch within a relative error of 1e-4.
    """
    from onebyone._checks import check_int
    from onebyone.cli._paths import check_out_file
    from onebyone.cli._surgery_common import build, input_size
    from onebyone.onnx import export_onnx, require_onnx

    require_onnx("onebyone export")
    batch = check_int("--batch", batch, minimum=1)
    check_out_file(onnx, "--onnx", (".onnx",))
    if not onnx.parent.is_dir():
        raise ValueError(f"--onnx {str(onnx)!r}: the folder {str(onnx.parent)!r} does not exist")
    if plan is not None:
        if model is not None or checkpoint is not None:
            raise ValueError("--plan holds the model and its weights: give MODEL or --plan, not both (and no --checkpoint)")
        from onebyone.surgery import load

        net = load(plan).eval()
    elif model is None:
        raise ValueError("give the MODEL to export (a zoo name or file.py:callable), or --plan OUT.json")
    else:
        net, _ = build(model, checkpoint, None, input)
    size = input_size(net, input)
    result = export_onnx(
        net,
        (batch, *size),
        onnx,
        dynamic_batch=dynamic_batch,
        dynamic_spatial=dynamic_spatial,
        opset=opset,
    )
    typer.echo(str(result))
