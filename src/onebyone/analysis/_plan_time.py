"""The planner's time what-if: a layer's estimated time now and with a 1x1 projection first.

The projection is one more operator (a 1x1 convolution from ``in_channels`` to ``mid_channels``
maps, with a bias) that reads the input maps and writes ``mid_channels`` maps; the slimmed
layer then reads those maps and a smaller weight. Both are timed with the roofline model of
``roofline`` on the report's device profile, so a suggestion that cuts MACs can still cost time:
when the layer was memory- or overhead-bound, the extra maps and the extra operator are not
paid back by the MACs saved.
"""

from __future__ import annotations

import math

import torch

from .profiles import DeviceProfile
from .report import LayerStats, OpCost
from .roofline import op_time

__all__ = ["time_what_if"]


def time_what_if(
    rows: list[LayerStats],
    *,
    in_channels: int,
    mid: int,
    weight_after: int,
    macs_after_per_call: list[int],
    profile: DeviceProfile,
    dtype: str,
) -> tuple[float, float, str]:
    """``(time before, time after, why it does not save time or "")`` for one plan entry.

    Example:
        >>> from onebyone.analysis.profiles import PRESETS
        >>> row = LayerStats("c", "Conv2d", 1, [(1, 8, 4, 4)], (1, 8, 4, 4), est_time_s=6e-6,
        ...                  op_costs=[OpCost("aten.convolution", "conv", 18432, 5248)])
        >>> before, after, why = time_what_if([row], in_channels=8, mid=2, weight_after=152,
        ...     macs_after_per_call=[2304], profile=PRESETS["t4"], dtype="float32")
        >>> after > before, why
        (True, 'overhead-bound: one more operator (5.00 us) costs more than the work it saves')
    """
    size = torch.empty(0, dtype=getattr(torch, dtype)).element_size()
    before = sum(r.est_time_s for r in rows)
    after = 0.0
    bounds = {"compute": 0.0, "memory": 0.0, "overhead": 0.0}
    for row, macs_after in zip(rows, macs_after_per_call, strict=True):
        x = row.input_shapes[0]
        flat = row.input_flattened_from
        positions = math.prod(flat[1:]) if flat else math.prod(x[2:])
        n = x[0]
        out_elems = math.prod(row.output_shape) if isinstance(row.output_shape, tuple) else 0
        projection = OpCost(
            "aten.convolution",
            "conv1x1",
            2 * n * positions * in_channels * mid + n * positions * mid,
            (n * positions * in_channels + in_channels * mid + mid + n * positions * mid) * size,
        )
        layer_class = row.op_costs[0].op_class if row.op_costs else "conv"
        layer = OpCost(
            "aten.convolution",
            layer_class,
            2 * macs_after + (row.extra_flops if row.extra_flops else 0),
            (n * positions * mid + weight_after + out_elems) * size,
        )
        for cost in (projection, layer):
            t, bound = op_time(cost, profile, dtype)
            after += t
            bounds[bound] += t
    if after < before:
        return before, after, ""
    bound = max(bounds, key=bounds.__getitem__)
    if bound == "overhead":
        from ._text import human_time

        why = (
            f"overhead-bound: one more operator ({human_time(profile.overhead_s)}) costs more "
            "than the work it saves"
        )
    elif bound == "memory":
        why = "memory-bound: writing and reading the projected maps costs more than the MACs saved"
    else:
        why = "compute-bound at a lower rate: the 1x1 projection runs slower per FLOP here"
    return before, after, why
