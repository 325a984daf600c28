"""Slim trained networks to a target speedup (issue 20): compress by time, distil, evaluate.

Trains the compress benchmark's VGG-style net and resnet20 on the bundled MNIST (short runs),
then runs the ``slim`` pipeline (fold norms, ``decompose(speedup=..., pointwise=True)`` with
measured and cached layer times, distillation fine-tuning, evaluation) and prints the
before/after table: params, MACs, estimated and measured latency at batch 1 and 8, accuracy.
Targets: >= 2x measured at batch 1 and 8 for the VGG net, >= 2x at batch 8 and >= 1.5x at
batch 1 for resnet20, each at <= 1 point of test accuracy lost after <= 2 epochs of distillation.

Run under the shared lock with a fixed thread count:

    flock /tmp/onebyone-bench.lock .venv/bin/python benchmarks/bench_slim.py --threads 1
    .venv/bin/python benchmarks/bench_slim.py --models vgg --speedup 2.5 --method reduce
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from onebyone.data import load
from onebyone.models import create_model
from onebyone.surgery import load_weights
from onebyone.surgery._slim import slim
from onebyone.train import evaluate, fit

sys.path.insert(0, str(Path(__file__).parent))
from bench_compress import vgg_mnist


def build(name: str) -> tuple[torch.nn.Module, str, dict]:
    """The model, and the spec + kwargs that ``surgery.load`` rebuilds it from."""
    if name == "vgg":
        return vgg_mnist(32), f"{Path(__file__).parent / 'bench_compress.py'}:vgg_mnist", {"width": 32}
    kwargs = {"in_channels": 1, "num_classes": 10}
    return create_model("resnet20", **kwargs), "resnet20", kwargs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="vgg,resnet20")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs before slimming")
    parser.add_argument("--speedup", type=float, default=2.0)
    parser.add_argument("--method", default="reduce")
    parser.add_argument("--finetune", type=int, default=2)
    parser.add_argument("--lr", type=float, default=None, help="fine-tuning peak lr (AdamW, cosine; default: slim's)")
    parser.add_argument("--batch-size", type=int, default=None, help="fine-tuning batch size (default: slim's)")
    parser.add_argument("--calibration", type=int, default=None,
                        help="training samples the factors are fitted to (0: weight SVD; default: slim's)")
    parser.add_argument("--max-error", type=float, default=None,
                        help="decompose's cap on a layer's relative weight error (inf: none; default: slim's)")
    parser.add_argument("--round-to", type=int, default=None, help="decompose's rank granularity (default: slim's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    parser.add_argument("--estimate", action="store_true", help="choose ranks by the estimate, not measured times")
    parser.add_argument("--trained", default=None, help="folder to keep the trained weights in (reused if there)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, test = load("mnist5k", split="train"), load("mnist5k", split="test")
    results = {}
    options = {k: v for k, v in (("lr", args.lr), ("batch_size", args.batch_size), ("calibration", args.calibration),
                                           ("max_error", args.max_error), ("round_to", args.round_to))
               if v is not None}
    for name in args.models.split(","):
        torch.manual_seed(0)
        model, spec, kwargs = build(name)
        kept = Path(args.trained) / f"{name}-{args.epochs}.safetensors" if args.trained else None
        start = time.perf_counter()
        if kept is not None and kept.is_file():
            load_weights(model, kept)
        else:
            fit(model, train, test, epochs=args.epochs, batch_size=64, lr=0.05, quiet=True, device="cpu",
                channels_last=False)
            if kept is not None:
                kept.parent.mkdir(parents=True, exist_ok=True)
                save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(kept))
        trained_s = time.perf_counter() - start
        model.eval()
        acc = 100 * evaluate(model, test, device="cpu")["accuracy"]
        print(f"== {name}: trained {args.epochs} epochs ({trained_s:.0f} s), test accuracy {acc:.2f}%", flush=True)
        with tempfile.TemporaryDirectory() as out:
            for attempt in ("first", "second (cache)"):
                start = time.perf_counter()
                result = slim(
                    model, train, test, Path(out) / attempt.split()[0], speedup=args.speedup, method=args.method, measure=not args.estimate,
                    finetune_epochs=args.finetune if attempt == "first" else 0, log=lambda _: None,
                    base=spec, base_kwargs=kwargs, **options,
                )
                print(f"slim ({attempt} run, finetune {args.finetune if attempt == 'first' else 0}): "
                      f"{time.perf_counter() - start:.1f} s", flush=True)
                if attempt == "first":
                    print(result.to_text(), flush=True)
                    results[name] = result.to_dict()
                    print(f"folding the norms: {result.compress['fold_gain']:.2f}x; decompose asked for "
                          f"{result.compress['decompose_target']:.2f}x")
                    for note in (result.compress["decompose"] or {}).get("notes", []):
                        print(note)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
