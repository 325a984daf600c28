"""register_model: a builder registered twice (its module run again) is fine; another is refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from torch import nn

import onebyone.models.resnet
from onebyone.models import _registry, create_model, list_models, register_model


def _builder(module: str, name: str = "_test_twice"):
    def build(**kwargs):
        return nn.Identity()

    build.__name__ = build.__qualname__ = name
    build.__module__ = module
    return build


def test_the_same_builder_again_keeps_the_first_and_another_is_refused():
    first, again = _builder("pkg.nets"), _builder("pkg.nets")
    try:
        assert register_model(first) is first
        assert register_model(again) is again  # the module ran again: not an error
        assert _registry._MODELS["_test_twice"] is first
        with pytest.raises(ValueError, match=r"^a model named '_test_twice' is already registered \(by pkg\.nets\)$"):
            register_model(_builder("other.nets"))
        assert _registry._MODELS["_test_twice"] is first
    finally:
        _registry._MODELS.pop("_test_twice", None)


def test_running_a_model_family_file_a_second_time_changes_nothing():
    """What pytest's doctest import does with src/onebyone/models/resnet.py (it used to fail)."""
    before = dict(_registry._MODELS)
    path = Path(onebyone.models.resnet.__file__)
    spec = importlib.util.spec_from_file_location("onebyone.models.resnet", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert before == _registry._MODELS
    assert "resnet18" in list_models() and create_model("resnet20", num_classes=7).num_classes == 7

