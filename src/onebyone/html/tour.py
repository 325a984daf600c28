"""The tour page (:func:`tour_html`): each step of ``onebyone tour`` with its numbers and a picture.

The numbers are the ones :func:`onebyone.tour.run_tour` returns; the pictures are drawn from
the real modules: the weights of a real 1x1 convolution, the branches of the library's
Inception modules and residual blocks (channel counts read from their convolutions, MACs from
:func:`onebyone.analyze`), a real digit of the bundled MNIST through 50 seeded filters and
:class:`~onebyone.layers.CrossChannelPool`, and the layers of the convolutionalized head.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from onebyone.html._page import check_page_path, esc, fmt_count, page, render_or_bug, write_page
from onebyone.html._svg import figure, hbars, png_data_url

__all__ = ["tour_html"]

_HL = ' fill-opacity="0.5"'  # a highlighted cell: quoted, so a following "/>" still closes the tag


def _gray(m: torch.Tensor, hi: float | None = None) -> list[list[int]]:
    """A 2-D map scaled to 0-255 (by ``hi``, or its own range)."""
    lo = float(m.min()) if hi is None else 0.0
    top = float(m.max()) if hi is None else hi
    scaled = (m - lo) / (top - lo) if top > lo else torch.zeros_like(m)
    return (scaled.clamp(0, 1) * 255).round().to(torch.uint8).tolist()


def _image(x: float, y: float, size: float, m: torch.Tensor, tip: str, hi: float | None = None) -> str:
    return (f'<image x="{x:.1f}" y="{y:.1f}" width="{size * m.shape[1] / m.shape[0]:.1f}" height="{size:.1f}" '
            f'href="{png_data_url(_gray(m, hi))}"><title>{esc(tip)}</title></image>')  # fmt: skip


def _box(x: float, y: float, w: float, h: float, lines: list[str], tip: str = "", cls: str = "box") -> str:
    text = "".join(
        f'<text x="{x + w / 2:.1f}" y="{y + 15 + 14 * i:.1f}" text-anchor="middle"'
        f'{" class=muted" if i else ""}>{esc(t)}</text>'
        for i, t in enumerate(lines)
    )
    title = f"<title>{esc(tip)}</title>" if tip else ""
    return f'<g><rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="6">{title}</rect>{text}</g>'


def _arrow(x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line class="edge" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" marker-end="url(#ah)"/>'


_ARROW_DEF = ('<defs><marker id="ah" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
              'orient="auto"><path d="M0,0 L10,5 L0,10 z" class="muted"/></marker></defs>')  # fmt: skip


# ---------------------------------------------------------------- 1. a 1x1 convolution


def _dot_product_section(seed: int) -> str:
    torch.manual_seed(seed)
    conv = nn.Conv2d(4, 2, kernel_size=1)
    x = torch.randint(0, 10, (1, 4, 3, 3)).float()
    with torch.no_grad():
        y = conv(x)
    w, b = conv.weight[:, :, 0, 0].detach(), conv.bias.detach()
    px = [float(x[0, c, 1, 1]) for c in range(4)]
    by_hand = [sum(px[c] * float(w[o, c]) for c in range(4)) + float(b[o]) for o in range(2)]
    agree = max(abs(by_hand[o] - float(y[0, o, 1, 1])) for o in range(2))
    cell, parts = 22, [_ARROW_DEF]
    for c in range(4):  # the input maps, the centre pixel highlighted
        oy = 10 + c * 78
        parts.append(f'<text x="0" y="{oy + 40}">map {c}</text>')
        for i in range(3):
            for j in range(3):
                hl = i == 1 and j == 1
                parts.append(f'<rect class="{"c0" if hl else "box"}" x="{50 + j * cell}" y="{oy + i * cell}" '
                             f'width="{cell}" height="{cell}"{_HL if hl else ""}/>'
                             f'<text x="{50 + j * cell + 11}" y="{oy + i * cell + 15}" text-anchor="middle">'
                             f"{int(x[0, c, i, j])}</text>")  # fmt: skip
        for o in range(2):  # every input map feeds every output map's dot product
            parts.append(_arrow(50 + 3 * cell + 4, oy + 33, 173, 96 + o * 130))
    for o in range(2):
        terms = " + ".join(f"{int(px[c])}·({float(w[o, c]):.2f})" for c in range(4))
        oy = 70 + o * 130
        parts.append(_box(175, oy, 420, 52, [f"output map {o} at this pixel = {by_hand[o]:.3f}",
                                             f"{terms} + ({float(b[o]):.2f})"],
                          tip=f"weights of output map {o}: the 1x1 kernel is one vector of 4 numbers"))  # fmt: skip
        parts.append(_arrow(595, oy + 26, 640, 60 + o * 150))
        for i in range(3):
            for j in range(3):
                hl = i == 1 and j == 1
                parts.append(f'<rect class="{"c2" if hl else "box"}" x="{645 + j * 48}" y="{30 + o * 150 + i * 22}" '
                             f'width="48" height="22"{_HL if hl else ""}/>'
                             f'<text x="{645 + j * 48 + 24}" y="{30 + o * 150 + i * 22 + 15}" text-anchor="middle">'
                             f"{float(y[0, o, i, j]):.2f}</text>")  # fmt: skip
    fig = figure("".join(parts), width=800, height=320,
                 title="A 1x1 convolution is one dot product per pixel",
                 desc="Four 3x3 input maps with their centre pixel highlighted; each output map's "
                      "centre value is the dot product of the 4 input values with that map's 4 weights "
                      "plus its bias, written out with the real numbers.",
                 caption=f"nn.Conv2d(4, 2, kernel_size=1) with seeded weights. The sums written "
                         f"by hand agree with PyTorch's output to {agree:.1e}; every pixel uses the "
                         "same 4 weights.")  # fmt: skip
    return (
        "<h2>0. A 1x1 convolution: one dot product per pixel</h2>"
        "<p>A 1x1 convolution looks at one pixel at a time: it takes the pixel's values across all "
        "input maps and, for each output map, multiplies them by that map's weights and adds them "
        "up. It mixes channels, never neighbouring pixels.</p>" + fig
    )


# ---------------------------------------------------------------- 2. the tutorial's models


def _tutorial_section(result: dict[str, Any]) -> str:
    params = result.get("tutorial_params")
    names = ["3x3, 512 filters", "+ 1x1 to 512 (projection)", "+ 1x1 to 64 (reduction)", "+ 1x1 to 1024 (increase)"]
    out = ["<h2>1. The tutorial's models: a 3x3 layer of 512 filters, then a 1x1 layer</h2>",
           "<p>Input: a 256x256 RGB image. Each bar is the parameters of the layer the model adds "
           "(counted on the meta device).</p>"]  # fmt: skip
    if params:
        out.append(hbars([(n, [p]) for n, p in zip(names, params, strict=False)], fmt=lambda v: f"{int(v):,}",
                         title="Parameters of each tutorial layer",
                         desc="Bars of the parameters of the layer each tutorial model adds: "
                              + ", ".join(f"{n}: {p:,}" for n, p in zip(names, params, strict=False)),
                         caption="1x1 layers cost in_channels*filters + filters: 512*512+512, 512*64+64, 512*1024+1024."))  # fmt: skip
    seven = result.get("7x7")
    if seven:
        out += ["<h2>2. A 7x7 convolution on 512 maps, with and without a 1x1 reduction first</h2>",
                hbars([("7x7 on 512 maps", [seven["direct"]]), ("1x1 to 64", [seven["reduce_1x1"]]),
                       ("then 7x7 on 64", [seven["conv_7x7"]]), ("1x1 + 7x7", [seven["reduced"]])],
                      fmt=lambda v: f"{int(v):,}", title="Parameters: direct vs reduced 7x7",
                      desc=f"Direct 7x7: {seven['direct']:,} parameters; with a 1x1 reduction to 64 "
                           f"first: {seven['reduced']:,}.",
                      caption=f"{seven['direct'] / seven['reduced']:.1f}x fewer parameters with the reduction.")]  # fmt: skip
    return "\n".join(out)


# ---------------------------------------------------------------- 3. cross-channel pooling


def _cross_channel_section(seed: int, result: dict[str, Any]) -> str:
    from onebyone.data import load
    from onebyone.layers import CrossChannelPool

    test = load("mnist5k", "test")
    x, label = test[int((test.labels == 3).nonzero()[0])]
    torch.manual_seed(seed)  # the tour seeds each step the same way: the same 50 filters
    conv = nn.Conv2d(1, 50, kernel_size=5, padding=2)
    with torch.no_grad():
        maps = torch.relu(conv(x.unsqueeze(0)))[0]  # 50 x 28 x 28
        pooled = CrossChannelPool(10, mode="max")(maps.unsqueeze(0))[0]  # 5 x 28 x 28
    size, gap = 34, 4
    parts = [_ARROW_DEF, _image(0, 90, 84, x[0], f"the input digit ({label})"),
             '<text x="42" y="190" text-anchor="middle">input digit</text>']  # fmt: skip
    for g in range(5):
        y = 10 + g * (size + 10)
        hi = float(maps[g * 10 : g * 10 + 10].max()) or 1.0  # one scale per group: max reads true
        for k in range(10):
            c = g * 10 + k
            parts.append(_image(110 + k * (size + gap), y, size, maps[c], f"feature map {c}", hi))
        parts.append(f'<text x="{110 + 10 * (size + gap) + 4}" y="{y + 21}">max</text>')
        parts.append(_arrow(110 + 10 * (size + gap) + 32, y + 17, 110 + 10 * (size + gap) + 60, y + 17))
        parts.append(_image(110 + 10 * (size + gap) + 64, y, size, pooled[g], f"pooled map {g}: max of maps {g * 10}-{g * 10 + 9}", hi))  # fmt: skip
    same = torch.equal(pooled, maps.reshape(5, 10, 28, 28).amax(dim=1))
    fig = figure("".join(parts), width=110 + 10 * (size + gap) + 64 + size + 10, height=5 * (size + 10) + 10,
                 title="Cross-channel max pooling: 50 feature maps into 5",
                 desc=f"A real MNIST digit {label}, its 50 feature maps from seeded 5x5 filters in 5 rows "
                      "of 10, and at the end of each row the pooled map: the pixel-wise maximum of the 10.",
                 caption=f"Each row shares one brightness scale, so a pooled pixel is exactly as bright "
                         f"as the brightest of its 10 maps. CrossChannelPool(10) equals reshape + amax: {same}.")  # fmt: skip
    n = result.get("cross_channel", {})
    return (
        "<h2>3. Cross-channel max pooling: 50 feature maps into 5, on a real MNIST digit</h2>"
        f"<p>{n.get('in_maps', 50)} maps in, {n.get('out_maps', 5)} out: each output point is the "
        "maximum over the same point of 10 input maps, with no weights (a 1x1 convolution would "
        "learn a weighted sum instead).</p>" + fig
    )


# ---------------------------------------------------------------- 4. Inception


def _branch_layers(branch: nn.Module) -> list[tuple[str, str]]:
    """(label, hover) for each convolution or pooling inside a branch, in order."""
    out = []
    for m in branch.modules():
        if isinstance(m, nn.Conv2d):
            k = "x".join(map(str, m.kernel_size))
            out.append((f"{k} conv {m.in_channels}→{m.out_channels}", repr(m)))
        elif isinstance(m, nn.MaxPool2d):
            out.append((f"{m.kernel_size}x{m.kernel_size} max pool", repr(m)))
    return out


def _inception_svg(module: nn.Module, name: str, size: tuple[int, int, int, int]) -> str:
    from onebyone.analysis import analyze

    report = analyze(module, size)
    branches = [(n, b) for n, b in module.named_children() if n.startswith("branch")]
    col, bw = 190, 170
    width = col * len(branches) + 10
    parts = [_ARROW_DEF, _box(width / 2 - 110, 5, 220, 36, [f"input: {module.in_channels} maps, {size[2]}x{size[3]}"])]
    outs = []
    for i, (bn, branch) in enumerate(branches):
        x = 10 + i * col
        y = 70
        parts.append(_arrow(width / 2, 41, x + bw / 2, y))
        layers = _branch_layers(branch)
        for label, tip in layers:
            parts.append(_box(x, y, bw, 30, [label], tip=tip))
            y += 44
            if (label, tip) != layers[-1]:
                parts.append(_arrow(x + bw / 2, y - 14, x + bw / 2, y))
        convs = [m for m in branch.modules() if isinstance(m, nn.Conv2d)]
        ch = convs[-1].out_channels if convs and not isinstance(list(branch.modules())[-1], nn.MaxPool2d) else None
        if ch is None:
            ch = module.in_channels  # a pool alone passes every input map through
        outs.append(ch)
        macs = report.subtree(bn)["macs"]
        parts.append(f'<text x="{x + bw / 2}" y="{y + 4}" text-anchor="middle"><tspan font-weight="bold">{ch} maps</tspan></text>'
                     f'<text x="{x + bw / 2}" y="{y + 19}" text-anchor="middle" class="muted">{esc(fmt_count(macs))} MACs</text>')  # fmt: skip
        parts.append(_arrow(x + bw / 2, y + 24, width / 2, 268))
    parts.append(_box(width / 2 - 160, 270, 320, 36, [f"concatenate: {' + '.join(map(str, outs))} = {module.out_channels} maps"]))
    return figure("".join(parts), width=width, height=312,
                  title=f"{name} Inception module: branches and channel counts",
                  desc=f"The {name} Inception module on {module.in_channels} maps: "
                       + "; ".join(f"{n}: " + ", then ".join(lbl for lbl, _ in _branch_layers(b)) + f" ({c} maps)"
                                   for (n, b), c in zip(branches, outs, strict=True))
                       + f"; concatenated into {module.out_channels} maps; {report.total_macs:,} MACs in all.",
                  caption=f"{name}: {report.total_params:,} params, {report.total_macs:,} MACs "
                          f"({fmt_count(report.total_macs)}); output depth {module.out_channels}.")  # fmt: skip


def _inception_section(result: dict[str, Any]) -> str:
    from onebyone.blocks import Inception, NaiveInception

    naive = NaiveInception(192, ch1x1=64, ch3x3=128, ch5x5=32)
    reduced = Inception(192, ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32, pool_proj=32)
    size = (1, 192, 28, 28)
    n = result.get("inception")
    ratio = f"<p>{n['naive_macs'] / n['reduced_macs']:.1f}x fewer MACs with the 1x1 reductions, and the output depth no longer grows with the input.</p>" if n else ""  # fmt: skip
    return (
        "<h2>4. Inception module (GoogLeNet 3a) on 28x28x192: naive vs 1x1 reductions</h2>"
        + ratio + _inception_svg(naive, "Naive", size) + _inception_svg(reduced, "Reduced", size)
    )


# ---------------------------------------------------------------- 5. residual blocks


def _block_svg(block: nn.Module, name: str, size: tuple[int, int, int, int]) -> str:
    from onebyone.analysis import analyze

    report = analyze(block, size)
    rows = report.by_name()
    convs = [(n, m) for n, m in block.named_children() if isinstance(m, nn.Conv2d)]
    parts = [_ARROW_DEF, _box(20, 5, 220, 30, [f"input: {block.in_channels} maps"])]
    y = 60
    parts.append(_arrow(130, 35, 130, y))
    for i, (n, m) in enumerate(convs):
        k = "x".join(map(str, m.kernel_size))
        r = rows[n]
        parts.append(_box(20, y, 220, 46, [f"{k} conv {m.in_channels}→{m.out_channels}",
                                           f"{r.params:,} params · {fmt_count(r.macs)} MACs"], tip=repr(m)))  # fmt: skip
        y += 46
        parts.append(_arrow(130, y, 130, y + 22))
        y += 22
        if i < len(convs) - 1:
            parts.append(f'<text x="140" y="{y - 8}" class="muted">BN, ReLU</text>')
    parts.append(f'<circle class="box" cx="130" cy="{y + 12}" r="12"/><text x="130" y="{y + 16}" text-anchor="middle">+</text>')
    parts.append(f'<path class="edge" d="M240,20 C300,20 300,{y + 12} 142,{y + 12}" marker-end="url(#ah)"/>'
                 f'<text x="282" y="{(y + 30) / 2}" class="muted">identity</text>')  # fmt: skip
    parts.append(_arrow(130, y + 24, 130, y + 44))
    parts.append(_box(20, y + 44, 220, 30, [f"output: {block.out_channels} maps"]))
    return figure("".join(parts), width=330, height=y + 80,
                  title=f"{name} residual block",
                  desc=f"{name} block on {block.in_channels} maps: " + ", then ".join(
                      f"{'x'.join(map(str, m.kernel_size))} convolution {m.in_channels} to {m.out_channels}" for _, m in convs)
                       + f", plus the identity; {report.total_params:,} params, {report.total_macs:,} MACs.",
                  caption=f"{name}: {report.total_params:,} params, {fmt_count(report.total_macs)} MACs on 56x56.")  # fmt: skip


def _residual_section() -> str:
    from onebyone.blocks import BasicBlock, Bottleneck

    return (
        "<h2>5. Residual blocks on 56x56: basic (3x3, 3x3) vs bottleneck (1x1, 3x3, 1x1)</h2>"
        "<p>The bottleneck handles 4x more maps for about the same cost: its 1x1 layers reduce 256 "
        "to 64 maps and restore 64 to 256 around the 3x3.</p>"
        f'<div class="pair">{_block_svg(BasicBlock(64, 64), "Basic", (1, 64, 56, 56))}'
        f"{_block_svg(Bottleneck(256, 64), 'Bottleneck', (1, 256, 56, 56))}</div>"
    )


# ---------------------------------------------------------------- 6. the FC head as convolutions


def _score_rows(scores: Any, windows: int, classes: int, y: float, cw: float) -> str:
    """The score map as a heat map (a row per class, a column per window, shade = softmax), if given."""
    if scores is None:
        return ""
    try:
        t = torch.tensor(scores, dtype=torch.float64).reshape(classes, windows)
    except (TypeError, ValueError, RuntimeError):
        return ""  # not a class-by-window map: the best-class row alone is shown
    prob = torch.softmax(t, dim=0)
    parts = []
    for c in range(classes):
        parts.append(f'<text x="270" y="{y + 12 * c + 10:.1f}" class="muted">{c}</text>')
        for k in range(windows):
            parts.append(f'<rect class="c0" x="{10 + k * cw:.1f}" y="{y + 12 * c:.1f}" width="{cw:.1f}" height="12" '
                         f'fill-opacity="{float(prob[c, k]):.2f}"><title>window {k}, class {c}: score '
                         f"{float(t[c, k]):.2f}, softmax {float(prob[c, k]):.2f}</title></rect>")  # fmt: skip
    return "".join(parts)


def _fc_section(result: dict[str, Any]) -> str:
    from onebyone.analysis import analyze
    from onebyone.data import load
    from onebyone.experiments import build_variant

    model = build_variant("plain_5x5")
    rows = analyze(model, (1, 1, 28, 28)).rows
    linears = [(r, m) for r, m in zip([r for r in rows if r.type == "Linear"],
                                      [m for m in model.modules() if isinstance(m, nn.Linear)], strict=False)]  # fmt: skip
    first_in = next((r.input_shapes[0] for r in rows if r.type == "Flatten"), None)
    parts = [_ARROW_DEF]
    y = 10
    for i, (_r, m) in enumerate(linears):
        if i == 0 and first_in is not None and len(first_in) == 4:
            c, h, w = first_in[1:]
            conv = f"Conv2d({c}, {m.out_features}, {h}x{w})"
        else:
            conv = f"Conv2d({m.in_features}, {m.out_features}, 1x1)"
        parts.append(_box(10, y, 250, 30, [f"Linear({m.in_features}, {m.out_features})"], tip=repr(m)))
        parts.append(_arrow(262, y + 15, 318, y + 15))
        parts.append(_box(320, y, 250, 30, [conv], tip="the same weights, reshaped"))
        y += 44
    test = load("mnist5k", "test")
    picks = [int((test.labels == d).nonzero()[0]) for d in (7, 2, 1)]
    strip = torch.cat([test[j][0] for j in picks], dim=2)[0]  # 28 x 84
    parts.append(_image(10, y + 6, 84, strip, "a strip of the test digits 7, 2, 1 (28x84)"))
    fc = result.get("fc_to_conv") or {}
    best = fc.get("best") or []
    cap = "The tour was run without this step."
    height_extra = 0
    if best:
        n = len(best)
        cw = 252 / n
        for k, cls in enumerate(best):
            on = k in (0, n // 2, n - 1)
            parts.append(f'<rect class="{"c2" if on else "box"}" x="{10 + k * cw:.1f}" y="{y + 100}" width="{cw:.1f}" '
                         f'height="22"{_HL if on else ""}><title>window {k} (x = {4 * k}..{4 * k + 27}): '
                         f"best class {cls}</title></rect>"
                         f'<text x="{10 + k * cw + cw / 2:.1f}" y="{y + 115}" text-anchor="middle">{cls}</text>')  # fmt: skip
        parts.append(f'<text x="270" y="{y + 115}" class="muted">best class per window</text>')
        extra = _score_rows(fc.get("scores"), n, 10, y + 130, cw)
        if extra:
            parts.append(extra)
            height_extra = 10 * 12 + 14
        shape = "x".join(map(str, fc.get("score_map", [])))
        cap = (f"The score map is {shape} (one 10-class score vector per window, stride 4 px); the "
               f"windows on the digits (highlighted) read {fc.get('at_digits')} (true: [7, 2, 1]); "
               f"logits at 28x28 agree with the original model within {fc.get('output_error', 0):.1e}.")
    fig = figure("".join(parts), width=600, height=y + 132 + height_extra,
                 title="A fully-connected head turned into convolutions, and its score map",
                 desc="Each Linear layer of the digit classifier and the convolution that replaces it; "
                      "a strip of three test digits and the best class the convolutional network "
                      "returns at each horizontal window: " + " ".join(map(str, best)),
                 caption=cap)  # fmt: skip
    return ("<h2>6. A fully-connected head turned into convolutions: a score map on a larger image</h2>"
            "<p>The first Linear layer reads the 64x7x7 feature maps: the same weights as a 7x7 "
            "convolution. The second becomes a 1x1 convolution. The network then slides over an "
            "image wider than 28 pixels and returns a class score at each position.</p>" + fig)  # fmt: skip


def _compare_section(result: dict[str, Any]) -> str:
    data = result.get("compare")
    head = "<h2>7. A short compare: plain 5x5 convolutions vs NiN mlpconv, same data and budget</h2>"
    if not data:
        return head + "<p class=\"note\">Skipped in this run (--quick); run <code>onebyone compare --html</code> for the full comparison.</p>"
    from onebyone.html.compare import _acc_chart, _load, _table

    variants, _ = _load(data)
    return head + (
        '<div class="pair">'
        + _acc_chart(variants, "macs", "MACs per image (log scale)", fmt_count, "MACs")
        + _acc_chart(variants, "latency_ms_b1", "CPU latency at batch 1, ms (log scale)", lambda x: f"{x:.3g}", "measured time")
        + "</div>" + _table(variants) + '<p class="note">1 epoch here; onebyone compare trains every variant longer.</p>'
    )  # fmt: skip


def render_tour(result: dict[str, Any], *, seed: int = 0) -> str:
    """The tour page as a string, from the dict :func:`onebyone.tour.run_tour` returns.

    >>> text = render_tour({"tutorial_params": [14336, 262656, 32832, 525312]})
    >>> "14,336" in text, text.count("<svg") >= 5
    (True, True)
    """
    sections = [
        "<p>The tutorial's claims, computed for real by <code>onebyone tour</code>. Every number "
        "comes from the library's own modules; hover a bar, a box or a map for details.</p>",
        _dot_product_section(seed),
        _tutorial_section(result),
        _cross_channel_section(seed, result),
        _inception_section(result),
        _residual_section(),
        _fc_section(result),
        _compare_section(result),
    ]
    return page("The onebyone tour", "\n".join(sections), subtitle="1x1 convolutions and cross-channel pooling, with real numbers")


def tour_html(
    path: str | os.PathLike, *, result: dict[str, Any] | None = None, quick: bool = False, seed: int = 0
) -> Path:
    """Write the tour as one HTML page: each step with its numbers and a picture from the real modules.

    Args:
        path: the ``.html`` file to write, in an existing folder; written atomically.
        result: the dict :func:`onebyone.tour.run_tour` returned; when None the tour is run
            here (silently), with ``quick`` and ``seed``.
        quick: when running the tour here, skip its training steps.
        seed: the seed the tour used (the filters of the cross-channel step are redrawn with it).

    Returns:
        The path written.

    Raises:
        TypeError: ``result`` is not a dict.
        OSError: the folder is missing or not writable (checked before the tour runs).

    Example:
        >>> import tempfile, pathlib
        >>> numbers = {"tutorial_params": [14336, 262656, 32832, 525312]}  # what run_tour returns
        >>> tour_html(pathlib.Path(tempfile.mkdtemp()) / "tour.html", result=numbers).name
        'tour.html'
    """
    check_page_path(path)
    if result is None:
        from rich.console import Console

        from onebyone.tour import run_tour

        result = run_tour(quick=quick, seed=seed, console=Console(file=io.StringIO(), width=100))
    if not isinstance(result, dict):
        raise TypeError(f"result must be the dict run_tour returns, got {type(result).__name__}")
    return write_page(path, render_or_bug(render_tour, result, seed=seed))
