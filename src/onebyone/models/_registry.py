"""The model registry: ``register_model``, ``list_models`` and ``create_model``.

Entry points are plain functions keyed by their name, as in timm and torchvision.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

__all__ = ["create_model", "is_model", "list_models", "register_model"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(fn: F) -> F:
    """Register a model entry point under its function name.

    Registering the same builder again (the same module and name, as when its module runs a
    second time: ``importlib.reload``, or pytest importing the file for its doctests) keeps the
    first one and is not an error.

    Raises:
        ValueError: if another model of that name is already registered.

    Example:
        >>> from torch import nn
        >>> @register_model
        ... def _doc_tiny(**kwargs):
        ...     return nn.Identity()
        >>> "_doc_tiny" in list_models("_doc*")
        True
        >>> _ = _MODELS.pop("_doc_tiny")
    """
    name = fn.__name__
    if name in _MODELS:
        if _origin(_MODELS[name]) == _origin(fn):
            return fn
        raise ValueError(f"a model named {name!r} is already registered (by {_MODELS[name].__module__})")
    _MODELS[name] = fn
    return fn


def _origin(fn: Callable) -> tuple[str | None, str | None]:
    return getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)


def list_models(pattern: str = "*") -> list[str]:
    """Return the names of registered models matching an fnmatch ``pattern``, in natural
    order (numbers compare as numbers: ``resnet18`` before ``resnet101``).

    Example:
        >>> list_models("resnet1*")
        ['resnet18', 'resnet101', 'resnet110', 'resnet152']
    """
    _ensure_loaded()
    return sorted((n for n in _MODELS if fnmatch.fnmatchcase(n, pattern)), key=_natural_key)


def _natural_key(name: str) -> list[str | int]:
    # re.split with a group alternates text and digit runs, so equal positions compare alike.
    return [int(part) if i % 2 else part for i, part in enumerate(_DIGITS.split(name))]


_DIGITS = re.compile(r"(\d+)")


def is_model(name: str) -> bool:
    """Return True if ``name`` is a registered model.

    Example:
        >>> is_model("resnet20"), is_model("resnet21"), is_model("file.py:build")
        (True, False, False)
    """
    _ensure_loaded()
    return name in _MODELS


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs`` (``num_classes``, ``in_channels``...).

    Raises:
        ValueError: for an unknown name, listing close matches.

    Example:
        >>> m = create_model("resnet18", num_classes=7)
        >>> m.num_classes
        7
    """
    _ensure_loaded()
    if not isinstance(name, str) or name not in _MODELS:
        close = difflib.get_close_matches(str(name), list(_MODELS), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see onebyone.list_models()"
        raise ValueError(f"unknown model {name!r}{hint}")
    return _MODELS[name](**kwargs)


def _ensure_loaded() -> None:
    # The model families register themselves when onebyone.models is imported.
    import onebyone.models  # noqa: F401
