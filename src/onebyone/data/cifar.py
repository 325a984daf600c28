"""Reader for the CIFAR-10 / CIFAR-100 "python version" batches, without unpickling untrusted code.

The batches are Python pickles. A plain ``pickle.load`` can run any code a file names, and even
numpy's own constructors allocate whatever a file asks (``numpy.ndarray((10**6, 3072), "u1")``
from a 121-byte file). So a batch is read in three guarded steps:

1. The whole file is read (its real size bounds everything after) and its opcodes are walked
   before anything is built: every length prefix must fit in the bytes that remain, and memo
   indices must be ones the file could have assigned.
2. The Unpickler's ``find_class`` allows only what a real CIFAR batch holds (dicts, lists,
   bytes and str, ints, numeric numpy arrays) and maps each numpy global to a checked
   stand-in: ``ndarray`` is a token that cannot be called, ``_reconstruct`` only makes the
   empty placeholder numpy pickles, ``dtype`` accepts plain numeric type codes only, and an
   array's data must have exactly the bytes its shape and dtype need, before it is built.
3. Placeholders are replaced by the arrays they hold; anything else fails with the file's name.
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pickle
import pickletools
import struct
from pathlib import Path
from typing import Any

import numpy as np

from onebyone.data.dataset import ArrayDataset, check_labels

__all__ = ["load_cifar", "read_cifar_batch"]

_CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
# Plain numeric type codes: what CIFAR images and labels need (no objects, records, subarrays).
_TYPE_CODES = frozenset(
    f"{order}{kind}{size}"
    for order in ("", "<", ">", "|", "=")
    for kind, sizes in (("u", (1, 2, 4, 8)), ("i", (1, 2, 4, 8)), ("f", (4, 8)), ("b", (1,)))
    for size in sizes
) | {"b", "B", "u1", "i1"}
_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


class _Bad(ValueError):
    """A batch asks for something no CIFAR batch holds (the message is completed with the file)."""


def _text(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, (bytes, bytearray)) else value


class _DType:
    """``numpy.dtype(code, align, copy)`` for plain numeric codes; BUILD sets the byte order only."""

    __slots__ = ("dtype",)

    def __init__(self, code: Any, align: Any = False, copy: Any = True) -> None:
        code = _text(code)
        if not isinstance(code, str) or code not in _TYPE_CODES:
            raise _Bad(f"asks for numpy dtype {code!r}; only plain numeric dtypes are allowed")
        self.dtype = np.dtype(code)

    def __setstate__(self, state: Any) -> None:
        # numpy's dtype state: (version, byte order, subarray, names, fields, elsize, alignment,
        # flags[, metadata]). Anything beyond a byte order would make a record or subarray.
        if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
            raise _Bad(f"holds a malformed numpy dtype state {state!r:.80}")
        order = _text(state[1])
        if order not in ("<", ">", "|", "=") or any(v is not None for v in state[2:5]):
            raise _Bad(f"holds a numpy dtype that is not a plain number: {state!r:.80}")
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)


def _numeric_dtype(value: Any) -> np.dtype:
    if not isinstance(value, _DType):
        raise _Bad(f"gives an array the dtype {value!r:.40}; expected a plain numeric numpy dtype")
    return value.dtype


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(type(d) is int and d >= 0 for d in value):
        raise _Bad(f"gives an array the shape {value!r:.60}; expected a tuple of sizes >= 0")
    return value


def _array(raw: Any, dtype: np.dtype, shape: tuple[int, ...], fortran: bool) -> np.ndarray:
    if isinstance(raw, pickle.PickleBuffer):
        raw = raw.raw()
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise _Bad(f"gives an array data of type {type(raw).__name__}; expected bytes")
    need = math.prod(shape) * dtype.itemsize
    if len(raw) != need:  # checked before anything the size of the shape is allocated
        raise _Bad(f"holds an array of shape {shape} ({need} bytes) with {len(raw)} bytes of data")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return array.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


class _Global:
    """What ``find_class`` hands the unpickler: a callable that BUILD cannot modify.

    Pickle's BUILD sets attributes on whatever object is on the stack; on a module-level
    function or class that would change the reader for every later file, so it is refused.
    """

    __slots__ = ("_call", "name")

    def __init__(self, name: str, call: Any) -> None:
        self.name, self._call = name, call

    def __call__(self, *args: Any) -> Any:
        return self._call(*args)

    def __setstate__(self, state: Any) -> None:
        raise _Bad(f"tries to modify {self.name} (pickle BUILD on a global)")

    def __reduce__(self) -> Any:  # never pickled itself
        raise TypeError(f"{self.name} stand-in cannot be pickled")


def _refuse_ndarray(*args: Any) -> Any:
    raise _Bad("calls numpy.ndarray directly (it allocates whatever it is asked)")


_NDARRAY = _Global("numpy.ndarray", _refuse_ndarray)


class _ArrayPlaceholder:
    """What ``_reconstruct`` returns; BUILD (``__setstate__``) gives it its checked data, once.

    ``_frombuffer`` returns one that already holds its array, so numpy's own ``__setstate__``
    never sees a state from the file.
    """

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray | None = None) -> None:
        self.array = array

    def __setstate__(self, state: Any) -> None:
        if self.array is not None:
            raise _Bad("sets the data of a numpy array twice")
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]  # (version, shape, dtype, is_fortran, data)
        if not isinstance(state, tuple) or len(state) != 4:
            raise _Bad(f"holds a malformed numpy array state {state!r:.80}")
        shape, dtype, fortran, raw = state
        self.array = _array(raw, _numeric_dtype(dtype), _shape(shape), bool(fortran))


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> _ArrayPlaceholder:
    # numpy pickles an array as _reconstruct(ndarray, (0,), b"b") then BUILD with the data.
    if subtype is not _NDARRAY or shape != (0,) or _text(typecode) != "b":
        raise _Bad(f"calls numpy _reconstruct({subtype!r:.30}, {shape!r:.30}, {typecode!r:.10})")
    return _ArrayPlaceholder()


def _frombuffer(raw: Any, dtype: Any, shape: Any, order: Any) -> _ArrayPlaceholder:
    if order not in ("C", "F"):
        raise _Bad(f"gives an array the order {order!r:.20}; expected 'C' or 'F'")
    return _ArrayPlaceholder(_array(raw, _numeric_dtype(dtype), _shape(shape), order == "F"))


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    # Python 3 pickles bytes for protocol 2 as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Bad(f"calls _codecs.encode with {encoding!r:.20}; expected 'latin1'")
    return codecs.encode(text, "latin1")


_GLOBALS: dict[tuple[str, str], _Global] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Global("numpy.dtype", _DType),
    ("_codecs", "encode"): _Global("_codecs.encode", _encode),
}
for _mod in ("numpy.core", "numpy._core"):
    _GLOBALS[(f"{_mod}.multiarray", "_reconstruct")] = _Global("_reconstruct", _reconstruct)
    _GLOBALS[(f"{_mod}.numeric", "_frombuffer")] = _Global("_frombuffer", _frombuffer)


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise _Bad(
                f"refers to {module}.{name}; a CIFAR batch may only hold "
                "numpy arrays, lists and bytes, so it was not loaded"
            ) from None


# Length-prefixed opcode arguments: (prefix bytes, struct format) by pickletools' markers.
_PREFIXED = {
    pickletools.TAKEN_FROM_ARGUMENT1: (1, "<B"),
    pickletools.TAKEN_FROM_ARGUMENT4: (4, "<i"),
    pickletools.TAKEN_FROM_ARGUMENT4U: (4, "<I"),
    pickletools.TAKEN_FROM_ARGUMENT8U: (8, "<Q"),
}
_OPCODES = {ord(op.code): op for op in pickletools.opcodes}


def _scan(raw: bytes) -> None:
    """Walk the opcodes without building anything: lengths and memo indices must be possible.

    The C unpickler allocates what a length prefix says before reading the bytes (BYTEARRAY8)
    and grows its memo table to the index it is given, so both are checked against the file
    first. Payloads are skipped, not copied: the walk costs one step per opcode.
    """
    pos, end, count = 0, len(raw), 0
    while pos < end:
        op = _OPCODES.get(raw[pos])
        if op is None:
            raise _Bad(f"holds byte {raw[pos]:#04x} at offset {pos}, which is no pickle opcode")
        pos, count = pos + 1, count + 1
        if op.name == "STOP":
            return
        arg = op.arg
        if arg is None:
            continue
        if arg.n in _PREFIXED:
            width, fmt = _PREFIXED[arg.n]
            if pos + width > end:
                break
            (length,) = struct.unpack_from(fmt, raw, pos)
            pos += width
            if not 0 <= length <= end - pos:
                raise _Bad(
                    f"declares {length} bytes for {op.name} at offset {pos - width - 1} but "
                    f"only {end - pos} follow"
                )
            pos += length
            continue
        start = pos
        if arg.n == pickletools.UP_TO_NEWLINE:
            for _ in range(2 if arg.name == "stringnl_noescape_pair" else 1):
                newline = raw.find(b"\n", pos)
                if newline < 0:
                    raise _Bad(f"is truncated inside {op.name} at offset {start - 1}")
                pos = newline + 1
        elif pos + arg.n <= end:
            pos += arg.n
        else:
            break
        if op.name in _MEMO_OPS or op.name == "FRAME":
            text = raw[start:pos]
            value = int(text) if op.name == "PUT" else int.from_bytes(text, "little")
            # A frame holds bytes that follow; a pickler numbers memo entries 0, 1, 2...,
            # never beyond the opcodes so far.
            if value > (end - pos if op.name == "FRAME" else count):
                raise _Bad(f"holds {op.name} {value} at offset {start - 1}; the file is forged")
    raise _Bad("is truncated (it ends before the pickle's STOP)")


_PLAIN = frozenset({int, bytes, str, float, bool, type(None)})


def _resolve(obj: Any, depth: int = 0) -> Any:
    if depth > 4:  # a CIFAR batch is a dict of lists and arrays: two levels
        raise _Bad("nests containers deeper than a CIFAR batch does")
    if isinstance(obj, _ArrayPlaceholder):
        if obj.array is None:
            raise _Bad("holds an array without data")
        return obj.array
    if isinstance(obj, _DType):
        raise _Bad("holds a bare numpy dtype")
    if isinstance(obj, _Global):
        raise _Bad(f"holds {obj.name} itself")
    if isinstance(obj, dict):
        return {_resolve(k, depth + 1): _resolve(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if all(type(v) in _PLAIN for v in obj):  # labels and filenames: no walk per item
            return obj
        items = [_resolve(v, depth + 1) for v in obj]
        return items if isinstance(obj, list) else tuple(items)
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, bytearray, np.ndarray)):
        return obj
    raise _Bad(f"holds a {type(obj).__name__}; a CIFAR batch holds arrays, lists and bytes")


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
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read CIFAR batch {str(path)!r}: {e}") from e
    try:
        _scan(raw)
    except _Bad as e:
        raise ValueError(
            f"{str(path)!r} is not a CIFAR python batch (a pickled dict with 'data' and "
            f"'labels'): it {e}"
        ) from None
    try:
        obj = _resolve(_DataOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load())
    except _Bad as e:
        raise ValueError(f"{str(path)!r} {e}") from None
    except Exception as e:  # truncated or garbage bytes raise many different errors
        raise ValueError(
            f"{str(path)!r} is not a CIFAR python batch (expected a pickled dict with "
            f"'data' and 'labels'): {type(e).__name__}: {e}"
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(
            f"{str(path)!r}: expected a dict with 'data' and 'labels', got {type(obj).__name__}"
        )
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _batch_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = read_cifar_batch(path)
    label_key = next((k for k in ("labels", "fine_labels") if k in batch), None)
    if "data" not in batch or label_key is None:
        raise ValueError(
            f"{str(path)!r}: expected keys 'data' and 'labels' (or 'fine_labels'), got {sorted(batch)}"
        )
    data = batch["data"]
    if not isinstance(data, np.ndarray):
        raise ValueError(f"{str(path)!r}: expected 'data' as a uint8 array, got {type(data).__name__}")
    labels = _labels(batch[label_key], path, label_key)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(
            f"{str(path)!r}: expected 'data' as uint8 (N, 3072), got {data.dtype} {data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise ValueError(
            f"{str(path)!r}: expected {data.shape[0]} labels, got shape {labels.shape}"
        )
    return data.reshape(-1, 3, 32, 32), check_labels(labels, len(labels), where=repr(str(path)))


def _labels(value: Any, path: Path, key: str) -> np.ndarray:
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iu":
        return value
    if isinstance(value, list) and all(type(v) is int for v in value):
        if value and not -(2**63) <= min(value) <= max(value) < 2**63:
            big = max(value, key=abs)
            i = value.index(big)
            raise ValueError(f"{str(path)!r}: {key!r} label {big} (index {i}) is not a class index")
        return np.array(value, dtype=np.int64)
    bad = next((v for v in value if type(v) is not int), value) if isinstance(value, list) else value
    raise ValueError(
        f"{str(path)!r}: expected {key!r} as a list of integer labels, got an item {bad!r:.40}"
    )


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
    if len(images) == 0:
        raise ValueError(f"{str(root)!r}: the {split} batches ({', '.join(names)}) hold no images")
    return ArrayDataset(images, labels, classes=classes, name=f"{root.name}:{split}")


def _names(meta: dict[str, Any], key: str) -> list[str] | None:
    names = meta.get(key)
    if not isinstance(names, list):
        return None
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]
