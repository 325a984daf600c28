"""Wall-clock timing for decisions made at run time (surgery's ``measure=True``, latency columns).

Benchmarks in ``benchmarks/`` use the same helper so that every number is taken the same way:
warm-up calls, then the median of repeats.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["latency_ms", "median_seconds"]


def median_seconds(fn: Callable[[], object], *, warmup: int = 2, repeats: int = 7) -> float:
    """Return the median wall-clock seconds of ``fn()`` after ``warmup`` untimed calls.

    CUDA work is synchronised before each clock read.

    Example:
        >>> t = median_seconds(lambda: sum(range(1000)), warmup=1, repeats=3)
        >>> t > 0
        True
    """
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(max(0, warmup)):
        fn()
    sync()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency_ms(
    model: torch.nn.Module,
    input_size: tuple[int, ...],
    *,
    warmup: int = 2,
    repeats: int = 7,
    channels_last: bool = False,
) -> float:
    """Median eval-mode forward latency of ``model`` in milliseconds on a random input.

    The model's train/eval mode is restored afterwards.

    Example:
        >>> from torch import nn
        >>> latency_ms(nn.Conv2d(3, 8, 3), (1, 3, 16, 16), repeats=3) > 0
        True
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.randn(*input_size, device=device)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return 1000.0 * median_seconds(lambda: model(x), warmup=warmup, repeats=repeats)
    finally:
        model.train(was_training)
