"""onebyone: understand, build and slim convolutional networks with 1x1 convolutions.

>>> import onebyone
>>> isinstance(onebyone.__version__, str)
True
"""

from onebyone import data, surgery, train
from onebyone._version import __version__
from onebyone.analysis import LayerStats, Report, analyze, calibrate, diff, plan
from onebyone.blocks import BasicBlock, Bottleneck, Inception, MLPConv, NaiveInception
from onebyone.errors import InternalError, OneByOneError
from onebyone.experiments import compare
from onebyone.layers import (
    ChannelMean,
    ChannelProjection,
    ChannelSum,
    CrossChannelPool,
    Maxout,
    MaxoutConv2d,
)
from onebyone.models import (
    VGG,
    GoogLeNet,
    NiN,
    ResNet,
    TutorialModel,
    create_model,
    list_models,
    load_model,
    register_model,
)
from onebyone.train import evaluate, fit

__all__ = [
    "VGG",
    "BasicBlock",
    "Bottleneck",
    "ChannelMean",
    "ChannelProjection",
    "ChannelSum",
    "CrossChannelPool",
    "GoogLeNet",
    "Inception",
    "InternalError",
    "LayerStats",
    "MLPConv",
    "Maxout",
    "MaxoutConv2d",
    "NaiveInception",
    "NiN",
    "OneByOneError",
    "Report",
    "ResNet",
    "TutorialModel",
    "__version__",
    "analyze",
    "calibrate",
    "compare",
    "create_model",
    "data",
    "diff",
    "evaluate",
    "fit",
    "list_models",
    "load_model",
    "plan",
    "register_model",
    "surgery",
    "train",
]
