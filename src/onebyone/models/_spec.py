"""Resolve a model spec: a zoo name, ``package.module:callable`` or ``path/file.py:callable``.

The last two import and run the user's code.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from torch import nn

from ._registry import _MODELS, create_model, is_model

__all__ = ["SPEC_HELP", "load_model"]

SPEC_HELP = (
    "a zoo name (see `onebyone models`), 'package.module:callable' or "
    "'path/to/file.py:callable' returning an nn.Module (the last two import and RUN that code)"
)


def load_model(spec: str, **kwargs: Any) -> nn.Module:
    """Build a model from a spec string.

    ``kwargs`` (such as ``num_classes`` or ``in_channels``) are passed to the zoo entry point,
    or to a user callable where its signature accepts them. A spec with ``:`` imports and runs
    user code: only use specs you trust.

    A spec naming a module-level ``nn.Module`` instance returns a deep copy of it.

    Raises:
        ValueError: the spec cannot be resolved (the message says how a spec is spelled), its
            module fails to import, or its callable cannot be called or raises.

    Example:
        >>> load_model("tutorial_reduce").__class__.__name__
        'TutorialModel'
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(
            f"model spec must be a non-empty string, got {spec!r}; expected {SPEC_HELP}"
        )
    if ":" not in spec:
        if is_model(spec):
            return create_model(spec, **kwargs)
        import difflib

        close = difflib.get_close_matches(spec, list(_MODELS), n=5, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown model {spec!r}{hint}; expected {SPEC_HELP}")
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ValueError(f"cannot read model spec {spec!r}; expected {SPEC_HELP}")
    module = _import_target(spec, target)
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"{target!r} has no attribute {attr!r} (model spec {spec!r})") from None
    if isinstance(factory, nn.Module):
        # A module-level instance is shared by every caller: hand out a copy, so that the
        # surgery's load (which rewrites the model it gets) never changes the original.
        try:
            model = copy.deepcopy(factory)
        except Exception as e:
            raise ValueError(f"model spec {spec!r} names an nn.Module that cannot be copied: {type(e).__name__}: {e}") from e
    elif callable(factory):
        model = _call(spec, factory, _accepted_kwargs(factory, kwargs))
    else:
        raise ValueError(f"{spec!r} is neither an nn.Module nor a callable returning one")
    if not isinstance(model, nn.Module):
        raise ValueError(f"{spec!r} returned {type(model).__name__}, expected an nn.Module")
    return model


def _call(spec: str, factory, kwargs: dict[str, Any]) -> Any:
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as e:
        given = f" with {', '.join(kwargs)}" if kwargs else " without arguments"
        raise ValueError(
            f"model spec {spec!r}: the callable cannot be called{given} ({e}); it must build the model "
            "from keyword arguments with defaults (such as num_classes) or none"
        ) from e
    except ValueError:  # no signature (a builtin): just call it
        pass
    try:
        return factory(**kwargs)
    except Exception as e:
        raise ValueError(f"model spec {spec!r}: building the model raised {type(e).__name__}: {e}") from e


def _import_target(spec: str, target: str):
    if target.endswith(".py"):
        path = Path(target)
        if path.is_dir():
            raise ValueError(f"model file {str(path)!r} is a directory, expected a .py file (model spec {spec!r})")
        if not path.is_file():
            raise ValueError(f"model file {str(path)!r} does not exist (model spec {spec!r})")
        name = f"_onebyone_user_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ValueError(f"cannot import {str(path)!r} as Python (model spec {spec!r})")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as e:
            sys.modules.pop(name, None)
            raise ValueError(f"importing {str(path)!r} failed: {type(e).__name__}: {e}") from e
        return module
    try:
        return importlib.import_module(target)
    except ImportError as e:
        raise ValueError(f"cannot import module {target!r} (model spec {spec!r}): {e}") from e
    except Exception as e:  # the user's module itself is broken (SyntaxError, a raise at import...)
        raise ValueError(f"importing module {target!r} failed (model spec {spec!r}): {type(e).__name__}: {e}") from e


def _accepted_kwargs(fn, kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}
