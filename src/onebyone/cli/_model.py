"""How the commands build the MODEL argument: zoo kwargs from the options, trained checkpoints.

A zoo model is built for the input the user names (``--input 1x28x28`` gives
``in_channels=1``), and a folder written by ``onebyone train`` brings back the arguments the
model was trained with (``state.json`` keeps them), so ``train`` -> ``compress`` works without
repeating them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onebyone.models._spec import SPEC_HELP
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


def resolve_checkpoint(
    path: Path, spec: str, option: str = "--checkpoint"
) -> tuple[Path, dict[str, Any]]:
    """The weights file behind ``--checkpoint`` and the model kwargs it was trained with.

    ``path`` is a ``.safetensors`` file or a folder written by ``onebyone train`` (its
    ``model.safetensors``). When ``state.json`` sits beside the weights and names the spec the
    model was trained from, its kwargs come back; a different spec is an error.

    Example:
        >>> import tempfile
        >>> resolve_checkpoint(Path(tempfile.mkdtemp()), "resnet20")
        Traceback (most recent call last):
        ...
        ValueError: --checkpoint '...' is a folder without model.safetensors; ...
    """
    text = str(path)
    if path.is_dir():
        weights = path / MODEL_FILE
        if not weights.is_file():
            raise ValueError(
                f"{option} {text!r} is a folder without {MODEL_FILE}; expected a .safetensors "
                "file or a folder written by onebyone train"
            )
    elif path.exists():
        weights = path
    else:
        raise FileNotFoundError(f"{option} {text!r} does not exist; expected a .safetensors file")
    state_path = weights.parent / STATE_FILE
    if not state_path.is_file():
        return weights, {}
    from onebyone.train import read_state

    try:
        state = read_state(weights.parent)
    except (ValueError, FileNotFoundError):
        return weights, {}  # not a onebyone train folder: the weights alone
    metadata = state.get("metadata")
    model = metadata.get("model") if isinstance(metadata, dict) else None
    if model is None:
        return weights, {}
    trained_spec = model.get("spec") if isinstance(model, dict) else None
    kwargs = model.get("kwargs", {}) if isinstance(model, dict) else None
    if not isinstance(trained_spec, str) or not isinstance(kwargs, dict):
        raise ValueError(
            f"{option} {text!r}: {str(state_path)!r} has a malformed metadata.model entry; "
            'expected {"spec": "<model spec>", "kwargs": {...}}'
        )
    if _normalized(trained_spec) != _normalized(spec):
        raise ValueError(
            f"{option} {text!r} holds weights trained from {trained_spec!r}, not {spec!r}; "
            f"give the model it was trained from"
        )
    return weights, dict(kwargs)


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
