"""``ArrayDataset``: labelled images held in memory as one uint8 tensor.

Every reader in :mod:`onebyone.data` returns one. Images are stored compactly as uint8
``(N, C, H, W)`` and scaled to float on access, ``(x / 255 - 0.5) / 0.5`` (values in [-1, 1]),
so a 5,000-image dataset costs 4 MB, not 16.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["MAX_CLASSES", "ArrayDataset", "check_labels"]

#: Labels may name at most ``max(MAX_CLASSES, number of images)`` classes. The class list is
#: built from the largest label, so one corrupt label (2**40) must not decide its length.
MAX_CLASSES = 100_000


def check_labels(labels: np.ndarray, num_images: int, *, where: str = "labels") -> np.ndarray:
    """Return ``labels`` as int64 after checking they are sane class indices for ``num_images``.

    Integer arrays pass; float arrays pass only if every value is a whole number (they are
    never truncated). Every label must be in ``[0, max(MAX_CLASSES, num_images))``.

    Args:
        labels: a 1-D numpy array.
        num_images: the number of images the labels belong to (bounds the number of classes).
        where: what the labels are, for messages (a file and a key).

    Raises:
        ValueError: a label is not a whole number, is negative, or is too large.

    Example:
        >>> check_labels(np.array([0.0, 2.0]), 2).tolist()
        [0, 2]
        >>> check_labels(np.array([0, 2**40]), 2, where="'a.npz' train_labels")
        Traceback (most recent call last):
        ...
        ValueError: 'a.npz' train_labels: label 1099511627776 (index 1) is too large: ...
    """
    labels = np.asarray(labels)
    if labels.dtype == np.bool_ or labels.dtype.kind not in "iuf":
        raise ValueError(f"{where}: expected integer labels, got dtype {labels.dtype}")
    if labels.dtype.kind == "f":
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            i = int(np.argmin(whole))
            raise ValueError(
                f"{where}: label {float(labels.flat[i])!r} (index {i}) is not a whole number; "
                "class labels must be integers"
            )
    if labels.size == 0:
        return labels.astype(np.int64)
    limit = max(MAX_CLASSES, int(num_images))
    # Compare in float64 for floats (no overflow on the cast) and natively for integers.
    i_max, i_min = int(np.argmax(labels)), int(np.argmin(labels))
    if labels.flat[i_min] < 0:
        raise ValueError(
            f"{where}: label {_fmt(labels.flat[i_min])} (index {i_min}) is negative; "
            "class labels are 0, 1, 2, ..."
        )
    if labels.flat[i_max] >= limit:
        raise ValueError(
            f"{where}: label {_fmt(labels.flat[i_max])} (index {i_max}) is too large: "
            f"{num_images} images allow at most {limit} classes "
            f"(labels in [0, {limit}), the larger of {MAX_CLASSES} and the number of images)"
        )
    return labels.astype(np.int64)


def _fmt(value: np.generic) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class ArrayDataset(Dataset):
    """Images and integer labels in memory, with the facts a model needs to be built for them.

    Args:
        images: uint8 array or tensor, ``(N, H, W)`` (one channel) or ``(N, C, H, W)``.
        labels: integer array or tensor ``(N,)`` with values in ``[0, num_classes)``.
        classes: the class names; defaults to ``"0"``, ``"1"``, ... for ``max(labels) + 1`` classes.
        name: a short description shown in ``repr`` and progress bars.

    Raises:
        TypeError: images that are not uint8, or labels that are not integers.
        ValueError: a bad shape, or a label outside ``[0, max(MAX_CLASSES, N))`` (see
            :func:`check_labels`).

    Attributes:
        in_channels: C, the number of image channels.
        num_classes: the number of classes.
        input_size: ``(C, H, W)``.

    Example:
        >>> import numpy as np
        >>> ds = ArrayDataset(np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 2, 1]))
        >>> ds.in_channels, ds.num_classes, ds.input_size
        (1, 3, (1, 28, 28))
        >>> x, y = ds[1]
        >>> tuple(x.shape), y
        ((1, 28, 28), 1)
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor | Sequence[int],
        *,
        classes: Sequence[str] | None = None,
        name: str = "dataset",
    ) -> None:
        images = torch.as_tensor(
            np.asarray(images) if not isinstance(images, torch.Tensor) else images
        )
        labels = torch.as_tensor(
            np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels
        )
        if images.dtype != torch.uint8:
            raise TypeError(f"images must be uint8, got {images.dtype}")
        if images.dim() == 3:
            images = images.unsqueeze(1)
        if images.dim() != 4:
            raise ValueError(
                f"images must have shape (N, H, W) or (N, C, H, W), got {tuple(images.shape)}"
            )
        if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"labels must have shape ({images.shape[0]},) to match images, got {tuple(labels.shape)}"
            )
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"labels must be integers, got {labels.dtype}")
        labels = torch.from_numpy(check_labels(labels.detach().cpu().numpy(), len(labels)))
        n_found = int(labels.max()) + 1 if len(labels) else 0
        if classes is None:
            classes = [str(i) for i in range(n_found)]
        classes = [str(c) for c in classes]
        if len(classes) < n_found:
            raise ValueError(
                f"classes lists {len(classes)} names but labels go up to {n_found - 1}"
            )
        self.images = images.contiguous()
        self.labels = labels
        self.classes = classes
        self.name = name

    @property
    def in_channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_size(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return _to_float(self.images[index]), int(self.labels[index])

    def get_batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(images, labels)`` for many indices at once, without a per-item loop.

        Example:
            >>> import numpy as np
            >>> ds = ArrayDataset(np.zeros((4, 8, 8), np.uint8), np.array([0, 1, 2, 1]))
            >>> x, y = ds.get_batch([0, 3])
            >>> tuple(x.shape), y.tolist()
            ((2, 1, 8, 8), [0, 1])
        """
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return _to_float(self.images[idx]), self.labels[idx]

    def subset(self, count: int, *, seed: int = 0) -> ArrayDataset:
        """Return a class-balanced random subset of ``count`` items (deterministic for a seed).

        Example:
            >>> import numpy as np
            >>> ds = ArrayDataset(np.zeros((10, 8, 8), np.uint8), np.arange(10) % 2)
            >>> sub = ds.subset(4)
            >>> len(sub), sorted(sub.labels.tolist())
            (4, [0, 0, 1, 1])
        """
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= len(self):
            raise ValueError(f"count must be an integer in [1, {len(self)}], got {count!r}")
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self), generator=g)
        # Round-robin over classes in shuffled order gives a balanced pick.
        by_class = [order[self.labels[order] == c] for c in range(self.num_classes)]
        picked: list[int] = []
        depth = 0
        while len(picked) < count:
            for members in by_class:
                if depth < len(members) and len(picked) < count:
                    picked.append(int(members[depth]))
            depth += 1
        idx = torch.tensor(sorted(picked))
        return ArrayDataset(
            self.images[idx], self.labels[idx], classes=self.classes, name=self.name
        )

    def __repr__(self) -> str:
        c, h, w = self.input_size
        return (
            f"ArrayDataset(name={self.name!r}, size={len(self)}, input_size=({c}, {h}, {w}), "
            f"num_classes={self.num_classes})"
        )


def _to_float(images: torch.Tensor) -> torch.Tensor:
    return images.to(torch.float32).div_(127.5).sub_(1.0)
