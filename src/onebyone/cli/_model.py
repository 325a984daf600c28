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

MODEL_FILE, STATE_FILE = "model.safetensors", "state.json"


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
    model = (state.get("metadata") or {}).get("model") or {}
    trained_spec, kwargs = model.get("spec"), model.get("kwargs") or {}
    if trained_spec is None:
        return weights, {}
    if trained_spec != spec:
        raise ValueError(
            f"{option} {text!r} holds weights trained from {trained_spec!r}, not {spec!r}; "
            f"run with MODEL {trained_spec!r}"
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
