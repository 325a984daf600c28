"""Channel operations beside what users use today, as ratios taken in one run.

In one process this script measures the machine's ceilings (matmul GFLOP/s, copy GB/s), then,
over a grid of shapes, times onebyone's ``ChannelProjection`` and ``CrossChannelPool`` and the
forms users reach for today:

* 1x1 projection: ``nn.Conv2d(kernel_size=1)`` on NCHW and on channels_last input,
  ``nn.Linear`` on a permuted input, ``torch.einsum``.
* cross-channel max pooling: reshape + ``amax``, the ``nn.MaxPool3d`` trick, ``einops.reduce``
  (when installed).

Forward (``no_grad``, real Parameters) and forward + backward (training: the input requires
grad, the backward gets a dense gradient). Before timing, every variant's output is checked
against ``nn.Conv2d`` (projection) or reshape + ``amax`` (pooling), so that all compute the same
thing. Variants are timed in interleaved repeats (one sample of each per round, in a seeded
shuffled order; a sample runs a variant enough times to last ``--min-sample`` seconds, the same
count for every variant of a shape), and the median of each is reported. The table shows the
fraction of the ceiling (from the medians) and ``peer time / our time`` (above 1: ours is
faster) as the median over rounds of the ratio within each round.

The ceilings are the best medians over a few sizes: square float GEMMs (matmul GFLOP/s) and
``copy_`` between two preallocated buffers (GB/s, bytes read + written). The run also records
``alloc_write_gbps``: writing a freshly allocated buffer of the same size, which includes the
operating system's page faults that a large fresh output tensor pays (glibc returns big blocks
to the OS on free; every peer pays this too). On Linux, PyTorch's ``THP_MEM_ALLOC_ENABLE=1``
(set before Python starts) backs large tensors with 2 MiB pages and makes those faults far
cheaper; the run records it and the kernel's huge-page mode.

    flock /tmp/onebyone-bench.lock python benchmarks/bench_channel_ops.py --json out.json
    THP_MEM_ALLOC_ENABLE=1 python benchmarks/bench_channel_ops.py --json out-thp.json
    python benchmarks/bench_channel_ops.py --quick --json /tmp/x.json   # smoke run
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from onebyone import ChannelProjection, CrossChannelPool
from onebyone._io import write_json_atomic

# (name, batch, in_channels, out_channels, height, width)
PROJECTION_GRID = [
    ("tutorial 256x256 512->64", 1, 512, 64, 256, 256),
    *[
        (f"{name} b{n}", n, cin, cout, hw, hw)
        for n in (1, 32)
        for name, cin, cout, hw in [
            ("resnet 56x56 256->64", 256, 64, 56),
            ("resnet 56x56 64->256", 64, 256, 56),
            ("googlenet 28x28 192->64", 192, 64, 28),
            ("googlenet 28x28 192->96", 192, 96, 28),
            ("googlenet 28x28 192->16", 192, 16, 28),
        ]
    ],
]
# (name, batch, channels, height, width, pool_size)
POOL_GRID = [
    ("seed 50->5 56x56 b32", 32, 50, 56, 56, 10),
    ("maxout 256->32 56x56 b32", 32, 256, 56, 56, 8),
    ("maxout 192->48 28x28 b32", 32, 192, 28, 28, 4),
    ("tutorial 512->64 256x256 b1", 1, 512, 256, 256, 8),
    ("maxout 256->32 56x56 b1", 1, 256, 56, 56, 8),
]
# --quick: two real grid shapes each (small ones), few repeats: a smoke run, not a record.
QUICK_PROJECTION_GRID = [PROJECTION_GRID[3], PROJECTION_GRID[10]]
QUICK_POOL_GRID = [POOL_GRID[2], POOL_GRID[4]]

LARGE_FLOPS = 1e9  # projection shapes at or above this count as "large" for the ceiling target
LARGE_BYTES = 32 * 2**20  # pooling inputs at or above this count as "large"


# ------------------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


#: Shuffles the order of every round; one generator for the whole run, so that each shape
#: gets its own sequence of orders and a run repeats exactly.
_ORDER_RNG = random.Random(0)

#: Each timed sample lasts at least this long (calls per sample are calibrated), so that
#: sub-millisecond shapes are not measured at the clock's and the scheduler's resolution.
MIN_SAMPLE_S = 0.05


def interleaved_samples(
    fns: dict[str, Callable[[], object]],
    *,
    repeats: int,
    warmup: int,
    device: torch.device,
    min_sample: float | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each function, one sample per round, ``repeats`` rounds.

    Each round takes one sample of every function in a fresh shuffled order (seeded, so runs
    repeat): a fixed or merely rotated order gives every function the same predecessor in every
    round, and what that predecessor leaves behind (caches, the allocator's free lists) then
    biases the comparison. A sample is ``calls`` back-to-back calls, with ``calls`` chosen once
    (from the fastest function's warm-up time) so that a sample lasts about ``min_sample``
    seconds, and the same for every function. Up to ``warmup`` untimed calls each (one when a
    call is long).
    """
    min_sample = MIN_SAMPLE_S if min_sample is None else min_sample
    sync = _sync(device)
    fastest = math.inf
    for fn in fns.values():
        for _ in range(warmup):
            start = time.perf_counter()
            fn()
            sync()
            took = time.perf_counter() - start
            fastest = min(fastest, took)
            if took > 2 * min_sample:
                break  # a call this long is warm after one run; keep the full run short
    calls = max(1, math.ceil(min_sample / max(fastest, 1e-7)))
    order = list(fns)
    times: dict[str, list[float]] = {k: [] for k in order}
    for _ in range(repeats):
        _ORDER_RNG.shuffle(order)
        for name in order:
            fn = fns[name]
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            sync()
            times[name].append((time.perf_counter() - start) / calls)
    return times


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    """The median of each function's samples."""
    return {k: statistics.median(v) for k, v in samples.items()}


def interleaved_medians(fns: dict[str, Callable[[], object]], **kwargs) -> dict[str, float]:
    """Median seconds per call of each function (see :func:`interleaved_samples`)."""
    return medians(interleaved_samples(fns, **kwargs))


def paired_ratio(samples: dict[str, list[float]], peer: str, ours: str) -> float:
    """Median over rounds of ``peer time / our time`` within the same round.

    Pairing by round cancels the machine's slow drifts (other users' load) that a ratio of two
    medians taken over different moments keeps.
    """
    return statistics.median(p / o for p, o in zip(samples[peer], samples[ours], strict=True))


# ------------------------------------------------------------------------------------ ceilings


def measure_ceilings(
    *, quick: bool, repeats: int, device: torch.device, dtype: torch.dtype, min_sample: float
) -> dict[str, float]:
    """Matmul GFLOP/s and copy GB/s (bytes read + written): the best median over a few sizes.

    Also ``alloc_write_gbps``: filling a freshly allocated buffer of the largest copy size
    (bytes written), which shows what page faults cost a large fresh output here.
    """
    gemm_sizes = (512, 1024) if quick else (1024, 2048)
    copy_mib = (8, 32) if quick else (32, 128)
    fns, flops, nbytes = {}, {}, {}
    for n in gemm_sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        fns[f"matmul{n}"] = lambda a=a, b=b: torch.mm(a, b)
        flops[f"matmul{n}"] = 2 * n**3
    esize = torch.empty((), dtype=dtype).element_size()
    for mib in copy_mib:
        src = torch.randn(mib * 2**20 // esize, device=device, dtype=dtype)
        dst = torch.empty_like(src)
        fns[f"copy{mib}"] = lambda src=src, dst=dst: dst.copy_(src)
        nbytes[f"copy{mib}"] = 2 * mib * 2**20
    numel = copy_mib[-1] * 2**20 // esize
    fns["alloc_write"] = lambda: torch.empty(numel, device=device, dtype=dtype).fill_(1)
    with torch.no_grad():
        t = interleaved_medians(
            fns, repeats=repeats, warmup=2, device=device, min_sample=min_sample
        )
    gflops = {k: v / t[k] / 1e9 for k, v in flops.items()}
    gbps = {k: v / t[k] / 1e9 for k, v in nbytes.items()}
    best_mm, best_copy = max(gflops, key=gflops.get), max(gbps, key=gbps.get)
    return {
        "matmul_gflops": gflops[best_mm],
        "copy_gbps": gbps[best_copy],
        "matmul_size": int(best_mm.removeprefix("matmul")),
        "copy_bytes": nbytes[best_copy] // 2,
        "matmul_gflops_by_size": gflops,
        "copy_gbps_by_size": gbps,
        "alloc_write_gbps": numel * esize / t["alloc_write"] / 1e9,
        "alloc_write_bytes": numel * esize,
    }


def _check_same(name: str, variants, reference: torch.Tensor, dtype: torch.dtype) -> None:
    """Every variant must compute the reference (else its time means nothing)."""
    tol = {"rtol": 2e-2, "atol": 5e-2} if dtype != torch.float32 else {"rtol": 1e-4, "atol": 1e-4}
    with torch.no_grad():
        for key, (f, t) in variants.items():
            try:
                torch.testing.assert_close(f(t), reference, check_stride=False, **tol)
            except AssertionError as e:
                raise RuntimeError(f"{name}: variant {key} differs from the reference: {e}") from e


# ---------------------------------------------------------------------------------- projection


def _projection_variants(n, cin, cout, h, w, device, dtype):
    conv = nn.Conv2d(cin, cout, 1).to(device=device, dtype=dtype)
    ours = ChannelProjection.from_conv(conv)  # same weights, no norm, no activation
    linear = nn.Linear(cin, cout).to(device=device, dtype=dtype)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.flatten(1))
        linear.bias.copy_(conv.bias)
    wein, bein = (
        nn.Parameter(conv.weight.detach().flatten(1).clone()),
        nn.Parameter(conv.bias.detach().clone()),
    )
    x = torch.randn(n, cin, h, w, device=device, dtype=dtype)
    xcl = x.contiguous(memory_format=torch.channels_last)
    variants = {
        "ours_nchw": (lambda t: ours(t), x),
        "conv_nchw": (lambda t: conv(t), x),
        "linear_perm": (lambda t: linear(t.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), x),
        "einsum": (lambda t: torch.einsum("oc,nchw->nohw", wein, t) + bein.view(1, -1, 1, 1), x),
        "ours_cl": (lambda t: ours(t), xcl),
        "conv_cl": (lambda t: conv(t), xcl),
    }
    params = [*conv.parameters(), *ours.parameters(), *linear.parameters(), wein, bein]
    return variants, params


def _forward_and_train_samples(variants, params, *, repeats, device, min_sample):
    """Interleaved per-round seconds of each variant ``(fn, input)``: forward in no_grad, then
    forward + backward from a fresh leaf copy of the input (``params``' grads reset each step)."""
    with torch.no_grad():
        fwd = interleaved_samples(
            {k: (lambda f=f, t=t: f(t)) for k, (f, t) in variants.items()},
            repeats=repeats,
            warmup=2,
            device=device,
            min_sample=min_sample,
        )
    train = {}
    for k, (f, t) in variants.items():
        xt = t.detach().clone(memory_format=torch.preserve_format).requires_grad_()
        grad = torch.randn_like(f(t.detach()).detach())

        def step(f=f, xt=xt, grad=grad):
            xt.grad = None
            for p in params:
                p.grad = None
            f(xt).backward(grad)

        train[k] = step
    fb = interleaved_samples(train, repeats=repeats, warmup=2, device=device, min_sample=min_sample)
    return fwd, fb


def bench_projection(grid, *, repeats, device, dtype, ceilings, log, min_sample):
    rows = []
    for name, n, cin, cout, h, w in grid:
        variants, params = _projection_variants(n, cin, cout, h, w, device, dtype)
        conv_fn, x = variants["conv_nchw"]
        with torch.no_grad():
            _check_same(name, variants, conv_fn(x), dtype)
        flops = 2 * n * cin * cout * h * w
        fwd, fb = _forward_and_train_samples(
            variants, params, repeats=repeats, device=device, min_sample=min_sample
        )
        for pass_name, samples, mult in (("forward", fwd, 1), ("forward+backward", fb, 3)):
            t = medians(samples)
            row = {
                "shape": name,
                "batch": n,
                "in_channels": cin,
                "out_channels": cout,
                "height": h,
                "width": w,
                "pass": pass_name,
                "flops": flops * mult,
                "large": flops >= LARGE_FLOPS,
                "seconds": t,
                "ours_nchw_gflops": mult * flops / t["ours_nchw"] / 1e9,
                "ours_cl_gflops": mult * flops / t["ours_cl"] / 1e9,
                "ceiling_fraction_nchw": mult
                * flops
                / t["ours_nchw"]
                / 1e9
                / ceilings["matmul_gflops"],
                "ceiling_fraction_cl": mult
                * flops
                / t["ours_cl"]
                / 1e9
                / ceilings["matmul_gflops"],
                "ratio_vs_conv_nchw": paired_ratio(samples, "conv_nchw", "ours_nchw"),
                "ratio_vs_linear_perm": paired_ratio(samples, "linear_perm", "ours_nchw"),
                "ratio_vs_einsum": paired_ratio(samples, "einsum", "ours_nchw"),
                "ratio_vs_conv_cl": paired_ratio(samples, "conv_cl", "ours_cl"),
            }
            rows.append(row)
            log(
                f"  {name:30s} {pass_name:17s} ours NCHW {t['ours_nchw'] * 1e3:8.2f} ms "
                f"x{row['ratio_vs_conv_nchw']:.2f} vs conv | CL {t['ours_cl'] * 1e3:8.2f} ms "
                f"x{row['ratio_vs_conv_cl']:.2f}"
            )
    return rows


# ------------------------------------------------------------------------------------- pooling


def _pool_variants(n, c, h, w, k, device, dtype):
    ours = CrossChannelPool(k)
    mp3 = nn.MaxPool3d((k, 1, 1))
    x = torch.randn(n, c, h, w, device=device, dtype=dtype)
    xcl = x.contiguous(memory_format=torch.channels_last)
    variants = {
        "ours_nchw": (lambda t: ours(t), x),
        "amax_nchw": (lambda t: t.unflatten(1, (c // k, k)).amax(2), x),
        "maxpool3d": (lambda t: mp3(t.unsqueeze(1)).squeeze(1), x),
        "ours_cl": (lambda t: ours(t), xcl),
        "amax_cl": (lambda t: t.unflatten(1, (c // k, k)).amax(2), xcl),
        "maxpool3d_cl": (lambda t: mp3(t.unsqueeze(1)).squeeze(1), xcl),
    }
    try:
        import einops
    except ImportError:
        pass
    else:
        pattern = "b (g k) h w -> b g h w"
        variants["einops"] = (lambda t: einops.reduce(t, pattern, "max", k=k), x)
    return variants


def bench_pool(grid, *, repeats, device, dtype, ceilings, log, min_sample):
    rows = []
    for name, n, c, h, w, k in grid:
        variants = _pool_variants(n, c, h, w, k, device, dtype)
        _, x = variants["amax_nchw"]
        _check_same(name, variants, x.unflatten(1, (c // k, k)).amax(2), dtype)
        esize = torch.empty((), dtype=dtype).element_size()
        nbytes = n * c * h * w * esize * (1 + 1 / k)  # read the input, write the output
        fwd, fb = _forward_and_train_samples(
            variants, (), repeats=repeats, device=device, min_sample=min_sample
        )
        for pass_name, samples in (("forward", fwd), ("forward+backward", fb)):
            t = medians(samples)
            row = {
                "shape": name,
                "batch": n,
                "channels": c,
                "height": h,
                "width": w,
                "pool_size": k,
                "pass": pass_name,
                "bytes": nbytes,
                "large": n * c * h * w * esize >= LARGE_BYTES,
                "seconds": t,
                "copy_fraction_nchw": nbytes / t["ours_nchw"] / 1e9 / ceilings["copy_gbps"],
                "copy_fraction_cl": nbytes / t["ours_cl"] / 1e9 / ceilings["copy_gbps"],
                "ratio_vs_amax_nchw": paired_ratio(samples, "amax_nchw", "ours_nchw"),
                "ratio_vs_maxpool3d": paired_ratio(samples, "maxpool3d", "ours_nchw"),
                "ratio_vs_einops": (
                    paired_ratio(samples, "einops", "ours_nchw") if "einops" in t else None
                ),
                "ratio_vs_amax_cl": paired_ratio(samples, "amax_cl", "ours_cl"),
                "ratio_cl_vs_maxpool3d": paired_ratio(samples, "maxpool3d_cl", "ours_cl"),
            }
            rows.append(row)
            log(
                f"  {name:30s} {pass_name:17s} ours NCHW {t['ours_nchw'] * 1e3:8.2f} ms "
                f"x{row['ratio_vs_maxpool3d']:.1f} vs MaxPool3d | CL {t['ours_cl'] * 1e3:8.2f} ms"
            )
    return rows


# ------------------------------------------------------------------------------------- targets


def _geomean(values):
    values = [v for v in values if v is not None and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def evaluate_targets(proj_rows, pool_rows, device):
    """Issue 7's targets, each with the measured value and whether it was met."""
    targets = []

    def add(name, value, threshold, met, detail=""):
        targets.append(
            {
                "target": name,
                "value": value,
                "threshold": threshold,
                "met": bool(met),
                "detail": detail,
            }
        )

    for fmt, key in (("NCHW", "ratio_vs_conv_nchw"), ("channels_last", "ratio_vs_conv_cl")):
        for pass_name in ("forward", "forward+backward"):
            rows = [r for r in proj_rows if r["pass"] == pass_name]
            worst = min(rows, key=lambda r: r[key])
            add(
                f"ChannelProjection >= 0.95x nn.Conv2d(k=1), {fmt}, {pass_name}, every shape",
                worst[key],
                0.95,
                worst[key] >= 0.95,
                f"worst: {worst['shape']}",
            )
    if device.type == "cpu":
        for pass_name in ("forward", "forward+backward"):
            g = _geomean([r["ratio_vs_conv_nchw"] for r in proj_rows if r["pass"] == pass_name])
            add(f"ChannelProjection geomean >= 1.3x conv on NCHW, {pass_name}", g, 1.3, g >= 1.3)
    for fmt, key in (("NCHW", "ceiling_fraction_nchw"), ("channels_last", "ceiling_fraction_cl")):
        for pass_name in ("forward", "forward+backward"):
            large = [r for r in proj_rows if r["large"] and r["pass"] == pass_name]
            if large:
                worst = min(large, key=lambda r: r[key])
                add(
                    f"ChannelProjection >= 60% of matmul ceiling on large shapes, {fmt}, {pass_name}",
                    worst[key],
                    0.6,
                    worst[key] >= 0.6,
                    f"worst: {worst['shape']}",
                )
    fwd_pool = [r for r in pool_rows if r["pass"] == "forward"]
    for fmt, key in (("NCHW", "copy_fraction_nchw"), ("channels_last", "copy_fraction_cl")):
        large = [r for r in fwd_pool if r["large"]]
        if large:
            worst = min(large, key=lambda r: r[key])
            add(
                f"CrossChannelPool forward >= 80% of copy ceiling on large inputs, {fmt}",
                worst[key],
                0.8,
                worst[key] >= 0.8,
                f"worst: {worst['shape']}",
            )
    for fmt, key in (("NCHW", "ratio_vs_maxpool3d"), ("channels_last", "ratio_cl_vs_maxpool3d")):
        worst = min(fwd_pool, key=lambda r: r[key])
        add(
            f"CrossChannelPool forward >= 10x the MaxPool3d trick, {fmt}",
            worst[key],
            10.0,
            worst[key] >= 10.0,
            f"worst: {worst['shape']}",
        )
    return targets


# ---------------------------------------------------------------------------------------- main


def _print_tables(result) -> None:
    from functools import partial

    from rich import box
    from rich.console import Console
    from rich.table import Table

    # Markdown tables: readable in a terminal and pasteable into BENCHMARKS.md as they are.
    Table = partial(Table, box=box.MARKDOWN)
    console = Console(width=max(Console().width, 200))
    m, c = result["machine"], result["ceilings"]
    console.print(
        f"Machine: {m['platform']}, {m['cpu_count']} CPUs, torch {m['torch']}, "
        f"{m['threads']} thread(s), {m['device']}, {m['dtype']}; {result['repeats']} interleaved "
        f"repeats (medians), samples >= {result['min_sample_s']} s"
        + (f"; {m['allocator_env']}" if m["allocator_env"] else "")
        + (f"; transparent huge pages: {m['thp_mode']}" if m["thp_mode"] else ""),
        highlight=False,
    )
    console.print(
        f"Ceilings: matmul {c['matmul_gflops']:.1f} GFLOP/s ({c['matmul_size']}^2 GEMM), "
        f"copy {c['copy_gbps']:.1f} GB/s (read + write, {c['copy_bytes'] // 2**20} MiB); "
        f"writing a fresh {c['alloc_write_bytes'] // 2**20} MiB allocation: "
        f"{c['alloc_write_gbps']:.1f} GB/s",
        highlight=False,
    )
    if result["quick"]:
        console.print("QUICK smoke run: two small shapes, few repeats; not a record.")
    t = Table(title="ChannelProjection (ratios: peer time / our time; >1 = ours faster)")
    for col in (
        "shape",
        "pass",
        "ours NCHW ms",
        "% matmul",
        "x conv NCHW",
        "x Linear(perm)",
        "x einsum",
        "ours CL ms",
        "% matmul CL",
        "x conv CL",
    ):
        t.add_column(col, justify="left" if col in ("shape", "pass") else "right")
    for r in result["projection"]:
        s = r["seconds"]
        t.add_row(
            r["shape"],
            r["pass"],
            f"{s['ours_nchw'] * 1e3:.2f}",
            f"{100 * r['ceiling_fraction_nchw']:.0f}%",
            f"{r['ratio_vs_conv_nchw']:.2f}",
            f"{r['ratio_vs_linear_perm']:.2f}",
            f"{r['ratio_vs_einsum']:.2f}",
            f"{s['ours_cl'] * 1e3:.2f}",
            f"{100 * r['ceiling_fraction_cl']:.0f}%",
            f"{r['ratio_vs_conv_cl']:.2f}",
        )
    console.print(t)
    t = Table(title="CrossChannelPool max (ratios: peer time / our time)")
    for col in (
        "shape",
        "pass",
        "ours NCHW ms",
        "% copy",
        "x amax",
        "x MaxPool3d",
        "x einops",
        "ours CL ms",
        "% copy CL",
        "x amax CL",
        "x MaxPool3d CL",
    ):
        t.add_column(col, justify="left" if col in ("shape", "pass") else "right")
    for r in result["pooling"]:
        s = r["seconds"]
        ein = r["ratio_vs_einops"]
        t.add_row(
            r["shape"],
            r["pass"],
            f"{s['ours_nchw'] * 1e3:.2f}",
            f"{100 * r['copy_fraction_nchw']:.0f}%",
            f"{r['ratio_vs_amax_nchw']:.2f}",
            f"{r['ratio_vs_maxpool3d']:.1f}",
            "-" if ein is None else f"{ein:.2f}",
            f"{s['ours_cl'] * 1e3:.2f}",
            f"{100 * r['copy_fraction_cl']:.0f}%",
            f"{r['ratio_vs_amax_cl']:.2f}",
            f"{r['ratio_cl_vs_maxpool3d']:.1f}",
        )
    console.print(t)
    t = Table(title="Targets (issue 7)")
    for col in ("target", "measured", "threshold", "met", "detail"):
        t.add_column(col)
    for g in result["targets"]:
        t.add_row(
            g["target"],
            f"{g['value']:.2f}",
            f"{g['threshold']:.2f}",
            "yes" if g["met"] else "NO",
            g["detail"],
        )
    console.print(t)


def _thp_mode() -> str | None:
    """The kernel's transparent-huge-page mode (the bracketed word), or None off Linux."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return None
    chosen = [w.strip("[]") for w in text.split() if w.startswith("[")]
    return chosen[0] if chosen else text.strip()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--json",
        "--out",
        dest="json",
        type=Path,
        default=None,
        help="write the full result (machine, ceilings, every time and ratio, targets) here, "
        "atomically",
    )
    parser.add_argument(
        "--quick", action="store_true", help="two small shapes each, 3 repeats: a smoke run"
    )
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--min-sample",
        type=float,
        default=None,
        help=f"seconds per timed sample (default {MIN_SAMPLE_S}; quick: 0.01)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: the 2 shared cores give the steadiest ratios)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--no-table", action="store_true", help="do not print the rich tables")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    if repeats < 1:
        parser.error(f"--repeats must be >= 1, got {repeats}")
    if args.min_sample is None:
        args.min_sample = 0.01 if args.quick else MIN_SAMPLE_S
    if not args.min_sample >= 0:
        parser.error(f"--min-sample must be >= 0, got {args.min_sample}")
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    log = (lambda s: None) if args.no_table else (lambda s: print(s, file=sys.stderr, flush=True))

    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device)
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "dtype": args.dtype,
        # What decides the cost of a fresh large output (see alloc_write_gbps): glibc's
        # MALLOC_* tunables, PyTorch's THP_MEM_ALLOC_ENABLE (2 MiB-aligned allocations with
        # madvise(MADV_HUGEPAGE), torch >= 2.2, read once at startup) and the kernel's mode.
        "allocator_env": {
            k: v
            for k, v in os.environ.items()
            if k.startswith("MALLOC_") or k == "THP_MEM_ALLOC_ENABLE"
        },
        "thp_mode": _thp_mode(),
    }
    log(
        f"machine: {machine['platform']}, {machine['cpu_count']} CPUs, torch {machine['torch']}, "
        f"{machine['threads']} thread(s), {machine['device']}, {args.dtype}; {repeats} "
        f"interleaved repeats, samples >= {args.min_sample} s"
        + (f"; {machine['allocator_env']}" if machine["allocator_env"] else "")
        + (f"; transparent huge pages: {machine['thp_mode']}" if machine["thp_mode"] else "")
        + ("; QUICK smoke run" if args.quick else "")
    )
    common = dict(repeats=repeats, device=device, dtype=dtype, min_sample=args.min_sample)
    ceilings = measure_ceilings(quick=args.quick, **common)
    log(
        f"ceilings: matmul {ceilings['matmul_gflops']:.1f} GFLOP/s, copy "
        f"{ceilings['copy_gbps']:.1f} GB/s, fresh-allocation write {ceilings['alloc_write_gbps']:.1f} GB/s"
    )
    proj_grid = QUICK_PROJECTION_GRID if args.quick else PROJECTION_GRID
    pool_grid = QUICK_POOL_GRID if args.quick else POOL_GRID
    proj_rows = bench_projection(proj_grid, ceilings=ceilings, log=log, **common)
    pool_rows = bench_pool(pool_grid, ceilings=ceilings, log=log, **common)
    result = {
        "benchmark": "channel_ops",
        "command": " ".join(["python", "benchmarks/bench_channel_ops.py", *(argv or sys.argv[1:])]),
        "machine": machine,
        "repeats": repeats,
        "min_sample_s": args.min_sample,
        "quick": args.quick,
        "ceilings": ceilings,
        "projection": proj_rows,
        "pooling": pool_rows,
        "targets": evaluate_targets(proj_rows, pool_rows, device),
    }
    if args.json is not None:
        write_json_atomic(args.json, result)
    if not args.no_table:
        _print_tables(result)
        print(f"wrote {args.json}" if args.json is not None else "no --json given: not saved")
    return result


if __name__ == "__main__":
    main()
