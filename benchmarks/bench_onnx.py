"""ONNX: analysing resnet50's .onnx, exporting + verifying resnet50, onnxruntime vs eager latency.

How it measures:

* Each round runs in a fresh Python process, so the first call pays what a user's first call
  pays after ``import onebyone`` (the import itself is timed separately and not included).
* ``analyze first s``: ``onebyone.analyze("resnet50.onnx", (1, 3, 224, 224))``, the first
  call in the process; ``analyze warm s``: the median of 5 further calls.
* ``export+verify s``: ``onebyone.export_onnx(resnet50, (1, 3, 224, 224), path)`` with the
  default dynamic batch: dynamo export, constant folding, onnxruntime check at 1x3x224x224 and
  2x3x224x224 against PyTorch, atomic write. ``first`` includes building the exporter's
  operator registry (once per process); ``second`` is a further export in the same process.
* ``ort ms`` / ``eager ms``: median of 10 runs at batch 1 (``onebyone.onnx.profile``, and
  the PyTorch model in eval mode under ``torch.inference_mode``), after 3 warm-up runs.
* One intra-op thread everywhere (torch and onnxruntime); medians over the rounds.

    flock /tmp/onebyone-bench.lock .venv/bin/python benchmarks/bench_onnx.py [--rounds 3]

Needs the ``onnx`` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, statistics, sys, time
t0 = time.perf_counter()
import torch
import onebyone
from onebyone.onnx import analyze_onnx, export_onnx, profile
import onnx, onnxruntime  # the extra, imported up front like a user's script would
t_import = time.perf_counter() - t0
torch.set_num_threads(1)
folder = sys.argv[1]
model = onebyone.create_model("resnet50").eval()
size = (1, 3, 224, 224)
path = os.path.join(folder, "resnet50.onnx")
out = {"import_s": t_import}
t = time.perf_counter(); r = export_onnx(model, size, path); out["export_first_s"] = time.perf_counter() - t
out["exporter"] = r.exporter; out["max_rel_error"] = r.max_rel_error
t = time.perf_counter(); export_onnx(model, size, path); out["export_second_s"] = time.perf_counter() - t
t = time.perf_counter(); rep = analyze_onnx(path, size); out["analyze_first_s"] = time.perf_counter() - t
warm = []
for _ in range(5):
    t = time.perf_counter(); analyze_onnx(path, size); warm.append(time.perf_counter() - t)
out["analyze_warm_s"] = statistics.median(warm)
ref = onebyone.analyze(model, size)
out["params"] = [rep.total_params, ref.total_params]
out["macs"] = [rep.total_macs, ref.total_macs]
out["ort_ms"] = profile(path, size, repeats=10, warmup=3, threads=1).median_ms
x = torch.randn(size)
with torch.inference_mode():
    for _ in range(3):
        model(x)
    times = []
    for _ in range(10):
        t = time.perf_counter(); model(x); times.append(1000 * (time.perf_counter() - t))
out["eager_ms"] = statistics.median(times)
print("RESULT " + json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes (medians are quoted)")
    parser.add_argument("--json", help="also write the raw rounds to this file")
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    rounds = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, folder], capture_output=True, text=True, env=env, check=False
            )
        line = next((s for s in proc.stdout.splitlines() if s.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"round {i} failed:\n{proc.stderr[-3000:]}")
        rounds.append(json.loads(line[len("RESULT "):]))
        print(f"round {i}: {rounds[-1]}", flush=True)
    import onnxruntime
    import torch

    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1 thread; "
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; {args.rounds} rounds\n"
    )
    keys = ("import_s", "analyze_first_s", "analyze_warm_s", "export_first_s", "export_second_s", "ort_ms", "eager_ms")
    print("| " + " | ".join(keys) + " |")
    print("|" + "---:|" * len(keys))
    print("| " + " | ".join(f"{statistics.median(r[k] for r in rounds):.3g}" for k in keys) + " |")
    print(f"\nparams (onnx, torch): {rounds[0]['params']}; MACs: {rounds[0]['macs']}; "
          f"exporter {rounds[0]['exporter']}, max relative error {max(r['max_rel_error'] for r in rounds):.1e}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rounds, f, indent=2)


if __name__ == "__main__":
    main()
