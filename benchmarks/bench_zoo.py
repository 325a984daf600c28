"""The seed's claim, measured: a 1x1 reduction before a large convolution cuts its cost.

Pairs, each timed in alternation in one run (medians of interleaved repeats):

- ``tutorial_7x7`` vs ``tutorial_7x7_reduced`` (a 7x7 conv with 64 filters on 512 maps,
  without and with a 1x1 reduction to 64 first);
- ``NaiveInception`` vs ``Inception`` with GoogLeNet's inception4a widths on its 480 x 14 x 14
  input.

For each model it prints parameters, MACs (counted from the convolutions' output shapes),
eval-mode CPU latency, the achieved GMAC/s and its fraction of the machine's ceiling (a large
fp32 matmul measured in the same run), and the latency ratio next to the MAC ratio.

    .venv/bin/python benchmarks/bench_zoo.py                # 64x64 tutorial input
    .venv/bin/python benchmarks/bench_zoo.py --size 256 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from onebyone._timing import median_seconds
from onebyone.blocks import Inception, NaiveInception
from onebyone.models import create_model


def conv_macs(model: nn.Module, x: torch.Tensor) -> int:
    total = 0

    def hook(module, args, out):
        nonlocal total
        kh, kw = module.kernel_size
        total += out.numel() // out.shape[0] * (module.in_channels // module.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        model(x[:1])
    for h in handles:
        h.remove()
    return total


def matmul_ceiling_gmacs(n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return n**3 / median_seconds(lambda: a @ b, warmup=2, repeats=7) / 1e9


def interleaved(models: dict[str, nn.Module], x: torch.Tensor, rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, model in models.items():
                times[name].append(median_seconds(lambda m=model: m(x), warmup=1, repeats=3))
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def report(title: str, models: dict[str, nn.Module], x: torch.Tensor, rounds: int, ceiling: float):
    for m in models.values():
        m.eval()
    ms = interleaved(models, x, rounds)
    print(f"\n{title}  (input {tuple(x.shape)})")
    print(f"{'model':<24}{'params':>12}{'MMACs':>10}{'ms':>10}{'GMAC/s':>9}{'% ceil':>8}")
    rows = []
    for name, model in models.items():
        macs = conv_macs(model, x)
        params = sum(p.numel() for p in model.parameters())
        rate = macs / (ms[name] / 1000) / 1e9
        rows.append((macs, ms[name]))
        print(
            f"{name:<24}{params:>12,}{macs / 1e6:>10.1f}{ms[name]:>10.2f}{rate:>9.1f}"
            f"{100 * rate / ceiling:>7.0f}%"
        )
    (m0, t0), (m1, t1) = rows
    print(f"MACs ratio {m0 / m1:.2f}x   latency ratio (measured) {t0 / t1:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=64, help="side of the tutorial models' input")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    ceiling = matmul_ceiling_gmacs()
    print(
        f"torch {torch.__version__}, {args.threads} threads; fp32 matmul ceiling {ceiling:.1f} GMAC/s"
    )

    tutorial = {n: create_model(n) for n in ("tutorial_7x7", "tutorial_7x7_reduced")}
    report("1x1 reduction before a 7x7 convolution", tutorial,
           torch.randn(1, 3, args.size, args.size), args.rounds, ceiling)  # fmt: skip

    widths = dict(ch1x1=192, ch3x3=208, ch5x5=48)  # inception4a
    blocks = {
        "NaiveInception(4a)": NaiveInception(480, **widths),
        "Inception(4a)": Inception(480, ch3x3red=96, ch5x5red=16, pool_proj=64, **widths),
    }
    report("Inception: naive vs 1x1 dimension reduction", blocks,
           torch.randn(1, 480, 14, 14), args.rounds, ceiling)  # fmt: skip


if __name__ == "__main__":
    main()
