"""How the commands build the MODEL argument: zoo kwargs from the options, trained checkpoints.

A zoo model is built for the input the user names (``--input 1x28x28`` gives
``in_channels=1``), and a folder written by ``onebyone train`` brings back the arguments the
model was trained with (``state.json`` keeps them), so ``train`` -> ``compress`` works without
repeating them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onebyone.models import SPEC_HELP
from onebyone.train.checkpoint import MODEL_FILE, STATE_FILE


def default_shape(net: Any) -> tuple[int, ...] | None:
    """The model's ``default_input_size`` without the batch, or None if it has none.

    The zoo gives ``(1, C, H, W)``; a user's model may give ``(C, H, W)``, taken as is (the
    surgery reads it the same way).

    Example:
        >>> from torch import nn
        >>> net = nn.Identity()
        >>> net.default_input_size = (1, 3, 32, 32)
        >>> default_shape(net)
        (3, 32, 32)
        >>> net.default_input_size = (3, 28, 28)
        >>> default_shape(net)
        (3, 28, 28)
    """
    size = getattr(net, "default_input_size", None)
    if size is None:
        return None
    size = tuple(int(d) for d in size)
    return size if len(size) == 3 else size[1:]


def _normalized(spec: str) -> str:
    """A spec with its file path resolved, so that ./nets.py:make and nets.py:make match."""
    path, sep, name = spec.rpartition(":")
    if sep and path.endswith(".py"):
        return f"{Path(path).resolve()}:{name}"
    return spec


def trained_with(spec: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The ``metadata`` that ``onebyone train`` stores in ``state.json``: how to rebuild the model.

    Example:
        >>> trained_with("resnet20", {"in_channels": 1, "num_classes": 10})
        {'model': {'spec': 'resnet20', 'kwargs': {'in_channels': 1, 'num_classes': 10}}}
    """
    return {"model": {"spec": spec, "kwargs": dict(kwargs)}}


@dataclass(frozen=True)
class TrainedCheckpoint:
    """What ``--checkpoint`` brings: the weights file, and from a folder written by
    ``onebyone train`` the builder kwargs and the input size (C, H, W) it was trained with.

    Example:
        >>> c = TrainedCheckpoint(Path("runs/r20/epoch-0003/model.safetensors"),
        ...                       {"in_channels": 1}, (1, 28, 28))
        >>> c.input_size
        (1, 28, 28)
    """

    weights: Path
    kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, ...] | None = None


def _state_beside(weights: Path) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint folder and validated state that ``weights`` belongs to, if any: a
    ``model.safetensors`` in an epoch folder (or beside state.json, the old layout)."""
    from onebyone.train import read_state
    from onebyone.train.checkpoint import checkpoint_file

    for folder in (weights.parent.parent, weights.parent):
        if (folder / STATE_FILE).is_file():
            state = read_state(folder)
            if checkpoint_file(folder, state).resolve() == weights.resolve():
                return folder, state
    return None


def read_checkpoint(path: Path, spec: str, option: str = "--checkpoint") -> TrainedCheckpoint:
    """Read ``--checkpoint``: a ``.safetensors`` file, or a folder written by ``onebyone train``.

    A folder's ``state.json`` is read with the one validated reader of
    :func:`onebyone.train.read_state` (a corrupt one is refused, never ignored), the weights'
    checksum is checked, and the kwargs and input size it recorded come back. When the state
    names the spec the model was trained from, a different ``spec`` is an error.

    Raises:
        ValueError: a folder without a checkpoint, an invalid ``state.json``, weights trained
            from another spec.
        OneByOneError: the weights file is corrupted (its checksum differs).
        FileNotFoundError: ``path`` does not exist.

    Example:
        >>> import tempfile
        >>> read_checkpoint(Path(tempfile.mkdtemp()), "resnet20")
        Traceback (most recent call last):
        ...
        ValueError: --checkpoint '...' is a folder without a checkpoint (state.json) or model.safetensors; ...
    """
    from onebyone.train import read_state
    from onebyone.train.checkpoint import checkpoint_file, read_tensors

    text = str(path)
    found: tuple[Path, dict[str, Any]] | None = None
    try:
        if path.is_dir() and (path / STATE_FILE).is_file():
            found = path, read_state(path)
            weights = checkpoint_file(path, found[1])
        elif path.is_dir():
            weights = path / MODEL_FILE
            if not weights.is_file():
                raise ValueError(
                    f"{option} {text!r} is a folder without a checkpoint ({STATE_FILE}) or "
                    f"{MODEL_FILE}; expected a .safetensors file or a folder written by onebyone train"
                )
        elif path.exists():
            weights, found = path, _state_beside(path)
        elif path.name == MODEL_FILE and (path.parent / STATE_FILE).is_file():
            raise FileNotFoundError(
                f"{option} {text!r} does not exist: the checkpoint keeps its weights in an epoch "
                f"folder; give the folder, {option} {str(path.parent)!r}"
            )
        else:
            raise FileNotFoundError(f"{option} {text!r} does not exist; expected a .safetensors file")
    except ValueError as e:
        if str(e).startswith(option):
            raise
        raise ValueError(f"{option} {text!r}: {e}") from None
    if found is None:
        return TrainedCheckpoint(weights)
    folder, state = found
    read_tensors(folder, state)  # the checksum, before anything is built from these weights
    size = state.get("input_size")
    input_size = tuple(size) if size is not None else None
    metadata = state.get("metadata")
    model = metadata.get("model") if isinstance(metadata, dict) else None
    if model is None:
        return TrainedCheckpoint(weights, {}, input_size)
    trained_spec = model.get("spec") if isinstance(model, dict) else None
    kwargs = model.get("kwargs", {}) if isinstance(model, dict) else None
    if not isinstance(trained_spec, str) or not isinstance(kwargs, dict):
        raise ValueError(
            f"{option} {text!r}: {str(folder / STATE_FILE)!r} has a malformed metadata.model "
            'entry; expected {"spec": "<model spec>", "kwargs": {...}}'
        )
    if _normalized(trained_spec) != _normalized(spec):
        raise ValueError(
            f"{option} {text!r} holds weights trained from {trained_spec!r}, not {spec!r}; "
            f"give the model it was trained from"
        )
    return TrainedCheckpoint(weights, dict(kwargs), input_size)


def resolve_checkpoint(
    path: Path, spec: str, option: str = "--checkpoint"
) -> tuple[Path, dict[str, Any]]:
    """The weights file behind ``--checkpoint`` and the model kwargs it was trained with
    (:func:`read_checkpoint` without the input size).

    Example:
        >>> import tempfile
        >>> resolve_checkpoint(Path(tempfile.mkdtemp()) / "w.safetensors", "resnet20")
        Traceback (most recent call last):
        ...
        FileNotFoundError: --checkpoint '...w.safetensors' does not exist; expected a .safetensors file
    """
    found = read_checkpoint(path, spec, option)
    return found.weights, found.kwargs


def build_kwargs(
    spec: str,
    *,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    trained: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Builder kwargs: those a checkpoint was trained with, then ``in_channels`` from the input
    (zoo models only: a user's callable gets only what it was given), then ``num_classes``.

    Example:
        >>> build_kwargs("resnet20", input_shape=(1, 28, 28), num_classes=10)
        {'in_channels': 1, 'num_classes': 10}
        >>> build_kwargs("my_models.py:make", input_shape=(1, 28, 28))
        {}
    """
    from onebyone.models import is_model

    kwargs = dict(trained or {})
    if input_shape is not None and len(input_shape) == 3 and is_model(spec):
        kwargs["in_channels"] = input_shape[0]
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return kwargs


def load_spec(spec: str, **kwargs: Any):
    """``load_model(spec, **kwargs)`` with every failure to build it as one ValueError.

    Example:
        >>> load_spec("resnet20", in_channels=1).in_channels
        1
    """
    from onebyone.models import load_model

    try:
        return load_model(spec, **kwargs)
    except (ValueError, FileNotFoundError) as e:
        message = str(e)
        if "expected a zoo name" not in message:
            message += f"; expected {SPEC_HELP}"
        raise ValueError(message) from e
    except Exception as e:
        # the spec's callable ran and raised: the model cannot be loaded, say so on one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(
            f"cannot load model {spec!r}: calling it raised {type(e).__name__}: {first}; "
            f"expected {SPEC_HELP}"
        ) from e
