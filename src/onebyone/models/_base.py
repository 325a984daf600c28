"""Helpers shared by the zoo's model classes: the input check and the classifier layer."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, fx, nn

from onebyone._checks import check_int

__all__ = ["check_input", "init_unless_meta", "is_meta", "linear_or_identity"]


def check_input(x: Tensor, *, in_channels: int, model_name: str) -> None:
    """Raise ValueError unless ``x`` is an ``N x in_channels x H x W`` tensor.

    Runs before any convolution so the user reads which model expected what, instead of a
    convolution's weight-shape error. It is skipped while ``torch.fx`` traces the model.

    Example:
        >>> check_input(torch.zeros(1, 1, 28, 28), in_channels=3, model_name="resnet18")
        Traceback (most recent call last):
        ...
        ValueError: resnet18 expects input of shape N x 3 x H x W (3 channels), got (1, 1, 28, 28)
    """
    if isinstance(x, fx.Proxy):
        return
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{model_name} expects a torch.Tensor input, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(
            f"{model_name} expects input of shape N x {in_channels} x H x W "
            f"({in_channels} channels), got {tuple(x.shape)}"
        )


def linear_or_identity(in_features: int, num_classes: int) -> nn.Module:
    """A ``Linear(in_features, num_classes)``, or ``Identity`` when ``num_classes`` is 0.

    Example:
        >>> linear_or_identity(512, 0)
        Identity()
    """
    num_classes = check_int("num_classes", num_classes, minimum=0)
    return nn.Linear(in_features, num_classes) if num_classes else nn.Identity()


def is_meta(module: nn.Module) -> bool:
    """True if ``module``'s parameters live on the meta device (nothing to initialise).

    Example:
        >>> with torch.device("meta"):
        ...     layer = nn.Linear(2, 2)
        >>> is_meta(layer)
        True
    """
    return any(p.is_meta for p in module.parameters())


def init_unless_meta(model: nn.Module, **kwargs: Any) -> None:
    """Call ``model.init_weights(**kwargs)`` unless its parameters are on the meta device.

    The zoo's constructors end with it: a meta-device model (built to count parameters and
    MACs) has no values to initialise, and skipping the loop keeps counting fast.

    Example:
        >>> class Tiny(nn.Linear):
        ...     def init_weights(self):
        ...         nn.init.ones_(self.weight)
        >>> layer = Tiny(2, 2)
        >>> init_unless_meta(layer)
        >>> layer.weight.sum().item()
        4.0
        >>> with torch.device("meta"):
        ...     init_unless_meta(Tiny(2, 2))  # nothing to do
    """
    if not is_meta(model):
        model.init_weights(**kwargs)
