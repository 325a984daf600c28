"""Building blocks built around 1x1 convolutions: mlpconv, Inception, residual and inverted
residual blocks.

>>> import torch
>>> from onebyone.blocks import Inception
>>> Inception(192, ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32,
...           pool_proj=32)(torch.randn(2, 192, 4, 4)).shape
torch.Size([2, 256, 4, 4])
"""

from .conv_block import BasicConv2d, ConvNormAct
from .inception import Inception, InceptionAux, NaiveInception
from .inverted_residual import InvertedResidual
from .mlpconv import MLPConv
from .residual import SHORTCUTS, BasicBlock, Bottleneck, ZeroPadShortcut

__all__ = [
    "SHORTCUTS",
    "BasicBlock",
    "BasicConv2d",
    "Bottleneck",
    "ConvNormAct",
    "Inception",
    "InceptionAux",
    "InvertedResidual",
    "MLPConv",
    "NaiveInception",
    "ZeroPadShortcut",
]
