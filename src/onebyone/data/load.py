"""``load``: one entry point for the bundled data and users' own files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from onebyone.data.bundled import BUNDLED, load_mnist5k
from onebyone.data.cifar import load_cifar
from onebyone.data.dataset import ArrayDataset
from onebyone.data.idx import find_idx_pair, load_mnist_idx
from onebyone.data.image_folder import load_image_folder

__all__ = ["DATA_HELP", "list_datasets", "load"]

DATA_HELP = (
    "'mnist5k' (bundled), a folder of MNIST/Fashion-MNIST IDX files, a CIFAR-10/100 python "
    "folder, an image folder (one subfolder per class) or an .npz with train_/test_ images and labels"
)


def list_datasets() -> list[str]:
    """Return the names of the bundled datasets.

    >>> list_datasets()
    ['mnist5k']
    """
    return list(BUNDLED)


def load(source: str | os.PathLike, split: str = "train") -> ArrayDataset:
    """Load a split of a bundled dataset or of a dataset on disk, recognising its layout.

    Args:
        source: ``"mnist5k"`` or a path: a folder of IDX files, a CIFAR python folder, an
            image folder, or an ``.npz`` holding ``train_images``/``train_labels``/
            ``test_images``/``test_labels``.
        split: ``"train"`` or ``"test"``.

    Raises:
        ValueError: an unknown name, or a malformed file.
        FileNotFoundError: the path does not exist or holds no recognised dataset.

    Example:
        >>> train = load("mnist5k", split="train")
        >>> len(train), train.in_channels, train.num_classes, train.input_size
        (4000, 1, 10, (1, 28, 28))
    """
    from onebyone._checks import check_choice

    check_choice("split", split, ("train", "test"))
    if isinstance(source, str) and source in BUNDLED:
        return load_mnist5k(split)
    path = Path(source)
    if not path.exists():
        if isinstance(source, str) and os.sep not in source and "." not in source:
            raise ValueError(f"unknown dataset {source!r}; expected {DATA_HELP}")
        raise FileNotFoundError(f"dataset path {str(path)!r} does not exist; expected {DATA_HELP}")
    if path.is_file():
        if path.suffix == ".npz":
            return _load_npz(path, split)
        raise ValueError(f"{str(path)!r} is a file; expected {DATA_HELP}")
    if find_idx_pair(path, "train") or find_idx_pair(path, "test"):
        return load_mnist_idx(path, split)
    if any((path / n).is_file() for n in ("data_batch_1", "test_batch", "train", "test")):
        return load_cifar(path, split)
    for sub in ("cifar-10-batches-py", "cifar-100-python"):
        if (path / sub).is_dir():
            return load_cifar(path / sub, split)
    return load_image_folder(path, split)


def _load_npz(path: Path, split: str) -> ArrayDataset:
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise ValueError(
                f"{str(path)!r} is not an .npz archive (expected a zip of .npy arrays)"
            )
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            need = {f"{split}_images", f"{split}_labels"}
            if not need <= keys:
                raise ValueError(
                    f"{str(path)!r}: expected arrays {sorted(need)} (uint8 images, int labels), "
                    f"found {sorted(keys)}"
                )
            images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(
            f"cannot read {str(path)!r} as an .npz archive: {type(e).__name__}: {e}"
        ) from None
    if images.dtype != np.uint8:
        raise ValueError(f"{str(path)!r}: expected uint8 {split}_images, got {images.dtype}")
    return ArrayDataset(images, labels.astype(np.int64), name=f"{path.stem}:{split}")
