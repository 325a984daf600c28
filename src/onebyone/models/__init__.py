"""The model zoo: Network in Network, GoogLeNet, ResNet, VGG and the tutorial's models.

>>> from onebyone.models import create_model, list_models
>>> "resnet50" in list_models()
True
"""

from ._registry import create_model, is_model, list_models, register_model
from ._spec import load_model

__all__ = ["create_model", "is_model", "list_models", "load_model", "register_model"]
