"""Channel layers: the 1x1 projection, cross-channel pooling, maxout and channel reductions.

>>> from onebyone.layers import ChannelProjection, CrossChannelPool
>>> import torch
>>> x = torch.randn(1, 50, 4, 4)
>>> CrossChannelPool(10)(ChannelProjection(50, 50)(x)).shape
torch.Size([1, 5, 4, 4])
"""

from onebyone.layers.channel_pool import CrossChannelPool
from onebyone.layers.channel_reduce import ChannelMean, ChannelSum
from onebyone.layers.maxout import Maxout, MaxoutConv2d
from onebyone.layers.projection import ChannelProjection

__all__ = [
    "ChannelMean",
    "ChannelProjection",
    "ChannelSum",
    "CrossChannelPool",
    "Maxout",
    "MaxoutConv2d",
]
