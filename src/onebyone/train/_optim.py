"""The optimizer factory of :func:`~onebyone.train.fit`: a name and a config give an optimizer."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["OPTIMIZERS", "make_optimizer"]

OPTIMIZERS = ("sgd", "adamw", "adam")


def make_optimizer(
    name: str, model: nn.Module, *, lr: float, weight_decay: float, momentum: float
) -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``model``'s trainable parameters.

    ``"sgd"`` uses Nesterov momentum when ``momentum > 0``; ``"adamw"`` decoupled weight decay;
    ``"adam"`` an L2 penalty.

    Raises:
        ValueError: ``name`` is not one of :data:`OPTIMIZERS`, or the model has no trainable
            parameter.

    Example:
        >>> opt = make_optimizer("sgd", nn.Linear(3, 2), lr=0.1, weight_decay=0.0, momentum=0.9)
        >>> type(opt).__name__, opt.param_groups[0]["nesterov"]
        ('SGD', True)
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0
        )
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}; got {name!r}")
