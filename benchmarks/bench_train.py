"""The trainer's overhead, measured: ``onebyone.train.fit`` vs a bare PyTorch training loop.

Same model (``nin_mlpconv`` from ``onebyone compare``), same 1,024 bundled MNIST digits, same
batch size, optimizer and learning rate. Each round times, in alternation:

- ``bare``: a minimal loop over tensor slices (forward, loss, backward, SGD step), the ceiling
  for any trainer on this model;
- ``dataloader``: the same loop fed by ``torch.utils.data.DataLoader`` (the usual peer);
- ``fit``: ``onebyone.train.fit(..., quiet=True)`` (sampler, lr schedule, metrics), NCHW;
- ``fit_cl``: the same with ``channels_last=True`` (fit's default).

It prints the median seconds per epoch over the rounds and each one's ratio to ``bare``.

    .venv/bin/python benchmarks/bench_train.py --rounds 5

``--checkpoint MODEL`` times instead what a checkpoint costs per epoch for a zoo model with
SGD momentum, in alternation: ``safetensors`` (two plain ``save_file`` calls, no sync: the
floor), ``save_checkpoint`` (epoch folder, fsync, SHA-256 of both files, state.json, one
rename, old folder removed) and ``load_checkpoint`` (schema, checksums, both state dicts).

    .venv/bin/python benchmarks/bench_train.py --checkpoint resnet20 --rounds 7
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from onebyone.data import load
from onebyone.experiments import build_variant
from onebyone.train import fit


def _bare(model, x, y, batch_size):
    opt = torch.optim.SGD(
        model.parameters(), lr=0.02, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    perm = torch.randperm(len(x))
    for i in range(0, len(x), batch_size):
        idx = perm[i : i + batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _dataloader(model, x, y, batch_size):
    opt = torch.optim.SGD(
        model.parameters(), lr=0.02, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    for xb, yb in DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _checkpoint(name: str, rounds: int) -> None:
    import tempfile
    from pathlib import Path

    from safetensors.torch import save_file

    from onebyone.models import create_model
    from onebyone.train import load_checkpoint, save_checkpoint

    def model_and_optimizer():
        torch.manual_seed(0)
        model = create_model(name)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model(torch.randn(2, *model.default_input_size[1:])).sum().backward()
        opt.step()  # fills the momentum buffers
        return model, opt

    model, opt = model_and_optimizer()
    other, other_opt = model_and_optimizer()
    momentum = {f"{k}.momentum_buffer": v["momentum_buffer"] for k, v in opt.state_dict()["state"].items()}
    params = sum(p.numel() for p in model.parameters())
    times: dict[str, list[float]] = {"safetensors": [], "save_checkpoint": [], "load_checkpoint": []}
    with tempfile.TemporaryDirectory(dir=".") as d:
        root = Path(d)
        for epoch in range(1, rounds + 2):  # the first round warms up and is dropped
            start = time.perf_counter()
            save_file(model.state_dict(), str(root / "m.safetensors"))
            save_file(momentum, str(root / "o.safetensors"))
            times["safetensors"].append(time.perf_counter() - start)
            start = time.perf_counter()
            save_checkpoint(root / "ck", model, opt, {"epoch": epoch, "metrics": {}})
            times["save_checkpoint"].append(time.perf_counter() - start)
            start = time.perf_counter()
            load_checkpoint(root / "ck", other, other_opt)
            times["load_checkpoint"].append(time.perf_counter() - start)
    base = statistics.median(times["safetensors"][1:])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {name} ({params:,} "
          f"parameters) + SGD momentum, {rounds} rounds (medians), folder under the current one")  # fmt: skip
    for key, ts in times.items():
        med = statistics.median(ts[1:])
        print(f"{key:16s} {1000 * med:8.1f} ms  x{med / base:.2f} of safetensors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--checkpoint", metavar="MODEL", help="time checkpoints of this zoo model")
    args = parser.parse_args()
    if args.checkpoint:
        _checkpoint(args.checkpoint, args.rounds)
        return
    data = load("mnist5k").subset(args.samples, seed=0)
    x, y = data.get_batch(range(len(data)))
    runners = {
        "bare": lambda m: _bare(m, x, y, args.batch_size),
        "dataloader": lambda m: _dataloader(m, x, y, args.batch_size),
        "fit": lambda m: fit(m, data, epochs=1, batch_size=args.batch_size, lr=0.02, quiet=True,
                             device="cpu", channels_last=False),
        "fit_cl": lambda m: fit(m, data, epochs=1, batch_size=args.batch_size, lr=0.02, quiet=True,
                                device="cpu", channels_last=True),
    }  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.rounds + 1):  # the first round warms up and is dropped
        for name, run in runners.items():
            torch.manual_seed(0)
            model = build_variant("nin_mlpconv")
            start = time.perf_counter()
            run(model)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["bare"][1:])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.samples} digits, "
          f"batch {args.batch_size}, {args.rounds} rounds (medians)")  # fmt: skip
    for name, ts in times.items():
        med = statistics.median(ts[1:])
        print(
            f"{name:12s} {med:7.3f} s/epoch  {args.samples / med:8.0f} img/s  x{med / base:.2f} of bare"
        )


if __name__ == "__main__":
    main()
