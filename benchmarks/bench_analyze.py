"""onebyone.analyze against torchinfo, fvcore, ptflops and thop: time, peak memory, MAC totals.

How it measures (what the numbers mean):

* Every measurement runs in its own fresh process, forked from a ``forkserver`` that has
  only *imported* torch, onebyone and the peers (no tensor work, so no thread pools are
  forked). The child builds the model, then times the tool's first call: what a user waits
  for after ``import``. ``warm s`` is the median of further calls in the same child.
* Peak memory is the child's peak resident set size during the first call minus its
  resident set just before it: the kernel's high-water mark (``VmHWM``) is reset to the
  current RSS through ``/proc/self/clear_refs`` right before the call. It covers
  everything the call touches (tensors, Python objects, code pages faulted in for the
  first time). ``tracemalloc`` would miss torch's tensor memory, and torch has no CPU
  allocator statistics, so RSS is the honest measure here.
* Tools are interleaved round-robin (the order rotates each round) and medians over the
  rounds are quoted. The machine is shared, so compare ratios taken in one run.
* MACs: ours are the multiply-accumulates of convolutions and matrix products, bias adds
  excluded (torchvision's convention). For each peer the script predicts its total from
  the same per-layer data under that peer's own convention (read from the peer's source,
  listed in ``CONVENTIONS``) and prints the difference to ours split into its parts, plus
  any residual the prediction does not explain.

Peers run a real forward on random inputs; onebyone counts on a meta copy of the model.

    flock /tmp/onebyone-bench.lock .venv/bin/python benchmarks/bench_analyze.py
    flock /tmp/onebyone-bench.lock .venv/bin/python benchmarks/bench_analyze.py --quick
    ... bench_analyze.py --json out/bench_analyze.json

Needs the ``bench`` extra (torchinfo, fvcore, ptflops, thop); missing peers are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import warnings

PEERS = ("torchinfo", "fvcore", "ptflops", "thop")
PEER_MODULES = {
    "torchinfo": "torchinfo",
    "fvcore": "fvcore.nn",
    "ptflops": "ptflops",
    "thop": "thop",
}

# What each peer adds to (or leaves out of) conv + matmul MACs, as read from its source
# (torchinfo 1.8 layer_info.calculate_macs, fvcore 0.1.5 jit_handles, ptflops 0.7.5
# pytorch_ops, thop 0.1.1 vision/basic_hooks + calc_func). `predict_peer` implements these.
CONVENTIONS = {
    "torchinfo": "conv bias: 1 per output element; any other module with parameters: "
    "batch x its parameter count (Linear: the bias per sample; BatchNorm: weight + bias per "
    "sample)",
    "fvcore": "BatchNorm in eval: 1 per element, 2 with affine; adaptive average pooling: 1 "
    "per input element; biases not counted",
    "ptflops": "conv and Linear bias adds; ReLU-type activations 1 per output element and "
    "pooling 1 per input element, each counted twice (the module hook, then the patched "
    "F.relu / F.max_pool2d... that the module calls); norms 1 per element, 2 with affine; "
    "`x + y` not counted",
    "thop": "norms 2 per element, 4 with affine; adaptive average pooling (window + 1) per "
    "output element; average pooling 1 per output element; biases not counted",
}


# ----------------------------------------------------------------------------- child side


def _rss_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return _rss_kb("VmHWM") <= _rss_kb("VmRSS") + 1024


def _tool_call(tool: str, model, shape: tuple[int, ...]):
    """Return a zero-argument callable that runs ``tool`` once and returns its MAC total."""
    import torch

    if tool == "onebyone":
        import onebyone

        return lambda: onebyone.analyze(model, shape).total_macs
    if tool == "torchinfo":
        import torchinfo

        return lambda: torchinfo.summary(model, input_size=shape, verbose=0).total_mult_adds
    if tool == "fvcore":
        from fvcore.nn import FlopCountAnalysis

        def run():
            fa = FlopCountAnalysis(model, torch.randn(*shape))
            fa.unsupported_ops_warnings(False)
            fa.uncalled_modules_warnings(False)
            return fa.total()

        return run
    if tool == "ptflops":
        from ptflops import get_model_complexity_info

        arg = next(iter(inspect.signature(model.forward).parameters))

        def run():
            macs, _ = get_model_complexity_info(
                model,
                shape[1:],
                as_strings=False,
                print_per_layer_stat=False,
                verbose=False,
                input_constructor=lambda _res: {arg: torch.randn(*shape)},
            )
            return macs

        return run
    if tool == "thop":
        import thop

        def run():
            macs, _ = thop.profile(model, inputs=(torch.randn(*shape),), verbose=False)
            # thop leaves total_ops/total_params buffers on every module; remove them so
            # that the next call starts from the same model.
            for m in model.modules():
                for name in ("total_ops", "total_params"):
                    m._buffers.pop(name, None)
            return macs

        return run
    raise ValueError(f"unknown tool {tool!r}")


def child(tool: str, model_name: str, shape: tuple[int, ...], repeats: int, threads: int) -> dict:
    import gc

    warnings.filterwarnings("ignore")
    import torch

    from onebyone.models import create_model

    torch.set_num_threads(threads)
    model = create_model(model_name).eval()
    call = _tool_call(tool, model, shape)
    gc.collect()
    reset_ok = _reset_peak()
    base = _rss_kb("VmRSS")
    start = time.perf_counter()
    with torch.no_grad():
        macs = call()
    first = time.perf_counter() - start
    peak_mb = (_rss_kb("VmHWM") - base) / 1024
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            call()
        warm.append(time.perf_counter() - start)
    return {
        "tool": tool,
        "macs": int(macs),
        "first_s": first,
        "warm_s": statistics.median(warm) if warm else first,
        "peak_mb": max(0.0, peak_mb) if reset_ok else float("nan"),
    }


def _job(conn, tool, model, shape, repeats, threads) -> None:
    try:
        # peers print notes (ptflops: "No positional inputs found..."); keep the table clean
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            result = child(tool, model, shape, repeats, threads)
        conn.send(result)
    except BaseException as e:  # report, never hang the parent
        conn.send({"tool": tool, "error": f"{type(e).__name__}: {e}"[:300]})
    finally:
        conn.close()


# ----------------------------------------------------------------------------- parent side


def run_child(ctx, tool: str, model: str, shape, repeats: int, threads: int, timeout: float):
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_job, args=(send, tool, model, tuple(shape), repeats, threads))
    proc.start()
    send.close()
    try:
        if recv.poll(timeout):
            result = recv.recv()
        else:
            proc.kill()
            result = {"tool": tool, "error": f"timeout after {timeout:.0f} s"}
    except EOFError:
        result = {"tool": tool, "error": "child died without a result (out of memory?)"}
    proc.join()
    return result


def measure(ctx, model: str, shape, tools, rounds: int, repeats: int, args) -> dict:
    runs: dict[str, list[dict]] = {t: [] for t in tools}
    for r in range(rounds):
        order = list(tools[r % len(tools) :]) + list(tools[: r % len(tools)])
        for tool in order:
            runs[tool].append(
                run_child(ctx, tool, model, shape, repeats, args.threads, args.timeout)
            )
    summary = {}
    for tool, results in runs.items():
        ok = [x for x in results if "error" not in x]
        if not ok:
            summary[tool] = {"error": results[0].get("error", "failed")}
            continue
        summary[tool] = {
            "macs": ok[0]["macs"],
            "first_s": statistics.median(x["first_s"] for x in ok),
            "warm_s": statistics.median(x["warm_s"] for x in ok),
            "peak_mb": statistics.median(x["peak_mb"] for x in ok),
            "rounds": len(ok),
        }
    return summary


def predict_peer(peer: str, model, report) -> dict[str, int]:
    """Split ``peer``'s expected total minus ours into named parts (see ``CONVENTIONS``).

    Uses the per-call rows of our report (types, shapes) and the modules themselves (bias,
    affine), one entry per leaf module call, as the peers' hooks see them.
    """
    from torch import nn

    parts: dict[str, int] = {}

    def add(key: str, value: int) -> None:
        if value:
            parts[key] = parts.get(key, 0) + int(value)

    for row in report.rows:
        if not row.is_leaf or not row.input_shapes or not isinstance(row.output_shape, tuple):
            continue
        m = model.get_submodule(row.name)
        n_in = math.prod(row.input_shapes[0])
        n_out = math.prod(row.output_shape)
        batch = row.output_shape[0]
        conv = isinstance(m, nn.modules.conv._ConvNd)
        norm = isinstance(m, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm))
        affine = bool(getattr(m, "affine", False) or getattr(m, "elementwise_affine", False))
        has_bias = getattr(m, "bias", None) is not None
        if peer == "torchinfo":
            if conv:
                add("conv bias", n_out if has_bias else 0)
            elif isinstance(m, nn.Linear):
                add("Linear bias", batch * m.out_features if has_bias else 0)
            else:
                own = sum(p.numel() for p in m.parameters(recurse=False))
                add(f"{type(m).__name__} params x batch", batch * own - row.macs)
        elif peer == "fvcore":
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                add("BatchNorm", n_in * (2 if affine else 1))
            elif isinstance(m, nn.AdaptiveAvgPool2d):
                add("adaptive avg pool", n_in)
        elif peer == "ptflops":
            if conv or isinstance(m, nn.Linear):
                add("bias adds", (n_out if has_bias else 0))
            elif isinstance(m, (nn.ReLU, nn.ReLU6, nn.PReLU, nn.ELU, nn.LeakyReLU, nn.GELU)):
                # once by the module hook, once more by the patched F.relu (etc.) inside it
                add("activations", n_out)
                add("activations again (patched functional)", n_out)
            elif isinstance(
                m,
                (
                    nn.modules.pooling._MaxPoolNd,
                    nn.modules.pooling._AvgPoolNd,
                    nn.modules.pooling._AdaptiveAvgPoolNd,
                    nn.modules.pooling._AdaptiveMaxPoolNd,
                ),
            ):
                add("pooling", n_in)
                add("pooling again (patched functional)", n_in)
            elif norm:
                add("norms", n_in * (2 if affine else 1))
        elif peer == "thop":
            if norm:
                add("norms", 2 * n_in * (2 if affine else 1))
            elif isinstance(m, nn.modules.pooling._AdaptiveAvgPoolNd):
                window = math.prod(row.input_shapes[0][2:]) / math.prod(row.output_shape[2:])
                add("adaptive avg pool", int((window + 1) * n_out))
            elif isinstance(m, nn.modules.pooling._AvgPoolNd):
                add("avg pool", n_out)
    return parts


def agreement(peer: str, peer_macs: int, ours: int, parts: dict[str, int]) -> str:
    if peer_macs == ours:
        return "yes"
    diff = peer_macs - ours
    residual = diff - sum(parts.values())
    split = ", ".join(f"{k} {v:+,}" for k, v in parts.items()) or "no known part"
    verdict = "fully explained" if residual == 0 else f"UNEXPLAINED residual {residual:+,}"
    return f"no, {diff:+,} = {split}: {verdict}"


def print_table(title: str, summary: dict, reasons: dict[str, str]) -> None:
    ours = summary.get("onebyone", {})
    print(f"\n{title}")
    print(
        f"{'tool':<11}{'first s':>9}{'warm s':>9}{'peak MB':>9}{'x ours':>8}"
        f"{'MACs':>17}  agrees with ours"
    )
    for tool, s in summary.items():
        if not isinstance(s, dict):
            continue
        if "error" in s:
            print(f"{tool:<11}  skipped: {s['error']}")
            continue
        ratio = s["first_s"] / ours["first_s"] if ours.get("first_s") else float("nan")
        agree = "(reference)" if tool == "onebyone" else reasons.get(tool, "?")
        print(
            f"{tool:<11}{s['first_s']:>9.3f}{s['warm_s']:>9.3f}{s['peak_mb']:>9.1f}"
            f"{ratio:>8.1f}{s['macs']:>17,}  {agree}"
        )


def _shape_str(shape) -> str:
    return "x".join(map(str, shape))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="warm calls inside each child")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small inputs, 1 round")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in each child")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per child")
    parser.add_argument("--json", default=None, help="also write all results here (atomically)")
    args = parser.parse_args()

    started = time.perf_counter()
    available = [t for t in PEERS if importlib.util.find_spec(t) is not None]
    tools = ("onebyone", *available)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["torch", "onebyone", "onebyone.models", *(PEER_MODULES[p] for p in available)]
    )

    warnings.filterwarnings("ignore")
    import torch

    import onebyone
    from onebyone.models import create_model

    if args.quick:
        rounds, repeats = 1, 0
        big, small = (1, 3, 128, 128), (1, 3, 64, 64)
        r152 = [(1, 3, 224, 224), (1, 3, 1024, 1024)]
    else:
        rounds, repeats = args.rounds, args.repeats
        big, small = (8, 3, 512, 512), (1, 3, 256, 256)
        r152 = [(1, 3, 224, 224), (1, 3, 512, 512), (1, 3, 1024, 1024), (64, 3, 4096, 4096)]
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        "torch": torch.__version__,
        "threads": args.threads,
        "rounds": rounds,
        "repeats": repeats,
        "quick": args.quick,
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "workloads": {},
    }
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.threads} threads per child; "
        f"medians of {rounds} interleaved round(s), a fresh process per measurement; "
        f"peers: {', '.join(available) or 'none installed'}"
        + (" [QUICK smoke run]" if args.quick else "")
    )

    workloads = [("resnet50", big)] + [
        (m, small)
        for m in ("tutorial_base", "tutorial_project", "tutorial_reduce", "tutorial_increase")
    ]
    for model_name, shape in workloads:
        title = f"{model_name} at {_shape_str(shape)}"
        summary = measure(ctx, model_name, shape, tools, rounds, repeats, args)
        model = create_model(model_name).eval()
        report = onebyone.analyze(model, shape)
        reasons = {}
        for peer in available:
            s = summary.get(peer, {})
            if "macs" in s:
                parts = predict_peer(peer, model, report)
                reasons[peer] = agreement(peer, s["macs"], report.total_macs, parts)
                s["agrees"] = reasons[peer]
                s["predicted_macs"] = report.total_macs + sum(parts.values())
        print_table(title, summary, reasons)
        real = [s["first_s"] for t, s in summary.items() if t != "onebyone" and "first_s" in s]
        if real and "first_s" in summary.get("onebyone", {}):
            speedup = min(real) / summary["onebyone"]["first_s"]
            print(f"fastest peer (all run a real forward) / onebyone, first call: {speedup:.1f}x")
            summary["speedup_vs_fastest_peer"] = speedup
        results["workloads"][title] = summary
    print("\nWhy totals differ, each peer's convention (read from its source):")
    for peer in available:
        print(f"  {peer}: {CONVENTIONS[peer]}")

    print("\nresnet152, onebyone only (targets: < 1 s after import; memory independent of input)")
    print(f"{'input':<16}{'first s':>9}{'warm s':>9}{'peak MB':>9}{'GMACs':>12}")
    for shape in r152:
        s = measure(ctx, "resnet152", shape, ("onebyone",), rounds, repeats, args)["onebyone"]
        key = f"resnet152 at {_shape_str(shape)}"
        results["workloads"][key] = {"onebyone": s}
        if "error" in s:
            print(f"{_shape_str(shape):<16}  {s['error']}")
            continue
        print(
            f"{_shape_str(shape):<16}{s['first_s']:>9.3f}{s['warm_s']:>9.3f}"
            f"{s['peak_mb']:>9.1f}{s['macs'] / 1e9:>12.1f}"
        )

    results["wall_s"] = time.perf_counter() - started
    print(f"\nwall time {results['wall_s']:.0f} s")
    if args.json:
        from onebyone._io import write_json_atomic

        print(f"wrote {write_json_atomic(args.json, results)}")


if __name__ == "__main__":
    main()
