"""``onebyone tour``: the seeds' claims, computed for real, in the order the tutorial tells them.

1. The tutorial's four models and their Keras-style summaries (14,336 / 262,656 / 32,832 /
   525,312 parameters in the layers they add), shapes shown both Keras- and PyTorch-style.
2. The 7x7 convolution on 512 maps with and without a 1x1 reduction to 64 first.
3. Cross-channel max pooling of 50 feature maps into 5, on a real MNIST digit.
4. Naive vs reduced Inception module (GoogLeNet's inception 3a).
5. Basic vs bottleneck residual block (the ResNet paper's comparison).
6. A fully-connected head turned into convolutions: a digit classifier that reads a strip of
   three digits and returns a map of class scores.
7. A short ``compare``: a plain 5x5 network vs NiN-style mlpconv, trained on the bundled MNIST.

``quick=True`` skips the training (steps 6 and 7 then use untrained weights / are skipped).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["run_tour"]

_SHADES = " .:-=+*#%@"


def _ascii(maps: torch.Tensor) -> list[str]:
    """Render 2-D maps side by side as text, each scaled to its own [0, 1]."""
    rows = []
    scaled = []
    for m in maps:
        lo, hi = float(m.min()), float(m.max())
        scaled.append((m - lo) / (hi - lo) if hi > lo else torch.zeros_like(m))
    for r in range(maps.shape[1]):
        rows.append(
            "  ".join(
                "".join(_SHADES[min(9, int(v * 9.999))] for v in s[r].tolist()) for s in scaled
            )
        )
    return rows


def _layer_params(report: Any, name: str) -> int:
    return int(report.by_name()[name].params)


def run_tour(*, quick: bool = False, console: Any = None, seed: int = 0) -> dict[str, Any]:
    """Run the tour, print it, and return its key numbers.

    Args:
        quick: skip the training (a few seconds instead of about a minute or two).
        console: a ``rich.console.Console`` to print to (default: stdout).
        seed: seeds the random parts (filters of step 3, initialisations).

    Returns:
        A dict of the numbers the tour printed, e.g. ``result["tutorial_params"]``.

    Example:
        >>> import io
        >>> from rich.console import Console
        >>> out = run_tour(quick=True, console=Console(file=io.StringIO(), width=100))
        >>> out["tutorial_params"]
        [14336, 262656, 32832, 525312]
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console()
    steps = [_step_tutorial, _step_7x7, _step_cross_channel, _step_inception, _step_residual,
             _step_fc_to_conv, _step_compare]  # fmt: skip
    result: dict[str, Any] = {}
    progress = Progress(
        TextColumn("[bold]tour"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    )  # fmt: skip
    with progress:
        task = progress.add_task("tour", total=len(steps))
        for i, step in enumerate(steps, start=1):
            torch.manual_seed(seed)
            trains = not quick and step in (_step_fc_to_conv, _step_compare)
            if trains:  # the trainer shows its own progress bars
                progress.stop()
            step(i, console, result, quick=quick, seed=seed)
            if trains:
                progress.start()
            progress.advance(task)
    return result


def _title(console: Any, i: int, text: str) -> None:
    console.rule(f"[bold]{i}. {text}", align="left")


def _say(console: Any, text: str = "") -> None:
    # Plain text: "[tutorial_base]" or "[ok: ...]" must print as written, not as rich markup.
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _step_tutorial(i: int, console: Any, result: dict, **_: Any) -> None:
    from onebyone.analysis import analyze
    from onebyone.analysis.render import format_shape, render_text
    from onebyone.models import create_model

    _title(console, i, "The tutorial's models: a 3x3 layer of 512 filters, then a 1x1 layer")
    _say(
        console, "Input: a 256x256 RGB image. Counted on the meta device: no memory, no arithmetic."
    )
    names = {
        "tutorial_base": "Conv2D(512, (3,3), padding='same') on 256x256x3",
        "tutorial_project": "+ Conv2D(512, (1,1)): a projection, same number of maps",
        "tutorial_reduce": "+ Conv2D(64, (1,1)): a reduction, 512 -> 64 maps",
        "tutorial_increase": "+ Conv2D(1024, (1,1)): an increase, 512 -> 1024 maps",
    }
    added = []
    for k, (name, what) in enumerate(names.items()):
        model = create_model(name)
        report = analyze(model, (1, 3, 256, 256))
        layer = "conv1" if k == 0 else "conv2"
        params = _layer_params(report, layer)
        added.append(params)
        _say(console, f"\n[{name}] {what}")
        if k in (0, 2):  # the first model and the reduction in full, Keras-style
            _say(
                console,
                render_text(report, channels_last=True, width=console.width).split("\nMACs:")[0],
            )
        out = report.by_name()[layer].output_shape
        _say(
            console,
            f"  {layer}: {params:,} params; output Keras-style {format_shape(out, channels_last=True)}, "
            f"PyTorch-style {format_shape(out)}",
        )
    c_in = 512
    _say(console, f"\n1x1 layers cost in_channels*filters + filters: 512*512+512 = {c_in * 512 + 512:,}, "
                  f"512*64+64 = {c_in * 64 + 64:,}, 512*1024+1024 = {c_in * 1024 + 1024:,}.")  # fmt: skip
    result["tutorial_params"] = added


def _step_7x7(i: int, console: Any, result: dict, **_: Any) -> None:
    from onebyone.analysis import analyze
    from onebyone.models import create_model

    _title(
        console,
        i,
        "A 7x7 convolution with 64 filters on 512 maps, with and without a 1x1 reduction",
    )
    direct = analyze(create_model("tutorial_7x7"), (1, 3, 256, 256))
    reduced = analyze(create_model("tutorial_7x7_reduced"), (1, 3, 256, 256))
    p_direct = _layer_params(direct, "conv2")
    p_1x1, p_7x7 = _layer_params(reduced, "conv2"), _layer_params(reduced, "conv3")
    m_direct = direct.by_name()["conv2"].macs
    m_reduced = reduced.by_name()["conv2"].macs + reduced.by_name()["conv3"].macs
    _say(console, f"7x7 on 512 maps:        {p_direct:>10,} params   {m_direct:>16,} MACs")
    _say(console, f"1x1 to 64, then 7x7:    {p_1x1:,} + {p_7x7:,} = {p_1x1 + p_7x7:,} params   "
                  f"{m_reduced:>16,} MACs")  # fmt: skip
    _say(console, f"-> {p_direct / (p_1x1 + p_7x7):.1f}x fewer parameters and "
                  f"{m_direct / m_reduced:.1f}x fewer MACs. The tutorial's \"about a million\" is "
                  f"{p_direct:,}; its \"about 200,000\" is the 7x7 layer alone ({p_7x7:,}).")  # fmt: skip
    result["7x7"] = {
        "direct": p_direct,
        "reduce_1x1": p_1x1,
        "conv_7x7": p_7x7,
        "reduced": p_1x1 + p_7x7,
    }


def _step_cross_channel(i: int, console: Any, result: dict, *, seed: int = 0, **_: Any) -> None:
    from onebyone.data import load
    from onebyone.layers import CrossChannelPool

    _title(console, i, "Cross-channel max pooling: 50 feature maps -> 5, on a real MNIST digit")
    test = load("mnist5k", "test")
    x, label = test[int((test.labels == 3).nonzero()[0])]
    conv = nn.Conv2d(1, 50, kernel_size=5, padding=2)  # 50 maps, seeded filters
    with torch.no_grad():
        maps = torch.relu(conv(x.unsqueeze(0)))  # 1 x 50 x 28 x 28
        pool = CrossChannelPool(10, mode="max")
        pooled = pool(maps)  # 1 x 5 x 28 x 28
        reference = maps.reshape(1, 5, 10, 28, 28).amax(dim=2)
    same = torch.equal(pooled, reference)
    _say(
        console,
        f"digit {label}: conv 5x5 -> maps {tuple(maps.shape)}; {pool} -> {tuple(pooled.shape)}",
    )
    _say(console, "each output point is the max over the same point of 10 input maps "
                  f"(equals reshape + amax: {same}); a 1x1 convolution would instead learn a weighted sum.")  # fmt: skip
    _say(console, "The digit and the 5 pooled maps (every other pixel):")
    view = torch.cat([x[:, ::2, ::2], pooled[0, :, ::2, ::2]], dim=0)
    for line in _ascii(view):
        _say(console, "  " + line)
    result["cross_channel"] = {
        "in_maps": int(maps.shape[1]),
        "out_maps": int(pooled.shape[1]),
        "equals_reference": same,
    }


def _step_inception(i: int, console: Any, result: dict, **_: Any) -> None:
    from onebyone.analysis import analyze
    from onebyone.blocks import Inception, NaiveInception

    _title(console, i, "Inception module (GoogLeNet 3a) on 28x28x192: naive vs 1x1 reductions")
    naive = NaiveInception(192, ch1x1=64, ch3x3=128, ch5x5=32)
    reduced = Inception(192, ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32, pool_proj=32)
    rn, rr = analyze(naive, (1, 192, 28, 28)), analyze(reduced, (1, 192, 28, 28))
    _say(
        console,
        f"naive:   {rn.total_params:>9,} params  {rn.total_macs:>13,} MACs  output depth {naive.out_channels}",
    )
    _say(
        console,
        f"reduced: {rr.total_params:>9,} params  {rr.total_macs:>13,} MACs  output depth {reduced.out_channels}",
    )
    _say(console, f"-> {rn.total_macs / rr.total_macs:.1f}x fewer MACs, and the output depth no longer grows "
                  "with the input (the pool branch is projected by a 1x1 convolution).")  # fmt: skip
    result["inception"] = {"naive_params": rn.total_params, "naive_macs": rn.total_macs,
                           "reduced_params": rr.total_params, "reduced_macs": rr.total_macs}  # fmt: skip


def _step_residual(i: int, console: Any, result: dict, **_: Any) -> None:
    from onebyone.analysis import analyze
    from onebyone.blocks import BasicBlock, Bottleneck

    _title(console, i, "Residual blocks on 56x56: basic (3x3, 3x3) vs bottleneck (1x1, 3x3, 1x1)")
    basic, bottle = BasicBlock(64, 64), Bottleneck(256, 64)
    rb, rk = analyze(basic, (1, 64, 56, 56)), analyze(bottle, (1, 256, 56, 56))
    _say(
        console, f"basic on 64 maps:       {rb.total_params:>8,} params  {rb.total_macs:>12,} MACs"
    )
    _say(
        console, f"bottleneck on 256 maps: {rk.total_params:>8,} params  {rk.total_macs:>12,} MACs"
    )
    _say(console, "-> the bottleneck handles 4x more maps for about the same cost: its 1x1 layers "
                  "reduce 256 -> 64 and restore 64 -> 256 around the 3x3.")  # fmt: skip
    result["residual"] = {"basic_params": rb.total_params, "basic_macs": rb.total_macs,
                          "bottleneck_params": rk.total_params, "bottleneck_macs": rk.total_macs}  # fmt: skip


def _step_fc_to_conv(
    i: int, console: Any, result: dict, *, quick: bool = False, seed: int = 0, **_: Any
) -> None:
    from onebyone.data import load
    from onebyone.experiments import build_variant
    from onebyone.surgery import convolutionalize
    from onebyone.train import fit

    _title(
        console, i, "A fully-connected head turned into convolutions: a score map on a larger image"
    )
    train, test = load("mnist5k", "train"), load("mnist5k", "test")
    model = build_variant("plain_5x5")
    if quick:
        _say(console, "(--quick: untrained weights; the shapes and the equivalence still hold)")
    else:
        _say(
            console,
            "Training the 28x28 classifier (5x5 convs + Linear(3136, 128) + Linear(128, 10)) "
            "for 2 epochs on the 4,000 bundled training digits:",
        )
        fit(model, train, None, epochs=2, batch_size=32, lr=0.05, seed=seed, device="cpu")
    model.eval()
    conv_model, report = convolutionalize(model, (1, 28, 28))
    conv_model.eval()
    # A strip of three test digits side by side: 28 x 84.
    picks = [int((test.labels == d).nonzero()[0]) for d in (7, 2, 1)]
    strip = torch.cat([test[j][0] for j in picks], dim=2).unsqueeze(0)
    with torch.no_grad():
        scores = conv_model(strip)  # 1 x 10 x 1 x 15
    best = scores[0].argmax(dim=0)[0].tolist()
    _say(console, f"Linear(3136, 128) -> 7x7 conv, Linear(128, 10) -> 1x1 conv; logits at 28x28 agree "
                  f"within {report.output_error:.1e}.")  # fmt: skip
    _say(
        console,
        f"On a 28x84 strip of the digits 7, 2, 1 the network returns a score map {tuple(scores.shape)}:",
    )
    _say(
        console,
        "best class at each of the 15 horizontal positions (stride 4 px): "
        + " ".join(map(str, best)),
    )
    at_digits = [best[0], best[7], best[14]]  # the windows that sit exactly on a digit
    _say(
        console,
        f"read where the windows sit on the digits (positions 0, 7, 14): {at_digits} (true: [7, 2, 1])",
    )
    result["fc_to_conv"] = {
        "score_map": list(scores.shape), "best": best, "at_digits": at_digits,
        "output_error": float(report.output_error),
    }  # fmt: skip


def _step_compare(
    i: int, console: Any, result: dict, *, quick: bool = False, seed: int = 0, **_: Any
) -> None:
    from onebyone.experiments import compare

    _title(
        console, i, "A short compare: plain 5x5 convolutions vs NiN mlpconv, same data and budget"
    )
    if quick:
        _say(console, "(--quick: skipped; run `onebyone compare` for the full comparison)")
        return
    report = compare(["plain_5x5", "nin_mlpconv"], epochs=1, seed=seed, device="cpu", latency=True)
    console.print(report.table())
    for line in report.summary_lines(verdict=False):
        _say(console, line)
    _say(console, "(1 epoch here; `onebyone compare` trains every variant longer.)")
    result["compare"] = report.to_dict()
