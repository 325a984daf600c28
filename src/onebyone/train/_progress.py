"""The progress display of :func:`~onebyone.train.fit`: rich bars on stderr, one line per epoch."""

from __future__ import annotations

from typing import Any

from onebyone.train.history import EpochRecord

__all__ = ["Progress", "epoch_line"]


def epoch_line(record: EpochRecord, epochs: int) -> str:
    """The summary line printed when an epoch ends.

    Example:
        >>> r = EpochRecord(epoch=1, train_loss=0.5, train_accuracy=0.9, lr=0.01,
        ...                 train_samples=640, samples_per_second=3200.0, val_loss=0.4,
        ...                 val_accuracy=0.925, seconds=0.2)
        >>> epoch_line(r, 3)
        'epoch 1/3  train loss 0.5000 acc 90.00%  val loss 0.4000 acc 92.50%  lr 0.01  0.2s (3,200 img/s)'
    """
    val = (
        f"  val loss {record.val_loss:.4f} acc {100 * record.val_accuracy:.2f}%"
        if record.val_accuracy is not None and record.val_loss is not None
        else ""
    )
    return (
        f"epoch {record.epoch}/{epochs}  train loss {record.train_loss:.4f} "
        f"acc {100 * record.train_accuracy:.2f}%{val}  lr {record.lr:.4g}  "
        f"{record.seconds:.1f}s ({record.samples_per_second:,.0f} img/s)"
    )


class Progress:
    """Rich progress bars on stderr and one summary line per epoch on stdout (main rank only).

    Disabled, every method does nothing.

    Example:
        >>> with Progress(False, epochs=2) as p:
        ...     p.update(p.start(1, steps=10), loss=0.5, rate=100.0)
        >>> p.enabled
        False
    """

    def __init__(self, enabled: bool, epochs: int) -> None:
        self.enabled = enabled
        self.epochs = epochs
        self._progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            self.console = Console()
            self._progress = RichProgress(
                TextColumn("[bold]epoch {task.fields[epoch]}/" + str(epochs)),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>7,.0f} img/s"),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def __enter__(self) -> Progress:
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def start(self, epoch: int, steps: int) -> Any:
        """Show a bar for ``epoch`` (1-based) of ``steps`` steps; returns its task id."""
        if self._progress is None:
            return None
        return self._progress.add_task(
            "train", total=steps, epoch=epoch, rate=0.0, loss=float("nan")
        )

    def update(self, task: Any, loss: float, rate: float) -> None:
        """Advance the bar ``task`` by one step, showing the loss and images per second."""
        if self._progress is not None:
            self._progress.update(task, advance=1, loss=loss, rate=rate)

    def finish(self, task: Any, record: EpochRecord) -> None:
        """Remove the bar ``task`` and print the epoch's summary line."""
        if self._progress is None:
            return
        self._progress.remove_task(task)
        self.console.print(epoch_line(record, self.epochs), highlight=False, soft_wrap=True)

    def note(self, text: str) -> None:
        """Print one line (when enabled)."""
        if self.enabled:
            self.console.print(text, highlight=False, soft_wrap=True)
