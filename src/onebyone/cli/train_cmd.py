"""``onebyone train``: train a zoo model (or your own) on the bundled MNIST or your data."""

from __future__ import annotations

from pathlib import Path

import typer

from onebyone.cli._common import (
    check_device,
    check_subset,
    plural,
    set_threads,
    threads_option,
    user_errors,
)
from onebyone.cli._paths import check_out_dir
from onebyone.models import SPEC_HELP


@user_errors
def train(
    model: str = typer.Argument(
        ..., metavar="MODEL", help=f"The model to train or fine-tune: {SPEC_HELP}, or a model "
        "saved by compress, fuse or convolutionalize (x.json)."
    ),
    data: str = typer.Option("mnist5k", "--data", help="'mnist5k' (bundled) or a dataset path."),
    epochs: int = typer.Option(
        5, "--epochs", help="Total epochs (a resumed run stops at the same total)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Checkpoint directory (state.json and an epoch folder of safetensors "
        "files); default runs/NAME, NAME being the model's name.", show_default=False,
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint in --out."),
    batch_size: int = typer.Option(32, "--batch-size", help="Samples per step (per process)."),
    lr: float = typer.Option(0.05, "--lr", help="Peak learning rate."),
    optimizer: str = typer.Option("sgd", "--optimizer", help="sgd, adamw or adam."),
    schedule: str = typer.Option("cosine", "--schedule", help="cosine or constant."),
    weight_decay: float = typer.Option(
        5e-4, "--weight-decay", help="L2 penalty on the weights (decoupled for adamw)."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seeds the model's initialisation, the data order and dropout."
    ),
    device: str = typer.Option(
        "auto", "--device", help="auto (CUDA if available), cpu, cuda, cuda:N."
    ),
    channels_last: bool = typer.Option(
        True, "--channels-last/--no-channels-last",
        help="Keep images in channels-last memory order (often faster convolutions on CPU).",
    ),
    subset: int = typer.Option(
        0, "--subset", help="Train on a class-balanced subset of this many samples (0: all)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    threads: int | None = threads_option(),
) -> None:
    """Train MODEL with progress bars and a checkpoint per epoch; torchrun runs it distributed.

    Example: onebyone train resnet20 --data mnist5k --epochs 3 --out runs/resnet20
    """
    import os

    import torch

    from onebyone._checks import check_choice, check_int, check_number
    from onebyone.cli._model import load_spec, trained_with
    from onebyone.data import load
    from onebyone.train import fit, has_checkpoint, read_state
    from onebyone.train.checkpoint import MODEL_FILE, OPTIM_FILE, STATE_FILE
    from onebyone.train.fit import OPTIMIZERS, SCHEDULES

    check_int("--epochs", epochs)
    check_int("--batch-size", batch_size)
    check_int("--subset", subset, minimum=0)
    check_number("--lr", lr)
    check_number("--weight-decay", weight_decay, inclusive=True)
    check_int("--seed", seed, minimum=0)
    check_choice("--optimizer", optimizer, OPTIMIZERS)
    check_choice("--schedule", schedule, SCHEDULES)
    check_device(device)
    out = out if out is not None else Path("runs") / _name(model)
    set_threads(threads)
    check_out_dir(out, "--out", (MODEL_FILE, OPTIM_FILE, STATE_FILE))
    if resume and not has_checkpoint(out):
        raise FileNotFoundError(
            f"--resume: {str(out)!r} holds no checkpoint (state.json) to resume"
        )
    if not resume and has_checkpoint(out):
        raise ValueError(
            f"{str(out)!r} already holds a checkpoint; add --resume or choose another --out"
        )
    train_set, test_set = load(data, "train"), load(data, "test")
    if check_subset("--subset", subset, train_set):
        train_set = train_set.subset(subset, seed=seed)
    torch.manual_seed(seed)
    # Every builder (zoo or the user's callable) gets the data's channels and classes.
    kwargs = {"in_channels": train_set.in_channels, "num_classes": train_set.num_classes}
    net = load_spec(model, **kwargs)
    history = fit(
        net, train_set, test_set, epochs=epochs, batch_size=batch_size, lr=lr,
        optimizer=optimizer, schedule=schedule, weight_decay=weight_decay, seed=seed,
        device=device, channels_last=channels_last, out_dir=out, resume=resume, quiet=quiet,
        metadata=trained_with(model, kwargs, data=data),
    )  # fmt: skip
    if int(os.environ.get("RANK", "0")) == 0:
        state = read_state(out)
        acc = history.last.get("val_accuracy")
        # the word of the epoch lines ("val") for the same number
        acc_text = f", val accuracy {100 * acc:.2f}% (on the test split)" if acc is not None else ""
        typer.echo(f"done: {plural(state['epoch'], 'epoch')}{acc_text}; checkpoint in {out}")


def _name(spec: str) -> str:
    """The folder name for a model spec: ``resnet20``, ``nets.py:make`` -> ``make``,
    ``slim/r20.json`` -> ``r20``.

    >>> _name("resnet20"), _name("my/nets.py:make"), _name("slim/r20.json")
    ('resnet20', 'make', 'r20')
    """
    name = spec.rpartition(":")[2] if ":" in spec else Path(spec).stem
    return name or "model"
