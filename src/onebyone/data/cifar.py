"""Reader for the CIFAR-10 / CIFAR-100 "python version" batches, without unpickling untrusted code.

The batches are Python pickles. A plain ``pickle.load`` can run any code a file names, so we
use an Unpickler whose ``find_class`` refuses every global except the few that rebuild a
numpy array or a byte string. Those are data constructors: ``_reconstruct`` makes an empty
``ndarray`` (the only class we hand it), ``ndarray.__setstate__`` copies raw bytes into it,
``dtype`` parses a type code, ``_frombuffer`` wraps bytes, ``_codecs.encode`` turns a str into
bytes. None of them imports modules, opens files or calls anything the file chooses.
Object arrays are rejected after loading.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from onebyone.data.dataset import ArrayDataset

__all__ = ["load_cifar", "read_cifar_batch"]

_CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    table: dict[tuple[str, str], Any] = {}
    for mod in ("numpy.core", "numpy._core"):
        table[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        if hasattr(numeric, "_frombuffer"):
            table[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    table[("_codecs", "encode")] = codecs.encode
    return table


class _DataOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._source = source
        self._allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise ValueError(
                f"{str(self._source)!r} refers to {module}.{name}; a CIFAR batch may only hold "
                "numpy arrays, lists and bytes, so it was not loaded"
            ) from None


def read_cifar_batch(path: str | os.PathLike) -> dict[str, Any]:
    """Read one CIFAR python batch safely; keys are returned as ``str``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a CIFAR batch, or names anything but numpy data.

    Example:
        >>> import tempfile, pathlib, pickle, numpy as np
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "data_batch_1"
        >>> batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 5]}
        >>> _ = p.write_bytes(pickle.dumps(batch, protocol=2))
        >>> read_cifar_batch(p)["labels"]
        [3, 5]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR batch {str(path)!r} does not exist")
    try:
        with open(path, "rb") as f:
            obj = _DataOnlyUnpickler(f, path).load()
    except ValueError:
        raise
    except Exception as e:  # truncated or garbage bytes raise many different errors
        raise ValueError(
            f"{str(path)!r} is not a CIFAR python batch (expected a pickled dict with "
            f"'data' and 'labels'): {type(e).__name__}: {e}"
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(
            f"{str(path)!r}: expected a dict with 'data' and 'labels', got {type(obj).__name__}"
        )
    out = {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}
    for v in out.values():
        if isinstance(v, np.ndarray) and v.dtype.hasobject:
            raise ValueError(f"{str(path)!r} holds an object array; refusing it")
    return out


def _batch_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = read_cifar_batch(path)
    label_key = next((k for k in ("labels", "fine_labels") if k in batch), None)
    if "data" not in batch or label_key is None:
        raise ValueError(
            f"{str(path)!r}: expected keys 'data' and 'labels' (or 'fine_labels'), got {sorted(batch)}"
        )
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(
            f"{str(path)!r}: expected 'data' as uint8 (N, 3072), got {data.dtype} {data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise ValueError(
            f"{str(path)!r}: expected {data.shape[0]} labels, got shape {labels.shape}"
        )
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar(root: str | os.PathLike, split: str = "train") -> ArrayDataset:
    """Load CIFAR-10 (``cifar-10-batches-py``) or CIFAR-100 (``cifar-100-python``) from a folder.

    CIFAR-10 reads ``data_batch_1..5`` / ``test_batch`` and the class names from
    ``batches.meta``; CIFAR-100 reads ``train`` / ``test`` with the fine labels.

    Raises:
        FileNotFoundError: the folder holds neither layout.
        ValueError: a batch is malformed.

    Example:
        >>> import tempfile
        >>> load_cifar(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        FileNotFoundError: ...expected CIFAR-10 ...
    """
    from onebyone._checks import check_choice

    check_choice("split", split, ("train", "test"))
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR folder {str(root)!r} does not exist")
    classes = None
    if (root / "data_batch_1").is_file() or (root / "test_batch").is_file():
        names = _CIFAR10_TRAIN if split == "train" else ["test_batch"]
        if (root / "batches.meta").is_file():
            classes = _names(read_cifar_batch(root / "batches.meta"), "label_names")
    elif (root / "train").is_file() or (root / "test").is_file():
        names = [split]
        if (root / "meta").is_file():
            classes = _names(read_cifar_batch(root / "meta"), "fine_label_names")
    else:
        raise FileNotFoundError(
            f"{str(root)!r}: expected CIFAR-10 (data_batch_1..5, test_batch) or "
            "CIFAR-100 (train, test) python batches"
        )
    parts = [_batch_arrays(root / n) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ArrayDataset(images, labels, classes=classes, name=f"{root.name}:{split}")


def _names(meta: dict[str, Any], key: str) -> list[str] | None:
    names = meta.get(key)
    if not isinstance(names, list):
        return None
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]
