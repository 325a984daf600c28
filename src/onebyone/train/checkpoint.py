"""Checkpoints without pickle: weights and optimizer tensors in safetensors, the rest in JSON.

A checkpoint directory holds

- ``model.safetensors``: the model's ``state_dict``;
- ``optimizer.safetensors``: every tensor of the optimizer state, named ``"<param>.<key>"``;
- ``state.json``: the completed epoch, metrics, history, seed, config, the model's signature
  (class and parameter shapes) and the optimizer's JSON-able parts (param groups, scalars).

Each file is written to a temporary name and renamed. ``state.json`` is written last and
names the epoch that the two tensor files carry in their metadata, so a checkpoint whose files
disagree (a process killed between two renames) is detected, never silently mixed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from onebyone._io import save_safetensors_atomic, write_json_atomic
from onebyone.errors import OneByOneError

__all__ = [
    "FORMAT",
    "has_checkpoint",
    "load_checkpoint",
    "model_signature",
    "read_state",
    "save_checkpoint",
]

FORMAT = "onebyone-checkpoint/1"
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


def save_checkpoint(
    directory: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    state: dict[str, Any],
) -> Path:
    """Write a checkpoint for the completed epoch ``state["epoch"]`` into ``directory``.

    Args:
        directory: created if missing.
        model: the (unwrapped) model.
        optimizer: its optimizer, or None.
        state: JSON-able dict with at least ``epoch`` and ``metrics``.

    Example:
        >>> import tempfile
        >>> d = save_checkpoint(tempfile.mkdtemp(), nn.Linear(3, 2), None, {"epoch": 1, "metrics": {}})
        >>> read_state(d)["epoch"]
        1
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    epoch = str(int(state["epoch"]))
    meta = {"format": FORMAT, "epoch": epoch}
    save_safetensors_atomic(model.state_dict(), directory / MODEL_FILE, metadata=meta)
    full = {"format": FORMAT, **state, "model": model_signature(model)}
    if optimizer is not None:
        tensors, rest = _split_optimizer_state(optimizer)
        save_safetensors_atomic(tensors, directory / OPTIM_FILE, metadata=meta)
        full["optimizer"] = {"class": type(optimizer).__name__, **rest}
    write_json_atomic(directory / STATE_FILE, full)
    return directory


def read_state(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``state.json`` of a checkpoint directory.

    Raises:
        FileNotFoundError: no checkpoint there.
        ValueError: the file is not a onebyone checkpoint state.

    Example:
        >>> import tempfile
        >>> read_state(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        FileNotFoundError: ...holds no checkpoint (expected state.json and model.safetensors)
    """
    directory = Path(directory)
    path = directory / STATE_FILE
    if not path.is_file() or not (directory / MODEL_FILE).is_file():
        raise FileNotFoundError(
            f"{str(directory)!r} holds no checkpoint (expected {STATE_FILE} and {MODEL_FILE})"
        )
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{str(path)!r} is not a readable JSON checkpoint state: {e}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "epoch" not in state:
        raise ValueError(f"{str(path)!r} is not a {FORMAT} state (expected 'format' and 'epoch')")
    return state


def _read_tensors(path: Path, epoch: int) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as e:
        raise ValueError(f"{str(path)!r} is not a readable safetensors file: {e}") from None
    if meta.get("epoch") != str(epoch):
        raise OneByOneError(
            f"{str(path)!r} was written for epoch {meta.get('epoch')} but state.json says {epoch}; "
            "the checkpoint was interrupted while being written"
        )
    return tensors


def load_checkpoint(
    directory: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Load a checkpoint into ``model`` (and ``optimizer``) in place; return its state.

    The model must have the same class and the same parameter shapes as the one saved.

    Raises:
        FileNotFoundError: no checkpoint in ``directory``.
        ValueError: the checkpoint belongs to another model; nothing is loaded.

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
    epoch = int(state["epoch"])
    weights = _read_tensors(directory / MODEL_FILE, epoch)
    if optimizer is not None and "optimizer" in state:
        opt_state = state["optimizer"]
        if opt_state.get("class") != type(optimizer).__name__:
            raise ValueError(
                f"{str(directory)!r} was trained with optimizer {opt_state.get('class')}, "
                f"not {type(optimizer).__name__}"
            )
        tensors = _read_tensors(directory / OPTIM_FILE, epoch)
        per_param: dict[int, dict[str, Any]] = {}
        for name, t in tensors.items():
            pid, _, key = name.partition(".")
            per_param.setdefault(int(pid), {})[key] = t
        for pid, entries in opt_state.get("scalars", {}).items():
            per_param.setdefault(int(pid), {}).update(entries)
        optimizer.load_state_dict({"state": per_param, "param_groups": opt_state["param_groups"]})
    model.load_state_dict(weights)
    return state


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
