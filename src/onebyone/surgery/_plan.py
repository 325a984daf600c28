"""The surgery plan a model carries: which structural rewrites were applied, in order.

Each transformation appends one step to ``model.surgery_plan["steps"]`` on the model it returns;
:func:`onebyone.surgery.save` writes the plan beside the weights and :func:`onebyone.surgery.load`
replays the steps on a freshly built base model.
"""

from __future__ import annotations

import copy

from torch import nn

PLAN_ATTR = "surgery_plan"


def get_plan(model: nn.Module) -> dict:
    """A copy of the plan ``model`` carries (an empty one if it was never operated on).

    >>> get_plan(nn.Linear(2, 2))
    {'base': None, 'steps': []}
    """
    plan = getattr(model, PLAN_ATTR, None)
    if not isinstance(plan, dict):
        return {"base": None, "steps": []}
    return copy.deepcopy(plan)


def record_step(model: nn.Module, step: dict, *, source: nn.Module | None = None) -> None:
    """Set on ``model`` the plan of ``source`` (default: its own) with ``step`` appended.

    Pass the transformation's input as ``source``: a deep copy of an ``fx.GraphModule`` does not
    keep plain attributes.
    """
    plan = get_plan(source if source is not None else model)
    plan["steps"].append(step)
    object.__setattr__(model, PLAN_ATTR, plan)


def set_base(model: nn.Module, spec: str, kwargs: dict | None = None) -> None:
    """Record the spec (and keyword arguments) that rebuild the model the surgery started from."""
    plan = get_plan(model)
    plan["base"] = {"spec": spec, "kwargs": dict(kwargs or {})}
    object.__setattr__(model, PLAN_ATTR, plan)
