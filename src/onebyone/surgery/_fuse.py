"""``fuse``: fold BatchNorm into the layer before it and merge chains of linear convolutions.

Two convolutions with nothing nonlinear between them are one convolution (seed 002). ``fuse``
merges a kxk convolution followed by a 1x1 (always exact), a 1x1 followed by a kxk (exact; a
1x1 bias in front of a zero-padded kxk is not, and that pair is left alone with the reason),
and so undoes :func:`~onebyone.surgery.decompose`'s bottlenecks. The result is meant for
inference: BatchNorm is folded with its running (eval) statistics.

One step does the work for both ways of finding pairs (the torch.fx graph, or the order inside
``nn.Sequential`` when the model does not trace): :func:`_fuse_pair` folds or merges one pair
and records the change, or records the :class:`NotFusable` reason as a skip.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from onebyone._modes import copy_modes
from onebyone.surgery._forward import run_forward
from onebyone.surgery._macs import model_macs
from onebyone.surgery._merge import NORM_TYPES, NotFusable, fold_norm, is_pointwise, merge_pair
from onebyone.surgery._recipe import record_step
from onebyone.surgery._trace import keep_attributes, trace
from onebyone.surgery.modules import DecomposedConv2d, DecomposedLinear
from onebyone.surgery.report import LayerChange, Skip, SurgeryReport, count_params, relative_error

__all__ = ["fuse"]

_LAYERS = (nn.Conv2d, nn.Linear)
_BOTTLENECKS = (DecomposedConv2d, DecomposedLinear)


def fuse(
    model: nn.Module, *, example_input: torch.Tensor | None = None, only_if_cheaper: bool = True
) -> tuple[nn.Module, SurgeryReport]:
    """Return a copy of ``model`` with BatchNorm folded and linear chains merged, and a report.

    Uses ``torch.fx`` when the model traces, which finds every pair in any forward; otherwise
    it fuses what the order inside ``nn.Sequential`` containers makes certain and says so.
    Eval outputs are unchanged; the report lists what was fused and what was not, and why.
    The result is the model's inference graph (traced in eval mode) and is meant for inference.

    Two layers are merged only when the merged layer costs no more multiply-accumulates than the
    pair: a deliberate bottleneck (``Linear(512, 8)`` then ``Linear(8, 512)``) is left alone
    with the reason, except :func:`~onebyone.surgery.decompose`'s own, which fuse undoes.

    Args:
        model: the model; it is deep-copied and never modified.
        example_input: an input batch for the MACs totals and the output error (default
            ``torch.randn(1, *model.default_input_size)`` where the model has one).
        only_if_cheaper: leave alone pairs whose merge would cost more MACs. False merges
            every mergeable pair.

    Returns:
        ``(new_model, report)``.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1), nn.ReLU()).eval()
        >>> fused, report = fuse(net)
        >>> [c.method for c in report.changes]
        ['fold-bn', 'merge']
        >>> x = torch.randn(1, 3, 8, 8)
        >>> torch.allclose(fused(x), net(x), atol=1e-5)
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if example_input is not None and not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a tensor, got {type(example_input).__name__}")
    if not isinstance(only_if_cheaper, bool):
        raise TypeError(f"only_if_cheaper must be a bool, got {only_if_cheaper!r}")
    report = SurgeryReport("fuse")
    x = example_input
    if x is None and getattr(model, "default_input_size", None) is not None:
        size = tuple(model.default_input_size)
        x = torch.randn(1, *size) if len(size) == 3 else torch.randn(*size)
    rules = _Rules(only_if_cheaper=only_if_cheaper)
    new = _fuse_model(model, report, rules, x)
    report.params_before = count_params(model)
    report.params_after = count_params(new)
    if x is not None:
        report.macs_before = model_macs(model, x)
        report.macs_after = model_macs(new, x)
        report.output_error = _output_error(model, new, x)
    step: dict = {"op": "fuse"}
    if not only_if_cheaper:
        step["only_if_cheaper"] = False
    if rules.folded_after_linear:
        step["exact_norms"] = sorted(rules.folded_after_linear)
    record_step(new, step, source=model)
    return new, report


@dataclass
class _Rules:
    """What decides a fusion beyond the two layers: the cost rule and what an input showed.

    A BatchNorm folds into a Linear only when the Linear's output is known to be 2-D (N, C):
    on (N, L, C) a BatchNorm1d normalizes L, not the Linear's features. ``linear_dims`` holds the
    output ranks an example input showed (None: no input), ``exact_norms`` the folds a recorded
    step proved (on replay); ``folded_after_linear`` collects the folds proved this time.
    """

    only_if_cheaper: bool = True
    linear_dims: dict[str, set[int]] | None = None
    exact_norms: frozenset[str] | None = None
    folded_after_linear: list[str] = field(default_factory=list)

    def blocked_fold(self, layer_name: str, norm_name: str) -> str | None:
        """The reason not to fold ``norm_name`` into the Linear ``layer_name``, or None."""
        if self.exact_norms is not None:
            return None if norm_name in self.exact_norms else "not folded when the recipe was made"
        if self.linear_dims is None:
            return ("a BatchNorm after a Linear folds only when the Linear's output is 2-D (N, C); "
                    "pass example_input to check it")
        dims = self.linear_dims.get(layer_name, set())
        if dims != {2}:
            shown = "/".join(map(str, sorted(dims))) or "no"
            return (f"the Linear's output is {shown}-D here, not (N, C): the BatchNorm normalizes dim 1, "
                    "not the Linear's features, so folding would not be exact")
        return None


def _linear_output_dims(model: nn.Module, x: torch.Tensor) -> dict[str, set[int]]:
    """The ranks of each Linear's outputs on ``x`` (one forward, in eval mode)."""
    dims: dict[str, set[int]] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            def hook(module, args, output, name=name):
                if isinstance(output, torch.Tensor):
                    dims.setdefault(name, set()).add(output.dim())
            handles.append(m.register_forward_hook(hook))
    try:
        run_forward(model, x)
    finally:
        for h in handles:
            h.remove()
    return dims


def _fuse_model(model: nn.Module, report: SurgeryReport, rules: _Rules, x: torch.Tensor | None = None) -> nn.Module:
    new = copy.deepcopy(model)
    # Always trace the inference graph: fusing is for inference (BatchNorm folds its running
    # statistics), and the graph, hence the saved recipe, must not depend on the mode the model
    # happened to be in (a training GoogLeNet's forward runs its aux heads).
    new.eval()
    if x is not None and any(isinstance(m, nn.Linear) for m in new.modules()):
        rules.linear_dims = _linear_output_dims(new, x)
    elif rules.exact_norms is None:
        rules.linear_dims = None
    bottlenecks = {n for n, m in new.named_modules() if isinstance(m, _BOTTLENECKS)}
    with torch.no_grad():
        try:
            graph_module = trace(new)
        except Exception as e:  # any tracing failure: fall back to the module order
            report.notes.append(
                f"the model does not trace with torch.fx ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                "fused only inside nn.Sequential containers"
            )
            _fuse_sequentials(new, "", report, rules)
            return keep_attributes(model, copy_modes(model, new))
        _fuse_graph(graph_module, report, bottlenecks, rules)
        return keep_attributes(model, copy_modes(model, graph_module))


def _replay(model: nn.Module, step: dict) -> nn.Module:
    """Replay a recorded fuse ``step``: the structure and the recorded folds decide, no input."""
    rules = _Rules(only_if_cheaper=bool(step.get("only_if_cheaper", True)),
                   exact_norms=frozenset(step.get("exact_norms", ())))
    return _fuse_model(model, SurgeryReport("fuse"), rules)


def _output_error(old: nn.Module, new: nn.Module, x: torch.Tensor) -> float | None:
    a, b = run_forward(old, x), run_forward(new, x)
    return relative_error(a, b) if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) else None


# ----------------------------------------------------------------------------- one fusion step


def _fuse_pair(
    first: nn.Module | None, second: nn.Module, names: tuple[str, str], report: SurgeryReport, rules: _Rules, *,
    check_cost: bool = False, blocked: str | None = None,
) -> nn.Module | None:
    """Fold the BatchNorm ``second`` into ``first``, or merge the pair; record what happened.

    ``names`` are the two layers' names. A BatchNorm folds into ``first`` (the change takes its
    name); two layers merge (the change is named "first + second"). ``check_cost`` leaves alone a
    merge that would cost more MACs; ``blocked`` is a reason, found by the caller, not to try;
    ``rules`` decides whether a BatchNorm after a Linear is provably exact to fold.
    Returns the fused layer, or None after recording the reason as a skip.
    """
    fold = isinstance(second, NORM_TYPES)
    pair = f"{names[0]} + {names[1]}"
    try:
        if blocked is not None:
            raise NotFusable(blocked)
        if fold:
            fused = fold_norm(first, second)
            if isinstance(first, nn.Linear):
                reason = rules.blocked_fold(names[0], names[1])
                if reason is not None:
                    raise NotFusable(reason)
                rules.folded_after_linear.append(names[1])
        else:
            fused = merge_pair(first, second)
            if check_cost:
                _check_cost(first, second, fused)
    except NotFusable as e:
        _skip_once(report, names[1] if fold else pair, str(e))
        return None
    report.changes.append(LayerChange(
        names[0] if fold else pair, "fold-bn" if fold else "merge",
        params_before=count_params(first) + count_params(second), params_after=count_params(fused),
    ))
    return fused


def _check_cost(first: nn.Module, second: nn.Module, fused: nn.Module) -> None:
    """Raise NotFusable when ``fused`` costs more MACs than the pair.

    Counted per output position of the pair; the 1x1 in front of a strided kxk runs on
    stride_h * stride_w positions for each output position.
    """
    positions = 1
    if isinstance(second, nn.Conv2d) and not is_pointwise(second):
        positions = second.stride[0] * second.stride[1]
    before = first.weight.numel() * positions + second.weight.numel()
    after = fused.weight.numel()
    if after > before:
        raise NotFusable(
            f"merging would cost more MACs ({before:,} -> {after:,} per output position): "
            "a deliberate bottleneck (only_if_cheaper=False merges it)"
        )


def _skip_once(report: SurgeryReport, name: str, reason: str) -> None:
    # The merge loop restarts after each merge; report each pair that stays apart once.
    if not any(s.name == name for s in report.skipped):
        report.skipped.append(Skip(name, reason))


# ----------------------------------------------------------------------------- torch.fx path


def _fuse_graph(gm: fx.GraphModule, report: SurgeryReport, bottlenecks: set[str], rules: _Rules) -> None:
    modules = dict(gm.named_modules())
    uses = Counter(n.target for n in gm.graph.nodes if n.op == "call_module")

    def module_of(node) -> nn.Module | None:
        if isinstance(node, fx.Node) and node.op == "call_module":
            return modules.get(node.target)
        return None

    def single_input(node: fx.Node) -> fx.Node | None:
        return node.args[0] if len(node.args) == 1 and not node.kwargs else None

    def fuse_node(node: fx.Node) -> bool:
        """Fuse ``node``'s module into the module before it; True if the graph changed."""
        prev = single_input(node)
        first = module_of(prev)
        blocked = None
        if first is None:
            blocked = "no Conv2d or Linear directly before it"
        elif uses[prev.target] > 1 or uses[node.target] > 1:
            blocked = f"{prev.target!r} or {node.target!r} is called more than once"
        elif len(prev.users) > 1:
            blocked = f"the output of {prev.target!r} is also used elsewhere"
        names = (prev.target if first is not None else "", node.target)
        inside = names[0].rpartition(".")[0] in bottlenecks and names[0].rpartition(".")[0] == node.target.rpartition(".")[0]
        fused = _fuse_pair(first, modules[node.target], names, report, rules, blocked=blocked,
                           check_cost=rules.only_if_cheaper and not inside)
        if fused is None:
            return False
        gm.set_submodule(prev.target, fused)
        modules[prev.target] = fused
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
        uses[node.target] -= 1
        return True

    for node in list(gm.graph.nodes):
        if isinstance(module_of(node), NORM_TYPES):
            fuse_node(node)
    # Merge chains of linear layers, restarting after each merge, until nothing changes.
    while any(
        fuse_node(node) for node in list(gm.graph.nodes)
        if isinstance(module_of(node), _LAYERS) and isinstance(module_of(single_input(node)), _LAYERS)
    ):
        pass
    _collapse_bottlenecks(gm, modules, bottlenecks)
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()


def _collapse_bottlenecks(gm: fx.GraphModule, modules: dict, bottlenecks: set[str]) -> None:
    """A decomposed layer merged back into its first child takes its old name again."""
    children_used = Counter()
    for node in gm.graph.nodes:
        if node.op == "call_module":
            parent = node.target.rpartition(".")[0]
            if parent in bottlenecks:
                children_used[parent] += 1
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        parent = node.target.rpartition(".")[0]
        if parent in bottlenecks and children_used[parent] == 1:
            layer = modules[node.target]
            gm.set_submodule(parent, layer)
            modules[parent] = layer
            node.target = parent


# ----------------------------------------------------------------------------- Sequential path


def _fuse_sequentials(module: nn.Module, prefix: str, report: SurgeryReport, rules: _Rules) -> None:
    for name, child in list(module.named_children()):
        _fuse_sequentials(child, f"{prefix}{name}.", report, rules)
        if isinstance(child, _BOTTLENECKS):
            remaining = [m for m in child if not isinstance(m, nn.Identity)]
            if len(remaining) == 1:
                setattr(module, name, remaining[0])
    if not isinstance(module, nn.Sequential):
        return
    last: str | None = None  # the previous non-Identity child
    for name in [n for n, _ in module.named_children()]:
        child = module._modules[name]
        if isinstance(child, nn.Identity):
            continue
        prev = module._modules[last] if last is not None else None
        if isinstance(child, NORM_TYPES) or (isinstance(child, _LAYERS) and isinstance(prev, _LAYERS)):
            fused = _fuse_pair(
                prev, child, (f"{prefix}{last}", f"{prefix}{name}"), report, rules,
                blocked=None if prev is not None else "no Conv2d or Linear directly before it",
                check_cost=rules.only_if_cheaper and not isinstance(module, _BOTTLENECKS),
            )
            if fused is not None:
                module._modules[last] = fused
                module._modules[name] = nn.Identity()
                continue
        last = name
