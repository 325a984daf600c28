"""Checkpoints without pickle: weights and optimizer tensors in safetensors, the rest in JSON.

A checkpoint directory holds

- ``epoch-NNNN/model.safetensors``: the model's ``state_dict``;
- ``epoch-NNNN/optimizer.safetensors``: every tensor of the optimizer state, named
  ``"<param>.<key>"``;
- ``state.json``: the completed epoch, metrics, history, seed, config, the input size, the
  model's signature (class and parameter shapes), the optimizer's JSON-able parts (param
  groups, scalars), and the epoch folder with the SHA-256 of each tensor file.

A checkpoint changes from one complete state to the next in one atomic step: the new epoch's
tensor files are written (and synced) into a fresh folder that nothing points to yet, then
``state.json`` is replaced by one rename, and only then is the previous epoch's folder removed.
A process killed (or a disk filling up) at any moment leaves ``state.json`` naming a complete,
checksummed folder, so resume always finds the last complete checkpoint. The checksums are
checked whenever the tensor files are read, so a flipped byte is refused, never trained on.

Every ``epoch-*`` folder in a checkpoint directory belongs to the checkpoint: those that
``state.json`` does not name are leftovers of an interrupted write and are removed.

Folders written by earlier versions (``onebyone-checkpoint/1``: the tensor files beside
``state.json``, no checksums) are still read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from onebyone._io import save_safetensors_atomic, write_json_atomic
from onebyone.errors import OneByOneError
from onebyone.train._state import FORMAT, FORMAT_V1, parse_state

__all__ = [
    "FORMAT",
    "checkpoint_file",
    "has_checkpoint",
    "load_checkpoint",
    "model_signature",
    "read_state",
    "read_tensors",
    "save_checkpoint",
]

MODEL_FILE, OPTIM_FILE, STATE_FILE = "model.safetensors", "optimizer.safetensors", "state.json"


def model_signature(model: nn.Module) -> dict[str, Any]:
    """The class and the parameter/buffer shapes of ``model``: what must match to resume.

    Example:
        >>> sig = model_signature(nn.Linear(3, 2))
        >>> sig["class"], sig["shapes"]["weight"]
        ('torch.nn.modules.linear.Linear', [2, 3])
    """
    cls = type(model)
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
    }


def has_checkpoint(directory: str | os.PathLike) -> bool:
    """True if ``directory`` holds a ``state.json`` of a onebyone checkpoint.

    >>> import tempfile
    >>> has_checkpoint(tempfile.mkdtemp())
    False
    """
    return (Path(directory) / STATE_FILE).is_file()


def _split_optimizer_state(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _current_state(directory: Path) -> dict[str, Any] | None:
    """The present valid state of ``directory`` (None if none or unreadable)."""
    try:
        return read_state(directory)
    except (OSError, ValueError):
        return None


def _fresh_folder(directory: Path, epoch: int, keep: str | None) -> Path:
    """An epoch folder name that the present state does not point to, emptied of any leftover
    of an interrupted write."""
    name, n = f"epoch-{epoch:04d}", 0
    while name == keep:
        n += 1
        name = f"epoch-{epoch:04d}-{n}"
    folder = directory / name
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder)  # not referenced by state.json: a leftover, never a checkpoint
    elif folder.exists() or folder.is_symlink():
        folder.unlink()
    folder.mkdir()
    return folder


def _remove_old(directory: Path, keep: str, v1: bool) -> None:
    """After the commit: the previous epoch folders (and the tensor files of an
    ``onebyone-checkpoint/1`` checkpoint that was resumed) go."""
    for entry in directory.iterdir():
        if entry.name != keep and entry.is_dir() and not entry.is_symlink() and (
            entry.name.startswith("epoch-")
        ):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(f".{STATE_FILE}.") and entry.name.endswith(".tmp"):
            with contextlib.suppress(OSError):  # the temporary file of a killed state write
                entry.unlink()
    for name in (MODEL_FILE, OPTIM_FILE) if v1 else ():
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            (directory / name).unlink()


def save_checkpoint(
    directory: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    state: dict[str, Any],
) -> Path:
    """Write a checkpoint for the completed epoch ``state["epoch"]`` into ``directory``.

    The tensor files go into a new epoch folder; ``state.json`` (with their checksums) replaces
    the previous one in one rename; then the previous folder is removed. If anything fails
    before that rename, the previous checkpoint is untouched and still loads.

    Args:
        directory: created if missing.
        model: the (unwrapped) model.
        optimizer: its optimizer, or None.
        state: JSON-able dict with at least ``epoch`` and ``metrics``.

    Raises:
        OSError: a file cannot be written (disk full, no permission), naming the file; the
            previous checkpoint is intact.

    Example:
        >>> import tempfile
        >>> d = save_checkpoint(tempfile.mkdtemp(), nn.Linear(3, 2), None, {"epoch": 1, "metrics": {}})
        >>> read_state(d)["epoch"], sorted(p.name for p in d.iterdir())
        (1, ['epoch-0001', 'state.json'])
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    epoch = int(state["epoch"])
    previous = _current_state(directory)
    keep = previous["files"]["dir"] if previous and previous["format"] == FORMAT else None
    folder = _fresh_folder(directory, epoch, keep)
    try:
        meta = {"format": FORMAT, "epoch": str(epoch)}
        files = {MODEL_FILE: save_safetensors_atomic(model.state_dict(), folder / MODEL_FILE, metadata=meta)}
        full = {"format": FORMAT, **state, "model": model_signature(model)}
        if optimizer is not None:
            tensors, rest = _split_optimizer_state(optimizer)
            files[OPTIM_FILE] = save_safetensors_atomic(tensors, folder / OPTIM_FILE, metadata=meta)
            full["optimizer"] = {"class": type(optimizer).__name__, **rest}
        full["files"] = {"dir": folder.name, "sha256": {k: _sha256(p) for k, p in files.items()}}
        write_json_atomic(directory / STATE_FILE, full)  # the commit: one rename
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)  # free the space; state.json is unchanged
        raise
    _remove_old(directory, keep=folder.name, v1=previous is not None and previous["format"] == FORMAT_V1)
    return directory


def read_state(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``state.json`` of a checkpoint directory: the one reader every
    command uses.

    Raises:
        FileNotFoundError: no checkpoint there.
        ValueError: the file is not a valid onebyone checkpoint state (one line naming the
            file and the key at fault).

    Example:
        >>> import tempfile
        >>> read_state(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        FileNotFoundError: ...holds no checkpoint (expected state.json)
    """
    directory = Path(directory)
    path = directory / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{str(directory)!r} holds no checkpoint (expected {STATE_FILE})")
    state = parse_state(path)
    if state["format"] == FORMAT_V1 and not (directory / MODEL_FILE).is_file():
        raise FileNotFoundError(
            f"{str(directory)!r} holds no checkpoint (expected {STATE_FILE} and {MODEL_FILE})"
        )
    return state


def checkpoint_file(directory: str | os.PathLike, state: dict[str, Any], name: str = MODEL_FILE) -> Path:
    """The path of the tensor file ``name`` of the checkpoint whose state is ``state``.

    Example:
        >>> import tempfile
        >>> d = save_checkpoint(tempfile.mkdtemp(), nn.Linear(3, 2), None, {"epoch": 2, "metrics": {}})
        >>> checkpoint_file(d, read_state(d)).relative_to(d).as_posix()
        'epoch-0002/model.safetensors'
    """
    directory = Path(directory)
    if state["format"] == FORMAT_V1:
        return directory / name
    return directory / state["files"]["dir"] / name


def read_tensors(
    directory: str | os.PathLike, state: dict[str, Any], name: str = MODEL_FILE
) -> dict[str, torch.Tensor]:
    """The tensors of the checkpoint file ``name``, after checking its SHA-256 against
    ``state.json`` (for the old layout, its epoch stamp against ``state["epoch"]``).

    Raises:
        OneByOneError: the file is missing, corrupted (checksum mismatch) or unreadable.

    Example:
        >>> import tempfile
        >>> d = save_checkpoint(tempfile.mkdtemp(), nn.Linear(3, 2), None, {"epoch": 1, "metrics": {}})
        >>> sorted(read_tensors(d, read_state(d)))
        ['bias', 'weight']
    """
    from safetensors.torch import load

    path = checkpoint_file(directory, state, name)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise OneByOneError(
            f"checkpoint file {str(path)!r} cannot be read ({e.strerror or e}); "
            f"state.json names it for epoch {state['epoch']}"
        ) from e
    if state["format"] == FORMAT:
        expected = state["files"]["sha256"][name]
        if hashlib.sha256(data).hexdigest() != expected:
            raise OneByOneError(
                f"checkpoint file {str(path)!r} is corrupted: its SHA-256 differs from the one "
                f"state.json recorded when it was written (epoch {state['epoch']}); "
                "refusing to load it"
            )
    try:
        tensors = load(data)
    except Exception as e:
        raise OneByOneError(f"{str(path)!r} is not a readable safetensors file: {e}") from None
    if state["format"] == FORMAT_V1:
        _check_epoch_stamp(path, data, int(state["epoch"]))
    return tensors


def _check_epoch_stamp(path: Path, data: bytes, epoch: int) -> None:
    """The old layout has no checksum: the epoch each tensor file was written for must be
    the one ``state.json`` names (a process killed between two renames mixes epochs)."""
    import json

    try:
        size = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + size]).get("__metadata__") or {}
    except (ValueError, AttributeError):
        meta = {}
    if meta.get("epoch") != str(epoch):
        raise OneByOneError(
            f"{str(path)!r} was written for epoch {meta.get('epoch')} but state.json says {epoch}; "
            "the checkpoint was interrupted while being written"
        )


def load_checkpoint(
    directory: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Load a checkpoint into ``model`` (and ``optimizer``) in place; return its state.

    The model must have the same class and the same parameter shapes as the one saved. Every
    file is read and checked (schema, checksums, optimizer layout) before anything is loaded.

    Raises:
        FileNotFoundError: no checkpoint in ``directory``.
        ValueError: ``state.json`` is invalid, or the checkpoint belongs to another model or
            optimizer; nothing is loaded.
        OneByOneError: a tensor file is missing or corrupted; nothing is loaded.

    Example:
        >>> import tempfile
        >>> d = save_checkpoint(tempfile.mkdtemp(), nn.Linear(3, 2), None, {"epoch": 2, "metrics": {}})
        >>> load_checkpoint(d, nn.Linear(3, 2))["epoch"]
        2
        >>> load_checkpoint(d, nn.Linear(4, 2))
        Traceback (most recent call last):
        ...
        ValueError: ...holds a checkpoint of another model...
    """
    directory = Path(directory)
    state = read_state(directory)
    saved, mine = state.get("model", {}), model_signature(model)
    if saved != mine:
        diff = _describe_difference(saved, mine)
        raise ValueError(
            f"{str(directory)!r} holds a checkpoint of another model ({diff}); "
            "choose another directory or the same model"
        )
    weights = read_tensors(directory, state, MODEL_FILE)
    opt_state = None
    if optimizer is not None and "optimizer" in state:
        opt_state = _optimizer_state(directory, state, optimizer)
    if opt_state is not None:
        try:
            optimizer.load_state_dict(opt_state)
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise ValueError(
                f"{str(directory / STATE_FILE)!r}: the optimizer state does not fit the "
                f"optimizer: {type(e).__name__}: {e}"
            ) from None
    model.load_state_dict(weights)
    return state


def _optimizer_state(
    directory: Path, state: dict[str, Any], optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    opt_state = state["optimizer"]
    where = str(directory / STATE_FILE)
    if opt_state["class"] != type(optimizer).__name__:
        raise ValueError(
            f"{str(directory)!r} was trained with optimizer {opt_state['class']}, "
            f"not {type(optimizer).__name__}"
        )
    groups, mine = opt_state["param_groups"], optimizer.param_groups
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in mine]:
        raise ValueError(
            f"{where!r}: optimizer.param_groups holds "
            f"{[len(g['params']) for g in groups]} parameters per group; the optimizer has "
            f"{[len(g['params']) for g in mine]}"
        )
    missing = sorted({k for g in mine for k in g if k != "params"} - {k for g in groups for k in g})
    if missing:
        raise ValueError(f"{where!r}: optimizer.param_groups lacks {', '.join(missing)}")
    ids = {p for g in groups for p in g["params"]}
    per_param: dict[int, dict[str, Any]] = {}
    for name, t in read_tensors(directory, state, OPTIM_FILE).items():
        pid, _, key = name.partition(".")
        if not pid.isdigit() or int(pid) not in ids:
            raise ValueError(f"{where!r}: optimizer tensor {name!r} names no parameter")
        per_param.setdefault(int(pid), {})[key] = t
    for pid, entries in opt_state.get("scalars", {}).items():
        if int(pid) not in ids:
            raise ValueError(f"{where!r}: optimizer.scalars names parameter {pid}, not in any group")
        per_param.setdefault(int(pid), {}).update(entries)
    return {"state": per_param, "param_groups": groups}


def _describe_difference(saved: dict, mine: dict) -> str:
    if saved.get("class") != mine.get("class"):
        return f"saved {saved.get('class')}, given {mine.get('class')}"
    a, b = saved.get("shapes", {}), mine.get("shapes", {})
    for k in sorted(set(a) | set(b)):
        if k not in a:
            return f"{k} of the given model is not in the checkpoint"
        if k not in b:
            return f"{k} of the checkpoint is not in the given model"
        if a[k] != b[k]:
            return f"{k}: saved shape {a[k]}, given {b[k]}"
    return "different signature"
