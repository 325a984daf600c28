"""The recipe a model carries: which structural rewrites were applied to it, in order.

Each transformation appends one step to the recipe of the model it returns;
:func:`onebyone.surgery.save` writes it beside the weights (the JSON "plan" file) and
:func:`onebyone.surgery.load` replays the steps on a freshly built base model. (The 1x1 what-if
of :mod:`onebyone.analysis.plan` is a different thing.)
"""

from __future__ import annotations

import copy

from torch import nn

#: The attribute a model's recipe is kept under (kept from earlier versions).
RECIPE_ATTR = "surgery_plan"


def get_recipe(model: nn.Module) -> dict:
    """A copy of the recipe ``model`` carries (an empty one if it was never operated on).

    >>> get_recipe(nn.Linear(2, 2))
    {'base': None, 'steps': []}
    """
    recipe = getattr(model, RECIPE_ATTR, None)
    if not isinstance(recipe, dict):
        return {"base": None, "steps": []}
    return copy.deepcopy(recipe)


def record_step(model: nn.Module, step: dict, *, source: nn.Module | None = None) -> None:
    """Set on ``model`` the recipe of ``source`` (default: its own) with ``step`` appended.

    Pass the transformation's input as ``source``: a deep copy of an ``fx.GraphModule`` does not
    keep plain attributes.

    >>> net = nn.Linear(2, 2)
    >>> record_step(net, {"op": "fuse"})
    >>> get_recipe(net)["steps"]
    [{'op': 'fuse'}]
    """
    recipe = get_recipe(source if source is not None else model)
    recipe["steps"].append(step)
    object.__setattr__(model, RECIPE_ATTR, recipe)


def set_recipe(model: nn.Module, recipe: dict) -> None:
    """Attach ``recipe`` (``{"base": ..., "steps": [...]}``) to ``model``, as ``load`` does.

    >>> net = nn.Linear(2, 2)
    >>> set_recipe(net, {"base": {"spec": "mlp", "kwargs": {}}, "steps": []})
    >>> get_recipe(net)["base"]["spec"]
    'mlp'
    """
    object.__setattr__(model, RECIPE_ATTR, copy.deepcopy(recipe))
