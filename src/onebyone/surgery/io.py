"""Saving and loading surgically changed models: safetensors weights plus a JSON plan.

``save(model, "out/vgg_small", base="vgg16")`` writes ``out/vgg_small.safetensors`` (the
weights) and ``out/vgg_small.json`` (the plan: the base model's spec, then each rewrite with its
ranks) and never pickles anything. ``load("out/vgg_small.json")`` builds the base model, replays
the rewrites structurally (no SVD) and loads the weights with ``strict=True``. A plan whose base
is code (``file.py:callable``) rather than a zoo name loads only with ``trust_code=True``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import torch
from torch import nn

from onebyone._io import atomic_path, save_safetensors_atomic, write_json_atomic
from onebyone.errors import OneByOneError
from onebyone.surgery import _convolutionalize, _decompose, _document, _fuse
from onebyone.surgery._recipe import get_recipe, set_recipe

__all__ = ["load", "load_weights", "save"]

FORMAT = _document.FORMAT
VERSION = _document.VERSION
#: How each recorded step is replayed structurally (weights are loaded afterwards).
_REPLAY = {
    "decompose": _decompose._replay,
    "convolutionalize": _convolutionalize._replay,
    "fuse": _fuse._replay,
}
_OPS = tuple(_REPLAY)


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix in (".json", ".safetensors"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def save(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    base: str | None = None,
    base_kwargs: dict | None = None,
) -> Path:
    """Write ``path.safetensors`` and ``path.json`` and return the plan's path.

    The weights are written first and the plan last, each to a temporary name then renamed, so
    a plan on disk always describes complete weights (it carries their SHA-256). Saving over an
    earlier save keeps the earlier weights under a second name (a hard link) until the new plan
    has replaced the old one: whenever the process dies, :func:`load` finds one complete model,
    the old or the new. A full disk raises ``OSError`` (ENOSPC) and leaves the old files as
    they were.

    Args:
        model: a model returned by ``decompose``, ``convolutionalize`` or ``fuse`` (or a chain).
        path: where to write, without the suffix (a ``.json`` suffix is accepted and dropped).
        base: the spec of the model the surgery started from (a zoo name,
            ``package.module:callable`` or ``file.py:callable``); default: the one recorded.
        base_kwargs: keyword arguments for the base spec, e.g. ``{"num_classes": 10}``.

    Raises:
        ValueError: no base spec is known, or ``base_kwargs`` is not JSON-serialisable.
        OSError: the files cannot be written (a full disk, say); nothing half-written is left.

    Example:
        >>> import tempfile, pathlib, torch
        >>> from onebyone.surgery import decompose
        >>> net, _ = decompose(load_doc_model(), rank=8, example_input=torch.randn(1, 16, 8, 8))
        >>> plan = save(net, pathlib.Path(tempfile.mkdtemp()) / "small", base="onebyone.surgery.io:load_doc_model")
        >>> plan.name, sorted(p.name for p in plan.parent.iterdir())
        ('small.json', ['small.json', 'small.safetensors'])
        >>> again = load(plan, trust_code=True)  # the base is code (ours): trust it explicitly
        >>> x = torch.randn(1, 16, 8, 8)
        >>> torch.equal(again(x), net(x))
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    plan = get_recipe(model)
    if base is not None:
        if not isinstance(base, str) or not base:
            raise ValueError(f"base must be a model spec string such as 'vgg16', got {base!r}")
        plan["base"] = {"spec": base, "kwargs": dict(base_kwargs or {})}
    elif base_kwargs is not None and plan["base"] is not None:
        plan["base"]["kwargs"] = dict(base_kwargs)
    if plan["base"] is None:
        raise ValueError(
            "base is required: the spec of the model the surgery started from, e.g. base='vgg16' "
            "(with base_kwargs={'num_classes': 10} if it was built with arguments)"
        )
    try:
        json.dumps(plan["base"])
    except TypeError as e:
        raise ValueError(f"base_kwargs must be JSON-serialisable, got {plan['base']['kwargs']!r}: {e}") from None
    weights_path, plan_path = _paths(path)
    for target in (weights_path, plan_path):
        if target.is_dir():
            raise ValueError(f"path {str(path)!r} would write {str(target)!r}, which is a directory")
    state = model.state_dict()
    # Overwriting: the old weights stay reachable (a hard link named by their checksum) until the
    # new plan, the commit point, has replaced the old one; load() falls back to that link.
    kept = _keep_previous(weights_path, plan_path)
    try:
        save_safetensors_atomic(state, weights_path, metadata={"format": FORMAT})
    except Exception as e:
        if kept is not None:
            kept.unlink(missing_ok=True)  # the old pair is intact: nothing was replaced
        if type(e).__name__ != "SafetensorError":
            raise
        # safetensors reports a full disk as its own error type, which is not an OSError.
        full = "No space left" in str(e) or "StorageFull" in str(e)
        raise OSError(errno.ENOSPC if full else errno.EIO,
                      "No space left on device" if full else f"cannot write the weights: {e}",
                      str(weights_path)) from e
    document = {
        "format": FORMAT,
        "version": VERSION,
        "base": plan["base"],
        "steps": plan["steps"],
        "weights": weights_path.name,
        "sha256": _sha256(weights_path),
        "tensors": len(state),
    }
    write_json_atomic(plan_path, document)  # the commit: from here on the new pair is the plan
    _drop_kept(weights_path)
    return plan_path


def _kept_path(weights_path: Path, sha256: str) -> Path:
    return weights_path.with_name(f".{weights_path.name}.{sha256[:16]}")


def _keep_previous(weights_path: Path, plan_path: Path) -> Path | None:
    """Link the complete weights the current plan names under a second name; None if there are none."""
    try:
        old = _document.read_document(plan_path) if plan_path.is_file() else None
    except OneByOneError:
        return None  # no loadable plan to keep
    if old is None or old["weights"] != weights_path.name or not weights_path.is_file():
        return None
    if _sha256(weights_path) != old["sha256"]:
        return None
    kept = _kept_path(weights_path, old["sha256"])
    if kept.is_file() and _sha256(kept) == old["sha256"]:
        return kept
    kept.unlink(missing_ok=True)
    try:
        os.link(weights_path, kept)
    except OSError:  # no hard links on this file system: a copy, written atomically
        with atomic_path(kept) as tmp:
            shutil.copyfile(weights_path, tmp)
    return kept


def _drop_kept(weights_path: Path) -> None:
    pattern = re.compile(rf"^\.{re.escape(weights_path.name)}\.[0-9a-f]{{16}}$")
    for p in weights_path.parent.iterdir():
        if pattern.match(p.name):
            with contextlib.suppress(OSError):
                p.unlink()


def load(
    plan_path: str | os.PathLike,
    *,
    map_location: str | torch.device = "cpu",
    trust_code: bool = False,
) -> nn.Module:
    """Rebuild a model saved by :func:`save`: base model, rewrites replayed, weights loaded strictly.

    A plan whose base is a zoo model (``"vgg16"``) loads as is: reading the JSON and the
    safetensors runs no code of the file's author. A base spec ``package.module:callable`` or
    ``file.py:callable`` would import and run that code, so it is refused unless
    ``trust_code=True``: pass it only for plans you wrote or trust.
    The model comes back in the mode its builder gives (usually training): call ``.eval()``.

    Args:
        plan_path: the ``.json`` plan (or the path given to ``save``).
        map_location: the device the model is moved to once its weights are loaded
            (e.g. ``"cuda"``).
        trust_code: allow a base spec that is not a zoo model, which imports and runs the
            code it names (default: refuse it, before importing anything).

    Raises:
        ValueError: ``map_location`` is not a device, or the base spec would run code and
            ``trust_code`` is False.
        FileNotFoundError: the plan or its weights file does not exist.
        OneByOneError: a corrupted, truncated or malformed file (checked field by field, with
            bounds on its size, nesting and numbers), a base model that does not build with the
            recorded kwargs, or weights that do not fit the plan. The plan is built and replayed
            on the meta device and matched against the weights file's header first, so a hostile
            plan fails before any real memory is allocated.

    Example:
        >>> import tempfile, pathlib
        >>> from onebyone.models import create_model
        >>> from onebyone.surgery import fuse
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> fused, _ = fuse(create_model("tutorial_reduce").eval())
        >>> again = load(save(fused, folder / "zoo", base="tutorial_reduce")).eval()  # a zoo base
        >>> x = torch.randn(1, 3, 32, 32)
        >>> torch.equal(again(x), fused(x))
        True
        >>> plan = save(fused, folder / "code", base="onebyone.models:create_model")
        >>> load(plan)
        Traceback (most recent call last):
        ...
        ValueError: plan ... has the base model 'onebyone.models:create_model', which is not a zoo model: loading it would import and run that code; pass trust_code=True only for plans you trust
        >>> load(folder / "missing.json")
        Traceback (most recent call last):
        ...
        FileNotFoundError: plan file ... does not exist
    """
    from onebyone.models import is_model, load_model

    if not isinstance(trust_code, bool):
        raise TypeError(f"trust_code must be a bool, got {trust_code!r}")
    try:
        device = torch.device(map_location)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"map_location must be a device such as 'cpu' or 'cuda', got {map_location!r}") from e
    _, plan_path = _paths(plan_path)
    if not plan_path.is_file():
        raise FileNotFoundError(f"plan file {str(plan_path)!r} does not exist")
    document = _document.read_document(plan_path)
    weights_path = _find_weights(plan_path, document)
    base = document["base"]
    if not trust_code and not is_model(base["spec"]):
        # Checked before anything is imported: a spec with ':' names code to run.
        raise ValueError(
            f"plan {str(plan_path)!r} has the base model {base['spec']!r}, which is not a zoo model: "
            "loading it would import and run that code; pass trust_code=True only for plans you trust"
        )
    _dry_run(document, weights_path, plan_path)  # on the meta device: nothing allocated yet
    model = load_model(base["spec"], **base.get("kwargs", {}))
    model = replay(model, document["steps"], plan_path)
    load_weights(model, weights_path)
    model.to(device)
    set_recipe(model, {"base": base, "steps": document["steps"]})
    return model


def _find_weights(plan_path: Path, document: dict) -> Path:
    """The weights file whose checksum the plan records: its own, or the copy an interrupted save kept."""
    weights_path = plan_path.parent / document["weights"]
    for candidate in (weights_path, _kept_path(weights_path, document["sha256"])):
        if candidate.is_file() and _sha256(candidate) == document["sha256"]:
            return candidate
    if not weights_path.is_file():
        raise FileNotFoundError(f"weights file {str(weights_path)!r} named by plan {str(plan_path)!r} does not exist")
    raise OneByOneError(
        f"weights file {str(weights_path)!r} does not match the checksum in {str(plan_path)!r} "
        "(corrupted, truncated or replaced)"
    )


def _dry_run(document: dict, weights_path: Path, plan_path: Path) -> None:
    """Build the base and replay the steps on the meta device; the result must fit the weights file.

    Nothing is allocated, so a plan whose model would not fit in memory (``num_classes: 1e8``,
    a rank of 10^9) fails here with the shapes named, before the real build.
    """
    from safetensors import safe_open

    from onebyone.models import load_model

    base = document["base"]
    try:
        with torch.device("meta"):
            model = load_model(base["spec"], **base.get("kwargs", {}))
    except Exception as e:  # the builder rejects the kwargs: unknown, wrong type, absurd value
        detail = " ".join(str(e).split())[:300]
        raise OneByOneError(
            f"plan {str(plan_path)!r}: the base model {base['spec']!r} does not build with "
            f"kwargs {_document._short(base.get('kwargs', {}))}: {type(e).__name__}: {detail}"
        ) from e
    with torch.device("meta"):
        model = replay(model, document["steps"], plan_path)
    try:
        with safe_open(str(weights_path), "pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception as e:
        raise OneByOneError(
            f"weights file {str(weights_path)!r} is not a readable safetensors file (corrupted or truncated?): {e}"
        ) from e
    check_state(model, shapes, source=str(weights_path))


def replay(model: nn.Module, steps: list[dict], source: str | os.PathLike = "plan") -> nn.Module:
    """Apply recorded surgery ``steps`` to ``model`` structurally (weights are not meaningful).

    Each step is replayed by its operation's own function (the ``_REPLAY`` table); a step that
    does not fit the model raises OneByOneError naming the step and ``source``.

    Example:
        >>> net = replay(load_doc_model(), [{"op": "decompose", "layers": {"0": {"method": "tucker2", "ranks": [8, 4]}}}])
        >>> type(net[0]).__name__, net[0].ranks
        ('DecomposedConv2d', (8, 4))
        >>> replay(load_doc_model(), [{"op": "decompose", "layers": {"9": {"method": "svd", "ranks": [2]}}}])
        Traceback (most recent call last):
        ...
        onebyone.errors.OneByOneError: step 0 (decompose) of 'plan' does not apply to the base model: ...
    """
    for i, step in enumerate(steps):
        op = step.get("op")
        try:
            if op not in _REPLAY:
                raise ValueError(f"unknown operation {op!r}; expected one of {', '.join(_OPS)}")
            model = _REPLAY[op](model, step)
        except OneByOneError as e:
            raise OneByOneError(f"step {i} ({op}) of {str(source)!r} does not apply to the base model: {e}") from e
        except (AttributeError, KeyError, TypeError, ValueError, RuntimeError, NotImplementedError) as e:
            raise OneByOneError(f"step {i} ({op}) of {str(source)!r} does not apply to the base model: {e}") from e
    return model


def load_weights(model: nn.Module, path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Load a safetensors file into ``model`` with strict=True; mismatches are listed first.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        OneByOneError: the file is not readable safetensors, or its keys or shapes don't match
            the model (the message lists the first mismatches).

    Example:
        >>> import tempfile, pathlib
        >>> from safetensors.torch import save_file
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> save_file({"weight": torch.zeros(3, 2)}, str(p))
        >>> load_weights(nn.Linear(2, 3, bias=False), p).weight.abs().sum().item()
        0.0
        >>> load_weights(nn.Linear(2, 4), p)
        Traceback (most recent call last):
        ...
        onebyone.errors.OneByOneError: weights in ... do not match the model: missing keys: bias; shape mismatches: weight (file (3, 2), model (4, 2))
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    try:
        state = load_file(str(path), device=str(map_location))
    except Exception as e:  # safetensors raises its own error type for bad headers and short files
        raise OneByOneError(f"weights file {str(path)!r} is not a readable safetensors file (corrupted or truncated?): {e}") from e
    check_state(model, state, source=str(path))
    model.load_state_dict(state, strict=True)
    return model


def check_state(model: nn.Module, state: dict, *, source: str = "the checkpoint", limit: int = 5) -> None:
    """Raise OneByOneError listing the first missing, unexpected and mis-shaped keys, if any.

    ``state`` maps names to tensors, or to shapes (as read from a safetensors header).

    Example:
        >>> check_state(nn.Linear(2, 3), {"weight": torch.zeros(3, 2), "bias": torch.zeros(3)})
        >>> check_state(nn.Linear(2, 3), {"weight": torch.zeros(3, 2), "extra": torch.zeros(1)}, source="w.safetensors")
        Traceback (most recent call last):
        ...
        onebyone.errors.OneByOneError: weights in 'w.safetensors' do not match the model: missing keys: bias; unexpected keys: extra
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} (file {_shape(state[k])}, model {_shape(v)})"
        for k, v in own.items()
        if k in state and _shape(state[k]) != _shape(v)
    ]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{label}: {', '.join(items[:limit])}{more}")
    if parts:
        raise OneByOneError(f"weights in {source!r} do not match the model: {'; '.join(parts)}")


def _shape(value) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_doc_model() -> nn.Module:
    """A small model for the examples in this module's docstrings.

    >>> load_doc_model()[0]
    Conv2d(16, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    """
    return nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1))
