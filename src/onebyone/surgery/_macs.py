"""Model-level MACs for the surgery's budget and report totals, from the analyzer."""

from __future__ import annotations

import torch
from torch import nn


def model_macs(model: nn.Module, example_input: torch.Tensor) -> int:
    """Multiply-accumulates of ``model`` on ONE example shaped like ``example_input``.

    Counted by :func:`onebyone.analysis.analyze` on a meta copy, so no real forward runs.

    Example:
        >>> model_macs(nn.Conv2d(3, 8, 3), torch.zeros(4, 3, 10, 10))
        13824
    """
    from onebyone.analysis import analyze

    return int(analyze(model, (1, *example_input.shape[1:])).total_macs)
