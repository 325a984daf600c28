"""The model zoo: Network in Network, GoogLeNet, ResNet, VGG, MobileNetV2 and the tutorial's
models.

Importing this package registers every family.

>>> from onebyone.models import create_model, list_models
>>> "resnet50" in list_models()
True
"""

from . import googlenet as _googlenet  # noqa: F401  (registers the models)
from . import mobilenet as _mobilenet  # noqa: F401
from . import nin as _nin  # noqa: F401
from . import resnet as _resnet  # noqa: F401
from . import tutorial as _tutorial  # noqa: F401
from . import vgg as _vgg  # noqa: F401
from ._registry import create_model, is_model, list_models, register_model
from ._spec import SPEC_HELP, load_model
from .googlenet import GoogLeNet, GoogLeNetOutputs
from .mobilenet import MobileNetV2
from .nin import NiN
from .resnet import ResNet
from .tutorial import TutorialModel
from .vgg import VGG

__all__ = [
    "SPEC_HELP",
    "VGG",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "MobileNetV2",
    "NiN",
    "ResNet",
    "TutorialModel",
    "create_model",
    "is_model",
    "list_models",
    "load_model",
    "register_model",
]
