"""Wall-clock timing for decisions made at run time (surgery's ``measure=True``, latency columns).

Benchmarks in ``benchmarks/`` use the same helper so that every number is taken the same way:
warm-up calls, then the median of repeats. On a shared machine one slow call (another program
took the core) can be many times the others, so a figure also carries its spread, the
interquartile range over the median: above :data:`MAX_SPREAD` it is marked unreliable instead
of being shown as if it were a measurement.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

__all__ = ["MAX_SPREAD", "UNRELIABLE_NOTE", "Measurement", "alternating", "latency_ms", "measure", "median_seconds", "reliable_ms",
           "spread"]

# Above this relative interquartile range the median says more about the machine's load than
# about the code: the middle half of the samples differ by more than a quarter of the median.
MAX_SPREAD = 0.25

#: The footnote of a table that shows "unreliable" in place of a latency.
UNRELIABLE_NOTE = (
    f"unreliable: the repeated timings varied by more than {MAX_SPREAD:.0%} (interquartile range over the "
    "median), or batch 8 ran faster than batch 1; other programs are using the CPU. Rerun when the machine "
    "is quieter."
)


def spread(samples: Sequence[float]) -> float:
    """The interquartile range of ``samples`` over their median (0 for fewer than 2 samples).

    Example:
        >>> spread([1.0, 1.0, 1.0, 1.0])
        0.0
        >>> spread([1.0, 2.0, 3.0, 4.0, 5.0])  # quartiles 2 and 4, median 3
        0.6666666666666666
    """
    if len(samples) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    middle = statistics.median(samples)
    return (q3 - q1) / middle if middle > 0 else float("inf")


@dataclass(frozen=True)
class Measurement:
    """Samples of one timing in seconds, their median and their spread.

    Example:
        >>> m = Measurement((0.010, 0.011, 0.010, 0.012, 0.010))
        >>> round(m.median * 1000, 3), m.reliable
        (10.0, True)
        >>> Measurement((0.010, 0.090, 0.011, 0.200, 0.012)).reliable  # a busy machine
        False
    """

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        return spread(self.samples)

    @property
    def reliable(self) -> bool:
        """Whether the spread is at most :data:`MAX_SPREAD`."""
        return self.spread <= MAX_SPREAD


def reliable_ms(times: Mapping[int, Measurement]) -> dict[int, float | None]:
    """Median milliseconds per batch size, or None for a figure the noise made meaningless.

    A figure is dropped when its spread is above :data:`MAX_SPREAD`; all are dropped when a
    larger batch ran faster than a smaller one (eight images cannot take less time than one:
    the load changed between the two).

    Example:
        >>> reliable_ms({1: Measurement((0.010,) * 5), 8: Measurement((0.050,) * 5)})
        {1: 10.0, 8: 50.0}
        >>> reliable_ms({1: Measurement((0.010, 0.090, 0.011, 0.200, 0.012)), 8: Measurement((0.050,) * 5)})
        {1: None, 8: 50.0}
        >>> reliable_ms({1: Measurement((0.9,) * 5), 8: Measurement((0.2,) * 5)})
        {1: None, 8: None}
    """
    batches = sorted(times)
    medians = [times[b].median for b in batches]
    if any(later < earlier for earlier, later in itertools.pairwise(medians)):
        return dict.fromkeys(times)
    return {b: 1000.0 * m.median if m.reliable else None for b, m in times.items()}


def _sync() -> Callable[[], None]:
    return torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)


def measure(
    fn: Callable[[], object], *, warmup: int = 3, repeats: int = 15, max_seconds: float | None = None
) -> Measurement:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls.

    Args:
        fn: the call to time.
        warmup: untimed calls first (caches, allocator, lazy initialisation).
        repeats: timed calls; with ``max_seconds``, the most of them.
        max_seconds: stop after this much timed time, keeping at least 5 samples.

    Example:
        >>> m = measure(lambda: sum(range(1000)), warmup=1, repeats=5)
        >>> len(m.samples), m.median > 0
        (5, True)
    """
    sync = _sync()
    for _ in range(max(0, warmup)):
        fn()
    sync()
    times: list[float] = []
    total = 0.0
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
        total += times[-1]
        if max_seconds is not None and total > max_seconds and len(times) >= 5:
            break
    return Measurement(tuple(times))


def median_seconds(fn: Callable[[], object], *, warmup: int = 2, repeats: int = 7) -> float:
    """Return the median wall-clock seconds of ``fn()`` after ``warmup`` untimed calls.

    CUDA work is synchronised before each clock read.

    Example:
        >>> t = median_seconds(lambda: sum(range(1000)), warmup=1, repeats=3)
        >>> t > 0
        True
    """
    return measure(fn, warmup=warmup, repeats=repeats).median


def alternating(
    calls: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    warmup: int = 1,
    repeats: int = 1,
    max_seconds: float | None = None,
    min_rounds: int = 5,
) -> dict[str, Measurement]:
    """Time several calls in alternating rounds, so that a change in the machine's load hits all alike.

    Each call first runs ``warmup`` times untimed (in turn); then every round takes one sample of
    each call in turn, the :func:`median_seconds` of ``repeats`` calls. With ``max_seconds``,
    the rounds stop once that much has been timed, but not before ``min_rounds``.

    Example:
        >>> m = alternating({"a": lambda: sum(range(100)), "b": lambda: sum(range(1000))}, rounds=3)
        >>> sorted(m), len(m["a"].samples)
        (['a', 'b'], 3)
    """
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    samples: dict[str, list[float]] = {key: [] for key in calls}
    spent = 0.0
    for k in range(rounds):
        for key, fn in calls.items():
            t = median_seconds(fn, warmup=0, repeats=repeats)
            samples[key].append(t)
            spent += t
        if max_seconds is not None and spent > max_seconds and k + 1 >= min_rounds:
            break
    return {key: Measurement(tuple(v)) for key, v in samples.items()}


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
