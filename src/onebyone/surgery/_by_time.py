"""``decompose(speedup=...)``: ranks chosen by time, and the chosen model timed end to end.

:func:`ranks_by_time` asks :func:`~onebyone.surgery._speedup.choose_by_time` for the ranks that
should bring the whole model to a target speedup, by estimated or measured layer times. With
measured times, :func:`by_measured_time` also builds each choice and times the whole model
(a layer timed alone can run faster or slower than inside the model), asks again when it falls
short, and keeps only what is faster end to end.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from torch import nn

from onebyone.surgery._ranks import Candidate
from onebyone.surgery._trace import keep_attributes
from onebyone.surgery.report import Skip, SurgeryReport

if TYPE_CHECKING:
    from onebyone.surgery._decompose import _Args as Args

__all__ = ["by_measured_time", "raised_target", "ranks_by_time"]


def ranks_by_time(new: nn.Module, candidates: list[Candidate], args: Args, report: SurgeryReport, *,
                   target: float | None = None, cache=None):
    """``speedup``: the candidates and ranks chosen by time (see ``_speedup``) for ``target``
    (default ``args.speedup``), and the plan. A ``cache`` passed in is left for the caller to save."""
    from onebyone.analysis import analyze
    from onebyone.analysis.profiles import resolve_profile
    from onebyone.surgery import _speedup

    target = args.speedup if target is None else target
    profile = resolve_profile(args.device_profile)
    total_est = float(analyze(new, tuple(args.x.shape), device_profile=profile).est_time_s)
    total_measured = None
    key = _speedup.device_key(profile.label, args.x)
    owned = cache is None and args.measure
    if args.measure:
        cache = _speedup.TimingCache.load() if cache is None else cache
        x = args.x
        total_measured = cache.get(
            f"{key}|model|{_speedup._layer_key(new, x)}", lambda: _speedup.time_module(new, x)
        )
    try:
        chosen, plan = _speedup.choose_by_time(
            candidates, target, round_to=args.round_to, profile=profile, measure=args.measure,
            total_est_s=total_est, total_measured_s=total_measured, cache=cache, dev_key=key, report=report,
            max_error=args.max_error,
        )
    finally:
        if owned:
            cache.save()
    report.speedup_target = args.speedup
    report.predicted_speedup = plan.speedup
    report.speedup_reachable = plan.speedup >= args.speedup * (1 - 1e-9)
    asked = "" if target == args.speedup else f" (asked for {target:.2f}x)"
    report.notes.append(
        f"speedup target {args.speedup:g}x{asked} by {plan.source} time on {profile.label}: "
        f"predicted {plan.speedup:.2f}x ({1000 * plan.total_s:.3f} ms -> "
        f"{1000 * (plan.total_s - plan.saved_s):.3f} ms at batch {args.x.shape[0]})"
    )
    return chosen, plan


def by_measured_time(new: nn.Module, candidates: list[Candidate], args: Args, report: SurgeryReport):
    """``speedup`` with ``measure``: choose by layer times, build, and time the whole model.

    A layer timed alone can run faster or slower than inside the model (caches, the kernels
    around it), so the speedup the layer times predict is checked: each choice is built and
    timed end to end against the model as it was (alternating rounds, cached). A choice that
    falls short of the target is made again for a target raised by the shortfall, at most
    ``_speedup.VERIFY_ROUNDS`` times. The first choice measured at the target is kept, else the
    fastest; if even that is not faster end to end than the model as it was, nothing is
    rewritten. Returns the new model and its report.
    """
    from onebyone.analysis.profiles import resolve_profile
    from onebyone.surgery import _speedup
    from onebyone.surgery._decompose import _rewrite

    inputs = {c.name: c.inputs for c in candidates}
    before_choice = copy.deepcopy(report)
    cache = _speedup.TimingCache.load()
    key = _speedup.device_key(resolve_profile(args.device_profile).label, args.x)
    trials, seen, ask = [], set(), args.speedup
    try:
        for _ in range(_speedup.VERIFY_ROUNDS):
            for c in candidates:  # _rewrite drops each layer's recorded input once used
                c.inputs = inputs[c.name]
            trial_report = copy.deepcopy(before_choice)
            chosen, plan = ranks_by_time(new, candidates, args, trial_report, target=ask, cache=cache)
            choice = tuple((c.name, c.ranks) for c in chosen)
            if choice in seen:  # asking for more gave nothing more
                break
            seen.add(choice)
            trial = keep_attributes(new, copy.deepcopy(new))  # a GraphModule's copy drops attributes
            _rewrite(trial, chosen, args, trial_report, plan)
            measured = _speedup.whole_model_speedup(new, trial, args.x, cache, key) if trial_report.changes else 1.0
            trials.append((measured, ask, plan, trial, trial_report))
            if measured >= args.speedup or measured <= 1.0 or not trial_report.changes:
                break  # met; or the rewrites cost time end to end, and more of them will not help
            ask = raised_target(args.speedup, plan.speedup, measured)
    finally:
        cache.save()
        for c in candidates:
            c.inputs = None
    return settle(new, trials, args, before_choice)


def raised_target(target: float, predicted: float, measured: float) -> float:
    """What to ask the layer chooser for when its ``predicted`` speedup measured ``measured``.

    The whole model saved the fraction ``k = (1 - 1/measured) / (1 - 1/predicted)`` of the time
    the layer times promised; reaching ``target`` then needs layer savings of ``(1 - 1/target) / k``
    of the model's time (100x when that is all of it or more: take everything within the cap).

    Example:
        >>> round(raised_target(1.5, predicted=2.0, measured=1.25), 3)  # k = 0.4: 5/6 of the time
        6.0
        >>> raised_target(1.5, predicted=1.0, measured=1.2)  # nothing promised: take everything
        100.0
    """
    if predicted <= 1.0 or measured <= 1.0:
        return 100.0
    k = (1 - 1 / measured) / (1 - 1 / predicted)
    need = (1 - 1 / target) / k
    return 100.0 if need >= 0.99 else 1 / (1 - need)


def settle(unchanged: nn.Module, trials: list, args: Args, before_choice: SurgeryReport):
    """The trial ``by_measured_time`` keeps (see there), with its report completed."""
    met = [t for t in trials if t[0] >= args.speedup]
    measured, _, plan, model, report = met[0] if met else max(trials, key=lambda t: t[0])
    if measured <= 1.0 and report.changes:
        slower = copy.deepcopy(before_choice)
        slower.notes.extend(report.notes)
        slower.skipped.extend(
            Skip(c.name, f"left alone: with the other rewrites chosen, the whole model measured {measured:.2f}x "
                         "(not faster) end to end")
            for c in report.changes
        )
        model, report = unchanged, slower
    rounds = "; ".join(
        f"{'asked ' + format(ask, '.2f') + 'x: ' if i else ''}predicted {p.speedup:.2f}x, measured {m:.2f}x"
        for i, (m, ask, p, _, _) in enumerate(trials)
    )
    report.notes.append(f"whole model timed end to end: {rounds}")
    report.speedup_target = args.speedup
    report.predicted_speedup = plan.speedup
    report.measured_speedup = measured if report.changes else 1.0
    report.speedup_reachable = report.measured_speedup >= args.speedup
    return model, report
