"""``load``: one entry point for the bundled data and users' own files."""

from __future__ import annotations

import math
import os
import tokenize
import zipfile
from pathlib import Path

import numpy as np

from onebyone.data.bundled import BUNDLED, load_mnist5k
from onebyone.data.cifar import load_cifar
from onebyone.data.dataset import ArrayDataset, check_labels
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
        with zipfile.ZipFile(path) as zf:
            keys = {n.removesuffix(".npy") for n in zf.namelist() if n.endswith(".npy")}
            need = {f"{split}_images", f"{split}_labels"}
            if not need <= keys:
                raise ValueError(
                    f"{str(path)!r}: expected arrays {sorted(need)} (uint8 images, int labels), "
                    f"found {sorted(keys)}"
                )
            images = _read_npy_member(zf, f"{split}_images", path)
            labels = _read_npy_member(zf, f"{split}_labels", path)
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(
            f"cannot read {str(path)!r} as an .npz archive: {type(e).__name__}: {e}"
        ) from None
    if images.dtype != np.uint8:
        raise ValueError(f"{str(path)!r}: expected uint8 {split}_images, got {images.dtype}")
    where = f"{str(path)!r} {split}_labels"
    if labels.dtype == np.bool_ or labels.dtype.kind not in "iuf":
        raise ValueError(f"{where}: expected integer {split}_labels, got dtype {labels.dtype}")
    if images.ndim not in (3, 4) or images.shape[0] == 0:
        raise ValueError(
            f"{str(path)!r}: expected {split}_images of shape (N, H, W) or (N, C, H, W) with "
            f"N >= 1, got {images.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{where}: expected shape ({images.shape[0]},) to match {split}_images, "
            f"got {labels.shape}"
        )
    labels = check_labels(labels, images.shape[0], where=where)
    return ArrayDataset(images, labels, name=f"{path.stem}:{split}")


# What parsing an untrusted .npy header may raise (RecursionError: a deeply nested literal).
_BAD_HEADER = (ValueError, SyntaxError, TypeError, OverflowError, RecursionError, tokenize.TokenError)

# Deflate expands at most ~1032x; more than this per member is a lie in the zip directory.
_MAX_DEFLATE_RATIO = 1100


def _read_npy_member(zf: zipfile.ZipFile, key: str, path: Path) -> np.ndarray:
    """Read ``key.npy`` from an open .npz, checking its declared size before allocating.

    ``np.load`` allocates what the .npy header declares before reading the data, so a
    100-byte archive could ask for any amount of memory; here the header must agree with the
    member's size in the zip directory, which must be one the compressed bytes can hold.
    """
    info = zf.getinfo(f"{key}.npy")
    where = f"{str(path)!r} {key}"
    ratio = 1 if info.compress_type == zipfile.ZIP_STORED else _MAX_DEFLATE_RATIO
    if info.file_size > ratio * max(info.compress_size, 1):
        raise ValueError(
            f"{where}: the archive declares {info.file_size} bytes for "
            f"{info.compress_size} compressed ones, more than compression allows"
        )
    with zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        # What numpy raises on a bad header depends on numpy and Python (literal_eval, then
        # tokenize for old headers: ValueError, SyntaxError, TokenError...): all mean the same.
        except _BAD_HEADER as e:
            raise ValueError(f"{where}: not a valid .npy array: {e}") from None
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            raise ValueError(f"{where}: expected a plain numeric array, got dtype {dtype}")
        size = math.prod(shape) * dtype.itemsize
        if size != info.file_size - f.tell():
            raise ValueError(
                f"{where}: the .npy header declares shape {shape} ({size} data bytes) but "
                f"the archive holds {info.file_size - f.tell()}"
            )
        raw = f.read(size + 1)
    if len(raw) != size:
        raise ValueError(f"{where}: holds {len(raw)} data bytes, expected {size}")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return array.astype(dtype.newbyteorder("="))
