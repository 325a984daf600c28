"""The analyzer's recording layer: module hooks and an aten dispatch mode that fill the rows.

:class:`Recorder` hooks every module of the analysis copy: the pre-hook opens a
:class:`~onebyone.analysis.report.LayerStats` row for the call and the post-hook closes it.
:class:`Counter`, a ``TorchDispatchMode``, adds each aten operator's cost (``_counting``) and
traffic (``_traffic``) to the row of the innermost module running, and records the operators
that have no counting rule. Rendering never happens here: the rows are plain records.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from onebyone._internal import InternalError, ours

from ._counting import FLOP_RULES, MAC_RULES, count_op
from ._meta_kernels import META_SHORTCUTS, check_meta
from ._traffic import COPY_OPS, VIEW_OPS, op_bytes, op_class
from .report import LayerStats, OpCost

__all__ = ["Call", "Counter", "Recorder", "shape_of", "tensors_in"]

# Reshapes of a 4-d map into (N, C*H*W): the planner's "Linear over a flattened map".
_FLATTEN_OPS = {
    torch.ops.aten.view,
    torch.ops.aten._unsafe_view,
    torch.ops.aten.reshape,
    torch.ops.aten.flatten,
}


@dataclass
class Call:
    """One module call being recorded: the module, its row and the formulas of its MACs."""

    module: nn.Module
    row: LayerStats
    formulas: list[str] = field(default_factory=list)


class Counter(TorchDispatchMode):
    """Adds the cost and traffic of each aten call to the module on top of the stack."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # By default torch wraps __torch_dispatch__ in a dynamo guard whose first call
        # imports torch._dynamo (about 2 s). The analyzer never compiles, so opt out.
        return False

    def __init__(self, stack: list[Call]) -> None:
        super().__init__()
        self.stack = stack
        self.flat_from: dict[int, tuple[tuple[int, ...], torch.Tensor]] = {}
        self.uncounted: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        check_meta(func, args)  # on meta: the error a real kernel gives, where torch's has none
        out, shortcut_error = self._shortcut(func, args, kwargs)
        if out is NotImplemented:
            out = func(*args, **kwargs)  # the model's operator: its errors are the user's
            if shortcut_error is not None:  # the operator ran, so the shortcut was wrong
                raise InternalError(
                    f"the meta shortcut for {func} raised {type(shortcut_error).__name__}: "
                    f"{shortcut_error}"
                ) from shortcut_error
        self._count(func, args, kwargs, out)
        return out

    @staticmethod
    def _shortcut(func, args, kwargs):
        """``(output, None)``, or ``(NotImplemented, error or None)`` to run the operator."""
        shortcut = META_SHORTCUTS.get(func) or META_SHORTCUTS.get(func.overloadpacket)
        first = args[0] if args else None
        if isinstance(first, (list, tuple)) and first:
            first = first[0]
        if (
            shortcut is None
            or kwargs
            or not isinstance(first, torch.Tensor)
            or first.device.type != "meta"
        ):
            return NotImplemented, None
        # torch's Python meta kernels for these import torch._dynamo on first use
        # (seconds); their output shapes are simple arithmetic. A shortcut that raises
        # leaves the verdict to the operator: the input's fault if it raises too, else ours.
        try:
            return shortcut(*args), None
        except Exception as e:
            return NotImplemented, e

    @ours("counting an operator")
    def _count(self, func, args, kwargs, out) -> None:
        packet = func.overloadpacket
        cost = count_op(func, args, kwargs, out)
        if not any(packet in known for known in (MAC_RULES, FLOP_RULES, VIEW_OPS, COPY_OPS)):
            self.uncounted[str(packet)] += 1
        if self.stack:
            row = self.stack[-1].row
            if cost is not None:
                row.macs += cost.macs
                row.extra_flops += cost.extra_flops
                if cost.formula:
                    self.stack[-1].formulas.append(cost.formula)
            if packet not in VIEW_OPS:
                read, written = op_bytes(packet, args, kwargs, out)
                flops = 2 * cost.macs + cost.extra_flops if cost is not None else 0
                row.bytes_read += read
                row.bytes_written += written
                row.op_costs.append(OpCost(str(packet), op_class(packet, args), flops, read + written))
        if (
            packet in _FLATTEN_OPS
            and isinstance(out, torch.Tensor)
            and args
            and isinstance(args[0], torch.Tensor)
        ):
            src = args[0]
            if src.dim() == 4 and out.dim() == 2 and out.shape[0] == src.shape[0]:
                # keep `out` alive so its id stays unique while the forward runs
                self.flat_from[id(out)] = (tuple(int(d) for d in src.shape[1:]), out)


class Recorder:
    """Hooks every module of ``model`` and records one :class:`Call` per module call.

    Use it as a context manager around the forward; the hooks are removed on exit.
    ``calls`` lists the calls in execution order; ``stack`` holds the calls still running
    (its top names the module where a forward failed).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names: dict[int, tuple[str, int]] = {}
        for name, module in model.named_modules():
            self.names[id(module)] = (name, 0 if not name else name.count(".") + 1)
        self.stack: list[Call] = []
        self.calls: list[Call] = []
        self.counter = Counter(self.stack)
        self._counted: set[int] = set()
        self._times_called: dict[int, int] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> Recorder:
        for module in {id(m): m for m in self.model.modules()}.values():
            self._handles.append(
                module.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
            )
            self._handles.append(module.register_forward_hook(self._post_hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.counter.flat_from.clear()

    @ours("the analyzer's pre-hook")
    def _pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        name, depth = self.names.get(id(module), (type(module).__name__, len(self.stack)))
        inputs = list(tensors_in((args, kwargs)))  # self.fc(input=x) passes x by keyword
        row = LayerStats(
            name=name,
            type=type(module).__name__,
            depth=depth,
            input_shapes=[shape_of(a) for a in inputs],
            output_shape=(),
        )
        row.call_index = self._times_called.get(id(module), 0)
        self._times_called[id(module)] = row.call_index + 1
        row.is_leaf = next(iter(module.children()), None) is None
        param_terms = []
        for p in module._parameters.values():
            if p is None or id(p) in self._counted:
                continue
            self._counted.add(id(p))
            row.params += p.numel()
            if p.requires_grad:
                row.trainable += p.numel()
            param_terms.append(_param_term(p))
        row.formula = " + ".join(param_terms)  # completed in the post hook
        for a in inputs:
            if id(a) in self.counter.flat_from:
                row.input_flattened_from = self.counter.flat_from[id(a)][0]
        call = Call(module, row)
        self.stack.append(call)
        self.calls.append(call)

    @ours("the analyzer's post-hook")
    def _post_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        if not self.stack or self.stack[-1].module is not module:
            return
        call = self.stack.pop()
        row = call.row
        outs = list(tensors_in(output))
        shapes = [shape_of(t) for t in outs]
        row.output_shape = shapes[0] if len(shapes) == 1 else shapes
        row.activation_bytes = sum(t.numel() * t.element_size() for t in outs)
        row.formula = _formula(row, call.formulas)


def _formula(row: LayerStats, mac_terms: list[str]) -> str:
    parts = []
    if row.params:
        terms = row.formula
        parts.append(
            f"{terms} = {row.params:,} params"
            if "+" in terms or "*" in terms
            else f"{row.params:,} params"
        )
    if row.macs:
        parts.append(f"{' + '.join(mac_terms)} = {row.macs:,} MACs")
    return "; ".join(parts)


def _param_term(p: torch.Tensor) -> str:
    shape = [int(d) for d in p.shape]
    if len(shape) >= 2:
        # conv weight (out, in/groups, *kernel) reads kernel*in*out; linear (out, in) as in*out
        shape = [*shape[2:], shape[1], shape[0]]
    return "*".join(str(d) for d in shape) if shape else "1"


def tensors_in(obj: Any):
    """Yield the tensors in ``obj`` (a tensor, or nested lists, tuples and dicts of them)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from tensors_in(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from tensors_in(o)


def shape_of(t: torch.Tensor) -> tuple[int, ...]:
    """The shape of ``t`` as a tuple of Python ints."""
    return tuple(int(d) for d in t.shape)
