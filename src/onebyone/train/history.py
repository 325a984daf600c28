"""``History``: what :func:`onebyone.train.fit` returns, one record per completed epoch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["History"]


@dataclass
class History:
    """Per-epoch records: ``epoch``, ``train_loss``, ``train_accuracy``, ``val_loss``,
    ``val_accuracy``, ``lr``, ``train_samples``, ``seconds``, ``samples_per_second``.

    Example:
        >>> h = History([{"epoch": 1, "val_accuracy": 0.9, "seconds": 2.0}])
        >>> len(h), h.last["val_accuracy"], h.train_seconds
        (1, 0.9, 2.0)
    """

    records: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.records[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    @property
    def last(self) -> dict[str, Any]:
        """The record of the last completed epoch (an empty dict if none)."""
        return self.records[-1] if self.records else {}

    @property
    def train_seconds(self) -> float:
        """Total seconds spent training and validating, over all recorded epochs."""
        return float(sum(r.get("seconds", 0.0) for r in self.records))
