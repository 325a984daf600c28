"""``fit``: train a classifier with progress bars, per-epoch checkpoints, resume and DDP.

The settings become one :class:`~onebyone.train.config.TrainConfig`; the schedule
(``_schedule.py``), the optimizer factory (``_optim.py``), the progress display
(``_progress.py``) and the checkpoint files (``checkpoint.py``) live apart from this loop.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from onebyone.train import _distributed
from onebyone.train._model_check import check_model_fits_data, forward_error
from onebyone.train._optim import OPTIMIZERS, make_optimizer
from onebyone.train._progress import Progress
from onebyone.train._schedule import SCHEDULES, lr_at
from onebyone.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from onebyone.train.config import TrainConfig
from onebyone.train.evaluate import iter_batches, resolve_device
from onebyone.train.history import EpochRecord, History

__all__ = ["OPTIMIZERS", "SCHEDULES", "fit"]


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
        out_dir: if given, a checkpoint is written there at each epoch end: the tensor files
            in an epoch folder, then ``state.json`` (with their checksums) in one atomic
            rename; the previous epoch's folder goes only after that (see
            :mod:`onebyone.train.checkpoint`).
        resume: a checkpoint directory to continue from, or True for ``out_dir``; the run
            continues with the checkpoint's seed and stops after ``epochs`` epochs in all.
        quiet: no progress bars and no printing.
        num_workers: DataLoader workers, for datasets without ``get_batch``.
        metadata: JSON-able entries kept under ``"metadata"`` in each checkpoint's
            ``state.json`` (``onebyone train`` stores how to rebuild the model there).

    Returns:
        The :class:`History`, one record per completed epoch (resumed epochs included).

    Raises:
        ValueError: bad arguments; the model returns something other than logits, or fewer
            class scores than the data has classes (checked on two samples before any
            training); ``out_dir`` already holds a checkpoint and ``resume`` is not set; the
            resume directory holds another model's checkpoint (nothing is written in any case).
        OneByOneError: the model's forward raised (on the two samples checked before any
            training, or in training); the message names the module and the input shapes,
            and the model's exception is chained as ``__cause__``.
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
    cfg = TrainConfig.from_fit_args(
        out_dir=out_dir, resume=resume, epochs=epochs, batch_size=batch_size, lr=lr,
        optimizer=optimizer, schedule=schedule, weight_decay=weight_decay, momentum=momentum,
        seed=seed, device=device, channels_last=channels_last, quiet=quiet,
        num_workers=num_workers, metadata=metadata,
    )  # fmt: skip
    if len(train) == 0:
        raise ValueError("train is empty; expected at least one sample")
    out = cfg.out_dir
    if out is not None and out != cfg.resume_dir and has_checkpoint(out):
        raise ValueError(
            f"out_dir {str(out)!r} already holds a checkpoint; resume it (resume=True / --resume) "
            "or choose another directory"
        )

    dev = resolve_device(cfg.device)
    info = _distributed.setup(use_cuda=dev.type == "cuda")
    if info.enabled and dev.type == "cuda":
        dev = torch.device(f"cuda:{info.local_rank}")
    try:
        return _run(model, train, val, cfg, info, dev)
    finally:
        _distributed.teardown(info)


@dataclass
class _Loop:
    """What every epoch of one run shares besides its :class:`TrainConfig`."""

    model: nn.Module  # the user's model, unwrapped
    net: nn.Module  # the model as trained (DistributedDataParallel under torchrun)
    opt: torch.optim.Optimizer
    sampler: DistributedSampler
    info: _distributed.DistInfo
    dev: torch.device
    memory_format: torch.memory_format
    seed: int  # the checkpoint's seed when resuming
    input_size: tuple[int, ...]  # one sample, e.g. (1, 28, 28): recorded in state.json
    steps_per_epoch: int
    total_steps: int


def _run(
    model: nn.Module,
    train: Dataset,
    val: Dataset | None,
    cfg: TrainConfig,
    info: _distributed.DistInfo,
    dev: torch.device,
) -> History:
    memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format
    model.to(dev)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    input_size = check_model_fits_data(model, train, dev, memory_format)
    opt = make_optimizer(
        cfg.optimizer, model, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum
    )
    history, start_epoch, seed = History(), 0, cfg.seed
    if cfg.resume_dir is not None:
        state = load_checkpoint(cfg.resume_dir, model, opt)
        start_epoch = int(state["epoch"])
        history = History(list(state.get("history", [])))
        seed = int(state.get("seed", seed))
    net: nn.Module = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    sampler = DistributedSampler(
        train, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed,
        drop_last=False,
    )  # fmt: skip
    steps_per_epoch = math.ceil(len(sampler) / cfg.batch_size)
    loop = _Loop(
        model, net, opt, sampler, info, dev, memory_format, seed, input_size, steps_per_epoch,
        steps_per_epoch * cfg.epochs,
    )  # fmt: skip
    show = info.is_main and not cfg.quiet
    with Progress(show, cfg.epochs) as progress:
        if start_epoch > 0:
            progress.note(
                f"resumed from {cfg.resume_dir} after epoch {start_epoch}/{cfg.epochs}"
            )
        for epoch in range(start_epoch, cfg.epochs):
            record = _epoch(loop, cfg, train, val, epoch, progress)
            history.records.append(record.to_dict())
            if cfg.out_dir is not None and info.is_main:
                _save(loop, cfg, record, history)
            if info.enabled:
                torch.distributed.barrier()
    return history


def _epoch(
    loop: _Loop,
    cfg: TrainConfig,
    train: Dataset,
    val: Dataset | None,
    epoch: int,
    progress: Progress,
) -> EpochRecord:
    """Train one epoch, validate on rank 0, show the epoch's line; Ctrl-C says what is kept."""
    start = time.perf_counter()
    task = progress.start(epoch + 1, loop.steps_per_epoch)
    try:
        record = _train_epoch(loop, cfg, train, epoch, progress, task)
    except KeyboardInterrupt:
        out = cfg.out_dir
        if loop.info.is_main and out is not None and has_checkpoint(out):
            progress.note(
                f"interrupted in epoch {epoch + 1}; the checkpoint of epoch {epoch} in {out} is intact"
            )
        raise
    if val is not None:
        vals = [math.nan, math.nan]
        if loop.info.is_main:
            from onebyone.train.evaluate import evaluate

            res = evaluate(
                loop.model, val, batch_size=max(cfg.batch_size, 256), device=loop.dev,
                channels_last=cfg.channels_last,
            )  # fmt: skip
            vals = [res["loss"], res["accuracy"]]
        record.val_loss, record.val_accuracy = _distributed.broadcast_floats(
            loop.info, vals, loop.dev
        )
    record.seconds = time.perf_counter() - start
    progress.finish(task, record)
    return record


def _save(loop: _Loop, cfg: TrainConfig, record: EpochRecord, history: History) -> None:
    metrics = {k: v for k, v in record.to_dict().items() if k != "epoch"}
    state: dict[str, Any] = {
        "epoch": record.epoch, "epochs": cfg.epochs, "metrics": metrics, "seed": loop.seed,
        "config": cfg.to_json(loop.info.world_size), "history": history.records,
        "input_size": list(loop.input_size),
    }  # fmt: skip
    if cfg.metadata is not None:
        state["metadata"] = cfg.metadata
    with _sigint_deferred():
        try:
            save_checkpoint(cfg.out_dir, loop.model, loop.opt, state)
        except OSError as e:  # disk full, no permission: say what is kept
            if e.strerror is None or not has_checkpoint(cfg.out_dir):
                raise
            kept = f"the checkpoint of epoch {record.epoch - 1} in {str(cfg.out_dir)!r} is intact"
            raise type(e)(e.errno, f"{e.strerror}; {kept}", e.filename) from e


def _train_epoch(
    loop: _Loop, cfg: TrainConfig, train: Dataset, epoch: int, progress: Progress, task: Any
) -> EpochRecord:
    info, dev, opt = loop.info, loop.dev, loop.opt
    # Dropout and any other randomness depend only on (seed, epoch, rank): resumable exactly.
    torch.manual_seed(loop.seed * 100_003 + epoch * 1_009 + info.rank)
    loop.sampler.set_epoch(epoch)
    indices = list(loop.sampler)
    loop.net.train()
    start = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.int64, device=dev)
    seen = 0
    step_lr = cfg.lr
    batches = iter_batches(train, indices, cfg.batch_size, num_workers=cfg.num_workers)
    for i, (x, y) in enumerate(batches):
        step_lr = lr_at(cfg.schedule, cfg.lr, epoch * loop.steps_per_epoch + i, loop.total_steps)
        for group in opt.param_groups:
            group["lr"] = step_lr
        x = x.to(dev, non_blocking=True)
        if x.dim() == 4:
            x = x.contiguous(memory_format=loop.memory_format)
        y = y.to(dev, non_blocking=True)
        try:
            logits = loop.net(x)
        except Exception as e:  # the user's forward failed on the user's data
            raise forward_error(loop.model, x, e, what=f"in training, epoch {epoch + 1}") from e
        if not isinstance(logits, torch.Tensor):
            raise ValueError(
                f"the model returned {type(logits).__name__} in training mode; fit needs a tensor "
                "of logits (N, num_classes) (e.g. build GoogLeNet with aux_logits=False)"
            )
        # issue 20: a model may define training_loss(logits, y) (surgery.finetune's distillation)
        loss_fn = getattr(loop.model, "training_loss", None)
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
    return EpochRecord(
        epoch=epoch + 1,
        train_loss=totals[0] / totals[2],
        train_accuracy=totals[1] / totals[2],
        lr=step_lr,
        train_samples=int(totals[2]),
        samples_per_second=totals[2] / elapsed if elapsed > 0 else 0.0,
    )
