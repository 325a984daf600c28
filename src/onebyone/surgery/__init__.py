"""Model surgery: decompose convolutions into 1x1 bottlenecks, convolutionalize heads, fuse chains.

Each transformation returns ``(new_model, report)`` and never modifies its input.

>>> import torch
>>> from torch import nn
>>> from onebyone.surgery import decompose
>>> net = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1))
>>> small, report = decompose(net, rank=1.0, example_input=torch.randn(1, 16, 8, 8), only_if_cheaper=False)
>>> small[0]
DecomposedConv2d(
  16, 16, method='tucker2', ranks=(16, 16)
  (0): Conv2d(16, 16, kernel_size=(1, 1), stride=(1, 1), bias=False)
  (1): Conv2d(16, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
  (2): Conv2d(16, 16, kernel_size=(1, 1), stride=(1, 1))
)
>>> report.output_error < 1e-5
True
"""

from onebyone.surgery._convolutionalize import ELEMENTWISE_TYPES, convolutionalize
from onebyone.surgery._decompose import CONV_TYPES, LINEAR_TYPES, decompose
from onebyone.surgery._finetune import Distiller, FinetuneResult, finetune
from onebyone.surgery._fuse import fuse
from onebyone.surgery._merge import NORM_TYPES, NotFusable, fold_norm, merge_pair
from onebyone.surgery._slim import SlimResult, slim
from onebyone.surgery.io import load, load_weights, save
from onebyone.surgery.modules import DecomposedConv2d, DecomposedLinear
from onebyone.surgery.report import LayerChange, Skip, SurgeryReport

__all__ = [
    "CONV_TYPES",
    "ELEMENTWISE_TYPES",
    "LINEAR_TYPES",
    "NORM_TYPES",
    "DecomposedConv2d",
    "DecomposedLinear",
    "Distiller",
    "FinetuneResult",
    "LayerChange",
    "NotFusable",
    "Skip",
    "SlimResult",
    "SurgeryReport",
    "convolutionalize",
    "decompose",
    "finetune",
    "fold_norm",
    "fuse",
    "load",
    "load_weights",
    "merge_pair",
    "save",
    "slim",
]
