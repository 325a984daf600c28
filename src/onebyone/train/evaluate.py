"""``evaluate``: accuracy and mean cross-entropy of a classifier on a dataset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from onebyone._checks import check_int

__all__ = ["evaluate", "iter_batches", "resolve_device"]


def resolve_device(device: str | torch.device, local_rank: int = 0) -> torch.device:
    """``"auto"`` means CUDA when available, otherwise CPU.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a string or torch.device, got {type(device).__name__}")
    if device == "auto":
        return (
            torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        )
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available")
    return dev


def iter_batches(
    dataset: Dataset, indices: Sequence[int], batch_size: int, *, num_workers: int = 0
):
    """Yield ``(images, labels)`` batches of ``dataset`` in the order of ``indices``.

    Datasets with a ``get_batch`` method (such as :class:`~onebyone.data.ArrayDataset`) are
    sliced directly; others go through a ``DataLoader``.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> ds = TensorDataset(torch.zeros(5, 1, 2, 2), torch.arange(5))
        >>> [y.tolist() for _, y in iter_batches(ds, [4, 3, 2, 1, 0], 2)]
        [[4, 3], [2, 1], [0]]
    """
    if hasattr(dataset, "get_batch"):
        for start in range(0, len(indices), batch_size):
            yield dataset.get_batch(indices[start : start + batch_size])
        return
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=list(indices), num_workers=num_workers
    )
    yield from loader


def evaluate(
    model: nn.Module,
    data: Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    channels_last: bool = False,
) -> dict[str, Any]:
    """Return ``{"accuracy", "loss", "count"}`` of ``model`` on ``data`` (eval mode, no grad).

    The model's train/eval mode is restored afterwards; its device is not changed unless it
    has to be moved to ``device``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torch.utils.data import TensorDataset
        >>> ds = TensorDataset(torch.eye(4), torch.arange(4))
        >>> model = nn.Linear(4, 4, bias=False)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.eye(4))
        >>> evaluate(model, ds, device="cpu")["accuracy"]
        1.0
    """
    batch_size = check_int("batch_size", batch_size)
    dev = resolve_device(device)
    model.to(dev)
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    try:
        with torch.inference_mode():
            for x, y in iter_batches(data, range(len(data)), batch_size):
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                if channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                logits = model(x)
                total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(dim=1) == y).sum())
                count += int(y.numel())
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("data is empty; expected at least one sample to evaluate")
    return {"accuracy": correct / count, "loss": total_loss / count, "count": count}
