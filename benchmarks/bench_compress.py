"""Compress a VGG-style network trained on the bundled MNIST with ``decompose(budget=...)``.

Prints, in one run: MACs and params before and after, the measured CPU latency at batch 1 and
batch 8 (medians of interleaved repeats, original and compressed alternating), and the test
accuracy before compression, right after it, and after one epoch of fine-tuning.
Target (issue 5): at least 1.5x measured CPU speedup at no more than 1 point of accuracy lost
after a one-epoch fine-tune.

    .venv/bin/python benchmarks/bench_compress.py   # train 3 epochs; tucker2 and reduce at budget 0.5
    .venv/bin/python benchmarks/bench_compress.py --methods reduce --budget 0.4 --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from onebyone._timing import median_seconds
from onebyone.data import load
from onebyone.surgery import decompose
from onebyone.train import evaluate, fit


def vgg_mnist(width: int = 32, num_classes: int = 10) -> nn.Sequential:
    """A small VGG: 3x3 conv stacks with max pooling, then a two-layer fully-connected head."""
    w = width

    def conv(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *conv(1, w), *conv(w, 2 * w), nn.MaxPool2d(2),  # N x 2w x 14 x 14
        *conv(2 * w, 4 * w), *conv(4 * w, 4 * w), nn.MaxPool2d(2),  # N x 4w x 7 x 7
        *conv(4 * w, 8 * w), *conv(8 * w, 8 * w), nn.MaxPool2d(2),  # N x 8w x 3 x 3
        nn.Flatten(), nn.Linear(8 * w * 9, 256), nn.ReLU(inplace=True), nn.Dropout(0.3), nn.Linear(256, num_classes),
    )


def interleaved_latency(a: nn.Module, b: nn.Module, shape: tuple[int, ...], rounds: int) -> tuple[float, float]:
    """Median ms of ``a`` and ``b`` on a random input, measured in alternation."""
    x = torch.randn(shape)
    times_a, times_b = [], []
    with torch.inference_mode():
        for _ in range(rounds):
            times_a.append(median_seconds(lambda: a(x), warmup=2, repeats=5))
            times_b.append(median_seconds(lambda: b(x), warmup=2, repeats=5))
    return 1000 * statistics.median(times_a), 1000 * statistics.median(times_b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="training epochs before compression")
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--methods", default="tucker2,reduce", help="comma-separated: tucker2, reduce")
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    train, test = load("mnist5k", split="train"), load("mnist5k", split="test")
    model = vgg_mnist(args.width)
    start = time.perf_counter()
    fit(model, train, test, epochs=args.epochs, batch_size=64, lr=0.05, quiet=True, device="cpu", channels_last=False)
    train_s = time.perf_counter() - start
    model.eval()
    acc_before = evaluate(model, test, device="cpu")["accuracy"]

    results = {
        "machine": f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "model": f"vgg_mnist(width={args.width}), trained {args.epochs} epochs ({train_s:.0f} s) on mnist5k",
        "accuracy_before": acc_before,
        "budget": args.budget,
        "runs": [],
    }
    example = torch.randn(1, 1, 28, 28)
    for method in args.methods.split(","):
        start = time.perf_counter()
        small, report = decompose(model, method=method, budget=args.budget, round_to=args.round_to,
                                  example_input=example)
        decompose_s = time.perf_counter() - start
        small.eval()
        acc_after = evaluate(small, test, device="cpu")["accuracy"]
        b1 = interleaved_latency(model, small, (1, 1, 28, 28), args.rounds)
        b8 = interleaved_latency(model, small, (8, 1, 28, 28), args.rounds)
        fit(small, train, test, epochs=1, batch_size=64, lr=0.005, schedule="constant", quiet=True, device="cpu",
            channels_last=False)
        small.eval()
        acc_tuned = evaluate(small, test, device="cpu")["accuracy"]
        print(report.to_text())
        print()
        run = {
            "method": method,
            "decompose_seconds": round(decompose_s, 2),
            "params": [report.params_before, report.params_after],
            "macs": [report.macs_before, report.macs_after],
            "macs_ratio": round(report.macs_before / report.macs_after, 3),
            "latency_ms_b1": [round(v, 3) for v in b1],
            "latency_ms_b8": [round(v, 3) for v in b8],
            "speedup_b1": round(b1[0] / b1[1], 3),
            "speedup_b8": round(b8[0] / b8[1], 3),
            "accuracy_after_compress": acc_after,
            "accuracy_after_finetune_1_epoch": acc_tuned,
        }
        run["target_met"] = bool(min(run["speedup_b1"], run["speedup_b8"]) >= 1.5 and acc_before - acc_tuned <= 0.01)
        results["runs"].append(run)
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
