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


def trained_with(spec: str, kwargs: dict[str, Any], data: str | None = None) -> dict[str, Any]:
    """The ``metadata`` that ``onebyone train`` stores in ``state.json``: how to rebuild the model
    and (``data``) the dataset it was trained on, so that later commands can test it there.

    Example:
        >>> trained_with("resnet20", {"in_channels": 1, "num_classes": 10})
        {'model': {'spec': 'resnet20', 'kwargs': {'in_channels': 1, 'num_classes': 10}}}
        >>> trained_with("resnet20", {}, data="mnist5k")["data"]
        'mnist5k'
    """
    metadata: dict[str, Any] = {"model": {"spec": spec, "kwargs": dict(kwargs)}}
    if data is not None:
        metadata["data"] = data
    return metadata


def trained_data(weights: Path) -> str | None:
    """The dataset recorded by ``onebyone train`` beside ``weights`` (``metadata.data``), or None.

    Example:
        >>> import tempfile
        >>> trained_data(Path(tempfile.mkdtemp()) / "model.safetensors") is None
        True
    """
    if not (weights.parent / STATE_FILE).is_file():
        return None
    from onebyone.train import read_state

    try:
        metadata = read_state(weights.parent).get("metadata")
    except (ValueError, FileNotFoundError):
        return None
    data = metadata.get("data") if isinstance(metadata, dict) else None
    return data if isinstance(data, str) and data else None


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
    saved = Path(spec).suffix in PLAN_SUFFIXES  # a saved model: in_channels is checked, not set
    if input_shape is not None and len(input_shape) == 3 and (is_model(spec) or saved):
        kwargs["in_channels"] = input_shape[0]
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return kwargs


PLAN_SUFFIXES = (".json", ".safetensors")


def saved_plan(spec: str, option: str = "MODEL") -> Path | None:
    """The plan behind ``spec`` when it names a model saved by ``surgery.save``, else None.

    ``slim/r20.json`` and ``slim/r20.safetensors`` (what ``compress``, ``fuse`` and
    ``convolutionalize --out`` write) both name the plan ``slim/r20.json``. A ``.safetensors``
    without its plan (weights from ``onebyone train``) or a missing file is a ValueError that
    says what to give instead.

    Example:
        >>> saved_plan("resnet20") is None
        True
        >>> saved_plan("nowhere/r20.json")
        Traceback (most recent call last):
        ...
        ValueError: MODEL 'nowhere/r20.json' does not exist; expected a model saved by compress, fuse, convolutionalize --out or surgery.save (x.json or x.safetensors)
    """
    path = Path(spec)
    if path.suffix not in PLAN_SUFFIXES:
        return None
    plan = path.with_suffix(".json")
    if plan.is_file():
        return plan
    if path.is_file():  # a .safetensors alone
        raise ValueError(
            f"{option} {spec!r} is a weights file without its plan {str(plan)!r}; weights written "
            f"by onebyone train go in --checkpoint, with the model they were trained from as {option}"
        )
    raise ValueError(
        f"{option} {spec!r} does not exist; expected a model saved by compress, fuse, "
        "convolutionalize --out or surgery.save (x.json or x.safetensors)"
    )


def _load_saved(spec: str, plan: Path, kwargs: dict[str, Any]):
    """A saved model, with the builder kwargs the command asks for checked against it."""
    from onebyone.surgery import load

    try:
        net = load(plan)
    except ValueError as e:
        if "trust_code" in str(e):
            raise ValueError(
                f"MODEL {spec!r} was saved from a model built by code ({e}); the command line "
                "only loads saved models based on the zoo. In Python: "
                "onebyone.surgery.load(path, trust_code=True)"
            ) from e
        raise
    for key, what in (("in_channels", "input channels"), ("num_classes", "classes")):
        have = getattr(net, key, None)
        want = kwargs.get(key)
        if want is not None and isinstance(have, int) and have != want:
            raise ValueError(
                f"MODEL {spec!r} is a saved model with {have} {what}, and this run needs {want} "
                f"(from the input or the data); a saved model keeps its {what}"
            )
    return net


def load_spec(spec: str, **kwargs: Any):
    """``load_model(spec, **kwargs)`` with every failure to build it as one ValueError.

    ``spec`` may also name a model saved by ``surgery.save`` (``x.json`` or ``x.safetensors``):
    it is rebuilt with its weights; ``in_channels``/``num_classes`` then only have to agree.

    Example:
        >>> load_spec("resnet20", in_channels=1).in_channels
        1
    """
    from onebyone.models import load_model

    plan = saved_plan(spec)
    if plan is not None:
        return _load_saved(spec, plan, kwargs)

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
