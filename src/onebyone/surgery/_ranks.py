"""The rank policy of :func:`~onebyone.surgery.decompose`: which ranks each layer gets.

A :class:`Candidate` is one layer ``decompose`` may rewrite, with its cost model (MACs at given
ranks). The three ways to choose ranks are here: a fixed rank or fraction
(:func:`ranks_from_rank`), an energy threshold (:func:`ranks_from_energy`), and a MACs budget
(:func:`ranks_from_budget`), which walks each layer's lower convex hull of (MACs saved, error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from onebyone.surgery import _tucker
from onebyone.surgery.report import Skip, SurgeryReport


@dataclass
class Candidate:
    """A layer ``decompose`` may rewrite: its name, the module, how, and the ranks chosen.

    ``in_pixels``/``out_pixels`` are the spatial positions of its input and output (rows of a
    Linear's input), recorded by one forward on the example input.

    Example:
        >>> c = Candidate("conv", nn.Conv2d(16, 32, 3), "tucker2", in_pixels=100, out_pixels=64)
        >>> c.macs, c.macs_at((8, 4)), c.channels()  # 32*16*9*64; 16*4*100 + (4*8*9 + 8*32)*64
        (294912, 41216, (32, 16))
    """

    name: str
    module: nn.Module
    kind: str  # "tucker2", "reduce" or "svd"
    in_pixels: int = 1
    out_pixels: int = 1
    inputs: torch.Tensor | None = None
    ranks: tuple[int, ...] = ()
    #: ``sum x x^T`` of the layer's input channel vectors over the calibration data (pixels
    #: pooled), when ``decompose`` was given ``calibration``; None otherwise.
    second_moment: torch.Tensor | None = None

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the layer as it is, per example.

        >>> Candidate("fc", nn.Linear(8, 4), "svd").macs  # 8 * 4
        32
        """
        return int(self.module.weight.numel() * self.out_pixels)

    def macs_at(self, ranks: tuple[int, ...]) -> int:
        """Multiply-accumulates of the rewrite at ``ranks``, per example.

        >>> Candidate("fc", nn.Linear(8, 4), "svd").macs_at((2,))  # 8 * 2 + 2 * 4
        24
        """
        w = self.module.weight
        if self.kind == "svd":
            out_f, in_f = w.shape
            (r,) = ranks
            return (in_f * r + r * out_f) * self.out_pixels
        c_out, c_in, kh, kw = w.shape
        if self.kind == "tucker2":
            r_out, r_in = ranks
            return c_in * r_in * self.in_pixels + (r_in * r_out * kh * kw + r_out * c_out) * self.out_pixels
        (r,) = ranks
        return c_in * r * self.in_pixels + r * c_out * kh * kw * self.out_pixels

    def channels(self) -> tuple[int, ...]:
        """The channel counts each rank may not exceed.

        >>> Candidate("conv", nn.Conv2d(16, 32, 3), "reduce").channels()  # the input channels
        (16,)
        """
        w = self.module.weight
        if self.kind == "tucker2":
            return (w.shape[0], w.shape[1])
        if self.kind == "reduce":
            return (w.shape[1],)
        return (min(w.shape),)


def ranks_from_rank(c: Candidate, rank: int | float, round_to: int) -> tuple[int, ...]:
    """The ranks for an int ``rank`` (a width) or a float (a fraction of the channels).

    Raises:
        ValueError: an int ``rank`` above one of the layer's channel counts.

    Example:
        >>> c = Candidate("conv", nn.Conv2d(16, 32, 3), "tucker2")
        >>> ranks_from_rank(c, 0.25, 8), ranks_from_rank(c, 3, 1)
        ((8, 8), (3, 3))
    """
    channels = c.channels()
    if isinstance(rank, int):
        if any(rank > ch for ch in channels):
            raise ValueError(f"rank {rank} is above the layer's channels ({min(channels)})")
        return tuple(_tucker.round_rank(rank, round_to, ch) for ch in channels)
    return tuple(_tucker.round_rank(math.ceil(rank * ch - 1e-9), round_to, ch) for ch in channels)


def ranks_from_energy(c: Candidate, energy: float, round_to: int) -> tuple[int, ...]:
    """The smallest ranks keeping ``energy`` of each unfolding's squared singular values.

    Example:
        >>> lin = nn.Linear(4, 4, bias=False)
        >>> _ = lin.weight.data.copy_(torch.diag(torch.tensor([4.0, 1.0, 0.1, 0.1])))
        >>> ranks_from_energy(Candidate("fc", lin, "svd"), 0.9, 1)
        (1,)
    """
    w = c.module.weight
    if c.kind == "svd":
        s = _tucker.singular_values(w)
        return (_tucker.round_rank(_tucker.energy_rank(s, energy), round_to, min(w.shape)),)
    modes = (0, 1) if c.kind == "tucker2" else (1,)
    return tuple(
        _tucker.round_rank(_tucker.energy_rank(_tucker.singular_values(_tucker.unfold(w, m)), energy), round_to, w.shape[m])
        for m in modes
    )


def ranks_from_budget(
    candidates: list[Candidate], budget: float, round_to: int, total: int, report: SurgeryReport
) -> list[Candidate]:
    """Set the ranks of the candidates that bring the model's MACs under ``budget * total``.

    Greedy along each layer's convex frontier: the step that adds the least error per MAC saved
    goes first. Returns the candidates to rewrite; the others are recorded on ``report`` as skips.

    Raises:
        ValueError: the budget cannot be met even at the lowest ranks.

    Example:
        >>> c = Candidate("conv", nn.Conv2d(16, 16, 3), "reduce", in_pixels=100, out_pixels=64)
        >>> [x.ranks for x in ranks_from_budget([c], 0.6, 8, c.macs, SurgeryReport("decompose"))]
        [(8,)]
    """
    target = budget * total
    hulls = {}
    for c in candidates:
        options = _options(c, round_to)
        if not options:
            report.skipped.append(Skip(c.name, "no rank makes this layer cheaper"))
            continue
        hulls[c.name] = (c, _lower_hull(c, options))
    position = dict.fromkeys(hulls, 0)
    current = float(total)
    while current > target:
        best, best_slope = None, math.inf
        for name, (_, hull) in hulls.items():
            i = position[name]
            if i + 1 < len(hull):
                saved = hull[i + 1][0] - hull[i][0]
                slope = (hull[i + 1][1] - hull[i][1]) / saved
                if slope < best_slope:
                    best, best_slope = name, slope
        if best is None:
            floor = current / total if total else 1.0
            raise ValueError(
                f"budget {budget} cannot be met: decomposing every candidate layer at the lowest "
                f"rank leaves {floor:.3f} of the model's MACs"
            )
        i = position[best]
        hull = hulls[best][1]
        current -= hull[i + 1][0] - hull[i][0]
        position[best] = i + 1
    chosen = []
    for name, (c, hull) in hulls.items():
        point = hull[position[name]]
        if point[2] is None:
            report.skipped.append(Skip(name, "left at full cost: the budget was met with cheaper rewrites elsewhere"))
            continue
        c.ranks = point[2]
        chosen.append(c)
    return chosen


def _grid(channels: int, round_to: int) -> list[int]:
    return sorted({min(channels, r) for r in range(round_to, channels + round_to, round_to)})


def _options(c: Candidate, round_to: int) -> list[tuple[int, float, tuple[int, ...]]]:
    """(MACs, error, ranks) of each rank choice cheaper than the layer.

    The error is the energy lost over the energy kept (a noise-to-signal ratio of the weight):
    unlike the relative error, which saturates at 1, it keeps growing as a cut gets deeper, so
    the greedy choice spreads the savings over layers instead of gutting a few. With a
    calibration second moment (``reduce`` and Linears), the energy is the layer's output energy
    on the calibration inputs (the singular values of ``W S^1/2``), which is what the
    calibrated factors minimise; tucker2 keeps the weight's.
    """
    w = c.module.weight
    if c.second_moment is not None and c.kind != "tucker2":
        tail = _tucker.tail_energy(_tucker.whitened_singular_values(_rows(c), c.second_moment))
        norm2 = float(tail[0]) or 1.0
        return [o for o in ((c.macs_at((r,)), _nsr(float(tail[min(r, len(tail) - 1)]) / norm2), (r,))
                            for r in _grid(c.channels()[0], round_to)) if o[0] < c.macs]
    norm2 = float((w.detach().double() ** 2).sum()) or 1.0
    out = []
    if c.kind == "tucker2":
        table = _tucker.tucker2_error_table(w)
        for a in _grid(w.shape[0], round_to):
            for b in _grid(w.shape[1], round_to):
                out.append((c.macs_at((a, b)), _nsr(float(table[a, b]) / norm2), (a, b)))
    else:
        matrix = w if c.kind == "svd" else _tucker.unfold(w, 1)
        tail = _tucker.tail_energy(_tucker.singular_values(matrix))
        for r in _grid(c.channels()[0], round_to):
            out.append((c.macs_at((r,)), _nsr(float(tail[min(r, len(tail) - 1)]) / norm2), (r,)))
    return [o for o in out if o[0] < c.macs]


def _rows(c: Candidate) -> torch.Tensor:
    """The weight as (outputs x in): a Linear's own, a convolution's one row per output and tap."""
    w = c.module.weight
    return w if c.kind == "svd" else w.permute(0, 2, 3, 1).reshape(-1, w.shape[1])


def _nsr(lost: float) -> float:
    return lost / max(1.0 - lost, 1e-12)


def _lower_hull(c: Candidate, options) -> list[tuple[int, float, tuple[int, ...] | None]]:
    """The convex frontier of (MACs saved, error) from "leave it alone" to the cheapest choice."""
    return lower_frontier([(c.macs - m, e, r) for m, e, r in options])


def lower_frontier(points: list[tuple[float, float, Any]]) -> list[tuple[float, float, Any]]:
    """The lower convex frontier of ``(saved, error, choice)`` points, from ``(0, 0.0, None)``
    ("leave it alone") on: each step saves more for the least error added per unit saved.

    Example:
        >>> [p[2] for p in lower_frontier([(1, 0.5, "a"), (2, 0.2, "b"), (3, 0.9, "c")])]
        [None, 'b', 'c']
    """
    points = sorted(points, key=lambda p: (p[0], p[1]))
    hull: list = [(0, 0.0, None)]
    for p in points:
        while len(hull) >= 2:
            o, a = hull[-2], hull[-1]
            cross = (a[0] - o[0]) * (p[1] - o[1]) - (a[1] - o[1]) * (p[0] - o[0])
            if cross > 0:
                break
            hull.pop()
        if p[0] > hull[-1][0]:
            hull.append(p)
        elif p[1] < hull[-1][1] and len(hull) > 1:
            hull[-1] = p
    return hull
