"""analyze(mode="train"): its speed, and its peak-memory estimate against real CPU training steps.

How it measures:

* Speed: each round runs in a fresh process that has imported torch and onebyone and built
  resnet50 (one intra-op thread); it times the first ``analyze(..., mode="train")`` call at
  8x3x512x512 (what a user waits for after ``import``), then a forward-only ``analyze`` and a
  second train call. Medians over the rounds are quoted.
* Peak: a real CPU training step (``zero_grad``; the sum of the outputs as the loss;
  ``backward``; ``AdamW.step``), after a first step that creates the optimizer state, runs
  under a ``TorchDispatchMode`` that records every operator output's storage and, after each
  operator, sums the storages still alive (``StorageWeakRef``) plus the parameters, buffers,
  optimizer state and input. The peak of that sum is the measured peak of live tensor bytes
  (allocator overhead, kernel workspaces and Python objects are not tensors and not counted).

    flock /tmp/onebyone-bench.lock .venv/bin/python benchmarks/bench_train_cost.py
    ... bench_train_cost.py --rounds 5 --skip-peak
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys

SPEED_CHILD = r"""
import json, time, torch
torch.set_num_threads(1)
import onebyone
from onebyone.models import create_model
net = create_model("resnet50")
t = time.perf_counter(); onebyone.analyze(net, (8, 3, 512, 512), mode="train"); first = time.perf_counter() - t
t = time.perf_counter(); onebyone.analyze(net, (8, 3, 512, 512)); fwd = time.perf_counter() - t
t = time.perf_counter(); onebyone.analyze(net, (8, 3, 512, 512), mode="train"); warm = time.perf_counter() - t
print(json.dumps({"first": first, "forward": fwd, "warm": warm}))
"""

# (model, input size, kwargs): small enough for a real CPU step on a shared machine.
PEAK_CASES = [
    ("resnet18", (8, 3, 64, 64), {}),
    ("resnet50", (4, 3, 64, 64), {}),
    ("mobilenet_v2", (8, 3, 64, 64), {}),
    ("googlenet", (4, 3, 64, 64), {}),
    ("vgg16", (2, 3, 64, 64), {"hidden_features": 64}),
    ("nin_cifar10_bn", (16, 3, 32, 32), {}),
    ("resnet20", (32, 3, 32, 32), {}),
    ("tutorial_reduce", (2, 3, 64, 64), {}),
]


def speed(rounds: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = []
    for _ in range(rounds):
        out = subprocess.run(
            [sys.executable, "-c", SPEED_CHILD], capture_output=True, text=True, env=env, check=True
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def measured_peak(model, size, make_optimizer) -> int:
    import torch
    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._python_dispatch import TorchDispatchMode

    def loss_of(out):
        outs = [out] if isinstance(out, torch.Tensor) else [t for t in out if isinstance(t, torch.Tensor)]
        return sum(t.sum() for t in outs)

    real = copy.deepcopy(model).train()
    opt = make_optimizer(real.parameters())
    x = torch.randn(size)
    opt.zero_grad()
    loss_of(real(x)).backward()
    opt.step()
    known = {
        t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
        for t in (*real.parameters(), *real.buffers(), x)
    }
    for state in opt.state.values():
        for t in state.values():
            if isinstance(t, torch.Tensor):
                known[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    base = sum(known.values())

    class Live(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live, self.peak = {}, base

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor):
                    st = t.untyped_storage()
                    key = st.data_ptr()
                    if key in known:
                        continue
                    if key not in self.live or self.live[key][0].expired():
                        self.live[key] = (StorageWeakRef(st), st.nbytes())
            self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
            self.peak = max(self.peak, base + sum(n for _, n in self.live.values()))
            return out

    opt.zero_grad()
    with Live() as live:
        out = real(x)
        loss = loss_of(out)
        loss.backward()
        opt.step()
    return live.peak


def peaks() -> list[dict]:
    import torch

    import onebyone
    from onebyone.models import create_model

    torch.manual_seed(0)
    rows = []
    for name, size, kwargs in PEAK_CASES:
        model = create_model(name, **kwargs)
        est = onebyone.analyze(model, size, mode="train", optimizer="adamw").train_cost
        real = measured_peak(model, size, lambda p: torch.optim.AdamW(p))
        rows.append(
            {
                "model": name,
                "input": "x".join(map(str, size)),
                "estimate": est.peak_bytes,
                "measured": real,
                "error_pct": 100 * (est.peak_bytes - real) / real,
                "phase": est.peak_phase,
                "saved": est.saved_bytes,
            }
        )
        r = rows[-1]
        print(
            f"{name:16s} {r['input']:>12s}  est {r['estimate'] / 2**20:9.2f} MiB  "
            f"measured {r['measured'] / 2**20:9.2f} MiB  {r['error_pct']:+6.2f}%  "
            f"(peak in the {r['phase']}; saved {r['saved'] / 2**20:.2f} MiB)",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-peak", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    result = {"speed": speed(args.rounds)}
    s = result["speed"]
    print(
        f"resnet50 8x3x512x512, 1 thread, median of {args.rounds} fresh processes: "
        f"train first call {s['first']:.3f} s, forward {s['forward']:.3f} s, train warm {s['warm']:.3f} s"
    )
    if not args.skip_peak:
        import torch

        torch.set_num_threads(1)
        result["peak"] = peaks()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
