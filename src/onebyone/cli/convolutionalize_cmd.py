"""``onebyone convolutionalize``: turn a classifier's fully-connected head into convolutions."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from onebyone.cli._common import user_errors
from onebyone.models._spec import SPEC_HELP


@user_errors
def convolutionalize(
    model: str = typer.Argument(..., help=f"The model: {SPEC_HELP}."),
    input: str | None = typer.Option(None, "--input", help="The size the model was built for, CxHxW."),
    to: str | None = typer.Option(None, "--to", help="A larger CxHxW to show the score map on."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Trained weights: a .safetensors file or a folder from onebyone train."),
    num_classes: int | None = typer.Option(None, "--num-classes", help="Passed to the model builder."),
    out: str | None = typer.Option(None, "-o", "--out", help="Also save: writes OUT.safetensors and OUT.json."),
) -> None:
    """Rewrite the Linear head as convolutions; show the score-map shapes and the equivalence error."""
    from onebyone.cli._paths import check_out_prefix
    from onebyone.cli._surgery_common import build, input_size, save_and_echo
    from onebyone.errors import OneByOneError
    from onebyone.surgery import convolutionalize as convolutionalize_model

    if to is not None:
        input_size(None, to, "--to")  # a malformed --to fails before any work
    out_path = check_out_prefix(out)  # before any work
    net, kwargs = build(model, checkpoint, num_classes, input)
    size = input_size(net, input)
    big = _check_to(size, input_size(net, to, "--to")) if to is not None else None
    try:
        conv_net, report = convolutionalize_model(net, size)
    except (ValueError, OneByOneError) as e:
        if str(e).startswith("input_size "):  # the model rejects the input: name the option
            raise type(e)(f"--input {_text(size)}: {e}") from e
        raise
    typer.echo(report.to_text())
    conv_net.eval()
    with torch.no_grad():
        shape = tuple(conv_net(torch.randn(1, *size)).shape)
        typer.echo(f"score map at {_text(size)}: {shape}")
        if big is not None:
            try:
                scores = conv_net(torch.randn(1, *big))
            except RuntimeError as e:
                raise ValueError(f"--to {_text(big)}: the convolutionalized model cannot run on it ({e})") from e
            typer.echo(f"score map at {_text(big)}: {tuple(scores.shape)}")
    typer.echo(f"relative error of the logits (L2) at {_text(size)}: {report.output_error:.3g}")
    if out_path is not None:
        save_and_echo(conv_net, out_path, model, kwargs)


def _text(size: tuple[int, ...]) -> str:
    return "x".join(map(str, size))


def _check_to(size: tuple[int, ...], big: tuple[int, ...]) -> tuple[int, ...]:
    """``--to`` keeps the channels and is at least the built size: the head's first convolution
    has the kernel of the whole feature map at ``--input``."""
    if big[0] != size[0]:
        raise ValueError(f"--to must keep the {size[0]} input channels of {_text(size)}, got {_text(big)}")
    if big[1] < size[1] or big[2] < size[2]:
        raise ValueError(
            f"--to {_text(big)} is smaller than the size the network accepts ({_text(size)}): "
            f"the convolutionalized head needs at least {size[1]}x{size[2]} pixels"
        )
    return big
