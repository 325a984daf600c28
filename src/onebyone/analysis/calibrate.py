"""``onebyone.calibrate``: measure this machine's rates into a device profile.

It times, on the chosen device with the configured threads: the per-op overhead (a tiny
in-place add), the copy bandwidth (a large ``copy_``, bytes read plus written), a float32 GEMM,
convolutions by class at representative shapes (1x1, 3x3, depthwise 3x3) and an elementwise
op, and (on CUDA) the 16-bit GEMM. Each rate is FLOPs / (median time - overhead), the same
split the roofline model uses. The profile is saved atomically: a calibration that fails or is
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
    repeats = 5 if quick else 15

    def size(n: int, minimum: int = 4) -> int:
        return max(minimum, int(n * scale))

    steps: list[tuple[str, Callable[[], float]]] = []
    tiny = torch.zeros(1, device=device)
    overhead_box: list[float] = []

    def overhead() -> float:
        t = _median_time(lambda: tiny.add_(1.0), device, repeats, inner=200)
        overhead_box.append(t)
        return t

    def rate_of(*makes: Callable[[], tuple[Callable[[], object], int]]) -> Callable[[], float]:
        # Several shapes per class: the rate is their total FLOPs over their total time, so a
        # shape that happens to fit the cache does not stand for the whole class.
        def run() -> float:
            flops = seconds = 0.0
            for make in makes:
                fn, f = make()
                t = _median_time(fn, device, repeats)
                flops += f
                seconds += max(t - overhead_box[0], t * 0.05)
            return flops / seconds

        return run

    numel = size(8 << 20 if quick else 32 << 20, 1 << 14)
    src = torch.empty(0, device=device)
    dst = torch.empty(0, device=device)

    def bandwidth() -> float:
        nonlocal src, dst
        src = torch.randn(numel, device=device)
        dst = torch.empty_like(src)
        t = _median_time(lambda: dst.copy_(src), device, repeats)
        src = dst = torch.empty(0, device=device)
        return 2 * numel * 4 / max(t - overhead_box[0], t * 0.05)

    def gemm_case(dtype=torch.float32):
        n = size(384 if quick else 1024, 16)
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        return (lambda: a @ b), 2 * n**3

    def elementwise_case():
        x = torch.randn(size(1 << 16, 64), device=device)
        return (lambda: torch.relu(x)), x.numel()

    # (spatial size, channels) as in the stages of a ResNet at 224x224
    stages = [(28, 128), (14, 256)] if quick else [(56, 64), (28, 128), (14, 256), (7, 512)]

    def convs(k: int, depthwise: bool = False):
        return [
            (lambda s=s, c=c: _conv_case(device, 1, size(c), size(s), size(c), k, size(c) if depthwise else 1))
            for s, c in stages
        ]

    steps = [
        ("per-op overhead", overhead),
        ("copy bandwidth", bandwidth),
        ("gemm", rate_of(gemm_case)),
        ("conv1x1", rate_of(*convs(1))),
        ("conv", rate_of(*convs(3))),
        ("depthwise", rate_of(*convs(3, depthwise=True))),
        ("elementwise", rate_of(elementwise_case)),
    ]
    if device.type == "cuda":
        steps.append(("gemm16", rate_of(lambda: gemm_case(torch.float16))))
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
        rates={k: results[k] for k in ("conv1x1", "conv", "depthwise", "gemm", "elementwise")},
        bandwidth=results["copy bandwidth"],
        overhead_s=results["per-op overhead"],
        rates_16bit={"gemm": results["gemm16"]} if "gemm16" in results else {},
    )
    if save:
        save_profile(profile, default_profile_path() if path is None else path)
    return profile
