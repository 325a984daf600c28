"""``torch.fx`` tracing for the surgery, aware of the zoo's input checks.

The zoo's models validate their input (``check_input``) with Python control flow on the shape,
which symbolic tracing cannot follow. Such functions are listed in :data:`AUTOWRAP` and become
ordinary calls in the graph, so the traced model still checks its input at run time.
"""

from __future__ import annotations

import importlib

import torch
from torch import fx, nn

#: ``(module, function name)`` pairs traced as opaque calls (extend with your own checks).
AUTOWRAP: list[tuple[str, str]] = [("onebyone.models._base", "check_input")]

#: Plain attributes that describe a model and are kept on the traced copy.
KEPT_ATTRIBUTES = ("default_input_size", "num_classes", "in_channels", "num_features", "model_name")


def _autowrap_functions() -> tuple:
    found = []
    for module_name, name in AUTOWRAP:
        try:
            fn = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError):
            continue
        found.append(fn)
    return tuple(found)


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``model`` into a GraphModule sharing its submodules.

    Raises whatever ``torch.fx`` raises when the model does not trace.

    Example:
        >>> gm = trace(nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU()))
        >>> [n.op for n in gm.graph.nodes]
        ['placeholder', 'call_module', 'call_module', 'output']
    """
    tracer = fx.Tracer(autowrap_functions=_autowrap_functions())
    graph = tracer.trace(model)
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    return keep_attributes(model, gm)


def keep_attributes(source: nn.Module, target: nn.Module) -> nn.Module:
    """Copy the :data:`KEPT_ATTRIBUTES` that ``source`` has onto ``target``; return ``target``.

    Call it with the surgery's input as ``source``: a deep copy of an ``fx.GraphModule`` (the
    result of an earlier surgery) drops plain attributes, so a chain would lose them.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3))
        >>> net.default_input_size = (3, 8, 8)
        >>> keep_attributes(net, nn.Sequential()).default_input_size
        (3, 8, 8)
    """
    for name in KEPT_ATTRIBUTES:
        try:
            value = getattr(source, name)
        except AttributeError:
            continue
        if value is None or isinstance(value, nn.Module | torch.Tensor) or callable(value):
            continue
        setattr(target, name, value)
    return target
