"""Readers for IDX files: MNIST and Fashion-MNIST (``train-images-idx3-ubyte[.gz]`` ...).

The IDX format (LeCun et al.): two zero bytes, a type code, the number of dimensions, then
each dimension as a big-endian int32, then the values in row-major order.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from onebyone.data.dataset import ArrayDataset

__all__ = ["find_idx_pair", "load_mnist_idx", "read_idx"]

_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a numpy array.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a well-formed IDX file; the message names the file.

    Example:
        >>> import tempfile, pathlib, struct
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
        >>> _ = p.write_bytes(struct.pack(">HBBI", 0, 0x08, 1, 3) + bytes([7, 2, 1]))
        >>> read_idx(p).tolist()
        [7, 2, 1]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {str(path)!r} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"cannot read IDX file {str(path)!r}: {e}") from e
    expected = "an IDX file (2 zero bytes, type code, ndim, big-endian int32 sizes, data)"
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES or raw[3] == 0:
        raise ValueError(f"{str(path)!r} is not {expected}: bad magic number {raw[:4].hex()!r}")
    dtype, ndim = _TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{str(path)!r} is not {expected}: header truncated")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    count = int(np.prod(dims)) if dims else 0
    if len(raw) - header != count * dtype.itemsize:
        raise ValueError(
            f"{str(path)!r} is not {expected}: header says shape {dims} "
            f"({count * dtype.itemsize} data bytes) but the file holds {len(raw) - header}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def find_idx_pair(root: str | os.PathLike, split: str = "train") -> tuple[Path, Path] | None:
    """Return the (images, labels) IDX paths for ``split`` in ``root``, or None if absent.

    Example:
        >>> import tempfile
        >>> find_idx_pair(tempfile.mkdtemp()) is None
        True
    """
    root = Path(root)
    prefix = _PREFIX[split]
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        for sep in ("-", "."):
            hit = next(
                (
                    root / f"{prefix}{sep}{kind}{gz}"
                    for gz in ("", ".gz")
                    if (root / f"{prefix}{sep}{kind}{gz}").is_file()
                ),
                None,
            )
            if hit is not None:
                found.append(hit)
                break
    return (found[0], found[1]) if len(found) == 2 else None


def load_mnist_idx(root: str | os.PathLike, split: str = "train") -> ArrayDataset:
    """Load an MNIST or Fashion-MNIST split from a folder of IDX files.

    The folder holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``).

    Args:
        root: the folder.
        split: ``"train"`` or ``"test"``.

    Raises:
        FileNotFoundError: the folder or one of the two files is missing.
        ValueError: a file is malformed, or images and labels disagree.

    Example:
        >>> import tempfile
        >>> load_mnist_idx(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        FileNotFoundError: ...no train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]...
    """
    from onebyone._checks import check_choice

    check_choice("split", split, tuple(_PREFIX))
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"MNIST folder {str(root)!r} does not exist")
    pair = find_idx_pair(root, split)
    if pair is None:
        p = _PREFIX[split]
        raise FileNotFoundError(
            f"{str(root)!r} has no {p}-images-idx3-ubyte[.gz] and {p}-labels-idx1-ubyte[.gz] "
            "(expected the MNIST / Fashion-MNIST IDX files)"
        )
    images, labels = read_idx(pair[0]), read_idx(pair[1])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{str(pair[0])!r}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{str(pair[1])!r}: expected {images.shape[0]} labels to match {pair[0].name}, got shape {labels.shape}"
        )
    return ArrayDataset(images, labels.astype(np.int64), name=f"{root.name}:{split}")
