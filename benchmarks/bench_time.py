"""Time estimates against measured runs: per-layer rank correlation, totals and pair speedups.

For each model and batch, ``analyze(..., measure=True)`` gives every row an estimated time (the
roofline on the device profile) and a measured one (median of real runs, the row's own time);
the benchmark reports:

- the Spearman rank correlation between estimated and measured time over the rows that run
  operators of their own (target >= 0.8, beyond: 0.9);
- the whole-model ratio estimate / measured (target within 1.5x both ways, beyond: 1.25x);
- for the pairs BENCHMARKS.md measured before (tutorial_7x7 vs its reduced twin, naive vs
  reduced Inception 4a, and a VGG on MNIST against its tucker2 and reduce compressions at half
  the MACs), the estimated speedup against the measured one (target within 25%);
- the analyzer's own time without ``measure`` (resnet50 at 8x3x512x512, target < 0.1 s).

Run it at a fixed thread count under the benchmark lock, after calibrating with the same
thread count::

    OMP_NUM_THREADS=1 flock /tmp/onebyone-bench.lock .venv/bin/python benchmarks/bench_time.py \\
        --threads 1 --calibrate --json benchmarks/results/bench_time.json
    .venv/bin/python benchmarks/bench_time.py --quick        # smoke run: small models, batch 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))

import onebyone
from onebyone.analysis import analyze, calibrate, resolve_profile
from onebyone.blocks import Inception, NaiveInception

# ---------------------------------------------------------------------------- MobileNetV2


def _conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, depthwise 3x3, 1x1 linear projection."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_channels * expand
        layers = [] if expand == 1 else [_conv_bn(in_channels, mid, 1)]
        layers += [_conv_bn(mid, mid, 3, stride, groups=mid), _conv_bn(mid, out_channels, 1, act=False)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


def mobilenet_v2(num_classes: int = 1000) -> nn.Module:
    """MobileNetV2 (width 1.0) as in Sandler et al. 2018: 3.50 M params, 300 M MACs at 224."""
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1)]  # fmt: skip
    layers: list[nn.Module] = [_conv_bn(3, 32, 3, 2)]
    c = 32
    for t, out, n, s in settings:
        for i in range(n):
            layers.append(InvertedResidual(c, out, s if i == 0 else 1, t))
            c = out
    layers.append(_conv_bn(c, 1280, 1))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                         nn.Linear(1280, num_classes))  # fmt: skip


def vgg_mnist(width: int = 32) -> nn.Sequential:
    """The compress benchmark's VGG (see bench_compress.py)."""
    from bench_compress import vgg_mnist as make

    return make(width)


# ---------------------------------------------------------------------------- statistics


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation with average ranks for ties."""

    def ranks(values: list[float]) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        order = np.argsort(values, kind="mergesort")
        r = np.empty(len(values))
        r[order] = np.arange(len(values), dtype=float)
        for v in np.unique(values):
            tie = values == v
            r[tie] = r[tie].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def model_run(name: str, model: nn.Module, shape: tuple[int, ...], profile, repeats: int, warmup: int) -> dict:
    model.eval()
    r = analyze(model, shape, device="cpu", device_profile=profile, measure=True, repeats=repeats, warmup=warmup)
    rows = [row for row in r.rows if row.op_costs and row.measured_time_s is not None]
    rho = spearman([row.est_time_s for row in rows], [row.measured_time_s for row in rows])
    worst = sorted(rows, key=lambda row: max(row.est_time_s, 1e-9) / max(row.measured_time_s, 1e-9))
    return {
        "model": name,
        "input": list(shape),
        "rows": len(rows),
        "spearman": rho,
        "est_ms": 1e3 * r.est_time_s,
        "measured_ms": 1e3 * r.measured_time_s,
        "ratio": r.est_time_s / r.measured_time_s,
        "under": [(w.name, w.type, w.bound, 1e3 * w.est_time_s, 1e3 * w.measured_time_s) for w in worst[:3]],
        "over": [(w.name, w.type, w.bound, 1e3 * w.est_time_s, 1e3 * w.measured_time_s) for w in worst[-2:]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--calibrate", action="store_true", help="calibrate first (saved as the default profile)")
    parser.add_argument("--profile", default=None, help="device profile (default: this machine's)")
    parser.add_argument("--quick", action="store_true", help="small models, batch 1, 2 repeats")
    parser.add_argument("--json", default=None, help="also write all results here (atomically)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.calibrate:
        t = time.perf_counter()
        calibrate("cpu")
        print(f"calibrated in {time.perf_counter() - t:.1f} s")
    profile = resolve_profile(args.profile)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); profile {profile.label}")
    print({k: f"{v / 1e9:.1f} GFLOP/s" for k, v in profile.rates.items()},
          f"bandwidth {profile.bandwidth / 1e9:.1f} GB/s, overhead {profile.overhead_s * 1e6:.2f} us")  # fmt: skip
    batches = [1] if args.quick else [int(b) for b in args.batches.split(",")]
    repeats = 2 if args.quick else args.repeats
    zoo = [("resnet18", (3, 224, 224)), ("resnet50", (3, 224, 224)), ("googlenet", (3, 224, 224)),
           ("vgg16", (3, 224, 224)), ("nin_cifar10", (3, 32, 32)), ("tutorial_base", (3, 256, 256)),
           ("tutorial_project", (3, 256, 256)), ("tutorial_reduce", (3, 256, 256)),
           ("tutorial_increase", (3, 256, 256)), ("tutorial_7x7", (3, 64, 64)),
           ("tutorial_7x7_reduced", (3, 64, 64))]  # fmt: skip
    if args.quick:
        zoo = [("nin_cifar10", (3, 32, 32)), ("tutorial_7x7_reduced", (3, 64, 64))]
    results: dict = {"threads": torch.get_num_threads(), "profile": profile.to_dict(), "models": [], "pairs": []}

    print("\nper model: Spearman(est, measured) over rows with their own ops; total est / measured")
    print(f"{'model':<22}{'batch':>6}{'rows':>6}{'rho':>7}{'est ms':>10}{'meas ms':>10}{'est/meas':>10}")
    models = [(n, lambda n=n: onebyone.create_model(n), s) for n, s in zoo]
    models.append(("mobilenet_v2", mobilenet_v2, (3, 224, 224)))
    for name, make, shape in models:
        for b in batches:
            warm = 1 if name == "vgg16" and b == 8 else args.warmup
            res = model_run(name, make(), (b, *shape), profile, min(repeats, 3) if name == "vgg16" else repeats, warm)
            res["batch"] = b
            results["models"].append(res)
            print(f"{name:<22}{b:>6}{res['rows']:>6}{res['spearman']:>7.3f}{res['est_ms']:>10.2f}"
                  f"{res['measured_ms']:>10.2f}{res['ratio']:>10.2f}")  # fmt: skip
            for tag in ("under", "over"):
                worst = "; ".join(f"{n} {t} {bd} {e:.2f}/{m:.2f} ms" for n, t, bd, e, m in res[tag])
                print(f"    most {tag}estimated: {worst}")

    widths = dict(ch1x1=192, ch3x3=208, ch5x5=48)
    pairs = [
        ("tutorial_7x7 -> reduced", lambda: onebyone.create_model("tutorial_7x7"),
         lambda: onebyone.create_model("tutorial_7x7_reduced"), (3, 64, 64)),
        ("NaiveInception(4a) -> Inception(4a)", lambda: NaiveInception(480, **widths),
         lambda: Inception(480, ch3x3red=96, ch5x5red=16, pool_proj=64, **widths), (480, 14, 14)),
    ]  # fmt: skip
    if not args.quick:
        from onebyone.surgery import decompose

        for method in ("tucker2", "reduce"):
            base = vgg_mnist().eval()
            small, _ = decompose(base, method=method, budget=0.5, round_to=8)
            pairs.append((f"vgg_mnist -> {method} (budget 0.5)", lambda base=base: base,
                          lambda small=small: small.eval(), (1, 28, 28)))  # fmt: skip
    print("\npairs: estimated vs measured speedup (target: within 25%)")
    for label, make_a, make_b, shape in pairs:
        for b in batches:
            ra = analyze(make_a().eval(), (b, *shape), device_profile=profile, measure=True, repeats=repeats,
                         warmup=args.warmup)  # fmt: skip
            rb = analyze(make_b().eval(), (b, *shape), device_profile=profile, measure=True, repeats=repeats,
                         warmup=args.warmup)  # fmt: skip
            est = ra.est_time_s / rb.est_time_s
            meas = ra.measured_time_s / rb.measured_time_s
            macs = ra.total_macs / rb.total_macs
            results["pairs"].append({"pair": label, "batch": b, "macs_ratio": macs, "est_speedup": est,
                                     "measured_speedup": meas, "error": est / meas - 1})  # fmt: skip
            print(f"{label:<38} b{b}: MACs {macs:.2f}x  est {est:.2f}x  measured {meas:.2f}x  "
                  f"error {100 * (est / meas - 1):+.0f}%")  # fmt: skip

    net = onebyone.create_model("resnet50")
    analyze(net, (8, 3, 512, 512))
    times = []
    for _ in range(7):
        t = time.perf_counter()
        analyze(net, (8, 3, 512, 512))
        times.append(time.perf_counter() - t)
    results["analyze_resnet50_8x512_s"] = statistics.median(times)
    print(f"\nanalyze(resnet50, 8x3x512x512) without measure: {1e3 * statistics.median(times):.1f} ms (median of 7)")
    if args.json:
        from onebyone._io import write_json_atomic

        print(f"wrote {write_json_atomic(args.json, results)}")


if __name__ == "__main__":
    main()
