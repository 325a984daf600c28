"""Atomic file writing: write to a temporary file in the same folder, then rename.

A crash or Ctrl-C never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "nearest_existing_parent", "save_safetensors_atomic", "write_json_atomic", "write_text_atomic"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hi")
    >>> (d / "a.txt").read_text()
    'hi'
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file path", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        # Name the file the caller asked for, not the temporary one or a parent.
        ancestor = nearest_existing_parent(path)
        if ancestor is not None and not ancestor.is_dir():
            raise NotADirectoryError(
                errno.ENOTDIR, f"cannot write: {str(ancestor)!r} is a file, not a folder", str(path)
            ) from None
        raise type(e)(e.errno, f"cannot write: {e.strerror}", str(path)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file 0600; give it the mode open() would have (0666 minus umask).
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def nearest_existing_parent(path: str | os.PathLike) -> Path | None:
    """The closest ancestor of ``path`` that exists (a folder, or a file in the way), or None.

    >>> nearest_existing_parent("/no/such/dir/file.txt")
    PosixPath('/')
    """
    return next((a for a in Path(path).parents if a.exists()), None)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    # The rename is durable once the folder is synced; not every platform allows it.
    with contextlib.suppress(OSError):
        _fsync(folder)


@contextlib.contextmanager
def _atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else "utf-8") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path.

    >>> import tempfile, pathlib
    >>> write_text_atomic(pathlib.Path(tempfile.mkdtemp()) / "a.txt", "hi").read_text()
    'hi'
    """
    with _atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically and return the path.

    >>> import tempfile, pathlib, json
    >>> p = write_json_atomic(pathlib.Path(tempfile.mkdtemp()) / "s.json", {"epoch": 1})
    >>> json.loads(p.read_text())
    {'epoch': 1}
    """
    return write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def save_safetensors_atomic(
    tensors: dict, path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """Save a dict of tensors with safetensors, atomically; tensors are made contiguous.

    Tied tensors (two names sharing storage) are cloned so safetensors accepts them.

    >>> import tempfile, pathlib, torch
    >>> from safetensors.torch import load_file
    >>> w = torch.ones(2, 3)
    >>> p = save_safetensors_atomic({"a": w, "b": w}, pathlib.Path(tempfile.mkdtemp()) / "w.safetensors")
    >>> sorted(load_file(p))
    ['a', 'b']
    """
    from safetensors.torch import save_file

    seen: set[int] = set()
    clean = {}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        clean[name] = t
    with atomic_path(path) as tmp:
        try:
            save_file(clean, str(tmp), metadata=metadata)
        except Exception as e:
            if type(e).__name__ != "SafetensorError":
                raise
            raise _as_os_error(e, path) from e
        _fsync(tmp)  # on disk before the rename, like the JSON files
    return Path(path)


def _as_os_error(error: Exception, path: str | os.PathLike) -> OSError:
    """safetensors reports a failed write (disk full, file too large) as ``SafetensorError``,
    which is not an ``OSError``: give it back as the ``OSError`` it was, naming the file.

    >>> e = _as_os_error(RuntimeError("I/O error: No space left on device (os error 28)"), "w.st")
    >>> type(e).__name__, e.errno, e.strerror, e.filename
    ('OSError', 28, 'cannot write: No space left on device', 'w.st')
    >>> _as_os_error(RuntimeError("IoError(Os { code: 28, kind: StorageFull })"), "w.st").errno
    28
    """
    import re

    # "(os error 28)" (Display) or "Os { code: 28, kind: StorageFull, ... }" (Debug)
    found = re.search(r"os error (\d+)|Os \{ code: (\d+)", str(error))
    if found:
        code = int(found.group(1) or found.group(2))
        return OSError(code, f"cannot write: {os.strerror(code)}", str(path))
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return OSError(errno.EIO, f"cannot write: {first}", str(path))
