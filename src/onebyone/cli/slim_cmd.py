"""``onebyone slim``: compress to a target speedup, fine-tune by distillation, evaluate, save."""

from __future__ import annotations

from pathlib import Path

import typer

from onebyone.cli._common import set_threads, threads_option, user_errors
from onebyone.cli._surgery_common import onnx_option
from onebyone.models import SPEC_HELP


@user_errors
def slim(
    model: str = typer.Argument(..., metavar="MODEL", help=f"The model: {SPEC_HELP}."),
    data: str = typer.Option("mnist5k", "--data", help="Dataset: mnist5k or a path (fine-tuning on train, accuracy on test)."),
    out: Path = typer.Option(..., "--out", help="Folder for the run: model.json + .safetensors, report.json."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Trained weights: a .safetensors file or a folder from onebyone train."),
    speedup: float = typer.Option(2.0, "--speedup", help="Target speedup of the whole model (> 1)."),
    max_error: float = typer.Option(0.5, "--max-error", help="The largest relative weight error a decomposed layer may take (inf: no cap)."),
    method: str = typer.Option("tucker2", "--method", help="tucker2 (1x1, kxk, 1x1) or reduce (1x1, kxk)."),
    finetune: int = typer.Option(2, "--finetune", help="Epochs of distillation from the original (0: none)."),
    estimate: bool = typer.Option(False, "--estimate", help="Choose ranks by the time estimate instead of measuring."),
    device_profile: str | None = typer.Option(None, "--device-profile", help="Profile for the estimates: a preset or a file."),
    lr: float = typer.Option(3e-3, "--lr", help="Fine-tuning peak learning rate (AdamW, cosine)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Fine-tuning batch size (16, not train's 32: more steps in two short epochs)."),
    calibration: int = typer.Option(256, "--calibration", help="Training samples the factors are fitted to (0: the weights alone)."),
    round_to: int = typer.Option(8, "--round-to", help="Round the ranks up to a multiple of this."),
    subset: int = typer.Option(0, "--subset", help="Fine-tune on a class-balanced subset of this many samples (0: all)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last finished stage."),
    threads: int | None = threads_option(),
    no_onnx: bool = onnx_option(),
) -> None:
    """Slim a trained model: compress to --speedup, fine-tune, evaluate; print before/after; save."""
    from onebyone._checks import check_choice, check_int, check_max_error, check_speedup
    from onebyone.cli._common import check_subset
    from onebyone.cli._surgery_common import build
    from onebyone.data import load as load_data
    from onebyone.surgery import slim as run_slim

    try:
        check_speedup(speedup)
    except (ValueError, TypeError) as e:
        raise ValueError(f"--{e}") from None
    check_max_error("--max-error", max_error)
    check_choice("--method", method, ("tucker2", "reduce"))
    check_int("--round-to", round_to)
    check_int("--batch-size", batch_size)
    check_int("--calibration", calibration, minimum=0)
    if not 0 < lr < float("inf"):  # also refuses nan
        raise ValueError(f"--lr must be a finite number > 0, got {lr}")
    if finetune < 0:
        raise ValueError(f"--finetune must be an int >= 0 (epochs), got {finetune}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file, expected a folder")
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise ValueError(f"--out {str(out)!r} is not empty; use --resume to continue a run there, or another folder")
    set_threads(threads)
    train_set, test_set = load_data(data, "train"), load_data(data, "test")
    if check_subset("--subset", subset, train_set):
        train_set = train_set.subset(subset)
    size = tuple(train_set.input_size)
    net, kwargs = build(
        model, checkpoint, None if checkpoint is not None else train_set.num_classes, "x".join(map(str, size))
    )
    result = run_slim(
        net, train_set, test_set, out, speedup=speedup, max_error=max_error, method=method, finetune_epochs=finetune,
        measure=not estimate, resume=resume, device_profile=device_profile, base=model, base_kwargs=kwargs, lr=lr,
        batch_size=batch_size, calibration=calibration, round_to=round_to, onnx=not no_onnx, log=typer.echo,
    )
    typer.echo("")
    typer.echo(result.to_text())
