"""``onebyone.calibrate``: measure this machine's rates into a device profile.

It times, on the chosen device with the configured threads: the per-op overhead (a tiny
in-place add), copy bandwidth by size (bytes read plus written; the steepest drop sets the
cache level and its bandwidth), a float32 GEMM, convolutions by class at the stage shapes of a
ResNet (1x1, 3x3, depthwise 3x3), 3x3 max pooling, an elementwise op, and (on CUDA) the 16-bit
GEMM. Each rate is FLOPs / (median time - overhead), the same split the roofline model uses. The profile is saved atomically: a calibration that fails or is
interrupted leaves the previous profile in place.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from .profiles import DeviceProfile, default_profile_path, save_profile

__all__ = ["calibrate"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn: Callable[[], object], device: torch.device, repeats: int, inner: int = 1) -> float:
    fn()  # warm-up: first calls allocate and pick kernels
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        _sync(device)
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {torch.get_num_threads()} thread(s), torch {torch.__version__}"


def _conv_case(device, n, cin, size, cout, k, groups):
    x = torch.randn(n, cin, size, size, device=device)
    w = torch.randn(cout, cin // groups, k, k, device=device)
    flops = 2 * n * cout * (cin // groups) * k * k * size * size
    return (lambda: F.conv2d(x, w, padding=k // 2, groups=groups)), flops


class _Bench:
    """The measurements of one calibration: each method returns a rate or a time."""

    def __init__(self, device: torch.device, quick: bool, scale: float) -> None:
        self.device = device
        self.quick = quick
        self.scale = scale
        self.repeats = 5 if quick else 15
        # A GPU finishes a batch-1 stage convolution or a 64k-element ReLU in a few microseconds,
        # under its launch and synchronisation costs: rates measured there were 10-400x low on an
        # H200 (elementwise 8 GFLOP/s). On CUDA the shapes are batch 32 and 16M elements, and each
        # timing runs 10 calls between synchronisations, so the kernels' own time dominates.
        cuda = device.type == "cuda"
        self.batch = 32 if cuda else 1
        self.elements = 1 << 24 if cuda else 1 << 16
        self.inner = 10 if cuda else 1
        self.overhead_s = 0.0
        self.cache = 0
        self.cache_bandwidth = 0.0
        # (spatial size, channels) as in the stages of a ResNet at 224x224
        self.stages = [(28, 128), (14, 256)] if quick else [(56, 64), (28, 128), (14, 256), (7, 512)]

    def size(self, n: int, minimum: int = 4) -> int:
        return max(minimum, int(n * self.scale))

    def time(self, fn: Callable[[], object], inner: int = 1) -> float:
        return _median_time(fn, self.device, self.repeats, max(inner, self.inner))

    def overhead(self) -> float:
        tiny = torch.zeros(1, device=self.device)
        self.overhead_s = self.time(lambda: tiny.add_(1.0), inner=200)
        return self.overhead_s

    def _net(self, t: float) -> float:
        return max(t - self.overhead_s, t * 0.05)

    def rate(self, *makes: Callable[[], tuple[Callable[[], object], int]]) -> Callable[[], float]:
        # Several shapes per class: the rate is their total FLOPs over their total time, so a
        # shape that happens to fit the cache does not stand for the whole class.
        def run() -> float:
            flops = seconds = 0.0
            for make in makes:
                fn, f = make()
                flops += f
                seconds += self._net(self.time(fn))
            return flops / seconds

        return run

    def copy_rate(self, n: int) -> float:
        src = torch.randn(n, device=self.device)
        dst = torch.empty_like(src)
        return 2 * n * 4 / self._net(self.time(lambda: dst.copy_(src), max(1, (1 << 20) // n)))

    def memory(self) -> float:
        """Copy bandwidth by size; sets ``cache_bytes``/``cache_bandwidth`` at the knee.

        The knee is the steepest drop in bandwidth between two consecutive sizes (bytes read
        plus written, 1 MiB to 256 MiB by 4x): sizes up to it form the cache level (its
        bandwidth: the geometric mean of theirs); the largest size gives the memory bandwidth.
        """
        top = 64 << 20 if self.quick else 256 << 20
        sizes = [1 << 20]
        while sizes[-1] < top:
            sizes.append(sizes[-1] * 4)
        rates = [self.copy_rate(self.size(total // 8, 64)) for total in sizes]
        drops = [rates[i] / rates[i + 1] for i in range(len(rates) - 1)]
        knee = max(range(len(drops)), key=drops.__getitem__)
        if self.device.type == "cpu" and drops[knee] > 1.5:
            self.cache = self.size(sizes[knee], 512)
            self.cache_bandwidth = float(statistics.geometric_mean(rates[: knee + 1]))
        return rates[-1]

    def gemm(self, dtype: torch.dtype = torch.float32):
        n = self.size(384 if self.quick else 1024, 16)
        a = torch.randn(n, n, device=self.device, dtype=dtype)
        b = torch.randn(n, n, device=self.device, dtype=dtype)
        return (lambda: a @ b), 2 * n**3

    def convs(self, k: int, depthwise: bool = False) -> list:
        size = self.size

        def case(s: int, c: int):
            groups = size(c) if depthwise else 1
            return _conv_case(self.device, self.batch, size(c), size(s), size(c), k, groups)

        return [(lambda s=s, c=c: case(s, c)) for s, c in self.stages]

    def pools(self) -> list:
        def case(s: int, c: int):
            x = torch.randn(self.batch, self.size(c), self.size(s), self.size(s), device=self.device)
            out = F.max_pool2d(x, 3, 2, 1)
            return (lambda: F.max_pool2d(x, 3, 2, 1)), 9 * out.numel()

        return [(lambda s=s, c=c: case(s, c)) for s, c in self.stages]

    def elementwise(self):
        x = torch.randn(self.size(self.elements, 64), device=self.device)
        return (lambda: torch.relu(x)), x.numel()

    def steps(self) -> list[tuple[str, Callable[[], float]]]:
        steps = [
            ("per-op overhead", self.overhead),
            ("copy bandwidth", self.memory),
            ("gemm", self.rate(self.gemm)),
            ("conv1x1", self.rate(*self.convs(1))),
            ("conv", self.rate(*self.convs(3))),
            ("depthwise", self.rate(*self.convs(3, depthwise=True))),
            ("elementwise", self.rate(self.elementwise)),
            ("pool", self.rate(*self.pools())),
        ]
        if self.device.type == "cuda":
            steps.append(("gemm16", self.rate(lambda: self.gemm(torch.float16))))
        return steps


def calibrate(
    device: str | torch.device = "cpu",
    *,
    quick: bool = False,
    path: str | os.PathLike | None = None,
    save: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    scale: float = 1.0,
) -> DeviceProfile:
    """Measure this machine and return (and by default save) its :class:`DeviceProfile`.

    Args:
        device: ``"cpu"`` (with ``torch.get_num_threads()`` threads) or ``"cuda[:N]"``.
        quick: smaller shapes and fewer repeats (under 10 s instead of under a minute).
        path: where to save; default :func:`~onebyone.analysis.profiles.default_profile_path`.
        save: write the profile (atomically); False only returns it.
        progress: called as ``progress(step, done, total)`` before each measurement.
        scale: multiplies every shape's spatial size and channel count (tests use tiny sizes).

    Raises:
        ValueError: an unknown or unavailable ``device``, or ``scale`` not in (0, 1].

    Example:
        >>> import tempfile, pathlib
        >>> p = calibrate(quick=True, scale=0.1, path=pathlib.Path(tempfile.mkdtemp()) / "p.json")
        >>> p.name, all(rate > 0 for rate in p.rates.values()), p.bandwidth > 0
        ('calibrated-cpu', True, True)
    """
    try:
        device = torch.device(device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError, TypeError) as e:
        raise ValueError(f"device must be 'cpu' or an available 'cuda[:N]', got {device!r} ({e})") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {str(device)!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
        raise ValueError(f"scale must be a number in (0, 1], got {scale!r}")
    bench = _Bench(device, quick, scale)
    steps = bench.steps()
    results: dict[str, float] = {}
    for i, (name, run) in enumerate(steps):
        if progress is not None:
            progress(name, i, len(steps))
        results[name] = run()
    if progress is not None:
        progress("done", len(steps), len(steps))
    profile = DeviceProfile(
        name=f"calibrated-{device.type}",
        description=_machine(device),
        source=f"measured by onebyone calibrate{' --quick' if quick else ''} on "
        f"{time.strftime('%Y-%m-%d')}",
        rates={k: results[k] for k in ("conv1x1", "conv", "depthwise", "gemm", "elementwise", "pool")},
        bandwidth=results["copy bandwidth"],
        overhead_s=results["per-op overhead"],
        rates_16bit={"gemm": results["gemm16"]} if "gemm16" in results else {},
        cache_bytes=bench.cache,
        cache_bandwidth=bench.cache_bandwidth if bench.cache else 0.0,
    )
    if save:
        save_profile(profile, default_profile_path() if path is None else path)
    return profile
