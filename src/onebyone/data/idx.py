"""Readers for IDX files: MNIST and Fashion-MNIST (``train-images-idx3-ubyte[.gz]`` ...).

The IDX format (LeCun et al.): two zero bytes, a type code, the number of dimensions, then
each dimension as a big-endian int32, then the values in row-major order.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from onebyone.data.dataset import ArrayDataset, check_labels

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

    The header is checked before any data is read, and no more data is read than it
    declares: a ``.gz`` whose header declares more than deflate could hold in the file's
    size (about 1100 times it), or that inflates beyond the declared size, is refused.

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
    compressed = path.suffix == ".gz"
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as f:
            # The header comes first and decides how much is read: never more than it declares
            # (plus one byte, to notice trailing data), so a small .gz cannot inflate to GiBs.
            dtype, dims = _read_header(f, path)
            size = math.prod(dims) * dtype.itemsize
            _check_declared_size(path, dims, size, compressed)
            raw = f.read(size + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"cannot read IDX file {str(path)!r}: {e}") from e
    if len(raw) != size:
        more = "more data than" if len(raw) > size else f"only {len(raw)} data bytes, less than"
        raise ValueError(
            f"{str(path)!r} is not {_EXPECTED}: it holds {more} its header declares "
            f"(shape {dims}, {size} data bytes)"
        )
    data = np.frombuffer(raw, dtype=dtype).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


_EXPECTED = "an IDX file (2 zero bytes, type code, ndim, big-endian int32 sizes, data)"
# Deflate cannot expand data more than about 1032 times (258-byte matches coded in 2 bits);
# 1100 leaves room for the gzip header and trailer.
_MAX_GZIP_RATIO = 1100


def _read_header(f: BinaryIO, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _TYPES or magic[3] == 0:
        raise ValueError(f"{str(path)!r} is not {_EXPECTED}: bad magic number {magic.hex()!r}")
    ndim = magic[3]
    sizes = f.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise ValueError(f"{str(path)!r} is not {_EXPECTED}: header truncated")
    dims = tuple(int(d) for d in np.frombuffer(sizes, dtype=">i4"))
    for i, d in enumerate(dims):
        if d < 0:
            raise ValueError(
                f"{str(path)!r} is not {_EXPECTED}: dimension {i} of the header is {d}, "
                "expected a size >= 0"
            )
    return _TYPES[magic[2]], dims


def _check_declared_size(path: Path, dims: tuple[int, ...], size: int, compressed: bool) -> None:
    on_disk = path.stat().st_size
    header = 4 + 4 * len(dims)
    if compressed:
        if size > _MAX_GZIP_RATIO * on_disk:
            raise ValueError(
                f"{str(path)!r} is not {_EXPECTED}: the header declares shape {dims} "
                f"({size} data bytes), more than a {on_disk}-byte gzip file can hold"
            )
    elif size != on_disk - header:
        raise ValueError(
            f"{str(path)!r} is not {_EXPECTED}: header says shape {dims} "
            f"({size} data bytes) but the file holds {on_disk - header}"
        )


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
        ValueError: a file is malformed, images and labels disagree, the split holds no
            images, or a label is not a class index (see :func:`~onebyone.data.check_labels`).

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
    if images.shape[0] == 0:
        raise ValueError(
            f"{str(pair[0])!r} holds no images (shape {images.shape}); "
            f"the {split} split needs at least one"
        )
    labels = check_labels(labels, images.shape[0], where=repr(str(pair[1])))
    return ArrayDataset(images, labels, name=f"{root.name}:{split}")
