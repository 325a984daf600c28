"""Shared pieces of the command-line interface: error handling and option parsing.

Known errors (bad values, unreadable files, library errors) print one line to stderr
and exit with code 2. Anything else is our bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from onebyone.errors import OneByOneError

F = TypeVar("F", bound=Callable[..., Any])

# OSError: a file that cannot be read or written (missing, a directory, no permission, disk full).
USER_ERRORS = (ValueError, OneByOneError, OSError, NotImplementedError)


def _message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{str(e.filename)!r}: {e.strerror}"
    return str(e)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on one line to stderr and return the Exit to raise."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return typer.Exit(code)


def user_errors(fn: F) -> F:
    """Decorate a command so that user mistakes print one line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            raise fail(_message(e)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", code=130) from None

    return wrapper  # type: ignore[return-value]


_SHAPE = re.compile(r"^\s*\d+(\s*[xX,]\s*\d+)*\s*$")

# Each size torch indexes with 64-bit integers: a dimension (or batch) above 2^31 - 1 is no
# image, and a tensor over 2^60 elements overflows torch's storage-size arithmetic (8 bytes each).
MAX_DIM = 2**31 - 1
MAX_ELEMENTS = 2**60


def parse_shape(text: str, option: str = "--input") -> tuple[int, ...]:
    """Parse ``3x224x224`` (or ``3,224,224``, or ``784``) into a tuple of positive ints.

    Each dimension is at most 2^31 - 1 and their product at most 2^60 (a ValueError naming
    ``option`` otherwise: torch's own size arithmetic would overflow).

    >>> parse_shape("3x224x224")
    (3, 224, 224)
    >>> parse_shape("784")
    (784,)
    """
    if not isinstance(text, str) or not _SHAPE.match(text):
        raise ValueError(f"{option} must look like 3x224x224 (positive integers joined by 'x'), got {text!r}")
    dims = tuple(int(p) for p in re.split(r"\s*[xX,]\s*", text.strip()))
    if any(d < 1 for d in dims):
        raise ValueError(f"{option} dimensions must be >= 1, got {text!r}")
    if any(d > MAX_DIM for d in dims):
        raise ValueError(f"{option} dimensions must be at most {MAX_DIM:,} (2^31 - 1), got {text!r}")
    check_elements(dims, option, text)
    return dims


def check_elements(shape: tuple[int, ...], option: str = "--input", text: str | None = None) -> None:
    """A ValueError naming ``option`` when ``shape`` has more than 2^60 elements.

    >>> check_elements((2, 3, 2**30, 2**30))
    Traceback (most recent call last):
    ...
    ValueError: --input (2, 3, 1073741824, 1073741824) has 6,917,529,027,641,081,856 elements, more than 2^60: no tensor that large can exist
    """
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise ValueError(
            f"{option} {text or shape} has {count:,} elements, more than 2^60: no tensor that "
            "large can exist"
        )


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:,.2f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError  # pragma: no cover


def available_memory(device: str) -> int | None:
    """Bytes free for a new allocation on ``device`` (None when it cannot be told).

    >>> available_memory("meta") is None
    True
    """
    import os

    import torch

    kind = str(device).split(":")[0]
    if kind == "cpu":
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    if kind == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    return None


def check_memory(needed: int, device: str, what: str) -> None:
    """A ValueError saying how much memory ``what`` needs when ``device`` has less free.

    >>> check_memory(10, "cpu", "the forward")
    >>> check_memory(2**60, "cpu", "the forward")
    Traceback (most recent call last):
    ...
    ValueError: the forward needs about 1,024.00 PB on cpu, more than the ... free; use --device meta (counts without memory)
    """
    free = available_memory(device)
    if free is not None and needed > free:
        raise ValueError(
            f"{what} needs about {_bytes(needed)} on {device}, more than the {_bytes(free)} "
            "free; use --device meta (counts without memory)"
        )


def check_device(device: str, option: str = "--device") -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (CUDA only where available); else a ValueError naming the option.

    >>> check_device("cpu")
    'cpu'
    """
    from onebyone.train.evaluate import resolve_device

    try:
        resolve_device(device)
    except ValueError as e:
        raise ValueError(f"{option} {device!r}: {e}") from None
    return device


DEFAULT_THREADS = 1

THREADS_HELP = (
    "CPU threads torch may use (default: $OMP_NUM_THREADS if set, else 1: on a machine where "
    "other programs run, more threads than free cores run many times slower; see the README)."
)


def threads_option() -> Any:
    """The ``--threads`` option, the same in every command that computes."""
    return typer.Option(None, "--threads", help=THREADS_HELP, show_default=False)


def set_threads(threads: int | None, option: str = "--threads") -> int:
    """Give torch ``threads`` CPU threads, or the default: ``$OMP_NUM_THREADS`` if set, else 1.

    Returns the number of threads torch now uses.

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> set_threads(1)
    1
    >>> torch.set_num_threads(before)
    """
    import os

    import torch

    from onebyone._checks import check_int

    if threads is not None:
        threads = check_int(option, threads, minimum=1)
        if threads > 1024:
            raise ValueError(f"{option} must be between 1 and 1024, got {threads}")
    elif not os.environ.get("OMP_NUM_THREADS", "").strip():
        threads = DEFAULT_THREADS
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 thread``, ``2 threads``: the count and the word, singular or plural.

    >>> plural(1, "epoch"), plural(3, "epoch"), plural(2, "batch", "batches")
    ('1 epoch', '3 epochs', '2 batches')
    """
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def check_subset(option: str, count: int, dataset) -> int:
    """0 (all) or a sample count between the number of classes and the dataset's size.

    >>> import numpy as np
    >>> from onebyone.data import ArrayDataset
    >>> check_subset("--subset", 4, ArrayDataset(np.zeros((10, 8, 8), np.uint8), np.arange(10) % 2))
    4
    """
    if count and not dataset.num_classes <= count <= len(dataset):
        raise ValueError(
            f"{option} must be 0 (all) or between {dataset.num_classes} (one per class) and "
            f"{len(dataset)} (the data's size), got {count}"
        )
    return count
