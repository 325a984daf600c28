"""The schema of a checkpoint's ``state.json``, checked like a surgery plan before any use.

A hand-edited or corrupted file (``"epoch": null``, ``1e400``, ``"history": 5``,
``"param_groups": [{}]``, ``"optimizer": 5``, a path in ``files.dir``) is refused with one
line naming the file, the key and what was expected, before anything is built or loaded.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "FORMAT_V1", "MAX_STATE_BYTES", "parse_state"]

FORMAT = "onebyone-checkpoint/2"  # tensor files in an epoch folder named by state.json, checksummed
FORMAT_V1 = "onebyone-checkpoint/1"  # tensor files beside state.json (read, never written)
MAX_STATE_BYTES = 64 << 20  # a state of thousands of epochs is well under 1 MiB
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DIR = re.compile(r"epoch-[0-9]{4,}(-[0-9]+)?")


class _Bad(ValueError):
    pass


def _int(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise _Bad(f"{key} must be an integer >= {minimum}, got {_show(value)}")
    return int(value)


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(value: Any, key: str, kind: type, name: str) -> Any:
    if not isinstance(value, kind) or (kind is dict and not all(isinstance(k, str) for k in value)):
        raise _Bad(f"{key} must be {name}, got {_show(value)}")
    return value


def _check_files(files: Any, key: str = "files") -> None:
    _kind(files, key, dict, "an object")
    folder = files.get("dir")
    if not isinstance(folder, str) or not _DIR.fullmatch(folder):
        raise _Bad(f"{key}.dir must be an epoch folder name such as 'epoch-0003', got {_show(folder)}")
    entries = _kind(files.get("sha256"), f"{key}.sha256", dict, "an object")
    if "model.safetensors" not in entries:
        raise _Bad(f"{key}.sha256 has no entry for model.safetensors")
    for name, digest in entries.items():
        if name not in ("model.safetensors", "optimizer.safetensors"):
            raise _Bad(f"{key}.sha256 names an unknown file {_show(name)}")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise _Bad(f"{key}.sha256.{name} must be 64 hex digits, got {_show(digest)}")


def _check_optimizer(opt: Any) -> None:
    _kind(opt, "optimizer", dict, "an object")
    _kind(opt.get("class"), "optimizer.class", str, "a string")
    groups = _kind(opt.get("param_groups"), "optimizer.param_groups", list, "a list")
    for i, group in enumerate(groups):
        key = f"optimizer.param_groups[{i}]"
        _kind(group, key, dict, "an object")
        params = _kind(group.get("params"), f"{key}.params", list, "a list of parameter ids")
        for p in params:
            _int(p, f"{key}.params[]", 0)
        for name in ("lr", "weight_decay"):
            if name in group and (
                isinstance(group[name], bool)
                or not isinstance(group[name], numbers.Real)
                or not math.isfinite(group[name])
            ):
                raise _Bad(f"{key}.{name} must be a finite number, got {_show(group[name])}")
    scalars = _kind(opt.get("scalars", {}), "optimizer.scalars", dict, "an object")
    for pid, entries in scalars.items():
        if not pid.isdigit():
            raise _Bad(f"optimizer.scalars has key {_show(pid)}; expected parameter ids")
        _kind(entries, f"optimizer.scalars.{pid}", dict, "an object")


def _check_model(model: Any) -> None:
    _kind(model, "model", dict, "an object")
    _kind(model.get("class"), "model.class", str, "a string")
    shapes = _kind(model.get("shapes"), "model.shapes", dict, "an object")
    for name, shape in shapes.items():
        _kind(shape, f"model.shapes.{name}", list, "a list of sizes")
        for d in shape:
            _int(d, f"model.shapes.{name}[]", 0)


def _check(state: Any) -> dict[str, Any]:
    _kind(state, "the file", dict, "a JSON object")
    if state.get("format") not in (FORMAT, FORMAT_V1):
        raise _Bad(f"format must be {FORMAT!r}, got {_show(state.get('format'))}")
    if "epoch" not in state:
        raise _Bad("'epoch' is missing")
    _int(state["epoch"], "epoch", 0)
    for key, minimum in (("epochs", 1), ("seed", 0)):
        if key in state:
            _int(state[key], key, minimum)
    for key in ("metrics", "config", "metadata"):
        if key in state:
            _kind(state[key], key, dict, "an object")
    history = _kind(state.get("history", []), "history", list, "a list of epoch records")
    for i, record in enumerate(history):
        _kind(record, f"history[{i}]", dict, "an object")
    if "input_size" in state:
        size = _kind(state["input_size"], "input_size", list, "a list of sizes such as [1, 28, 28]")
        if not size:
            raise _Bad("input_size must not be empty")
        for d in size:
            _int(d, "input_size[]", 1)
    if "model" in state or state["format"] == FORMAT:
        _check_model(state.get("model"))
    if "optimizer" in state:
        _check_optimizer(state["optimizer"])
    if state["format"] == FORMAT:
        _check_files(state.get("files"))
        if "optimizer" in state and "optimizer.safetensors" not in state["files"]["sha256"]:
            raise _Bad("files.sha256 has no entry for optimizer.safetensors")
    return state


def parse_state(path: Path) -> dict[str, Any]:
    """Read and validate the ``state.json`` at ``path``.

    Raises:
        ValueError: the file cannot be read, is not JSON, or does not follow the schema;
            one line naming the file and the first key at fault.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "state.json"
        >>> _ = p.write_text('{"format": "onebyone-checkpoint/1", "epoch": 2}')
        >>> parse_state(p)["epoch"]
        2
        >>> _ = p.write_text('{"format": "onebyone-checkpoint/1", "epoch": 1e400}')
        >>> parse_state(p)
        Traceback (most recent call last):
        ...
        ValueError: ...state.json' is not a valid checkpoint state: epoch must be an integer >= 0, got inf
    """
    where = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_STATE_BYTES + 1)
    except OSError as e:
        raise ValueError(f"{where!r} cannot be read: {e.strerror or e}") from None
    if len(data) > MAX_STATE_BYTES:
        raise ValueError(f"{where!r} is larger than {MAX_STATE_BYTES >> 20} MiB; not a checkpoint state")
    try:
        state = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise ValueError(f"{where!r} is not a readable JSON checkpoint state: {first}") from None
    try:
        return _check(state)
    except _Bad as e:
        raise ValueError(f"{where!r} is not a valid checkpoint state: {e}") from None
