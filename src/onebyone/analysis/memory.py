"""``onebyone.max_batch``: the largest batch whose training step fits in a given memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ._train_cost import check_optimizer, human_size, parse_memory
from .analyze import analyze

__all__ = [
    "CheckpointWhatIf",
    "LayoutWhatIf",
    "ReductionWhatIf",
    "channels_last_whatif",
    "check_optimizer",
    "checkpoint_whatif",
    "max_batch",
    "parse_memory",
    "reduction_whatif",
]


def max_batch(
    model: nn.Module,
    input_size: Any,
    *,
    memory: str | int = "16GiB",
    optimizer: str = "adamw",
    dtype: torch.dtype | None = None,
    limit: int = 1 << 20,
) -> int:
    """The largest batch whose training step fits in ``memory``, by the peak estimate.

    The peak grows with the batch (activations and their gradients) on top of a fixed part
    (parameters, gradients, optimizer state); the estimate is taken at two batches, the
    largest fitting batch is searched for by analyzing batches around it (a handful of
    analyses: the peak is close to linear in the batch).

    Args:
        model: any ``nn.Module``.
        input_size: the shape of one input without the batch, e.g. ``(3, 224, 224)``.
        memory: the memory available: ``"16GiB"``, ``"512MB"``, ``"80 GB"`` or a number of bytes.
        optimizer: ``"sgd"``, ``"sgd-momentum"``, ``"adam"`` or ``"adamw"``.
        dtype: as in :func:`~onebyone.analysis.analyze`.
        limit: the largest batch considered.

    Returns:
        The largest batch, 0 if even batch 1 does not fit (but the parameters do).

    Raises:
        ValueError: a malformed ``memory``, an unknown ``optimizer``, or ``memory`` smaller
            than what the parameters, their gradients and the optimizer state need.

    Example:
        >>> from torch import nn
        >>> import onebyone
        >>> m = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 10, 1))
        >>> onebyone.max_batch(m, (3, 32, 32), memory="64MB", optimizer="sgd")
        76
    """
    budget = parse_memory(memory)
    optimizer = check_optimizer(optimizer)
    shape = tuple(input_size)
    if not shape or not all(isinstance(d, int) and d >= 1 for d in shape):
        raise ValueError(f"input_size must be a shape of positive ints, got {input_size!r}")
    first = analyze(model, (1, *shape), dtype=dtype, mode="train", optimizer=optimizer)
    cost = first.train_cost
    fixed = cost.param_bytes + cost.optimizer_bytes + cost.grad_bytes
    if budget < fixed:
        raise ValueError(
            f"memory {human_size(budget)} is less than the parameters alone need: "
            f"{human_size(cost.param_bytes)} parameters + {human_size(cost.grad_bytes)} gradients + "
            f"{human_size(cost.optimizer_bytes)} {optimizer} state = {human_size(fixed)}"
        )

    def peak(batch: int) -> int:
        r = analyze(model, (batch, *shape), dtype=dtype, mode="train", optimizer=optimizer)
        return r.train_cost.peak_bytes

    p1 = cost.peak_bytes
    if p1 > budget:
        return 0
    # The peak is close to linear in the batch (activations grow, the fixed part does not),
    # but not exactly: a secant search on analyzed peaks, kept inside a bracket that always
    # holds a fitting batch (lo) and, once found, one that does not (hi).
    lo, p_lo = 1, p1
    hi, p_hi = None, None
    b_prev, p_prev = 1, p1
    guess = 2
    interpolated = False
    while hi is None or hi - lo > 1:
        guess = min(max(guess, lo + 1), limit if hi is None else hi - 1)
        p = peak(guess)
        if p <= budget:
            lo, p_lo = guess, p
            if guess >= limit:
                return limit
        else:
            hi, p_hi = guess, p
        if hi is not None and hi - lo <= 1:
            break
        if hi is None:  # extrapolate from the last two points
            slope = max((p - p_prev) / max(guess - b_prev, 1), 1.0)
            b_prev, p_prev = guess, p
            guess = guess + int((budget - p) / slope)
            if guess <= lo:
                guess = lo + 1
        elif interpolated:  # probe next to the interpolated batch: the boundary is close
            guess = guess + 1 if p <= budget else guess - 1
            interpolated = False
        else:  # interpolate inside the bracket, bisecting when that would not move
            slope = (p_hi - p_lo) / (hi - lo)
            guess = lo + int((budget - p_lo) / slope) if slope > 0 else (lo + hi) // 2
            if not lo < guess < hi:
                guess = (lo + hi) // 2
            interpolated = True
    return lo


@dataclass
class CheckpointWhatIf:
    """What checkpointing one block would change in a training step (bytes and MACs).

    Args:
        name: the block (a qualified module name).
        saved_bytes: activations saved for backward without / with the checkpoint (what
            autograd's hooks see: the checkpoint keeps the block's inputs by itself).
        peak_bytes: the step's peak estimate without / with the checkpoint.
        backward_macs: the backward's MACs without / with it (the block's forward runs again
            in the backward).

    Example:
        >>> CheckpointWhatIf("layer1", (10, 4), (30, 25), (8, 12)).peak_bytes[1]
        25
    """

    name: str
    saved_bytes: tuple[int, int]
    peak_bytes: tuple[int, int]
    backward_macs: tuple[int, int]


def checkpoint_whatif(
    model: nn.Module,
    input_size: Any,
    blocks: list[str] | None = None,
    *,
    optimizer: str = "adamw",
    dtype: torch.dtype | None = None,
) -> list[CheckpointWhatIf]:
    """Analyze a training step with each block checkpointed in turn, against none checkpointed.

    Each block's forward is wrapped in ``torch.utils.checkpoint.checkpoint(...,
    use_reentrant=False)`` on the meta copy and the whole step is analyzed again, so the
    figures come from the operators that run (the recomputation included), as ``plan``'s do.

    Args:
        model: any ``nn.Module``.
        input_size: the input shape with the batch, e.g. ``(8, 3, 224, 224)``.
        blocks: qualified module names; None: the model's direct children that save
            activations.
        optimizer: as in :func:`~onebyone.analysis.analyze`.
        dtype: as in :func:`~onebyone.analysis.analyze`.

    Returns:
        One :class:`CheckpointWhatIf` per block, in the order given (or the model's).

    Raises:
        ValueError: a name in ``blocks`` that is not a submodule of ``model``.

    Example:
        >>> from torch import nn
        >>> m = nn.Sequential(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64)),
        ...                   nn.ReLU(), nn.Linear(64, 2))
        >>> w = checkpoint_whatif(m, (32, 64), ["0"], optimizer="sgd")[0]
        >>> w.saved_bytes[1] < w.saved_bytes[0], w.backward_macs[1] > w.backward_macs[0]
        (True, True)
    """
    from ._inputs import rng_kept
    from .analyze import _check_arguments, _record_train

    optimizer = check_optimizer(optimizer)
    modules = dict(model.named_modules())
    base = analyze(model, input_size, dtype=dtype, mode="train", optimizer=optimizer)
    if blocks is None:
        children = {name for name, _ in model.named_children()}
        blocks = [r.name for r in base.rows if r.name in children and r.call_index == 0]
        blocks = [b for b in blocks if base.subtree(b) and _saved_under(base, b)]
    for name in blocks:
        if name not in modules or not name:
            raise ValueError(
                f"blocks: {name!r} is not a submodule of {type(model).__name__}; "
                f"e.g. {sorted(n for n in modules if n)[:5]}"
            )
    device, dtype = _check_arguments(model, "meta", dtype)
    out = []
    for name in blocks:

        def prepare(work: nn.Module, name: str = name) -> None:
            _checkpoint(work.get_submodule(name))

        with rng_kept(device):
            report, _ = _record_train(
                model, input_size, device=device, dtype=dtype, optimizer=optimizer, prepare=prepare
            )
        before, after = base.train_cost, report.train_cost
        out.append(
            CheckpointWhatIf(
                name,
                (before.saved_bytes, after.saved_bytes),
                (before.peak_bytes, after.peak_bytes),
                (base.backward_macs, report.backward_macs),
            )
        )
    return out


def _saved_under(report: Any, name: str) -> int:
    prefix = f"{name}."
    return sum(r.saved_bytes for r in report.rows if r.name == name or r.name.startswith(prefix))


def _checkpoint(module: nn.Module) -> None:
    from torch.utils.checkpoint import checkpoint

    forward = module.forward

    def checkpointed(*args: Any, **kwargs: Any) -> Any:
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    module.forward = checkpointed


# ------------------------------------------------------------------ what-if: channels_last


@dataclass
class LayoutWhatIf:
    """What running the step in ``channels_last`` would change (as given / channels_last).

    Args:
        saved_bytes: activations saved for backward as given / in channels_last.
        peak_bytes: the step's peak estimate as given / in channels_last.

    Example:
        >>> LayoutWhatIf((10, 10), (30, 30)).changed
        False
    """

    saved_bytes: tuple[int, int]
    peak_bytes: tuple[int, int]

    @property
    def changed(self) -> bool:
        """Whether the layout changes the saved bytes or the peak.

        Example:
            >>> LayoutWhatIf((10, 10), (30, 31)).changed
            True
        """
        return self.saved_bytes[0] != self.saved_bytes[1] or self.peak_bytes[0] != self.peak_bytes[1]


def channels_last_whatif(
    model: nn.Module, input_size: Any, *, optimizer: str = "adamw", dtype: torch.dtype | None = None
) -> LayoutWhatIf:
    """Analyze a training step with the model and its 4-d inputs in ``channels_last``.

    The meta copy is moved to ``torch.channels_last`` and the 4-d inputs are made
    channels_last (as ``model.to(memory_format=torch.channels_last)`` and
    ``x.contiguous(memory_format=torch.channels_last)`` would), then the step is analyzed
    again; a layout holds the same bytes, so figures change only where an operator copies
    to another layout (and the copy is saved or live at the peak).

    Args:
        model: any ``nn.Module``.
        input_size: as in :func:`~onebyone.analysis.analyze` (with the batch).
        optimizer: as in :func:`~onebyone.analysis.analyze`.
        dtype: as in :func:`~onebyone.analysis.analyze`.

    Returns:
        A :class:`LayoutWhatIf`.

    Example:
        >>> from torch import nn
        >>> m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        >>> channels_last_whatif(m, (2, 3, 8, 8), optimizer="sgd").saved_bytes
        (3840, 3840)
    """
    from ._inputs import make_inputs, rng_kept
    from .analyze import _check_arguments, _record_train

    optimizer = check_optimizer(optimizer)
    base = analyze(model, input_size, dtype=dtype, mode="train", optimizer=optimizer)
    device, dtype = _check_arguments(model, "meta", dtype)
    inputs = [
        t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
        for t in make_inputs(input_size, device, dtype)
    ]

    def prepare(work: nn.Module) -> None:
        work.to(memory_format=torch.channels_last)

    with rng_kept(device):
        report, _ = _record_train(
            model, inputs, device=device, dtype=dtype, optimizer=optimizer, prepare=prepare
        )
    before, after = base.train_cost, report.train_cost
    return LayoutWhatIf(
        (before.saved_bytes, after.saved_bytes), (before.peak_bytes, after.peak_bytes)
    )


# ------------------------------------------------------------------ what-if: a 1x1 reduction


@dataclass
class ReductionWhatIf:
    """What a 1x1 reduction in front of one kxk convolution would change (before / after).

    Args:
        name: the convolution (a qualified module name).
        in_channels: its input channels.
        mid_channels: the channels of the 1x1 projection put in front of it.
        saved_bytes: activations saved for backward before / after.
        peak_bytes: the step's peak estimate before / after.
        macs: the forward's MACs before / after.

    Example:
        >>> ReductionWhatIf("conv", 64, 16, (10, 12), (30, 28), (100, 40)).macs[1]
        40
    """

    name: str
    in_channels: int
    mid_channels: int
    saved_bytes: tuple[int, int]
    peak_bytes: tuple[int, int]
    macs: tuple[int, int]


def reduce_conv(conv: nn.Conv2d, mid_channels: int) -> nn.Sequential:
    """``conv`` with a 1x1 projection to ``mid_channels`` in front (new, untrained weights).

    Example:
        >>> reduce_conv(nn.Conv2d(64, 32, 3, padding=1), 16)[0]
        Conv2d(64, 16, kernel_size=(1, 1), stride=(1, 1), bias=False)
    """
    kw = {"device": conv.weight.device, "dtype": conv.weight.dtype}
    return nn.Sequential(
        nn.Conv2d(conv.in_channels, mid_channels, 1, bias=False, **kw),
        nn.Conv2d(
            mid_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            **kw,
        ),
    )


def reduction_whatif(
    model: nn.Module,
    input_size: Any,
    name: str | None = None,
    *,
    fraction: float = 0.25,
    optimizer: str = "adamw",
    dtype: torch.dtype | None = None,
) -> ReductionWhatIf | None:
    """Analyze a training step with a 1x1 reduction in front of one kxk convolution.

    The convolution (``nn.Conv2d``, kernel larger than 1x1, ``groups=1``) is replaced on the
    meta copy by ``nn.Sequential(Conv2d(in, mid, 1), Conv2d(mid, out, k, ...))`` (the idea of
    :func:`~onebyone.analysis.plan`'s bottlenecks) with ``mid = max(1, round(fraction * in))``,
    and the step is analyzed again.

    Args:
        model: any ``nn.Module``.
        input_size: as in :func:`~onebyone.analysis.analyze` (with the batch).
        name: the convolution; None: the one whose input (saved for its backward, by it or
            by the layer that made it) is largest, the larger MACs on a tie.
        fraction: ``mid_channels`` as a fraction of its ``in_channels``, in (0, 1].
        optimizer: as in :func:`~onebyone.analysis.analyze`.
        dtype: as in :func:`~onebyone.analysis.analyze`.

    Returns:
        A :class:`ReductionWhatIf`, or None when ``name`` is None and the model has no
        such convolution.

    Raises:
        ValueError: ``fraction`` outside (0, 1], or ``name`` not such a convolution.

    Example:
        >>> from torch import nn
        >>> m = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        >>> w = reduction_whatif(m, (1, 8, 4, 4), fraction=0.5, optimizer="sgd")
        >>> w.name, w.mid_channels, w.macs
        ('0', 4, (9216, 5120))
    """
    from ._inputs import rng_kept
    from .analyze import _check_arguments, _record_train

    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"fraction must be a number, got {type(fraction).__name__}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    optimizer = check_optimizer(optimizer)
    modules = dict(model.named_modules())
    base = analyze(model, input_size, dtype=dtype, mode="train", optimizer=optimizer)
    if name is None:
        # A conv's input is saved for its weight gradient, but the bytes are often counted
        # on the layer before (a ReLU's output is the same storage): rank by the input kept.
        rows = [r for r in base.rows if _reducible(modules.get(r.name)) and r.input_shapes]
        if not rows:
            return None
        name = max(rows, key=lambda r: (_numel(r.input_shapes[0]), r.macs)).name
    conv = modules.get(name) if name else None
    if not _reducible(conv):
        raise ValueError(
            f"name: {name!r} is not a Conv2d of {type(model).__name__} with a kernel larger "
            "than 1x1 and groups=1"
        )
    mid = max(1, round(fraction * conv.in_channels))
    device, dtype = _check_arguments(model, "meta", dtype)

    def prepare(work: nn.Module) -> None:
        parent_name, _, child = name.rpartition(".")
        parent = work.get_submodule(parent_name)
        setattr(parent, child, reduce_conv(parent.get_submodule(child), mid))

    with rng_kept(device):
        report, _ = _record_train(
            model, input_size, device=device, dtype=dtype, optimizer=optimizer, prepare=prepare
        )
    before, after = base.train_cost, report.train_cost
    return ReductionWhatIf(
        name,
        conv.in_channels,
        mid,
        (before.saved_bytes, after.saved_bytes),
        (before.peak_bytes, after.peak_bytes),
        (base.total_macs, report.total_macs),
    )


def _numel(shape: Any) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _reducible(module: Any) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == 1
        and tuple(module.kernel_size) != (1, 1)
    )
