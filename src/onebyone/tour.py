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

Every number the tour prints comes with a line that derives it by hand (``3*3*3*512 + 512 =
14,336``), and everything fits the console's width (80 columns included): text is wrapped
between words, pictures are laid out in as many rows as the width needs.

``quick=True`` skips the training (steps 6 and 7 then use untrained weights / are skipped).
"""

from __future__ import annotations

import math
import re
import textwrap
from typing import Any

import torch
from torch import nn

__all__ = ["run_tour"]

_SHADES = " .:-=+*#%@"
_NBSP = "\u00a0"  # textwrap breaks only at ASCII whitespace
_GROUP = re.compile(r"\([^()]{1,30}\)")  # a short parenthesised group: a shape, a sum
_UNIT = re.compile(r"\d (?:B|KB|MB|GB)\b")  # a size and its unit


def _ascii(maps: torch.Tensor) -> list[list[str]]:
    """Render each 2-D map as text rows, each map scaled to its own [0, 1]."""
    out = []
    for m in maps:
        lo, hi = float(m.min()), float(m.max())
        s = (m - lo) / (hi - lo) if hi > lo else torch.zeros_like(m)
        out.append(["".join(_SHADES[min(9, int(v * 9.999))] for v in row) for row in s.tolist()])
    return out


def _layer_params(report: Any, name: str) -> int:
    return int(report.by_name()[name].params)


def run_tour(*, quick: bool = False, console: Any = None, seed: int = 0) -> dict[str, Any]:
    """Run the tour, print it, and return its key numbers.

    Args:
        quick: skip the training (a few seconds instead of about a minute or two).
        console: a ``rich.console.Console`` to print to (default: stdout); its width is kept.
        seed: seeds the random parts (filters of step 3, initialisations).

    Returns:
        A dict of the numbers the tour printed, e.g. ``result["tutorial_params"]``.

    Example:
        >>> import io
        >>> from rich.console import Console
        >>> out = run_tour(quick=True, console=Console(file=io.StringIO(), width=80))
        >>> out["tutorial_params"]
        [14336, 262656, 32832, 525312]
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console()
    steps = [_step_tutorial, _step_7x7, _step_cross_channel, _step_inception, _step_residual,
             _step_fc_to_conv, _step_compare]  # fmt: skip
    result: dict[str, Any] = {}
    # The bar is for terminals only: in a pipe or a file, stopping it around the training steps
    # would leave blank lines (and nothing would be erased anyway).
    progress = Progress(
        TextColumn("[bold]tour"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    )  # fmt: skip
    with progress:
        task = progress.add_task("tour", total=len(steps))
        for i, step in enumerate(steps, start=1):
            torch.manual_seed(seed)
            trains = not quick and step in (_step_fc_to_conv, _step_compare)
            if trains:  # the trainer shows its own progress bars
                progress.stop()
            if i > 1:
                console.print()  # one blank line between sections, always
            step(i, console, result, quick=quick, seed=seed)
            if trains:
                progress.start()
            progress.advance(task)
    return result


def _title(console: Any, i: int, text: str) -> None:
    # A rule as wide as the console; a title too long for it goes on its own wrapped lines.
    title = f"{i}. {text}"
    if len(title) + 6 <= console.width:
        console.rule(f"[bold]{title}", align="left")
    else:
        console.rule(style="dim")
        _say(console, title, style="bold")


def _wrap(text: str, width: int) -> list[str]:
    """Lines of ``text`` no wider than ``width``, broken between words only.

    A line that fits stays as it is (tables and pictures keep their spacing); a longer one is
    wrapped, its continuation lines indented two spaces past its own indent. A single word
    wider than ``width`` stays whole.

    >>> _wrap("  a bb ccc dddd", 8)
    ['  a bb', '    ccc', '    dddd']
    """
    lines = []
    for line in text.split("\n"):
        if len(line) <= width:
            lines.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        # A shape such as (1, 512, 256, 256) stays on one line: its spaces do not break.
        kept = _GROUP.sub(lambda m: m.group(0).replace(" ", _NBSP), line)
        kept = _UNIT.sub(lambda m: m.group(0).replace(" ", _NBSP), kept)
        wrapped = textwrap.wrap(
            kept, width=width, subsequent_indent=indent + "  ", break_long_words=False,
            break_on_hyphens=False,
        )  # fmt: skip
        lines.extend(w.replace(_NBSP, " ") for w in wrapped)
    return lines


def _say(console: Any, text: str = "", style: str | None = None) -> None:
    # Plain text: "[tutorial_base]" or "[ok: ...]" must print as written, not as rich markup.
    # We wrap (between words) ourselves, so rich is told not to wrap again.
    for line in _wrap(text, console.width):
        console.print(line, markup=False, highlight=False, soft_wrap=True, style=style)


def _n(value: int) -> str:
    return f"{value:,}"


def _step_tutorial(i: int, console: Any, result: dict, **_: Any) -> None:
    from onebyone.analysis import analyze
    from onebyone.analysis.render import format_shape, render_text
    from onebyone.models import create_model

    _title(console, i, "The tutorial's models: a 3x3 layer of 512 filters, then a 1x1 layer")
    _say(
        console,
        "Input: a 256x256 RGB image (3 channels). Counted on the meta device: no memory, no "
        "arithmetic. A layer's parameters are its weights (kernel height * width * input "
        "channels * filters) plus one bias per filter; its MACs (multiply-accumulates) are its "
        "weights times the output positions (256*256 here).",
    )
    names = {
        "tutorial_base": ("Conv2D(512, (3,3), padding='same') on 256x256x3", (3, 3, 512)),
        "tutorial_project": ("+ Conv2D(512, (1,1)): a projection, same number of maps", (1, 512, 512)),
        "tutorial_reduce": ("+ Conv2D(64, (1,1)): a reduction, 512 -> 64 maps", (1, 512, 64)),
        "tutorial_increase": ("+ Conv2D(1024, (1,1)): an increase, 512 -> 1024 maps", (1, 512, 1024)),
    }  # fmt: skip
    added = []
    for k, (name, (what, (kernel, c_in, filters))) in enumerate(names.items()):
        model = create_model(name)
        report = analyze(model, (1, 3, 256, 256))
        layer = "conv1" if k == 0 else "conv2"
        params = _layer_params(report, layer)
        macs = int(report.by_name()[layer].macs)
        added.append(params)
        _say(console, f"\n[{name}] {what}")
        if k in (0, 2):  # the first model and the reduction in full, Keras-style
            # counts only: every number here is derived by hand (times come in `summary`)
            text = render_text(report, channels_last=True, width=console.width, times=False)
            # The table and its parameter total, as Keras prints them; the rest is derived below.
            kept = []
            for line in text.splitlines():
                kept.append(line)
                if line.startswith("Total params"):
                    break
            _say(console, "\n".join(kept))
        out = report.by_name()[layer].output_shape
        _say(console, f"  {layer} params: {kernel}*{kernel}*{c_in}*{filters} + {filters} = {_n(params)}")
        _say(console, f"  {layer} MACs: 256*256*({kernel}*{kernel}*{c_in}*{filters}) = {_n(macs)}")
        _say(
            console,
            f"  {layer} output: Keras-style {format_shape(out, channels_last=True)}, "
            f"PyTorch-style {format_shape(out)}",
        )
        if k == 0:
            _say(console, f"  size: {_n(params)} params * 4 bytes (float32) = {_n(params * 4)} "
                          f"bytes; {_n(params * 4)} / 1024 = {params * 4 / 1024:.2f} KB")  # fmt: skip
    _say(console, "\nA 1x1 layer costs in_channels*filters + filters: the same formula with a 1x1 "
                  "kernel. It changes the number of maps, never their 256x256 size.")  # fmt: skip
    result["tutorial_params"] = added


def _step_7x7(i: int, console: Any, result: dict, **_: Any) -> None:
    from onebyone.analysis import analyze
    from onebyone.models import create_model

    _title(console, i, "7x7 conv with 64 filters on 512 maps, with and without a 1x1 reduction")
    direct = analyze(create_model("tutorial_7x7"), (1, 3, 256, 256))
    reduced = analyze(create_model("tutorial_7x7_reduced"), (1, 3, 256, 256))
    p_direct = _layer_params(direct, "conv2")
    p_1x1, p_7x7 = _layer_params(reduced, "conv2"), _layer_params(reduced, "conv3")
    m_direct = int(direct.by_name()["conv2"].macs)
    m_1x1, m_7x7 = int(reduced.by_name()["conv2"].macs), int(reduced.by_name()["conv3"].macs)
    m_reduced = m_1x1 + m_7x7
    _say(console, "7x7 on 512 maps:")
    _say(console, f"  params: 7*7*512*64 + 64 = {_n(p_direct)}")
    _say(console, f"  MACs: 256*256*(7*7*512*64) = {_n(m_direct)}")
    _say(console, "1x1 to 64 maps, then 7x7:")
    _say(console, f"  params: (1*1*512*64 + 64) + (7*7*64*64 + 64) = {_n(p_1x1)} + {_n(p_7x7)} "
                  f"= {_n(p_1x1 + p_7x7)}")  # fmt: skip
    _say(console, f"  MACs: 256*256*(1*1*512*64 + 7*7*64*64) = {_n(m_reduced)}")
    _say(console, f"-> {_n(p_direct)} / {_n(p_1x1 + p_7x7)} = {p_direct / (p_1x1 + p_7x7):.1f} "
                  f"times fewer parameters, {_n(m_direct)} / {_n(m_reduced)} = "
                  f"{m_direct / m_reduced:.1f} times fewer MACs.")  # fmt: skip
    _say(console, f"The tutorial says the direct 7x7 layer has \"about a million\" parameters: "
                  f"the exact count is {_n(p_direct)}, about {p_direct / 1e6:.1f} million, so the "
                  f"tutorial rounds down. Its \"about 200,000\" is the 7x7 layer after the "
                  f"reduction alone ({_n(p_7x7)}); with the 1x1 layer the total is "
                  f"{_n(p_1x1 + p_7x7)}.")  # fmt: skip
    result["7x7"] = {
        "direct": p_direct,
        "reduce_1x1": p_1x1,
        "conv_7x7": p_7x7,
        "reduced": p_1x1 + p_7x7,
        "macs_direct": m_direct,
        "macs_reduced": m_reduced,
    }


def _grid(console: Any, pictures: list[list[str]], labels: list[str], indent: str = "  ") -> None:
    """Print pictures side by side, each under its label, in as many rows as the width needs."""
    cell = max(max(len(r) for r in p) for p in pictures)
    cell = max(cell, *(len(label) for label in labels))
    gap = 2
    fit = max(1, (console.width - len(indent) + gap) // (cell + gap))
    rows = math.ceil(len(pictures) / fit)
    per_row = math.ceil(len(pictures) / rows)  # balanced: 6 pictures in 80 columns: 3 + 3
    for start in range(0, len(pictures), per_row):
        chunk = range(start, min(start + per_row, len(pictures)))
        if start:
            console.print()
        _say(console, (indent + (" " * gap).join(labels[j].ljust(cell) for j in chunk)).rstrip())
        for r in range(len(pictures[start])):
            line = (" " * gap).join(pictures[j][r].ljust(cell) for j in chunk)
            _say(console, (indent + line).rstrip())


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
    _say(console, f"A test digit {label} (1x28x28) goes through 50 random 5x5 filters (seeded, "
                  f"not trained: the maps are random features of the digit) and a ReLU: maps "
                  f"{tuple(maps.shape)}.")  # fmt: skip
    _say(console, f"{pool} groups the 50 maps in groups of 10: 50 / 10 = 5 maps, "
                  f"{tuple(pooled.shape)}.")  # fmt: skip
    _say(console, f"Each output point is the max over the same point of its group's 10 maps "
                  f"(equals reshape + amax: {same}); a 1x1 convolution would instead learn a "
                  f"weighted sum.")  # fmt: skip
    _say(console, "The digit and the 5 pooled maps, every other pixel (28 / 2 = 14 columns), "
                  "each scaled to its own range (' ' lowest, '@' highest):")  # fmt: skip
    view = torch.cat([x[:, ::2, ::2], pooled[0, :, ::2, ::2]], dim=0)
    labels = ["digit"] + [f"max maps {10 * g + 1}-{10 * g + 10}" for g in range(5)]
    _grid(console, _ascii(view), labels)
    result["cross_channel"] = {
        "in_maps": int(maps.shape[1]),
        "out_maps": int(pooled.shape[1]),
        "equals_reference": same,
    }


def _hand_count(block: nn.Module, positions: str) -> dict[str, Any]:
    """Derivations of a block's parameters and MACs from its layers' sizes alone.

    Returns the expressions (``"1*1*192*64 + ..."``) and their values: conv weights (and
    biases, if any), BatchNorm's two per-channel parameters (scale gamma, shift beta), MACs as
    the output positions times the conv weights (all the block's convs keep the map size).
    """
    terms, biases, bn = [], [], []
    weights = 0
    for m in block.modules():
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            terms.append(f"{kh}*{kw}*{m.in_channels // m.groups}*{m.out_channels}")
            weights += kh * kw * (m.in_channels // m.groups) * m.out_channels
            if m.bias is not None:
                biases.append(m.out_channels)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            bn.append(m.num_features)
    return {
        "weights_expr": " + ".join(terms), "weights": weights,
        "biases": sum(biases), "bn_expr": f"2*({' + '.join(map(str, bn))})", "bn": 2 * sum(bn),
        "positions": positions,
    }  # fmt: skip


def _say_hand_count(console: Any, name: str, hand: dict[str, Any], params: int, macs: int) -> None:
    h, w = (int(v) for v in hand["positions"].split("*"))
    _say(console, f"  {name} conv weights: {hand['weights_expr']} = {_n(hand['weights'])}")
    _say(console, f"  {name} BatchNorm (a scale and a shift per channel): {hand['bn_expr']} = "
                  f"{_n(hand['bn'])}")  # fmt: skip
    _say(console, f"  {name} params: {_n(hand['weights'])} + {_n(hand['bn'])} = {_n(params)}")
    _say(console, f"  {name} MACs: {h}*{w}*{_n(hand['weights'])} = {_n(macs)}")


def _step_inception(i: int, console: Any, result: dict, **_: Any) -> None:
    from onebyone.analysis import analyze
    from onebyone.blocks import Inception, NaiveInception

    _title(console, i, "Inception module (GoogLeNet 3a) on 28x28x192: naive vs 1x1 reductions")
    naive = NaiveInception(192, ch1x1=64, ch3x3=128, ch5x5=32)
    reduced = Inception(192, ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32, pool_proj=32)
    rn, rr = analyze(naive, (1, 192, 28, 28)), analyze(reduced, (1, 192, 28, 28))
    hn, hr = _hand_count(naive, "28*28"), _hand_count(reduced, "28*28")
    _say(console, "Parameters include BatchNorm: as in GoogLeNet's PyTorch version each conv has "
                  "no bias and is followed by a BatchNorm with a scale and a shift per channel. "
                  "MACs count the convs only.")  # fmt: skip
    _say(console, f"naive:   {rn.total_params:>9,} params  {rn.total_macs:>13,} MACs  depth "
                  f"{naive.out_channels}")  # fmt: skip
    _say(console, f"reduced: {rr.total_params:>9,} params  {rr.total_macs:>13,} MACs  depth "
                  f"{reduced.out_channels}")  # fmt: skip
    _say(console, "By hand:")
    _say_hand_count(console, "naive", hn, rn.total_params, rn.total_macs)
    _say(console, f"  naive depth (the pooled input last): 64 + 128 + 32 + 192 = {naive.out_channels}")
    _say_hand_count(console, "reduced", hr, rr.total_params, rr.total_macs)
    _say(console, f"  reduced depth (the pool projected): 64 + 128 + 32 + 32 = {reduced.out_channels}")
    _say(console, f"A count of conv weights plus one bias per filter, as if there were no "
                  f"BatchNorm, gives {_n(hn['weights'])} + (64 + 128 + 32) = "
                  f"{_n(hn['weights'] + 224)} for the naive module.")  # fmt: skip
    _say(console, f"-> {_n(rn.total_macs)} / {_n(rr.total_macs)} = "
                  f"{rn.total_macs / rr.total_macs:.1f} times fewer MACs, and the output depth no "
                  f"longer grows with the input (the pool branch is projected by a 1x1 "
                  f"convolution).")  # fmt: skip
    result["inception"] = {"naive_params": rn.total_params, "naive_macs": rn.total_macs,
                           "reduced_params": rr.total_params, "reduced_macs": rr.total_macs,
                           "naive_conv_weights": hn["weights"], "naive_bn": hn["bn"]}  # fmt: skip


def _step_residual(i: int, console: Any, result: dict, **_: Any) -> None:
    from onebyone.analysis import analyze
    from onebyone.blocks import BasicBlock, Bottleneck

    _title(console, i, "Residual blocks on 56x56: basic (3x3, 3x3), bottleneck (1x1, 3x3, 1x1)")
    basic, bottle = BasicBlock(64, 64), Bottleneck(256, 64)
    rb, rk = analyze(basic, (1, 64, 56, 56)), analyze(bottle, (1, 256, 56, 56))
    hb, hk = _hand_count(basic, "56*56"), _hand_count(bottle, "56*56")
    _say(console, "Parameters include BatchNorm (convs without bias, each followed by a "
                  "BatchNorm); MACs count the convs only.")  # fmt: skip
    _say(console, f"basic on 64 maps:       {rb.total_params:>8,} params  {rb.total_macs:>12,} MACs")
    _say(console, f"bottleneck on 256 maps: {rk.total_params:>8,} params  {rk.total_macs:>12,} MACs")
    _say(console, "By hand:")
    _say_hand_count(console, "basic", hb, rb.total_params, rb.total_macs)
    _say_hand_count(console, "bottleneck", hk, rk.total_params, rk.total_macs)
    _say(console, "-> the bottleneck handles 4 times more maps for about the same cost: its 1x1 "
                  "layers reduce 256 -> 64 and restore 64 -> 256 around the 3x3.")  # fmt: skip
    result["residual"] = {"basic_params": rb.total_params, "basic_macs": rb.total_macs,
                          "bottleneck_params": rk.total_params, "bottleneck_macs": rk.total_macs}  # fmt: skip


def _step_fc_to_conv(
    i: int, console: Any, result: dict, *, quick: bool = False, seed: int = 0, **_: Any
) -> None:
    from onebyone.data import load
    from onebyone.experiments import build_variant
    from onebyone.surgery import convolutionalize
    from onebyone.train import fit

    _title(console, i, "A fully-connected head as convolutions: a score map on a larger image")
    train, test = load("mnist5k", "train"), load("mnist5k", "test")
    model = build_variant("plain_5x5")
    if quick:
        _say(console, "(--quick: untrained weights; the shapes and the equivalence still hold)")
    else:
        _say(
            console,
            f"Training the 28x28 classifier (5x5 convs + Linear(3136, 128) + Linear(128, 10)) "
            f"for 2 epochs on the {len(train):,} bundled training digits:",
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
    n = scores.shape[-1]
    _say(console, "Two 2x2 max pools shrink 28x28 to 7x7 with 64 maps: 64*7*7 = 3,136 inputs of "
                  "the first Linear. Linear(3136, 128) becomes a 7x7 conv with 128 filters, "
                  "Linear(128, 10) a 1x1 conv with 10.")  # fmt: skip
    _say(console, f"Their logits at 28x28 agree with the original's within "
                  f"{report.output_error:.1e} (relative error, rounding only).")  # fmt: skip
    _say(console, f"On a 28x84 strip of the digits 7, 2, 1 the network returns a score map "
                  f"{tuple(scores.shape)}: the 7x7 head slides over the 7x21 map, one step is "
                  f"2*2 = 4 pixels, so (84 - 28)/4 + 1 = {n} positions.")  # fmt: skip
    _say(console, f"Best class at each of the {n} positions: " + " ".join(map(str, best)))
    at_digits = [best[0], best[7], best[14]]  # the windows that sit exactly on a digit
    _say(console, f"Position p reads pixels 4*p to 4*p + 27, so positions 0, 7, 14 sit exactly "
                  f"on the digits (4*7 = 28, 4*14 = 56): {at_digits} (true: [7, 2, 1]).")  # fmt: skip
    result["fc_to_conv"] = {
        "score_map": list(scores.shape), "scores": scores[0, :, 0].tolist(), "best": best,
        "at_digits": at_digits,
        "output_error": float(report.output_error),
    }  # fmt: skip


def _compare_table(report: Any) -> Any:
    """The comparison with exact MACs (each derivable by hand) and the batch-1 latency only."""
    return report.table(batch64=False, exact_macs=True)


def _step_compare(
    i: int, console: Any, result: dict, *, quick: bool = False, seed: int = 0, **_: Any
) -> None:
    from onebyone.experiments import compare

    _title(console, i, "A short compare: plain 5x5 convs vs NiN mlpconv, same data and budget")
    if quick:
        _say(console, "(--quick: skipped; run `onebyone compare` for the full comparison)")
        return
    report = compare(["plain_5x5", "nin_mlpconv"], epochs=1, seed=seed, device="cpu", latency=True)
    _say(console, "Trained for 1 epoch each, same data and seed; latency: one image at a time.")
    console.print(_compare_table(report))
    by_name = {v.name: v for v in report.variants}
    for v in report.variants:
        twin = by_name.get(v.twin) if v.twin else None
        if twin is None:
            continue
        _say(console, f"{v.name} vs {twin.name}: {_n(twin.macs)} / {_n(v.macs)} = "
                      f"{twin.macs / v.macs:.1f} times fewer MACs, {_n(twin.params)} / "
                      f"{_n(v.params)} = {twin.params / v.params:.1f} times fewer params; test "
                      f"accuracy {100 * v.accuracy:.2f}% vs {100 * twin.accuracy:.2f}%.")  # fmt: skip
    test_size = report.settings.get("test_size")
    on = f"the {test_size:,} bundled test digits" if test_size else "the bundled test digits"
    _say(console, f"Latency is the median time of one forward pass on this CPU; accuracy is on "
                  f"{on}. (1 epoch here; `onebyone compare` trains every variant longer.)")  # fmt: skip
    result["compare"] = report.to_dict()
