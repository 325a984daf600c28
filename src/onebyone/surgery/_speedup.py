"""Ranks by time: the ``speedup=`` policy of :func:`~onebyone.surgery.decompose`, and its timing cache.

Fewer MACs do not always mean less time (small or memory-bound layers, per-op overhead), so
``decompose(model, speedup=2.0)`` chooses ranks by time instead of MACs. For each candidate
layer a few rank choices are taken from its (MACs, weight error) frontier; each gets a time,
either estimated (the roofline of a device profile, ``measure=False``) or measured (the layer
and its rewrite run at the layer's real input shape). Only choices that are faster than the
layer itself are kept. Then, as for a MACs budget, the step that adds the least weight error per
second saved goes first, until the whole model's time falls to ``1 / speedup`` of what it was.

Measured times are cached in ``$XDG_CACHE_HOME/onebyone/timings.json`` (else
``~/.cache/onebyone``), keyed by the device (the profile's label, the device type and the
thread count), the layer's structure and its input shape, so a second run measures nothing.
A cache file that cannot be read is ignored with a warning and rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from onebyone._io import write_json_atomic
from onebyone._modes import eval_mode
from onebyone.surgery._ranks import Candidate, _lower_hull, _options, lower_frontier
from onebyone.surgery.report import Skip, SurgeryReport

__all__ = ["TimingCache", "choose_by_time", "default_cache_path", "time_module", "time_pair", "whole_model_speedup"]

#: Rank choices per layer that get a time (spread along the layer's error frontier).
POINTS_PER_LAYER = 8
#: With measured times: rounds of "choose, build, time the whole model" before decompose settles.
VERIFY_ROUNDS = 3
CACHE_SCHEMA = 1
#: Default cap on a layer's relative weight error ||W - W'|| / ||W|| (a quarter of its energy
#: lost): a speedup target out of reach then stops there instead of gutting every layer.
MAX_ERROR = 0.5


def relative_error(nsr: float) -> float:
    """The relative weight error ``||W - W'|| / ||W||`` of a noise-to-signal ratio (energy lost / kept).

    Example:
        >>> relative_error(1 / 3)  # a quarter of the energy lost: sqrt(0.25)
        0.5
    """
    return math.sqrt(nsr / (1.0 + nsr))


def default_cache_path() -> Path:
    """Where measured layer times are cached: ``$XDG_CACHE_HOME/onebyone/timings.json``.

    Example:
        >>> default_cache_path().name
        'timings.json'
    """
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "onebyone" / "timings.json"


def time_module(module: nn.Module, x: torch.Tensor) -> float:
    """Median seconds of ``module(x)`` in eval mode without autograd (warm-up, then 7 repeats).

    Tests replace this function (``monkeypatch.setattr``) to inject timings.

    Example:
        >>> time_module(nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8)) > 0
        True
    """
    from onebyone._timing import median_seconds

    with eval_mode(module), torch.inference_mode():
        return median_seconds(lambda: module(x), warmup=2, repeats=7)


def time_pair(before: nn.Module, after: nn.Module, x: torch.Tensor, rounds: int = 5) -> tuple[float, float]:
    """Median seconds of ``before(x)`` and ``after(x)``, timed in alternating rounds of 3-call medians.

    Alternating makes a change in the machine's load hit both alike. Tests replace this function.

    Example:
        >>> a, b = time_pair(nn.Conv2d(8, 8, 3), nn.Conv2d(8, 2, 3), torch.randn(1, 8, 16, 16), rounds=2)
        >>> a > 0 and b > 0
        True
    """
    from onebyone._timing import alternating

    with eval_mode(before, after), torch.inference_mode():
        times = alternating({"before": lambda: before(x), "after": lambda: after(x)},
                            rounds=rounds, warmup=1, repeats=3)
    return times["before"].median, times["after"].median


def whole_model_speedup(before: nn.Module, after: nn.Module, x: torch.Tensor, cache: TimingCache,
                        dev_key: str) -> float:
    """``before``'s time over ``after``'s at ``x`` (:func:`time_pair`), through ``cache``."""
    key = f"{dev_key}|pair|{_layer_key(before, x)}|{_layer_key(after, x)}"

    def measure() -> float:
        t_before, t_after = time_pair(before, after, x)
        return t_before / t_after

    return cache.get(key, measure)


@dataclass
class TimingCache:
    """Measured seconds by key, loaded from and saved to a JSON file.

    Args:
        path: the JSON file.
        times: the entries.
        misses: keys measured during this run (0 on a second identical run).

    Example:
        >>> import tempfile
        >>> c = TimingCache.load(Path(tempfile.mkdtemp()) / "t.json")
        >>> c.get("k", lambda: 0.5), c.get("k", lambda: 9.0), c.misses
        (0.5, 0.5, 1)
    """

    path: Path
    times: dict[str, float] = field(default_factory=dict)
    misses: int = 0

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> TimingCache:
        """The cache at ``path`` (default :func:`default_cache_path`); empty if absent or unreadable."""
        path = Path(path) if path is not None else default_cache_path()
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or data.get("schema") != CACHE_SCHEMA:
                raise ValueError(f"schema is not {CACHE_SCHEMA}")
            times = data["times"]
            if not isinstance(times, dict) or not all(
                isinstance(v, float) and math.isfinite(v) and v > 0 for v in times.values()
            ):
                raise ValueError("times must map keys to positive finite seconds")
        except (OSError, ValueError, KeyError, TypeError) as e:
            warnings.warn(f"ignoring the timing cache {str(path)!r} ({e}); it will be rebuilt", stacklevel=2)
            return cls(path)
        return cls(path, dict(times))

    def get(self, key: str, measure) -> float:
        """The cached seconds for ``key``, else ``measure()`` (recorded)."""
        if key not in self.times:
            self.times[key] = float(measure())
            self.misses += 1
        return self.times[key]

    def save(self) -> None:
        """Write the cache atomically (only if something was measured)."""
        if self.misses:
            write_json_atomic(self.path, {"schema": CACHE_SCHEMA, "times": self.times})


@dataclass
class _Point:
    ranks: tuple[int, ...] | None  # None: the layer as it is
    macs: int
    error: float
    est_s: float
    measured_s: float | None = None


def device_key(profile_label: str, x: torch.Tensor) -> str:
    """The part of a cache key that names the device: profile, device type, threads, dtype."""
    return f"{profile_label}|{x.device.type}|threads={torch.get_num_threads()}|{x.dtype}"


def _layer_key(module: nn.Module, x: torch.Tensor) -> str:
    text = f"{module!r}|{tuple(x.shape)}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _est_seconds(module: nn.Module, shape: tuple[int, ...], profile) -> float:
    from onebyone.analysis import analyze

    return float(analyze(module, shape, device_profile=profile).est_time_s)


def _real_bottleneck(c: Candidate, ranks: tuple[int, ...]) -> nn.Module:
    from onebyone.surgery._decompose import _empty_bottleneck

    return _empty_bottleneck(c.module, c.kind, ranks)


def _spread(points: list, n: int) -> list:
    if len(points) <= n:
        return points
    idx = sorted({round(i * (len(points) - 1) / (n - 1)) for i in range(n)})
    return [points[i] for i in idx]


def layer_points(c: Candidate, *, round_to: int, profile, measure: bool, cache: TimingCache | None,
                 dev_key: str, max_error: float = math.inf) -> tuple[list[_Point], float | None]:
    """The layer as it is (first) and a few cheaper rank choices within ``max_error``, each with
    its times (the choices are spread over the part of the frontier within the cap); and the
    least relative weight error of any cheaper choice (None if there is none)."""
    x = c.inputs
    shape = tuple(x.shape)
    options = _options(c, round_to)
    hull = [p for p in _lower_hull(c, options) if p[2] is not None]
    least = min((relative_error(p[1]) for p in hull), default=None)
    hull = [p for p in hull if relative_error(p[1]) <= max_error]
    points = [_Point(None, c.macs, 0.0, _est_seconds(c.module, shape, profile))]
    for saved, error, ranks in _spread(hull, POINTS_PER_LAYER):
        est = _est_seconds(_empty_on_meta(c, ranks), shape, profile)
        points.append(_Point(ranks, c.macs - saved, error, est))
    if measure:
        for p in points:
            module = c.module if p.ranks is None else _real_bottleneck(c, p.ranks)
            key = f"{dev_key}|{_layer_key(module, x)}"
            p.measured_s = cache.get(key, lambda m=module: time_module(m, x))
    return points, least


def _empty_on_meta(c: Candidate, ranks: tuple[int, ...]) -> nn.Module:
    from onebyone.surgery.modules import DecomposedConv2d, DecomposedLinear

    m = c.module
    with torch.device("meta"):
        if c.kind == "svd":
            return DecomposedLinear(m.in_features, m.out_features, rank=ranks[0], bias=m.bias is not None)
        return DecomposedConv2d(
            m.in_channels, m.out_channels,
            kernel_size=m.kernel_size, stride=m.stride, padding=m.padding, dilation=m.dilation,
            padding_mode=m.padding_mode, bias=m.bias is not None, method=c.kind, ranks=ranks,
        )


@dataclass
class TimePlan:
    """What :func:`choose_by_time` decided: per-layer points, totals and the speedup it expects."""

    total_s: float
    saved_s: float = 0.0
    source: str = "estimated"
    points: dict[str, tuple[_Point, _Point]] = field(default_factory=dict)  # name -> (before, after)

    @property
    def speedup(self) -> float:
        """The whole-model speedup the chosen rewrites should give."""
        return self.total_s / max(self.total_s - self.saved_s, 1e-12)


def choose_by_time(
    candidates: list[Candidate],
    speedup: float,
    *,
    round_to: int,
    profile,
    measure: bool,
    total_est_s: float,
    total_measured_s: float | None,
    cache: TimingCache | None,
    dev_key: str,
    report: SurgeryReport,
    max_error: float = MAX_ERROR,
) -> tuple[list[Candidate], TimePlan]:
    """Set the ranks of the candidates that bring the model's time to ``1 / speedup``.

    Greedy along each layer's convex frontier of (seconds saved, weight error): the step that
    adds the least error per second saved goes first. A rank choice that is not faster than
    the layer is never taken, nor one whose relative weight error would exceed ``max_error``.
    If the target is out of reach, every layer takes its largest saving within the cap and a
    note on ``report`` says the best speedup reachable within it.

    Returns the candidates to rewrite (the others are recorded on ``report`` as skips) and the
    :class:`TimePlan` with each chosen layer's times before and after.
    """
    total = total_measured_s if measure else total_est_s
    plan = TimePlan(total, source="measured" if measure else "estimated")
    target = total - total / speedup
    frontiers = {}
    for c in candidates:
        if c.inputs is None:
            report.skipped.append(Skip(c.name, "no input recorded: cannot be timed"))
            continue
        points, least = layer_points(c, round_to=round_to, profile=profile, measure=measure, cache=cache,
                                     dev_key=dev_key, max_error=max_error)
        if len(points) == 1 and least is not None:
            report.skipped.append(Skip(c.name, f"every cheaper rank choice has a weight error above "
                                               f"max_error {max_error:g} (the least is {least:.3f})"))
            continue
        base = points[0]
        t0 = base.measured_s if measure else base.est_s
        faster = [(t0 - (p.measured_s if measure else p.est_s), p.error, p) for p in points[1:]]
        faster = [f for f in faster if f[0] > 0]
        if not faster:
            how = "measured" if measure else "estimated"
            report.skipped.append(Skip(c.name, f"no rank choice is {how} faster on this device"))
            continue
        frontiers[c.name] = (c, base, _time_hull(faster))
    position = dict.fromkeys(frontiers, 0)
    saved = 0.0
    while saved < target:
        best, best_slope = None, math.inf
        for name, (_, _, hull) in frontiers.items():
            i = position[name]
            if i + 1 < len(hull):
                slope = (hull[i + 1][1] - hull[i][1]) / (hull[i + 1][0] - hull[i][0])
                if slope < best_slope:
                    best, best_slope = name, slope
        if best is None:
            break
        i = position[best]
        hull = frontiers[best][2]
        saved += hull[i + 1][0] - hull[i][0]
        position[best] = i + 1
    plan.saved_s = saved
    if saved < target:
        report.notes.append(
            f"speedup {speedup:g}x not reachable ({plan.source} times): the best reachable within "
            f"max_error {max_error:g} is {plan.speedup:.2f}x, taken here"
        )
    chosen = []
    for name, (c, base, hull) in frontiers.items():
        point = hull[position[name]][2]
        if point is None:
            report.skipped.append(Skip(name, "left alone: the target was met with rewrites that cost less error"))
            continue
        c.ranks = point.ranks
        plan.points[name] = (base, point)
        chosen.append(c)
    return chosen, plan


def _time_hull(points: list[tuple[float, float, _Point]]) -> list[tuple[float, float, _Point | None]]:
    """The convex frontier of (seconds saved, error) from "leave it alone" on."""
    return lower_frontier(points)
