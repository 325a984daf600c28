"""``onebyone compress``: decompose a model's convolutions into 1x1 bottlenecks and save it."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from onebyone._checks import check_choice, check_fraction, check_int, check_max_error, check_speedup
from onebyone.cli._common import set_threads, threads_option, user_errors
from onebyone.cli._surgery_common import onnx_option
from onebyone.models import SPEC_HELP


def _parse_rank(text: str | None):
    if text is None:
        return None
    try:
        return check_int("--rank", int(text))
    except ValueError as e:
        if "--rank" in str(e):
            raise
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 < value <= 1.0:
        raise ValueError(f"--rank must be an int >= 1 or a fraction in (0, 1], got {text!r}")
    return value


def _check_options(energy, budget, rank, method, round_to, iterations, speedup=None, estimate=False,
                   measure=False, max_error=0.5):
    """The flags' values, checked before any work, with the flags named."""
    if sum(v is not None for v in (energy, budget, rank, speedup)) != 1:
        raise ValueError("give exactly one of --energy, --budget or --rank (or --speedup, to choose by time)")
    if speedup is not None:
        try:
            check_speedup(speedup)
        except ValueError as e:
            raise ValueError(f"--{e}") from None
    elif estimate:
        raise ValueError("--estimate goes with --speedup (it chooses ranks by estimated time)")
    if estimate and measure:
        raise ValueError("give at most one of --measure or --estimate")
    check_max_error("--max-error", max_error)
    if energy is not None:
        check_fraction("--energy", energy)
    if budget is not None:
        check_fraction("--budget", budget, high_open=True)
    check_choice("--method", method, ("tucker2", "reduce"))
    check_int("--round-to", round_to)
    check_int("--iterations", iterations, minimum=0)


@user_errors
def compress(
    model: str = typer.Argument(..., metavar="MODEL", help=f"The model: {SPEC_HELP}."),
    out: str = typer.Option(..., "-o", "--out", help="Output path prefix: writes OUT.safetensors and OUT.json."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Trained weights: a .safetensors file or a folder from onebyone train."),
    energy: float | None = typer.Option(None, "--energy", help="Keep this fraction of the squared singular values."),
    budget: float | None = typer.Option(None, "--budget", help="Target fraction of the model's MACs, in (0, 1)."),
    rank: str | None = typer.Option(None, "--rank", help="An int rank, or a fraction of the channels in (0, 1]."),
    method: str = typer.Option("tucker2", "--method", help="tucker2 (1x1, kxk, 1x1) or reduce (1x1, kxk)."),
    measure: bool = typer.Option(False, "--measure", help="Keep only rewrites that run faster on this CPU."),
    speedup: float | None = typer.Option(None, "--speedup", help="Target speedup of the whole model (> 1): ranks chosen by measured time; also splits 1x1s."),
    estimate: bool = typer.Option(False, "--estimate", help="With --speedup: choose ranks by the time estimate instead of measuring."),
    max_error: float = typer.Option(0.5, "--max-error", help="With --speedup: the largest relative weight error a layer may take."),
    input: str | None = typer.Option(None, "--input", help="Input CxHxW, default the model's own."),
    num_classes: int | None = typer.Option(None, "--num-classes", help="Passed to the model builder."),
    round_to: int = typer.Option(8, "--round-to", help="Round ranks up to a multiple of this."),
    iterations: int = typer.Option(0, "--iterations", help="HOOI refinement iterations (tucker2)."),
    threads: int | None = threads_option(),
    no_onnx: bool = onnx_option(),
) -> None:
    """Decompose kxk convolutions and Linears into low-rank bottlenecks; print the table; save.

    MODEL may also be a model saved by compress, fuse or convolutionalize (x.json or
    x.safetensors). Columns: "weight error" is ||W - W'|| / ||W||, the relative
    (Frobenius) error of each layer's weights after the decomposition; "output error"
    is the same ratio on the layer's output for a random example input. 0 is exact; 0.1 means
    errors a tenth the size of the values. Without --checkpoint the weights are random and
    these errors say little about a trained model; with a checkpoint from onebyone train, the
    test accuracy before and after is printed as well.

    --speedup 2 chooses the ranks by time instead (measured on this CPU and cached, or with
    --estimate by the device profile's roofline), also splitting 1x1 convolutions; layers whose
    relative weight error would exceed --max-error (default 0.5) are left alone, and the report
    says the best speedup reachable within that cap when the target is out of reach.
    """
    from onebyone.cli._paths import check_out_prefix
    from onebyone.cli._surgery_common import build, echo_report_and_save, input_size
    from onebyone.surgery import decompose

    parsed_rank = _parse_rank(rank)
    _check_options(energy, budget, parsed_rank, method, round_to, iterations, speedup, estimate, measure, max_error)
    out_path = check_out_prefix(out)  # before any work
    set_threads(threads)
    net, kwargs = build(model, checkpoint, num_classes, input)
    size = input_size(net, input)
    example = torch.randn(1, *size)
    try:
        small, report = decompose(
            net, method=method, rank=parsed_rank, energy=energy, budget=budget, round_to=round_to,
            example_input=example, measure=measure or (speedup is not None and not estimate),
            iterations=iterations, **({} if speedup is None else {"speedup": speedup, "pointwise": True,
                                                                   "max_error": max_error}),
        )
    except ValueError as e:  # "rank 1000 is above...", "budget 0.01 cannot be met": name the flag
        message = str(e)
        for name in ("rank", "budget", "energy"):
            if message.startswith(f"{name} "):
                raise ValueError(f"--{message}") from e
        raise
    echo_report_and_save(net, small, report, size, out_path, model, kwargs, checkpoint, onnx=not no_onnx)
