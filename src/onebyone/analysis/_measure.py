"""Measured profiles: a real forward, timed per module call and in total, beside the estimate.

The model is copied as for the analysis (the user's model is never run, moved or hooked).
The copy runs ``warmup`` untimed forwards, then ``repeats`` timed forwards without hooks for
the total (median), then ``repeats`` forwards with timing hooks for the rows (median per
call). A row's time is its own: the call's time minus the time of the module calls inside it,
like its MACs. CUDA is synchronised around every timestamp.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import nn

from onebyone.errors import OneByOneError

from ._inputs import analysis_copy, make_inputs
from .report import Report

__all__ = ["measure_device", "measure_into"]


def measure_device(model: nn.Module, device: torch.device) -> torch.device:
    """The device to time on: ``device`` if real, else the model's own (CPU without tensors).

    Raises:
        ValueError: the model lives on the meta device and no real device was given.
    """
    if device.type != "meta":
        return device
    first = next(iter((*model.parameters(), *model.buffers())), None)
    if first is None:
        return torch.device("cpu")
    if first.device.type == "meta":
        raise ValueError(
            "measure=True needs real weights, but the model's parameters are on the meta device; "
            "load or initialise it first, or pass device='cpu' or 'cuda' with a real model"
        )
    return first.device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Timer:
    """Timing hooks: one (start, end, children) record per module call, in call order."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.device = device
        self.records: list[list[Any]] = []
        self.stack: list[list[Any]] = []
        self.handles = []
        for module in {id(m): m for m in model.modules()}.values():
            self.handles.append(module.register_forward_pre_hook(self.pre))
            self.handles.append(module.register_forward_hook(self.post))

    def pre(self, module: nn.Module, args: tuple) -> None:
        record = [module, 0.0, 0.0, 0.0]  # module, start, end, time of children
        self.records.append(record)
        self.stack.append(record)
        _sync(self.device)
        record[1] = time.perf_counter()

    def post(self, module: nn.Module, args: tuple, output: Any) -> None:
        _sync(self.device)
        end = time.perf_counter()
        if not self.stack or self.stack[-1][0] is not module:
            return
        record = self.stack.pop()
        record[2] = end
        if self.stack:
            self.stack[-1][3] += end - record[1]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def measure_into(
    report: Report,
    model: nn.Module,
    input_size: Any,
    *,
    device: torch.device,
    dtype: torch.dtype,
    train: bool,
    repeats: int,
    warmup: int,
) -> None:
    """Time ``model`` for real and fill ``measured_time_s`` on the rows and the report."""
    inputs = make_inputs(input_size, device, dtype)
    work = analysis_copy(model, device, dtype)
    work.train(bool(train))
    totals: list[float] = []
    per_call: list[list[float]] = []
    try:
        with torch.no_grad():
            for _ in range(warmup):
                work(*inputs)
            for _ in range(repeats):
                _sync(device)
                start = time.perf_counter()
                work(*inputs)
                _sync(device)
                totals.append(time.perf_counter() - start)
            for _ in range(repeats):
                timer = _Timer(work, device)
                try:
                    work(*inputs)
                finally:
                    timer.remove()
                per_call.append([max(0.0, r[2] - r[1] - r[3]) for r in timer.records])
    except Exception as e:
        raise OneByOneError(
            f"the measured forward of {type(model).__name__} on {device} failed: "
            f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        ) from e
    if any(len(times) != len(report.rows) for times in per_call):
        raise OneByOneError(
            f"the measured forward called {len(per_call[0])} modules but the counted one "
            f"{len(report.rows)}: a forward whose module calls change from run to run cannot be "
            "timed per layer"
        )
    for i, row in enumerate(report.rows):
        row.measured_time_s = statistics.median(times[i] for times in per_call)
    report.measured_time_s = statistics.median(totals)
    report.measured_device = str(device)
    report.measured_repeats = repeats
