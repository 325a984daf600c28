"""``TrainConfig``: every setting of one :func:`~onebyone.train.fit` run, validated once."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from onebyone._checks import check_choice, check_int, check_number
from onebyone.train._optim import OPTIMIZERS
from onebyone.train._schedule import SCHEDULES

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """The settings of a training run, checked when built; see :func:`~onebyone.train.fit`.

    ``out_dir`` and ``resume_dir`` are resolved from ``fit``'s ``out_dir``/``resume`` pair by
    :meth:`from_fit_args`: ``resume=True`` resumes from ``out_dir``, a path resumes from it
    (and writes there unless ``out_dir`` is given).

    Raises:
        ValueError: a value out of range or an unknown choice, naming the argument.
        TypeError: ``metadata`` is not a dict.

    Example:
        >>> cfg = TrainConfig(epochs=2, lr=0.1)
        >>> cfg.epochs, cfg.optimizer, cfg.schedule
        (2, 'sgd', 'cosine')
        >>> TrainConfig(epochs=0)
        Traceback (most recent call last):
        ...
        ValueError: epochs must be an integer >= 1, got 0
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "sgd"
    schedule: str = "cosine"
    weight_decay: float = 5e-4
    momentum: float = 0.9
    seed: int = 0
    device: str | torch.device = "auto"
    channels_last: bool = True
    out_dir: Path | None = None
    resume_dir: Path | None = None
    quiet: bool = False
    num_workers: int = 0
    metadata: dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        def fix(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        fix("epochs", check_int("epochs", self.epochs))
        fix("batch_size", check_int("batch_size", self.batch_size))
        fix("lr", check_number("lr", self.lr))
        fix("weight_decay", check_number("weight_decay", self.weight_decay, inclusive=True))
        fix("momentum", check_number("momentum", self.momentum, inclusive=True))
        fix("seed", check_int("seed", self.seed, minimum=0))
        fix("num_workers", check_int("num_workers", self.num_workers, minimum=0))
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        for name in ("channels_last", "quiet"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.metadata is not None:
            if not isinstance(self.metadata, dict):
                raise TypeError(
                    f"metadata must be a dict of JSON-able values, got {type(self.metadata).__name__}"
                )
            try:
                json.dumps(self.metadata)
            except (TypeError, ValueError) as e:
                raise ValueError(f"metadata must be JSON-able: {e}") from None
        for name in ("out_dir", "resume_dir"):
            value = getattr(self, name)
            if value is not None:
                fix(name, Path(value))

    @classmethod
    def from_fit_args(
        cls,
        *,
        out_dir: str | os.PathLike | None = None,
        resume: str | os.PathLike | bool | None = None,
        **settings: Any,
    ) -> TrainConfig:
        """Build the config from ``fit``'s keyword arguments (``out_dir`` and ``resume`` as
        ``fit`` takes them).

        Raises:
            ValueError: ``resume=True`` without ``out_dir``, or any invalid setting.

        Example:
            >>> cfg = TrainConfig.from_fit_args(out_dir="runs/a", resume=True, epochs=3)
            >>> cfg.out_dir == cfg.resume_dir == Path("runs/a")
            True
        """
        out = Path(out_dir) if out_dir is not None else None
        if resume is True:
            if out is None:
                raise ValueError("resume=True needs out_dir (the directory to resume from)")
            resume_dir: Path | None = out
        elif resume is None or resume is False:
            resume_dir = None
        else:
            resume_dir = Path(resume)
            out = out or resume_dir
        return cls(out_dir=out, resume_dir=resume_dir, **settings)

    def to_json(self, world_size: int = 1) -> dict[str, Any]:
        """The settings recorded under ``"config"`` in a checkpoint's ``state.json``.

        Example:
            >>> sorted(TrainConfig().to_json())[:3]
            ['batch_size', 'channels_last', 'epochs']
        """
        return {
            "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
            "optimizer": self.optimizer, "schedule": self.schedule,
            "weight_decay": self.weight_decay, "momentum": self.momentum,
            "channels_last": self.channels_last, "world_size": world_size,
        }  # fmt: skip
