"""Output paths of the commands, checked before any work so that a bad one fails at once.

Each check raises ValueError naming the option and the path: a directory where a file is
expected (or the other way round), a parent that is a file, a folder that cannot be written.
"""

from __future__ import annotations

import os
from pathlib import Path


def _writable_parent(path: Path, option: str, text: str) -> None:
    """The nearest existing ancestor of ``path`` must be a writable folder."""
    from onebyone._io import nearest_existing_parent

    ancestor = nearest_existing_parent(path) or Path(".")
    if not ancestor.is_dir():
        raise ValueError(f"{option} {text!r}: {str(ancestor)!r} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {text!r}: the folder {str(ancestor)!r} is not writable")


def check_out_prefix(text: str | None, option: str = "--out") -> Path | None:
    """Validate an output prefix: OUT.json and OUT.safetensors must be writable files.

    Raises ValueError naming ``option`` for a directory (or a path ending in '/'), a parent that
    is a file, or a folder that cannot be written.

    Example:
        >>> check_out_prefix("runs/small")
        PosixPath('runs/small')
    """
    if text is None:
        return None
    if not text.strip():
        raise ValueError(f"{option} must be a path prefix such as out/model, got {text!r}")
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        raise ValueError(
            f"{option} {text!r} is a directory; give a path prefix inside it, e.g. {option} "
            f"{str(Path(text) / 'model')!r} (writes model.json and model.safetensors there)"
        )
    out = Path(text)
    stem = out.with_suffix("") if out.suffix in (".json", ".safetensors") else out
    for target in (stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".safetensors")):
        if target.is_dir():
            raise ValueError(f"{option} {text!r} would write {str(target)!r}, which is a directory")
    _writable_parent(out, option, text)
    return out


def check_out_dir(path: Path, option: str, files: tuple[str, ...] = ()) -> Path:
    """Validate an output folder (created later if missing) and the ``files`` to be written in it.

    Example:
        >>> check_out_dir(Path("runs/r20"), "--out", ("state.json",))
        PosixPath('runs/r20')
    """
    text = str(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {text!r} is a file; expected a folder (it is created if missing)")
    for name in files:
        if (path / name).is_dir():
            raise ValueError(f"{option} {text!r}: {str(path / name)!r} is a directory, expected a file")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{option} {text!r}: the folder is not writable")
    else:
        _writable_parent(path, option, text)
    return path


def check_out_file(path: Path, option: str, suffixes: tuple[str, ...] = ()) -> Path:
    """Validate an output file: not a directory, a known suffix (if ``suffixes``), a writable folder.

    Example:
        >>> check_out_file(Path("plot.png"), "--plot", (".png", ".svg"))
        PosixPath('plot.png')
    """
    text = str(path)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise ValueError(f"{option} {text!r} is a directory; expected a file name such as plot.png")
    if suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(
            f"{option} {text!r} has the suffix {path.suffix or '(none)'!r}; "
            f"expected one of {', '.join(suffixes)}"
        )
    _writable_parent(path, option, text)
    return path
