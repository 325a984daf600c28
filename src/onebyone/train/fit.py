"""``fit``: train a classifier with progress bars, per-epoch checkpoints, resume and DDP."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from onebyone._checks import check_choice, check_int, check_number
from onebyone.train import _distributed
from onebyone.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from onebyone.train.evaluate import iter_batches, resolve_device
from onebyone.train.history import History

__all__ = ["OPTIMIZERS", "SCHEDULES", "fit"]

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("cosine", "constant")


def _make_optimizer(
    name: str, model: nn.Module, lr: float, weight_decay: float, momentum: float
) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0
        )
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _lr_at(schedule: str, base: float, step: int, total: int) -> float:
    """Cosine: a linear warm-up over the first 5% of steps, then cosine decay to zero."""
    if schedule == "constant" or total <= 0:
        return base
    warmup = max(1, total // 20)
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * base * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C while a checkpoint is being written, then deliver it."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "pthread_sigmask"
    ):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _Progress:
    """Rich progress bars on stderr and one summary line per epoch on stdout (main rank only)."""

    def __init__(self, enabled: bool, epochs: int) -> None:
        self.enabled = enabled
        self.epochs = epochs
        self._progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.console = Console()
            self._progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}/" + str(epochs)),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>7,.0f} img/s"),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def __enter__(self) -> _Progress:
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def start(self, epoch: int, steps: int) -> Any:
        if self._progress is None:
            return None
        return self._progress.add_task(
            "train", total=steps, epoch=epoch, rate=0.0, loss=float("nan")
        )

    def update(self, task: Any, loss: float, rate: float) -> None:
        if self._progress is not None:
            self._progress.update(task, advance=1, loss=loss, rate=rate)

    def finish(self, task: Any, record: dict[str, Any]) -> None:
        if self._progress is None:
            return
        self._progress.remove_task(task)
        val = (
            f"  val loss {record['val_loss']:.4f} acc {100 * record['val_accuracy']:.2f}%"
            if record.get("val_accuracy") is not None
            else ""
        )
        self.console.print(
            f"epoch {record['epoch']}/{self.epochs}  train loss {record['train_loss']:.4f} "
            f"acc {100 * record['train_accuracy']:.2f}%{val}  lr {record['lr']:.4g}  "
            f"{record['seconds']:.1f}s ({record['samples_per_second']:,.0f} img/s)",
            highlight=False,
            soft_wrap=True,
        )

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False, soft_wrap=True)


def fit(
    model: nn.Module,
    train: Dataset,
    val: Dataset | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 0.05,
    optimizer: str = "sgd",
    schedule: str = "cosine",
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    seed: int = 0,
    device: str | torch.device = "auto",
    channels_last: bool = True,
    out_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | bool | None = None,
    quiet: bool = False,
    num_workers: int = 0,
    metadata: dict[str, Any] | None = None,
) -> History:
    """Train ``model`` in place on ``train`` with cross-entropy; validate on ``val`` each epoch.

    The data order and dropout depend only on ``seed`` and the epoch number, so a run resumed
    from a checkpoint continues exactly as the uninterrupted run would have (on CPU).
    Under ``torchrun --nproc_per_node N`` the model is wrapped in DistributedDataParallel
    (gloo on CPU, nccl on CUDA), each process reads its shard through a DistributedSampler
    and only rank 0 prints and writes. ``batch_size`` is per process.

    Args:
        model: a classifier returning logits ``(N, num_classes)``.
        train: a dataset of ``(image, label)``; an :class:`~onebyone.data.ArrayDataset` is fastest.
        val: evaluated at each epoch end (on rank 0), or None.
        epochs: total epochs of the run (a resumed run stops at the same total).
        batch_size: samples per step and process.
        lr: peak learning rate.
        optimizer: ``"sgd"`` (Nesterov momentum), ``"adamw"`` or ``"adam"``.
        schedule: ``"cosine"`` (per step: linear warm-up over 5% of the steps, then cosine
            decay to zero) or ``"constant"``.
        weight_decay: L2 penalty / decoupled decay.
        momentum: SGD momentum.
        seed: seeds the data order and dropout.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``...
        channels_last: use the channels-last memory format for 4-D inputs.
        out_dir: if given, a checkpoint is written there at each epoch end
            (``model.safetensors``, ``optimizer.safetensors``, ``state.json``).
        resume: a checkpoint directory to continue from, or True for ``out_dir``; the run
            continues with the checkpoint's seed and stops after ``epochs`` epochs in all.
        quiet: no progress bars and no printing.
        num_workers: DataLoader workers, for datasets without ``get_batch``.
        metadata: JSON-able entries kept under ``"metadata"`` in each checkpoint's
            ``state.json`` (``onebyone train`` stores how to rebuild the model there).

    Returns:
        The :class:`History`, one record per completed epoch (resumed epochs included).

    Raises:
        ValueError: bad arguments; the model cannot run on the data's samples or returns
            fewer class scores than the data has classes (checked on two samples before any
            training); ``out_dir`` already holds a checkpoint and ``resume`` is not set; the
            resume directory holds another model's checkpoint (nothing is written in any case).
        KeyboardInterrupt: passed on after Ctrl-C; the last complete checkpoint is intact.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torch.utils.data import TensorDataset
        >>> x = torch.randn(64, 1, 4, 4); y = (x.mean(dim=(1, 2, 3)) > 0).long()
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        >>> history = fit(model, TensorDataset(x, y), epochs=2, batch_size=16, quiet=True, device="cpu")
        >>> len(history), sorted(history.last)[:3]
        (2, ['epoch', 'lr', 'samples_per_second'])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    epochs = check_int("epochs", epochs)
    batch_size = check_int("batch_size", batch_size)
    lr = check_number("lr", lr)
    weight_decay = check_number("weight_decay", weight_decay, inclusive=True)
    momentum = check_number("momentum", momentum, inclusive=True)
    seed = check_int("seed", seed, minimum=0)
    num_workers = check_int("num_workers", num_workers, minimum=0)
    optimizer = check_choice("optimizer", optimizer, OPTIMIZERS)
    schedule = check_choice("schedule", schedule, SCHEDULES)
    if len(train) == 0:
        raise ValueError("train is empty; expected at least one sample")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict of JSON-able values, got {type(metadata).__name__}")
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as e:
            raise ValueError(f"metadata must be JSON-able: {e}") from None
    out = Path(out_dir) if out_dir is not None else None
    if resume is True:
        if out is None:
            raise ValueError("resume=True needs out_dir (the directory to resume from)")
        resume_dir: Path | None = out
    elif resume in (None, False):
        resume_dir = None
    else:
        resume_dir = Path(resume)  # type: ignore[arg-type]
        out = out or resume_dir
    if out is not None and out != resume_dir and has_checkpoint(out):
        raise ValueError(
            f"out_dir {str(out)!r} already holds a checkpoint; resume it (resume=True / --resume) "
            "or choose another directory"
        )

    dev = resolve_device(device)
    info = _distributed.setup(use_cuda=dev.type == "cuda")
    if info.enabled and dev.type == "cuda":
        dev = torch.device(f"cuda:{info.local_rank}")
    try:
        return _run(
            model, train, val, info=info, dev=dev, epochs=epochs, batch_size=batch_size, lr=lr,
            optimizer_name=optimizer, schedule=schedule, weight_decay=weight_decay,
            momentum=momentum, seed=seed, channels_last=channels_last, out=out,
            resume_dir=resume_dir, quiet=quiet, num_workers=num_workers, metadata=metadata,
        )  # fmt: skip
    finally:
        _distributed.teardown(info)


def _run(
    model: nn.Module,
    train: Dataset,
    val: Dataset | None,
    *,
    info: _distributed.DistInfo,
    dev: torch.device,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer_name: str,
    schedule: str,
    weight_decay: float,
    momentum: float,
    seed: int,
    channels_last: bool,
    out: Path | None,
    resume_dir: Path | None,
    quiet: bool,
    num_workers: int,
    metadata: dict[str, Any] | None,
) -> History:
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    _check_model_fits_data(model, train, dev, memory_format)
    opt = _make_optimizer(optimizer_name, model, lr, weight_decay, momentum)
    config = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer_name,
        "schedule": schedule, "weight_decay": weight_decay, "momentum": momentum,
        "channels_last": channels_last, "world_size": info.world_size,
    }  # fmt: skip
    history = History()
    start_epoch = 0
    if resume_dir is not None:
        state = load_checkpoint(resume_dir, model, opt)
        start_epoch = int(state["epoch"])
        history = History(list(state.get("history", [])))
        seed = int(state.get("seed", seed))
    main = info.is_main
    show = main and not quiet
    net: nn.Module = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    sampler = DistributedSampler(
        train,
        num_replicas=info.world_size,
        rank=info.rank,
        shuffle=True,
        seed=seed,
        drop_last=False,
    )
    steps_per_epoch = math.ceil(len(sampler) / batch_size)
    total_steps = steps_per_epoch * epochs

    with _Progress(show, epochs) as progress:
        if start_epoch > 0:
            progress.note(f"resumed from {resume_dir} after epoch {start_epoch}/{epochs}")
        for epoch in range(start_epoch, epochs):
            try:
                record = _train_epoch(
                    net, train, sampler, opt, progress, epoch=epoch, info=info, dev=dev,
                    batch_size=batch_size, lr=lr, schedule=schedule, total_steps=total_steps,
                    steps_per_epoch=steps_per_epoch, seed=seed, memory_format=memory_format,
                    num_workers=num_workers,
                )  # fmt: skip
            except KeyboardInterrupt:
                if show and out is not None and has_checkpoint(out):
                    progress.note(
                        f"interrupted in epoch {epoch + 1}; the checkpoint of epoch {epoch} in {out} is intact"
                    )
                raise
            if val is not None:
                vals = [math.nan, math.nan]
                if main:
                    from onebyone.train.evaluate import evaluate

                    res = evaluate(
                        model,
                        val,
                        batch_size=max(batch_size, 256),
                        device=dev,
                        channels_last=channels_last,
                    )
                    vals = [res["loss"], res["accuracy"]]
                vals = _distributed.broadcast_floats(info, vals, dev)
                record["val_loss"], record["val_accuracy"] = vals
            record["seconds"] = time.perf_counter() - record.pop("_start")
            history.records.append(record)
            progress.finish(record.pop("_task"), record)
            if out is not None and main:
                metrics = {k: v for k, v in record.items() if k != "epoch"}
                with _sigint_deferred():
                    save_checkpoint(
                        out,
                        model,
                        opt,
                        {"epoch": epoch + 1, "epochs": epochs, "metrics": metrics, "seed": seed,
                         "config": config, "history": history.records,
                         **({"metadata": metadata} if metadata is not None else {})},
                    )  # fmt: skip
            if info.enabled:
                torch.distributed.barrier()
    return history


def _check_model_fits_data(
    model: nn.Module, train: Dataset, dev: torch.device, memory_format: torch.memory_format
) -> None:
    """One forward of two training samples (eval mode, no grad) before any training, so that a
    model built for other inputs fails at once with one clear line instead of after setup."""
    from onebyone._modes import eval_mode

    x, _ = next(iter(iter_batches(train, list(range(min(2, len(train)))), 2)))
    x = x.to(dev)
    if x.dim() == 4:
        x = x.contiguous(memory_format=memory_format)
    sample = "x".join(map(str, x.shape[1:]))
    try:
        with eval_mode(model), torch.no_grad():
            logits = model(x)
    except Exception as e:  # the user's forward failed on the user's data
        first = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(
            f"model {type(model).__name__} cannot run on the training samples ({sample}): "
            f"{type(e).__name__}: {first}"
        ) from e
    classes = getattr(train, "num_classes", None)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"model {type(model).__name__} must return logits of shape (N, num_classes) for "
            f"N samples of {sample}; it returned {shape} for N={x.shape[0]}"
        )
    if isinstance(classes, int) and logits.shape[1] < classes:
        raise ValueError(
            f"model {type(model).__name__} returns {logits.shape[1]} class scores but the data "
            f"has {classes} classes; build it with num_classes={classes}"
        )


def _train_epoch(
    net: nn.Module,
    train: Dataset,
    sampler: DistributedSampler,
    opt: torch.optim.Optimizer,
    progress: _Progress,
    *,
    epoch: int,
    info: _distributed.DistInfo,
    dev: torch.device,
    batch_size: int,
    lr: float,
    schedule: str,
    total_steps: int,
    steps_per_epoch: int,
    seed: int,
    memory_format: torch.memory_format,
    num_workers: int,
) -> dict[str, Any]:
    # Dropout and any other randomness depend only on (seed, epoch, rank): resumable exactly.
    torch.manual_seed(seed * 100_003 + epoch * 1_009 + info.rank)
    sampler.set_epoch(epoch)
    indices = list(sampler)
    net.train()
    start = time.perf_counter()
    task = progress.start(epoch + 1, steps_per_epoch)
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.int64, device=dev)
    seen = 0
    step_lr = lr
    for i, (x, y) in enumerate(iter_batches(train, indices, batch_size, num_workers=num_workers)):
        step_lr = _lr_at(schedule, lr, epoch * steps_per_epoch + i, total_steps)
        for group in opt.param_groups:
            group["lr"] = step_lr
        x = x.to(dev, non_blocking=True)
        if x.dim() == 4:
            x = x.contiguous(memory_format=memory_format)
        y = y.to(dev, non_blocking=True)
        logits = net(x)
        if not isinstance(logits, torch.Tensor):
            raise ValueError(
                f"the model returned {type(logits).__name__} in training mode; fit needs a tensor "
                "of logits (N, num_classes) (e.g. build GoogLeNet with aux_logits=False)"
            )
        # issue 20: a model may define training_loss(logits, y) (surgery.finetune's distillation)
        loss_fn = getattr(getattr(net, "module", net), "training_loss", None)
        loss = loss_fn(logits, y) if loss_fn is not None else F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            loss_sum += loss.detach().double() * y.numel()
            correct += (logits.argmax(dim=1) == y).sum()
        seen += int(y.numel())
        if progress.enabled:
            progress.update(
                task, float(loss.detach()), seen * info.world_size / (time.perf_counter() - start)
            )
    totals = _distributed.all_reduce_sum(info, [float(loss_sum), float(correct), float(seen)], dev)
    if not math.isfinite(totals[0]):
        from onebyone.errors import OneByOneError

        raise OneByOneError(
            f"training diverged in epoch {epoch + 1}: the loss is {totals[0]}; try a lower lr"
        )
    elapsed = time.perf_counter() - start
    return {
        "epoch": epoch + 1,
        "train_loss": totals[0] / totals[2],
        "train_accuracy": totals[1] / totals[2],
        "val_loss": None,
        "val_accuracy": None,
        "lr": step_lr,
        "train_samples": int(totals[2]),
        "samples_per_second": totals[2] / elapsed if elapsed > 0 else 0.0,
        "_start": start,
        "_task": task,
    }
