"""The cost of one training step: backward MACs/FLOPs, saved activations, gradients, optimizer state, peak memory.

``analyze(model, input_size, mode="train")`` runs the meta copy's forward with gradients on,
reduces its output to a loss (the sum of every floating output that requires grad), and runs
the backward on the meta device too, so every figure comes from the operators that really run:

* backward MACs/FLOPs: each aten operator of the backward is counted by the same rules as
  the forward (plus :data:`BACKWARD_MAC_RULES` / :data:`BACKWARD_FLOP_RULES`) and attributed
  to the module call whose forward created the autograd node that runs it;
* saved bytes: the storages autograd saves for backward, captured with
  ``torch.autograd.graph.saved_tensors_hooks``, each storage once (views are free);
  parameters and buffers that operators save are not activations and are left out;
* gradient bytes: the ``.grad`` storages the backward created;
* optimizer state: SGD (none), SGD with momentum (one buffer per parameter), Adam and AdamW
  (two buffers and a float32 ``step`` per parameter), as ``torch.optim`` allocates them;
* the peak: live tensor storages are tracked through the forward and the backward (a storage
  counts from the operator that creates it until its last reference goes), on top of the
  parameters, buffers and optimizer state; the optimizer step adds the gradients and its
  own temporaries. The peak is split into parameters, gradients, optimizer state, saved
  activations and the rest ("transient": outputs not saved, gradients of activations,
  temporaries).

The step simulated is ``optimizer.zero_grad(); loss = sum(outputs); loss.backward();
optimizer.step()`` after a first step (the optimizer state exists; gradients start at None).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef

from onebyone._internal import InternalError
from onebyone.errors import OneByOneError

from ._counting import FLOP_RULES, MAC_RULES, OpCount, _conv
from ._meta_kernels import META_SHORTCUTS, _like
from ._recorder import Call, Counter, Recorder, tensors_in
from .report import LayerStats

__all__ = [
    "BACKWARD_FLOP_RULES",
    "BACKWARD_MAC_RULES",
    "OPTIMIZERS",
    "TrainCost",
    "human_size",
    "optimizer_state_bytes",
    "parse_memory",
]

aten = torch.ops.aten

# Optimizer name -> (state buffers per parameter, float32 scalars per parameter).
OPTIMIZERS: dict[str, tuple[int, int]] = {
    "sgd": (0, 0),
    "sgd-momentum": (1, 0),
    "adam": (2, 1),
    "adamw": (2, 1),
}


# ------------------------------------------------------------------ backward counting rules


def _conv_backward(args, kwargs, out) -> OpCount:
    # (grad_output, input, weight, bias_sizes, stride, padding, dilation, transposed,
    #  output_padding, groups, output_mask): each of the input and weight gradients is a
    # convolution with the forward's multiply-accumulates; the bias gradient is a sum.
    grad_out, x, w = args[0], args[1], args[2]
    mask = args[10] if len(args) > 10 else kwargs.get("output_mask", (True, True, True))
    fwd = _conv((x, w, None, *args[4:10]), {}, grad_out)
    macs = fwd.macs * (int(bool(mask[0])) + int(bool(mask[1])))
    extra = grad_out.numel() if mask[2] else 0
    return OpCount(macs, extra, f"{macs // max(fwd.macs, 1)}x({fwd.formula})" if macs else "")


def _per_grad_element(args, kwargs, out) -> int:
    return int(args[0].numel())


BACKWARD_MAC_RULES = {aten.convolution_backward: _conv_backward}
# Elementwise backward operators: one FLOP per element of the incoming gradient
# (norm backward: several; a convention, as the forward's elementwise counts are).
BACKWARD_FLOP_RULES = {
    getattr(aten, name): _per_grad_element
    for name in (
        "threshold_backward",
        "hardtanh_backward",
        "sigmoid_backward",
        "tanh_backward",
        "gelu_backward",
        "silu_backward",
        "hardswish_backward",
        "hardsigmoid_backward",
        "leaky_relu_backward",
        "elu_backward",
        "softplus_backward",
        "mish_backward",
        "max_pool2d_with_indices_backward",
        "max_pool3d_with_indices_backward",
        "avg_pool2d_backward",
        "avg_pool3d_backward",
        "_adaptive_avg_pool2d_backward",
        "_adaptive_avg_pool3d_backward",
        "adaptive_max_pool2d_backward",
        "_softmax_backward_data",
        "_log_softmax_backward_data",
        "native_dropout_backward",
    )
    if hasattr(aten, name)
}
for _name in ("native_batch_norm_backward", "native_layer_norm_backward", "native_group_norm_backward"):
    if hasattr(aten, _name):
        BACKWARD_FLOP_RULES[getattr(aten, _name)] = lambda a, k, o: 5 * int(a[0].numel())



def _register(table: dict, new: dict, what: str) -> None:
    # A rule already there for the same operator is a clash, unless it is this module's own
    # (the module imported a second time, as doctest collection does).
    for op, rule in new.items():
        old = table.get(op)
        if old is not None and getattr(old, "__qualname__", None) != rule.__qualname__:
            raise InternalError(f"{what} for {op} registered twice")
        table[op] = rule


_register(MAC_RULES, BACKWARD_MAC_RULES, "a backward MAC rule")
_register(FLOP_RULES, BACKWARD_FLOP_RULES, "a backward FLOP rule")


# ------------------------------------------------------------------ backward meta shortcuts
#
# torch computes these backward shapes on meta with Python reference kernels (most of a
# train analysis's time); they are the shapes of the forward's tensors.


def _meta_threshold_backward(grad, x, threshold):
    if grad.shape != x.shape or grad.dtype != x.dtype or not grad.is_floating_point():
        return NotImplemented
    return _like(grad)


def _meta_batch_norm_backward(grad, x, weight, rmean, rvar, smean, sinvstd, train, eps, mask):
    if (
        not all(mask)
        or weight is None
        or grad.shape != x.shape
        or grad.dtype != x.dtype
        or weight.dim() != 1
        or x.dim() < 2
        or weight.shape[0] != x.shape[1]
    ):
        return NotImplemented
    return _like(x), _like(weight), _like(weight)


def _meta_mm(a, b):
    if (
        a.dim() != 2
        or b.dim() != 2
        or a.shape[1] != b.shape[0]
        or a.dtype != b.dtype
        or not a.is_floating_point()
        or b.device.type != "meta"
    ):
        return NotImplemented
    return torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device="meta")


def _meta_sum(x, dim, keepdim=False):
    if not x.is_floating_point() or not dim or x.dim() == 0:
        return NotImplemented
    dims = {d % x.dim() for d in dim}
    shape = [1 if i in dims else n for i, n in enumerate(x.shape) if keepdim or i not in dims]
    return torch.empty(shape, dtype=x.dtype, device="meta")


def _meta_conv_backward(grad, x, w, bias_sizes, stride, padding, dilation, transposed, output_padding, groups, mask):
    if x.dim() != w.dim() or grad.dim() != x.dim() or not x.is_floating_point():
        return NotImplemented
    return (
        _like(x) if mask[0] else None,
        torch.empty(w.shape, dtype=w.dtype, device="meta") if mask[1] else None,
        torch.empty(bias_sizes, dtype=grad.dtype, device="meta")
        if mask[2] and bias_sizes is not None
        else None,
    )


def _meta_input_like(grad, x, *rest):
    # pooling backward: the gradient of the input has the input's shape and layout
    if not x.is_floating_point() or grad.dtype != x.dtype:
        return NotImplemented
    return _like(x)


_BACKWARD_SHORTCUTS = {
    aten.max_pool2d_with_indices_backward.default: _meta_input_like,
    aten.avg_pool2d_backward.default: _meta_input_like,
    aten.convolution_backward.default: _meta_conv_backward,
    aten.sum.dim_IntList: _meta_sum,
    aten.mm.default: _meta_mm,
    aten.threshold_backward.default: _meta_threshold_backward,
    aten.native_batch_norm_backward.default: _meta_batch_norm_backward,
}
_register(META_SHORTCUTS, _BACKWARD_SHORTCUTS, "a backward meta shortcut")


# ------------------------------------------------------------------ result


@dataclass
class TrainCost:
    """The memory of one training step, in bytes, and where its peak comes from.

    Args:
        optimizer: the optimizer simulated (a key of :data:`OPTIMIZERS`).
        param_bytes: parameters and buffers.
        grad_bytes: the parameter gradients the backward creates.
        optimizer_bytes: the optimizer's state.
        saved_bytes: activations autograd saves for backward (each storage once).
        peak_bytes: the estimated peak of live tensor bytes during the step.
        peak_phase: where the peak falls: ``"forward"``, ``"backward"`` or ``"step"``.
        peak_split: the peak split into ``parameters``, ``gradients``, ``optimizer``,
            ``saved`` and ``transient``; the values sum to ``peak_bytes``.

    Example:
        >>> TrainCost("sgd", 40, 40, 0, 16, 100, "backward").peak_bytes
        100
    """

    optimizer: str
    param_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    saved_bytes: int
    peak_bytes: int
    peak_phase: str
    peak_split: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as JSON-ready values.

        Example:
            >>> TrainCost("sgd", 1, 1, 0, 0, 2, "step").to_dict()["peak_phase"]
            'step'
        """
        return {
            "optimizer": self.optimizer,
            "param_bytes": self.param_bytes,
            "grad_bytes": self.grad_bytes,
            "optimizer_bytes": self.optimizer_bytes,
            "saved_bytes": self.saved_bytes,
            "peak_bytes": self.peak_bytes,
            "peak_phase": self.peak_phase,
            "peak_split": dict(self.peak_split),
        }


def check_optimizer(optimizer: Any) -> str:
    """Return the optimizer's key, or raise naming the known ones.

    Example:
        >>> check_optimizer("AdamW")
        'adamw'
    """
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be a string, got {type(optimizer).__name__}")
    key = optimizer.strip().lower().replace("_", "-")
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    return key


def optimizer_state_bytes(params: list[torch.Tensor], optimizer: str) -> int:
    """Bytes of the state ``torch.optim`` keeps for ``params`` (those that require grad).

    Example:
        >>> optimizer_state_bytes([nn.Parameter(torch.empty(10))], "adam")  # 2 buffers, step
        84
    """
    buffers, scalars = OPTIMIZERS[check_optimizer(optimizer)]
    trainable = [p for p in params if p.requires_grad]
    return sum(buffers * p.numel() * p.element_size() + 4 * scalars for p in trainable)


def _step_transient(params: list[torch.Tensor], optimizer: str) -> int:
    # torch.optim's per-parameter (CPU) Adam builds `exp_avg_sq.sqrt() / c` for one parameter
    # at a time: two temporaries of the largest parameter. SGD updates in place.
    if OPTIMIZERS[optimizer][0] < 2:
        return 0
    sizes = [p.numel() * p.element_size() for p in params if p.requires_grad]
    return 2 * max(sizes, default=0)


# ------------------------------------------------------------------ live storages


class _Live:
    """Live tensor storages through the step, and the peak of their bytes with its split.

    ``total`` is an upper bound of the live bytes until :meth:`sweep` drops the storages
    whose last reference went; the peak is only taken after a sweep.
    """

    def __init__(self, base: int, fixed: set[int], params: list[torch.Tensor]) -> None:
        self.base = base  # parameters, buffers, optimizer state
        self.fixed = fixed  # storages of parameters and buffers (never saved, never freed)
        self.params = params
        self.other: dict[int, tuple[StorageWeakRef, int]] = {}
        self.saved: dict[int, tuple[StorageWeakRef, int]] = {}
        self.total = base
        self.saved_total = 0
        self.backward = False
        self.peak = base
        self.peak_phase = "forward"
        self.peak_split: dict[str, int] = {}

    def add(self, t: torch.Tensor) -> None:
        st = t.untyped_storage()
        key = st._cdata
        if key in self.fixed:
            return
        old = self.other.get(key) or self.saved.get(key)
        if old is not None and not old[0].expired():
            return
        if old is not None:  # a freed storage's address was reused
            self._drop(key)
        n = st.nbytes()
        self.other[key] = (StorageWeakRef(st), n)
        self.total += n

    def save(self, t: torch.Tensor) -> None:
        st = t.untyped_storage()
        key = st._cdata
        if key in self.fixed or key in self.saved:
            return
        entry = self.other.pop(key, None)
        if entry is None:  # created outside the operators we saw (an input, a constant)
            entry = (StorageWeakRef(st), st.nbytes())
            self.total += entry[1]
        self.saved[key] = entry
        self.saved_total += entry[1]

    def _drop(self, key: int) -> None:
        entry = self.other.pop(key, None)
        if entry is None:
            entry = self.saved.pop(key)
            self.saved_total -= entry[1]
        self.total -= entry[1]

    def sweep(self) -> None:
        groups = (self.other, self.saved) if self.backward else (self.other,)
        for group in groups:
            for key in [k for k, (ref, _) in group.items() if ref.expired()]:
                self._drop(key)

    def after_op(self, out: Any, phase: str) -> None:
        for t in tensors_in(out):
            self.add(t)
        if self.total > self.peak:
            self.sweep()
            if self.total > self.peak:
                self.take_peak(self.total, phase)

    def grad_bytes(self) -> int:
        seen: dict[int, int] = {}
        for p in self.params:
            if p.grad is not None:
                st = p.grad.untyped_storage()
                seen[st._cdata] = st.nbytes()
        return sum(seen.values())

    def take_peak(self, total: int, phase: str, grads: int | None = None) -> None:
        self.peak = total
        self.peak_phase = phase
        self.peak_split = {"saved": self.saved_total}
        self.peak_split["gradients"] = (
            self.grad_bytes() if grads is None and self.backward else (grads or 0)
        )


# ------------------------------------------------------------------ the recording


class _TrainCounter(Counter):
    """The forward's counting mode, also tracking the storages each operator creates."""

    def __init__(self, stack: list[Call], live: _Live) -> None:
        super().__init__(stack)
        self.live = live

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = super().__torch_dispatch__(func, types, args, kwargs)
        self.live.after_op(out, "forward")
        return out


class _BackwardCounter(Counter):
    """Counts the backward's operators into the row of the call that created each node."""

    def __init__(self, node_call: dict, calls: list[Call], live: _Live) -> None:
        super().__init__([])
        self.node_call = node_call
        self.calls = calls
        self.live = live
        self.outside = Call(nn.Identity(), LayerStats("(loss)", "loss", 0, [], ()))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        index = self.node_call.get(torch._C._current_autograd_node())
        call = self.outside if index is None else self.calls[index]
        self.stack[:] = [call]
        if func is aten.ones_like.default and args[0].device.type == "meta" and args[0].dim() == 0:
            # the backward's seed: torch's Python meta for ones_like imports sympy (seconds)
            out = torch.ones((), dtype=args[0].dtype, device="meta")
            self.live.after_op(out, "backward")
            return out
        out = super().__torch_dispatch__(func, types, args, kwargs)
        self.live.after_op(out, "backward")
        return out


class _NodeTagger:
    """Tags each autograd node with the index of the innermost module call that created it.

    A call's nodes are those reachable from its outputs' ``grad_fn`` without passing its
    inputs' ``grad_fn`` (taken before it ran: in-place operators change them) or a node of an
    earlier call; nodes of its children, tagged first, are passed through.
    """

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.node_call: dict[Any, int] = {}
        self.open: list[tuple[int, set]] = []
        self._handles: list[Any] = []

    def __enter__(self) -> _NodeTagger:
        for module in {id(m): m for m in self.recorder.model.modules()}.values():
            self._handles.append(module.register_forward_pre_hook(self._pre, with_kwargs=True))
            self._handles.append(module.register_forward_hook(self._post))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _pre(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        index = len(self.recorder.calls) - 1
        stops = {t.grad_fn for t in tensors_in((args, kwargs)) if t.grad_fn is not None}
        self.open.append((index, stops))

    def _post(self, module: nn.Module, args: tuple, output: Any) -> None:
        if not self.open:
            return
        index, stops = self.open.pop()
        todo = [t.grad_fn for t in tensors_in(output) if t.grad_fn is not None]
        seen: set = set()
        node_call = self.node_call
        while todo:
            node = todo.pop()
            if node in seen or node in stops:
                continue
            seen.add(node)
            tag = node_call.get(node)
            if tag is None:
                node_call[node] = index
            elif tag < index:
                continue
            todo.extend(n for n, _ in node.next_functions if n is not None)


def _loss(output: Any) -> torch.Tensor:
    outs = [t for t in tensors_in(output) if t.is_floating_point() and t.requires_grad]
    if not outs:
        found = [
            f"{type(t).__name__}({tuple(t.shape)}, {str(t.dtype).replace('torch.', '')}, "
            f"requires_grad={t.requires_grad})"
            for t in tensors_in(output)
        ]
        what = ", ".join(found) if found else f"{type(output).__name__} (no tensor)"
        raise ValueError(
            "mode='train' reduces the forward's floating outputs that require grad to a loss "
            f"(their sum), but the forward returned {what}"
        )
    loss = outs[0].sum()
    for t in outs[1:]:
        loss = loss + t.sum()
    return loss


def record_train(
    work: nn.Module, inputs: list[torch.Tensor], optimizer: str, run_forward
) -> tuple[Recorder, TrainCost, LayerStats]:
    """Run a training step of ``work`` (the analysis copy) and return its recorder and cost.

    ``run_forward(recorder, tagger)`` runs the forward under both (the caller's error
    handling); the rows get ``backward_macs``, ``backward_flops`` and ``saved_bytes``.
    Returns the recorder, the step's :class:`TrainCost` and the row of the work outside any
    module (the loss).
    """
    params = list(work.parameters())
    buffers = list(work.buffers())
    fixed = {t.untyped_storage()._cdata for t in (*params, *buffers)}
    param_bytes = sum(t.untyped_storage().nbytes() for t in {id(t): t for t in (*params, *buffers)}.values())
    state = optimizer_state_bytes(params, optimizer)
    live = _Live(param_bytes + state, fixed, params)
    for t in inputs:
        live.add(t)
    for p in params:
        p.grad = None

    recorder = Recorder(work)
    recorder.counter = _TrainCounter(recorder.stack, live)

    def pack(t: torch.Tensor) -> torch.Tensor:
        before = live.saved_total
        live.save(t)
        if live.saved_total != before and recorder.stack:
            row = recorder.stack[-1].row
            row.saved_bytes += live.saved_total - before
        return t

    tagger = _NodeTagger(recorder)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = run_forward(recorder, tagger)
    loss = _loss(output)
    live.after_op(loss, "forward")
    saved_bytes = live.saved_total
    live.sweep()
    live.backward = True
    shadows = [
        Call(c.module, LayerStats(c.row.name, c.row.type, c.row.depth, [], ()))
        for c in recorder.calls
    ]
    counter = _BackwardCounter(tagger.node_call, shadows, live)
    try:
        with counter:
            loss.backward()
    except InternalError:
        raise
    except Exception as e:
        raise OneByOneError(f"the backward of the meta copy failed: {type(e).__name__}: {e}") from e
    for call, shadow in zip(recorder.calls, shadows, strict=True):
        call.row.backward_macs = shadow.row.macs
        call.row.backward_flops = shadow.row.flops
    for op, n in counter.uncounted.items():
        recorder.counter.uncounted[op] += n

    # The optimizer step: the gradients, the outputs still referenced, the step's temporaries.
    live.sweep()
    grads = live.grad_bytes()
    step = live.total + _step_transient(params, optimizer)
    if step > live.peak:
        live.take_peak(step, "step", grads)
    split = live.peak_split
    split = {
        "parameters": param_bytes,
        "gradients": split.get("gradients", 0),
        "optimizer": state,
        "saved": split.get("saved", 0),
    }
    split["transient"] = live.peak - sum(split.values())
    cost = TrainCost(
        optimizer=optimizer,
        param_bytes=param_bytes,
        grad_bytes=grads,
        optimizer_bytes=state,
        saved_bytes=saved_bytes,
        peak_bytes=live.peak,
        peak_phase=live.peak_phase,
        peak_split=split,
    )
    del output, loss
    return recorder, cost, counter.outside.row


# ------------------------------------------------------------------ memory strings

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_MEMORY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_memory(memory: Any) -> int:
    """Bytes in a memory size: an int, or a string such as ``"16GiB"``, ``"512MB"``, ``"80 GB"``.

    Example:
        >>> parse_memory("16GiB"), parse_memory("512MB")
        (17179869184, 512000000)
    """
    if isinstance(memory, int) and not isinstance(memory, bool):
        if memory < 1:
            raise ValueError(f"memory must be >= 1 byte, got {memory}")
        return memory
    if not isinstance(memory, str):
        raise TypeError(f"memory must be a string such as '16GiB' or an int, got {type(memory).__name__}")
    m = _MEMORY.match(memory)
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise ValueError(
            f"memory must be a number and a unit, e.g. '16GiB', '512MB' or '80 GB' "
            f"(units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), got {memory!r}"
        )
    value = int(float(m.group(1)) * _UNITS[unit])
    if value < 1:
        raise ValueError(f"memory must be at least 1 byte, got {memory!r}")
    return value


def human_size(n: int) -> str:
    """``n`` bytes in GiB, MiB or KiB with two decimals.

    Example:
        >>> human_size(4_004_000)
        '3.82 MiB'
    """
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"
