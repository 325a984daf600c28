"""``decompose``: rewrite kxk convolutions as 1x1 bottlenecks and Linears as two thin Linears.

The tutorial puts a 1x1 reduction in front of an expensive convolution when designing a network;
``decompose`` gets the same savings from an already trained model by factorising its weights.
``decompose()`` reads: validate the arguments, select the layers and their ranks (the policy is
in :mod:`onebyone.surgery._ranks`), rewrite them, report.
"""

from __future__ import annotations

import copy
import difflib
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from onebyone._checks import check_choice, check_fraction, check_int, check_speedup
from onebyone._internal import InternalError, ours
from onebyone._modes import eval_mode
from onebyone.errors import OneByOneError
from onebyone.surgery import _tucker
from onebyone.surgery._by_time import by_measured_time, ranks_by_time
from onebyone.surgery._calibration import build_calibrated, check_calibration, second_moments
from onebyone.surgery._forward import run_forward
from onebyone.surgery._macs import model_macs
from onebyone.surgery._ranks import Candidate, ranks_from_budget, ranks_from_energy, ranks_from_rank
from onebyone.surgery._recipe import record_step
from onebyone.surgery._trace import keep_attributes
from onebyone.surgery.modules import DecomposedConv2d, DecomposedLinear
from onebyone.surgery.report import LayerChange, Skip, SurgeryReport, count_params, relative_error

__all__ = ["CONV_TYPES", "LINEAR_TYPES", "decompose"]

#: Layer types ``decompose`` rewrites as convolutions / as Linears. Extend these tuples to
#: include your own subclasses of ``nn.Conv2d`` / ``nn.Linear``.
CONV_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d,)
LINEAR_TYPES: tuple[type[nn.Module], ...] = (nn.Linear,)

METHODS = ("tucker2", "reduce")


@dataclass(frozen=True)
class _Args:
    """decompose's arguments, validated."""

    method: str
    rank: int | float | None
    energy: float | None
    budget: float | None
    layers: list[str] | None
    round_to: int
    x: torch.Tensor
    measure: bool
    iterations: int
    only_if_cheaper: bool
    # issue 20 (slim): ranks by time, and 1x1 convolutions as two thinner 1x1s
    speedup: float | None = None
    pointwise: bool = False
    device_profile: object = None
    max_error: float = 0.5
    calibration: list[torch.Tensor] | None = None


def decompose(
    model: nn.Module,
    *,
    method: str = "tucker2",
    rank: int | float | None = None,
    energy: float | None = None,
    budget: float | None = None,
    layers: Iterable[str] | None = None,
    round_to: int = 8,
    example_input: torch.Tensor | None = None,
    measure: bool = False,
    iterations: int = 0,
    only_if_cheaper: bool = True,
    speedup: float | None = None,
    pointwise: bool = False,
    device_profile=None,
    max_error: float = 0.5,
    calibration=None,
) -> tuple[nn.Module, SurgeryReport]:
    """Return a copy of ``model`` whose kxk convolutions and Linears are low-rank bottlenecks.

    ``method="tucker2"`` rewrites a kxk convolution as 1x1 (C_in -> r_in), kxk (r_in -> r_out),
    1x1 (r_out -> C_out), initialised by HOSVD of the weight (refined by ``iterations`` of HOOI);
    ``method="reduce"`` as 1x1 (C_in -> r) then kxk (r -> C_out), the tutorial's pattern.
    A Linear becomes two Linears by truncated SVD. Grouped, depthwise and 1x1 convolutions are
    left alone, and so is any layer whose rewrite would not reduce its MACs; the report says why.

    Give exactly one of ``rank``, ``energy``, ``budget`` or ``speedup``.

    Args:
        model: the model; it is deep-copied and never modified.
        method: "tucker2" or "reduce" for convolutions.
        rank: an int (the bottleneck width) or a float in (0, 1] (a fraction of the channels).
        energy: keep the smallest ranks that hold this fraction of the squared singular values.
        budget: a target fraction in (0, 1) of the model's MACs; per-layer ranks are chosen
            greedily by weight reconstruction error added (energy lost / energy kept) per MAC
            saved, along each layer's convex frontier of (MACs, error).
        layers: names of the layers to consider (default: every Conv2d and Linear).
        round_to: round ranks up to a multiple of this (capped at the channel count).
        example_input: an input batch, used for the layers' spatial sizes, the output errors and
            ``measure``; default ``torch.randn(1, *model.default_input_size)``.
        measure: time each rewrite against the original layer on its real input shape and keep
            only those that run faster. With ``speedup``: choose the ranks by measured times
            (cached, see :mod:`onebyone.surgery._speedup`) rather than the estimate.
        iterations: HOOI refinement iterations after the HOSVD (tucker2 only).
        only_if_cheaper: leave alone layers whose rewrite would not reduce their MACs. Set it to
            False to rewrite them anyway (e.g. at full rank, to check exactness).
        speedup: a target speedup (> 1) of the whole model on the device: per-layer ranks are
            chosen greedily by weight error added per second saved, keeping only rewrites that
            are faster than the layer; the report gives each layer's estimated (and, with
            ``measure``, measured) time before and after, and says the best reachable speedup
            when the target is out of reach.
        pointwise: also factorise 1x1 convolutions (groups=1) into two thinner 1x1s by
            truncated SVD (``method="reduce"`` with a 1x1 kernel).
        device_profile: the device the estimated times are for (a profile, a preset name,
            a file or None for this machine's default); used with ``speedup``.
        max_error: with ``speedup``, the largest relative weight error ``||W - W'|| / ||W||``
            (with ``calibration``, of the layer's outputs on those inputs) a layer may take
            (default 0.5: a quarter of its energy lost); layers whose faster rewrites all
            exceed it are left alone, so an unreachable target stops at the best speedup
            within the cap instead of cutting every layer to its deepest rank.
            ``math.inf`` lifts the cap.
        calibration: model inputs (a tensor batch, or a dataset of ``(input, label)``) to fit
            the factors to the data instead of the weights alone: each layer's input channel
            second moment ``S = E[x x^T]`` (pixels pooled) is measured on them, and a
            convolution's 1x1 reduction (and a Linear's first factor) minimises the layer's
            output error ``E||(W - W') x||^2`` (the SVD of ``W S^1/2``; see
            :func:`~onebyone.surgery._tucker.whitened_factors`) rather than ``||W - W'||``.
            ``budget`` and ``speedup`` (and ``max_error``) then measure a reduce or Linear
            layer's error on its outputs over these inputs too (tucker2 ranks and ``energy``
            still go by the weights). A few hundred training samples are enough; the inputs
            ReLUs leave in a few directions are where it gains most.

    Returns:
        ``(new_model, report)``.

    Raises:
        ValueError: a bad argument, weights on the meta device, a candidate layer with NaN or
            inf weights, a layer name that does not exist, a rank above a named layer's
            channels, or a budget that cannot be met.
        OneByOneError: the model's forward failed on ``example_input``, or a layer's weights
            cannot be factorized (``torch.linalg`` failed).
        InternalError: onebyone's own decomposition code failed: a bug to report, raised with
            the original exception chained rather than as a user error.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3))
        >>> small, report = decompose(net, rank=0.25, example_input=torch.randn(1, 32, 12, 12))
        >>> [c.ranks for c in report.changes]
        [(16, 8), (16, 16)]
        >>> type(small[0]).__name__, type(net[0]).__name__
        ('DecomposedConv2d', 'Conv2d')

        With ``calibration`` the factors are fitted to the inputs the layers see:

        >>> images = torch.randn(16, 32, 12, 12)
        >>> small, report = decompose(net, method="reduce", rank=8, example_input=images[:1], calibration=images)
        >>> report.notes
        ['factors fitted to the layer inputs of 16 calibration samples']
    """
    args = _validate(
        model, method=method, rank=rank, energy=energy, budget=budget, layers=layers, round_to=round_to,
        example_input=example_input, measure=measure, iterations=iterations, only_if_cheaper=only_if_cheaper,
        speedup=speedup, pointwise=pointwise, device_profile=device_profile, max_error=max_error,
        calibration=calibration,
    )
    new = keep_attributes(model, copy.deepcopy(model))
    report = SurgeryReport("decompose")
    candidates, macs_before, time_plan = _select(new, args, report)
    if args.speedup is not None and args.measure:
        new, report = by_measured_time(new, candidates, args, report)
    else:
        _rewrite(new, candidates, args, report, time_plan)
    _finish_report(model, new, args, macs_before, report)
    record_step(new, {
        "op": "decompose",
        "layers": {c.name: {"method": c.method, "ranks": list(c.ranks)} for c in report.changes},
    }, source=model)
    return new, report


# ----------------------------------------------------------------------------- validate


def _validate(model, *, method, rank, energy, budget, layers, round_to, example_input, measure, iterations,
              only_if_cheaper, speedup=None, pointwise=False, device_profile=None, max_error=0.5,
              calibration=None) -> _Args:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    on_meta = next((n for n, p in model.named_parameters() if p.is_meta), None)
    if on_meta is not None:
        raise ValueError(
            f"model has weights on the meta device ({on_meta!r}, ...): decompose factorizes real "
            "weights; build or load the model on a real device (cpu, cuda)"
        )
    check_choice("method", method, METHODS)
    given = [n for n, v in (("rank", rank), ("energy", energy), ("budget", budget), ("speedup", speedup))
             if v is not None]
    if len(given) != 1:
        if not given:
            raise ValueError("give exactly one of rank, energy or budget; got none (or speedup, to choose by time)")
        raise ValueError(f"give exactly one of rank, energy, budget or speedup; got {', '.join(given)}")
    if speedup is not None:
        speedup = check_speedup(speedup)
    if not isinstance(pointwise, bool):
        raise TypeError(f"pointwise must be a bool, got {pointwise!r}")
    if isinstance(max_error, bool) or not isinstance(max_error, numbers.Real):
        raise TypeError(f"max_error must be a number > 0, got {max_error!r}")
    if not float(max_error) > 0:  # also refuses nan
        raise ValueError(f"max_error must be a number > 0 (math.inf for no cap), got {max_error!r}")
    if not isinstance(measure, bool):
        raise TypeError(f"measure must be a bool, got {measure!r}")
    if not isinstance(only_if_cheaper, bool):
        raise TypeError(f"only_if_cheaper must be a bool, got {only_if_cheaper!r}")
    return _Args(
        method=method,
        rank=None if rank is None else _check_rank(rank),
        energy=None if energy is None else check_fraction("energy", energy),
        budget=None if budget is None else check_fraction("budget", budget, high_open=True),
        layers=_check_layers(model, layers),
        round_to=check_int("round_to", round_to),
        x=_example_input(model, example_input),
        measure=measure,
        iterations=check_int("iterations", iterations, minimum=0),
        only_if_cheaper=only_if_cheaper,
        speedup=speedup,
        pointwise=pointwise,
        device_profile=device_profile,
        max_error=float(max_error),
        calibration=check_calibration(calibration),
    )


def _check_rank(rank):
    if isinstance(rank, bool) or not isinstance(rank, numbers.Real):
        raise TypeError(f"rank must be an int >= 1 or a fraction in (0, 1], got {rank!r}")
    if isinstance(rank, numbers.Integral):
        return check_int("rank", rank)
    rank = float(rank)
    if not 0.0 < rank <= 1.0:
        raise ValueError(
            f"rank must be an int >= 1 (an absolute rank) or a float in (0, 1] (a fraction of the channels), got {rank}"
        )
    return rank


def _check_layers(model: nn.Module, layers) -> list[str] | None:
    if layers is None:
        return None
    if isinstance(layers, str):
        layers = [layers]
    names = dict(model.named_modules())
    out = []
    for name in layers:
        if not isinstance(name, str) or name not in names or name == "":
            close = difflib.get_close_matches(str(name), [n for n in names if n], n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"layers: the model has no layer named {name!r}{hint}")
        module = names[name]
        if not isinstance(module, CONV_TYPES + LINEAR_TYPES):
            raise ValueError(f"layers: {name!r} is a {type(module).__name__}, expected a Conv2d or a Linear")
        out.append(name)
    return out


def _example_input(model: nn.Module, example_input) -> torch.Tensor:
    if example_input is not None:
        if not isinstance(example_input, torch.Tensor):
            raise TypeError(f"example_input must be a tensor, got {type(example_input).__name__}")
        return example_input
    size = getattr(model, "default_input_size", None)
    if size is None:
        raise ValueError(
            "example_input is required: the model has no default_input_size, and the layers' "
            "spatial sizes decide which rewrites pay off"
        )
    size = tuple(size)
    param = next(model.parameters(), None)
    device = param.device if param is not None else None
    return torch.randn(1, *size, device=device) if len(size) == 3 else torch.randn(*size, device=device)


# ----------------------------------------------------------------------------- select


def _select(new: nn.Module, args: _Args, report: SurgeryReport):
    """The layers to rewrite with their ranks, the model's MACs before and the time plan
    (``speedup`` only, else None); skips on ``report``."""
    candidates = _candidates(new, args.layers, args.method, report, pointwise=args.pointwise)
    broken = next((c.name for c in candidates if not torch.isfinite(c.module.weight).all()), None)
    if broken is not None:
        raise ValueError(
            f"layer {broken!r} has non-finite weights (NaN or inf); decompose factorizes finite "
            "trained weights"
        )
    _capture(new, candidates, args.x, report)
    if args.calibration is not None:
        second_moments(new, candidates, args.calibration, args.x.device, report)
    macs_before = model_macs(new, args.x)
    if args.speedup is not None:
        if args.measure:  # chosen, built and timed end to end by by_measured_time
            return candidates, macs_before, None
        chosen, plan = ranks_by_time(new, candidates, args, report)
        return chosen, macs_before, plan
    if args.budget is not None:
        return ranks_from_budget(candidates, args.budget, args.round_to, macs_before, report), macs_before, None
    if args.rank is not None:
        candidates = _fixed_ranks(candidates, args, report)
    else:
        for c in candidates:
            c.ranks = ranks_from_energy(c, args.energy, args.round_to)
    kept = []
    for c in candidates:
        after = c.macs_at(c.ranks)
        if after >= c.macs and args.only_if_cheaper:
            report.skipped.append(Skip(c.name, f"rewrite at ranks {c.ranks} would not reduce MACs ({c.macs:,} -> {after:,})"))
        else:
            kept.append(c)
    return kept, macs_before, None


def _fixed_ranks(candidates: list[Candidate], args: _Args, report: SurgeryReport) -> list[Candidate]:
    fitting = []
    for c in candidates:
        try:
            c.ranks = ranks_from_rank(c, args.rank, args.round_to)
        except ValueError as e:
            if args.layers is not None:  # the user named this layer: a rank it cannot take is an error
                raise ValueError(f"rank: {e} for layer {c.name!r}") from None
            report.skipped.append(Skip(c.name, str(e)))
            continue
        fitting.append(c)
    if candidates and not fitting:
        largest = max(min(c.channels()) for c in candidates)
        raise ValueError(
            f"rank {args.rank} is above the channels of every layer that can be decomposed; "
            f"expected an int <= {largest} (the largest rank any layer takes) or a fraction in (0, 1]"
        )
    return fitting


def _candidates(model: nn.Module, named: list[str] | None, method: str, report: SurgeryReport, *,
                pointwise: bool = False) -> list[Candidate]:
    inside_decomposed = set()
    for name, module in model.named_modules():
        if isinstance(module, DecomposedConv2d | DecomposedLinear):
            inside_decomposed.update(f"{name}.{child}" for child, _ in module.named_children())
    wanted = set(named) if named is not None else None
    out = []
    for name, module in model.named_modules():
        if wanted is not None and name not in wanted:
            continue
        if name in inside_decomposed:
            if wanted is not None or not _is_1x1(module):
                report.skipped.append(Skip(name, "already part of a decomposed layer"))
            continue
        if isinstance(module, CONV_TYPES):
            if pointwise and _is_1x1(module) and module.groups == 1 and module.weight.dim() == 4:
                # two thinner 1x1s: "reduce" with a 1x1 kernel is the truncated SVD of the weight
                out.append(Candidate(name, module, "reduce"))
                continue
            reason = _conv_skip_reason(module)
            if reason:
                report.skipped.append(Skip(name, reason))
                continue
            out.append(Candidate(name, module, method))
        elif isinstance(module, LINEAR_TYPES):
            if min(module.weight.shape) < 2:
                report.skipped.append(Skip(name, f"Linear {tuple(module.weight.shape)} has nothing to factorise"))
                continue
            out.append(Candidate(name, module, "svd"))
    return out


def _is_1x1(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and tuple(module.kernel_size) == (1, 1)


def _conv_skip_reason(conv: nn.Conv2d) -> str | None:
    if conv.groups != 1:
        if conv.groups == conv.in_channels:
            return f"depthwise convolution (groups={conv.groups})"
        return f"grouped convolution (groups={conv.groups})"
    if tuple(conv.kernel_size) == (1, 1):
        return "1x1 convolution (already a channel projection)"
    if conv.weight.dim() != 4:
        return f"weight of shape {tuple(conv.weight.shape)} is not 4-D"
    return None


def _capture(model: nn.Module, candidates: list[Candidate], x: torch.Tensor, report: SurgeryReport) -> None:
    """Run ``x`` once to record each candidate's input (and its input/output pixel counts)."""
    by_module = {id(c.module): c for c in candidates}
    calls: dict[int, int] = {}

    @ours("decompose's input-capturing hook")
    def hook(module, args, kwargs, output):
        c = by_module[id(module)]
        calls[id(module)] = calls.get(id(module), 0) + 1
        inp = args[0] if args else kwargs["input"]  # self.fc(x) or self.fc(input=x)
        c.inputs = inp.detach().clone()
        if c.kind == "svd":  # rows per example: (N, ..., F) -> the product of the middle dims
            c.in_pixels = c.out_pixels = math.prod(inp.shape[1:-1]) if inp.dim() >= 2 else 1
        else:
            c.in_pixels = inp.shape[-2] * inp.shape[-1]
            c.out_pixels = output.shape[-2] * output.shape[-1]

    handles = [c.module.register_forward_hook(hook, with_kwargs=True) for c in candidates]
    try:
        run_forward(model, x)
    finally:
        for h in handles:
            h.remove()
    for c in list(candidates):
        n = calls.get(id(c.module), 0)
        if n != 1:
            candidates.remove(c)
            reason = "not called by the forward pass" if n == 0 else f"called {n} times per forward (shared weights)"
            report.skipped.append(Skip(c.name, reason))


# ----------------------------------------------------------------------------- rewrite


def _rewrite(new: nn.Module, candidates: list[Candidate], args: _Args, report: SurgeryReport, time_plan=None) -> None:
    """Put each candidate's bottleneck in place in ``new``; record the change (or the skip)."""
    with torch.no_grad():
        for c in candidates:
            try:
                replacement, weight_error = _build(c, args.iterations)
            except torch.linalg.LinAlgError as e:  # the weights' fault (NaN, say), with the layer named
                raise OneByOneError(f"decomposing {c.name!r} ({c.module}) failed: {e}") from e
            except Exception as e:  # anything else is a bug in our decomposition code
                raise InternalError(
                    f"decomposing {c.name!r} ({c.module}) raised {type(e).__name__}: {e}"
                ) from e
            change = LayerChange(
                name=c.name,
                method=c.kind,
                ranks=c.ranks,
                params_before=count_params(c.module),
                params_after=count_params(replacement),
                macs_before=c.macs,
                macs_after=c.macs_at(c.ranks),
                weight_error=weight_error,
            )
            replacement.train(c.module.training)
            timed = args.measure and time_plan is None
            _layer_errors_and_times(c, replacement, change, timed)
            if time_plan is not None:  # speedup: the times the choice was made on
                before, after = time_plan.points[c.name]
                change.est_time_before_ms, change.est_time_after_ms = 1000 * before.est_s, 1000 * after.est_s
                if before.measured_s is not None:
                    change.time_before_ms, change.time_after_ms = 1000 * before.measured_s, 1000 * after.measured_s
            if timed and change.time_after_ms >= change.time_before_ms:
                report.skipped.append(Skip(
                    c.name,
                    f"measured slower or equal: {change.time_before_ms:.3f} ms -> {change.time_after_ms:.3f} ms",
                ))
                continue
            new.set_submodule(c.name, replacement)
            report.changes.append(change)


def _build(c: Candidate, iterations: int) -> tuple[nn.Module, float]:
    m = c.module
    w = m.weight
    new = _empty_bottleneck(m, c.kind, c.ranks)
    if c.second_moment is not None:  # fitted to the inputs (calibration)
        approx = build_calibrated(c, new)
    elif c.kind == "svd":
        a, b = _tucker.svd_factors(w, c.ranks[0])
        new[0].weight.copy_(a)
        new[1].weight.copy_(b)
        approx = b @ a
    else:
        if c.kind == "tucker2":
            core, u_out, u_in = _tucker.tucker2(w, *c.ranks, iterations=iterations)
            new[0].weight.copy_(u_in.T[:, :, None, None])
            new[1].weight.copy_(core)
            new[2].weight.copy_(u_out[:, :, None, None])
            approx = torch.einsum("abkl,oa,ib->oikl", core, u_out, u_in)
        else:
            p, kernel = _tucker.reduce_factors(w, c.ranks[0])
            new[0].weight.copy_(p[:, :, None, None])
            new[1].weight.copy_(kernel)
            approx = torch.einsum("orkl,ri->oikl", kernel, p)
    if m.bias is not None:
        new[-1].bias.copy_(m.bias)
    return new, relative_error(w, approx)


def _empty_bottleneck(m: nn.Module, method: str, ranks: tuple[int, ...]) -> nn.Module:
    """The bottleneck that replaces ``m`` at ``ranks``, on its device and dtype (weights unset)."""
    if method == "svd":
        new = DecomposedLinear(m.in_features, m.out_features, rank=ranks[0], bias=m.bias is not None)
    else:
        new = DecomposedConv2d(
            m.in_channels, m.out_channels,
            kernel_size=m.kernel_size, stride=m.stride, padding=m.padding, dilation=m.dilation,
            padding_mode=m.padding_mode, bias=m.bias is not None, method=method, ranks=ranks,
        )
    return new.to(device=m.weight.device, dtype=m.weight.dtype)


def _layer_errors_and_times(c: Candidate, replacement: nn.Module, change: LayerChange, measure: bool) -> None:
    if c.inputs is None or c.inputs.numel() == 0:  # a batch-0 example: nothing to compare or time
        c.inputs = None
        return
    from onebyone._timing import median_seconds

    try:
        with eval_mode(c.module, replacement), torch.inference_mode():
            x = c.inputs
            change.output_error = relative_error(c.module(x), replacement(x))
            if measure:
                # Interleave the two so that a change in machine load hits both alike.
                before, after = [], []
                for _ in range(3):
                    before.append(median_seconds(lambda: c.module(x), warmup=1, repeats=5))
                    after.append(median_seconds(lambda: replacement(x), warmup=1, repeats=5))
                change.time_before_ms = 1000.0 * sorted(before)[1]
                change.time_after_ms = 1000.0 * sorted(after)[1]
    finally:
        c.inputs = None


def _model_error(old: nn.Module, new: nn.Module, x: torch.Tensor) -> float | None:
    a, b = run_forward(old, x), run_forward(new, x)
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return relative_error(a, b)
    return None


# ----------------------------------------------------------------------------- report


def _finish_report(model: nn.Module, new: nn.Module, args: _Args, macs_before: int, report: SurgeryReport) -> None:
    report.params_before = count_params(model)
    report.params_after = count_params(new)
    report.macs_before = macs_before
    report.macs_after = model_macs(new, args.x)
    if args.budget is not None and report.macs_after > args.budget * macs_before:
        report.notes.append(
            f"budget {args.budget} not met after measuring: {report.macs_after / macs_before:.3f} of the MACs remain"
        )
    if args.x.shape[0] == 0:
        report.notes.append("example_input has batch 0: no output error or timing measured")
    else:
        report.output_error = _model_error(model, new, args.x)


# ----------------------------------------------------------------------------- replay


def _replay(model: nn.Module, step: dict) -> nn.Module:
    """Replace the layers named in a recorded decompose ``step`` by empty bottlenecks (no SVD)."""
    for name, spec in step["layers"].items():
        model.set_submodule(name, _empty_bottleneck(model.get_submodule(name), spec["method"], tuple(spec["ranks"])))
    return model
