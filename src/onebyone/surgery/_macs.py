"""Model-level MACs for the surgery's budget and report totals.

STOP-GAP until ``onebyone.analyze`` lands: counts Conv2d and Linear multiply-accumulates
with forward hooks. Replaced by the analyzer as soon as it exists.
"""

from __future__ import annotations

import torch
from torch import nn


def model_macs(model: nn.Module, example_input: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on ONE example of ``example_input``."""
    example_input = example_input[:1]
    try:
        from onebyone.analysis import analyze
    except ImportError:
        analyze = None
    if analyze is not None:
        return int(analyze(model, tuple(example_input.shape)).total_macs)
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
            total += output.numel() * k
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total
