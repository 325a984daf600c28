"""Model-level MACs for the surgery's budget and report totals, from the analyzer."""

from __future__ import annotations

import torch
from torch import nn


def model_macs(model: nn.Module, example_input: torch.Tensor) -> int:
    """Multiply-accumulates of ``model`` on ONE example shaped like ``example_input``.

    Counted by :func:`onebyone.analysis.analyze` on a meta copy, so no real forward runs;
    a model with data-dependent Python (``if x.sum() > 0``) is counted by a real forward instead.

    Example:
        >>> model_macs(nn.Conv2d(3, 8, 3), torch.zeros(4, 3, 10, 10))
        13824
    """
    from onebyone.analysis import analyze
    from onebyone.errors import OneByOneError

    size = (1, *example_input.shape[1:])
    try:
        return int(analyze(model, size).total_macs)
    except OneByOneError:
        if example_input.device.type == "meta":
            raise
        return int(analyze(model, size, device=example_input.device).total_macs)
