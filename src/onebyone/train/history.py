"""``History``: what :func:`onebyone.train.fit` returns, one record per completed epoch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["EpochRecord", "History"]


@dataclass
class EpochRecord:
    """What one training epoch measured; :meth:`to_dict` is the record kept in a
    :class:`History` and in ``state.json``.

    Example:
        >>> r = EpochRecord(epoch=1, train_loss=0.5, train_accuracy=0.9, lr=0.01,
        ...                 train_samples=640, samples_per_second=3200.0)
        >>> r.val_accuracy is None, list(r.to_dict())[:3]
        (True, ['epoch', 'train_loss', 'train_accuracy'])
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    lr: float
    train_samples: int
    samples_per_second: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-able dict (the keys of :class:`History` records).

        >>> EpochRecord(2, 0.1, 0.97, 0.0, 64, 900.0).to_dict()["epoch"]
        2
        """
        return asdict(self)


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
        """The record of the last completed epoch (an empty dict if none).

        >>> History().last
        {}
        """
        return self.records[-1] if self.records else {}

    @property
    def train_seconds(self) -> float:
        """Total seconds spent training and validating, over all recorded epochs.

        >>> History([{"seconds": 1.5}, {"seconds": 2.0}]).train_seconds
        3.5
        """
        return float(sum(r.get("seconds", 0.0) for r in self.records))
