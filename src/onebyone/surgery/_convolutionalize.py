"""``convolutionalize``: turn a fully-connected classifier head into convolutions.

Seed 002: a Linear over a 7x7x512 map is a 7x7 convolution with 4,096 filters, and the Linears
after it are 1x1 convolutions; on a larger image the network then returns a map of class scores
instead of one vector. For a global-average-pool + Linear head (ResNet, GoogLeNet) the Linear
becomes a 1x1 convolution in front of the pool, and averaging the score map gives the logits.
"""

from __future__ import annotations

import contextlib
import copy
import io
import numbers

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from onebyone._modes import copy_modes
from onebyone.errors import OneByOneError
from onebyone.surgery._forward import run_forward
from onebyone.surgery._macs import model_macs
from onebyone.surgery._recipe import record_step
from onebyone.surgery._trace import keep_attributes, trace
from onebyone.surgery.report import LayerChange, SurgeryReport, count_params, relative_error

__all__ = ["ELEMENTWISE_TYPES", "convolutionalize"]

#: Modules that act on each element alone, so they work unchanged on a score map
#: (extend with your own activations).
ELEMENTWISE_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
    nn.Dropout, nn.Identity,
)
_ELEMENTWISE_FUNCTIONS = {torch.relu, F.relu, F.relu6, F.gelu, F.silu, torch.sigmoid, torch.tanh, F.dropout, F.leaky_relu}
_AVG_MODULES = (nn.AdaptiveAvgPool2d, nn.AvgPool2d)
_MAX_MODULES = (nn.AdaptiveMaxPool2d, nn.MaxPool2d)
_AVG_FUNCTIONS = {F.adaptive_avg_pool2d, F.avg_pool2d}
_MAX_FUNCTIONS = {F.adaptive_max_pool2d, F.max_pool2d}


def convolutionalize(model: nn.Module, input_size: tuple[int, ...]) -> tuple[nn.Module, SurgeryReport]:
    """Return a copy of ``model`` whose classifier head is made of convolutions, and a report.

    The head is found at the end of the traced forward (``torch.fx``): an optional pooling,
    a flatten, then Linear layers with elementwise layers (ReLU, Dropout...) between them.
    The first Linear over a CxHxW map becomes an HxW convolution (a pooling in front of it is
    linear and is folded into that kernel), the following Linears 1x1 convolutions, and the
    pooling is removed so that a larger input gives a larger map. After global average pooling
    with a purely affine head, the Linears become 1x1 convolutions in front of the removed pool.
    The new model always returns a score map ``(N, num_classes, h, w)``: at ``input_size``,
    ``h = w = 1`` with the same logits (or, for a global-average-pool head, the map whose mean
    is the logits). A dropout between the pooling and the flatten (inception_v3's head) is the
    identity in eval mode and does not stop this. An op that does not commute with the pooling
    between it and the flatten (convnext's LayerNorm: the norm of the mean is not the mean of
    the norms) does: the pooling then stays, the map is 1x1 at any size, and the report says why.

    Args:
        model: the model; it is deep-copied and never modified.
        input_size: the size the model was built for, e.g. ``(3, 224, 224)`` (batch optional).

    Returns:
        ``(new_model, report)``; ``report.output_error`` compares the logits at ``input_size``.

    Raises:
        ValueError: a bad ``input_size``, or no classifier head at the end of the forward.
        OneByOneError: the model's forward failed at ``input_size`` (it rejects that size, say);
            the message names the module and its input shapes, the original is chained.
        NotImplementedError: the model does not trace with torch.fx, or a max pooling that
            changes the size sits in the head.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
        >>> conv_net, report = convolutionalize(net, (3, 8, 8))
        >>> conv_net(torch.randn(1, 3, 8, 8)).shape, conv_net(torch.randn(1, 3, 12, 12)).shape
        (torch.Size([1, 5, 1, 1]), torch.Size([1, 5, 5, 5]))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    size = _check_size(input_size)
    new, changes, notes, mode = _convolutionalize(model, size)
    report = SurgeryReport("convolutionalize", changes=changes, notes=notes)
    report.params_before = count_params(model)
    report.params_after = count_params(new)
    device = _device(model)
    if device.type != "meta":
        x = torch.randn(size, device=device)
        report.macs_before = model_macs(model, x)
        report.macs_after = model_macs(new, x)
        expected, scores = run_forward(model, x), run_forward(new, x)
        logits = scores.mean(dim=(2, 3)) if mode == "gap" else scores.flatten(1)
        report.output_error = relative_error(expected, logits)
    return new, report


def _check_size(input_size) -> tuple[int, ...]:
    if isinstance(input_size, torch.Size):
        input_size = tuple(input_size)
    if (
        not isinstance(input_size, tuple | list)
        or len(input_size) not in (3, 4)
        or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1 for d in input_size)
    ):
        raise ValueError(f"input_size must be (C, H, W) or (N, C, H, W) of positive ints, got {input_size!r}")
    size = tuple(int(d) for d in input_size)
    return (1, *size) if len(size) == 3 else size


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _convolutionalize(model: nn.Module, size: tuple[int, ...]):
    new = copy.deepcopy(model)
    new.eval()  # trace the inference graph (aux heads and the like are training-only)
    try:
        gm = trace(new)
    except Exception as e:
        first = str(e).splitlines()[0][:160] if str(e) else ""
        raise NotImplementedError(
            f"convolutionalize needs a model that traces with torch.fx; {type(model).__name__} does not "
            f"({type(e).__name__}: {first})"
        ) from e
    _check_forward(new, size)
    x = torch.zeros(size, device=_device(model))
    with contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints the traceback itself
        run_forward(gm, x, context=f"input_size {size}: ", call=ShapeProp(gm).propagate)
    modules = dict(gm.named_modules())
    chain, body = _find_head(gm, modules)
    blocked = _blocked_pooling(body, modules)  # issue 20: say why no score map, never silently
    changes, notes, mode = _rewrite(gm, modules, chain, body)
    if blocked:
        notes.append(blocked)
    for node in list(gm.graph.nodes):  # the x.size(0) of a removed view; other calls stay
        if not node.users and (
            (node.op == "call_method" and node.target == "size")
            or (node.op == "call_function" and node.target is getattr)
        ):
            gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    copy_modes(model, gm)
    keep_attributes(model, gm)
    record_step(gm, {"op": "convolutionalize", "input_size": list(size)}, source=model)
    return gm, changes, notes, mode


def _check_forward(model: nn.Module, size: tuple[int, ...]) -> None:
    """Raise OneByOneError with the model's own message if it rejects an input of ``size``.

    The model runs once on a meta copy (no memory, no arithmetic: the analyzer's, which the
    MAC count reuses), before tracing: the traced graph drops the Python checks of a forward
    (a minimum size, say), and ShapeProp would report a later operator's error instead. A model
    that fails on the meta device only (data-dependent code such as ``.item()``) is run for real
    on its own device to tell the two apart.
    """
    from onebyone.analysis import analyze

    context = f"input_size {size} does not fit the model: "
    try:
        analyze(model, size)
        return
    except OneByOneError as e:  # the forward failed on meta: the model's exception is chained
        if _device(model).type == "meta":
            raise OneByOneError(context + str(e)) from (e.__cause__ or e)
    run_forward(model, torch.zeros(size, device=_device(model)), context=context)


# ----------------------------------------------------------------------------- finding the head


def _kind(node: fx.Node, modules: dict) -> str | None:
    """'linear', 'elementwise', 'flatten', 'avgpool', 'maxpool', 'mean' or None (not head-like)."""
    if node.op == "call_module":
        m = modules[node.target]
        if isinstance(m, nn.Linear):
            return "linear"
        if isinstance(m, ELEMENTWISE_TYPES):
            return "elementwise"
        if isinstance(m, nn.Flatten):
            return "flatten" if m.start_dim == 1 and m.end_dim == -1 else None
        if isinstance(m, _AVG_MODULES):
            return "avgpool"
        if isinstance(m, _MAX_MODULES):
            return "maxpool"
        return None
    if node.op == "call_function":
        if node.target in _ELEMENTWISE_FUNCTIONS:
            return "elementwise"
        if node.target is torch.flatten:
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            return "flatten" if start == 1 else None
        if node.target in _AVG_FUNCTIONS:
            return "avgpool"
        if node.target in _MAX_FUNCTIONS:
            return "maxpool"
        if node.target is torch.mean:
            return "mean"
        return None
    if node.op == "call_method":
        if node.target in ("relu", "sigmoid", "tanh"):
            return "elementwise"
        if node.target == "flatten":
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            return "flatten" if start == 1 else None
        if node.target in ("view", "reshape"):
            shape = node.meta.get("tensor_meta")
            return "flatten" if shape is not None and len(shape.shape) == 2 else None
        if node.target == "mean":
            return "mean"
    return None


def _op_name(node: fx.Node, modules: dict) -> str:
    if node.op == "call_module":
        return f"{node.target} ({type(modules[node.target]).__name__})"
    return getattr(node.target, "__name__", str(node.target))


def _blocked_pooling(body: fx.Node, modules: dict, limit: int = 8) -> str | None:
    """Why no score map, if a pooling that shrinks the map sits a few ops above the head's input.

    The ops between such a pooling and the flatten (a LayerNorm, as in convnext) act on the
    pooled vector; they do not commute with the pooling, so the pooling cannot be removed and a
    larger input still gives a 1x1 map.
    """
    node, between = body, []
    for _ in range(limit):
        if not isinstance(node, fx.Node) or node.op not in ("call_module", "call_function", "call_method"):
            return None
        if _kind(node, modules) in ("avgpool", "maxpool"):
            before = node.args[0].meta.get("tensor_meta") if isinstance(node.args[0], fx.Node) else None
            after = node.meta.get("tensor_meta")
            if before is None or after is None or tuple(before.shape[-2:]) == tuple(after.shape[-2:]):
                return None
            ops = ", ".join(_op_name(n, modules) for n in reversed(between))
            return (
                f"no score map: between the pooling {_op_name(node, modules)} and the flatten sit {ops}, "
                "which act on the pooled vector and do not commute with the pooling (a normalisation "
                "of the mean is not the mean of the normalised map); the logits are exact, but the "
                "pooling stays and a larger input still gives a 1x1 map"
            )
        between.append(node)
        node = node.args[0] if node.args else None
    return None


def _only_feeds(prev: fx.Node, node: fx.Node) -> bool:
    """True if ``node`` is the only real user of ``prev`` (``x.size(0)`` for a view is fine)."""
    for user in prev.users:
        if user is node:
            continue
        size_query = (user.op == "call_method" and user.target == "size") or (
            user.op == "call_function" and user.target is getattr and user.args[1] == "shape"
        )
        if not size_query:
            return False
    return True


def _spatial_mean(node: fx.Node) -> bool:
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    if isinstance(dims, int) or keepdim:
        return False
    return dims is not None and sorted(d % 4 for d in dims) == [2, 3]


def _find_head(gm: fx.GraphModule, modules: dict) -> tuple[list[fx.Node], fx.Node]:
    """The head's nodes from the pooling (or flatten) to the output, and the body's last node."""
    output = next(n for n in gm.graph.nodes if n.op == "output")
    node = output.args[0]
    chain: list[fx.Node] = []
    seen_flatten = False
    while isinstance(node, fx.Node):
        kind = _kind(node, modules)
        if kind is None or (kind == "mean" and not _spatial_mean(node)):
            break
        # Before the flatten only a dropout may sit (the identity in eval mode, as in inception_v3).
        if kind in ("linear", "elementwise") and seen_flatten and not _is_dropout(node, modules):
            break
        if kind in ("avgpool", "maxpool") and not seen_flatten:
            break
        prev = node.args[0] if node.args else None
        if not isinstance(prev, fx.Node) or not _only_feeds(prev, node):
            break
        chain.append(node)
        if kind in ("flatten", "mean"):
            seen_flatten = True
        elif kind in ("avgpool", "maxpool"):
            node = prev
            break
        node = prev
    chain.reverse()
    kinds = [_kind(n, modules) for n in chain]
    if not any(k in ("flatten", "mean") for k in kinds):
        raise ValueError(
            "no classifier head found: expected the forward to end with an optional pooling, a flatten "
            "(or a spatial mean), then Linear layers"
        )
    body = node
    meta = body.meta.get("tensor_meta")
    if meta is None or len(meta.shape) != 4:
        raise ValueError(f"the head's input is not a 4-D feature map (shape {getattr(meta, 'shape', None)})")
    return chain, body


# ----------------------------------------------------------------------------- rewriting


def _rewrite(gm: fx.GraphModule, modules: dict, chain: list[fx.Node], body: fx.Node):
    kinds = [_kind(n, modules) for n in chain]
    linears = [n for n, k in zip(chain, kinds, strict=True) if k == "linear"]
    _, channels, height, width = body.meta["tensor_meta"].shape
    pool = next((n for n, k in zip(chain, kinds, strict=True) if k in ("avgpool", "maxpool")), None)
    flatten_at = next(i for i, k in enumerate(kinds) if k in ("flatten", "mean"))
    spatial_mean = kinds[flatten_at] == "mean"
    if pool is not None and _kind(pool, modules) == "maxpool":
        out_hw = tuple(pool.meta["tensor_meta"].shape[-2:])
        if out_hw != (height, width):
            raise NotImplementedError(
                f"the head's max pooling maps {height}x{width} to {out_hw[0]}x{out_hw[1]}; "
                "only average pooling can be folded into the first convolution"
            )
        pool = None  # a max pool that keeps the size is the identity
    pooled_shape = (1, channels, 1, 1) if spatial_mean else tuple(chain[flatten_at].args[0].meta["tensor_meta"].shape)
    # The pooling is a linear map; it is applied through its adjoint, never built as a matrix
    # (an (H*W) x (h*w) matrix is 8 TB for a global pool over a 1024x1024 map).
    pooling = _Pooling(pool, modules, spatial_mean, height, width) if pool is not None or spatial_mean else None
    global_average = pooling is not None and tuple(pooled_shape[-2:]) == (1, 1) and pooling.is_global_average()
    affine_only = all(k in ("linear", "flatten", "mean", "avgpool") or _is_dropout(n, modules)
                      for n, k in zip(chain, kinds, strict=True))
    notes: list[str] = []
    changes: list[LayerChange] = []
    mode = "gap" if global_average and affine_only else "flatten"

    if mode == "flatten":
        for i, node in enumerate(linears):
            linear = modules[node.target]
            if i == 0:
                conv = _first_conv(linear, channels, height, width, pooling, pooled_shape)
                method = f"linear->conv{height}x{width}"
            else:
                conv = _pointwise(linear)
                method = "linear->conv1x1"
            gm.set_submodule(node.target, conv)
            changes.append(LayerChange(node.target, method, params_before=count_params(linear),
                                       params_after=count_params(conv)))
    else:
        for node in linears:
            linear = modules[node.target]
            conv = _pointwise(linear)
            gm.set_submodule(node.target, conv)
            changes.append(LayerChange(node.target, "linear->conv1x1 (before the global pool)",
                                       params_before=count_params(linear), params_after=count_params(conv)))
        notes.append("global average pooling removed: the mean of the score map over its height and width is the logits")
    if not linears:
        notes.append("no Linear layers in the head: the pooling and flatten were removed, the map is the output")

    for node in chain:
        if _kind(node, modules) in ("flatten", "mean", "avgpool", "maxpool"):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    return changes, notes, mode


def _is_dropout(node: fx.Node, modules: dict) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], nn.Dropout | nn.Identity)
    return node.op == "call_function" and node.target is F.dropout


#: The most weights the first convolution may get when a pooling is folded into it (1 GiB of float32).
MAX_KERNEL_ELEMENTS = 1 << 28


class _Pooling:
    """The head's (linear) pooling of one H x W map, applied to maps or through its adjoint.

    The adjoint carries the Linear's weights over the pooled map back onto the H x W map, which is
    the kernel of the convolution that replaces pooling + Linear; autograd computes it at the cost
    of one pooling per map, in chunks.
    """

    def __init__(self, pool: fx.Node | None, modules: dict, spatial_mean: bool, height: int, width: int) -> None:
        self.pool, self.modules, self.spatial_mean = pool, modules, spatial_mean
        self.height, self.width = height, width

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            if self.pool.op == "call_module":
                x = self.modules[self.pool.target](x)
            else:
                x = self.pool.target(x, *self.pool.args[1:], **self.pool.kwargs)
        if self.spatial_mean:
            x = x.mean(dim=(2, 3), keepdim=True)
        return x

    def adjoint(self, maps: torch.Tensor) -> torch.Tensor:
        """``(n, h, w)`` maps over the pooled grid -> ``(n, H, W)``: ``<adjoint(g), x> = <g, pool(x)>``."""
        n = maps.shape[0]
        out = torch.empty(n, self.height, self.width, device=maps.device, dtype=maps.dtype)
        chunk = max(1, (1 << 22) // (self.height * self.width))
        for i in range(0, n, chunk):
            g = maps[i:i + chunk]
            with torch.enable_grad():
                x = torch.zeros(g.shape[0], 1, self.height, self.width, device=maps.device, dtype=maps.dtype,
                                requires_grad=True)
                y = self(x)
                (grad,) = torch.autograd.grad(y, x, grad_outputs=g.reshape(y.shape))
            out[i:i + chunk] = grad[:, 0]
        return out

    def is_global_average(self) -> bool:
        """True if the pooling averages the whole map into one value (checked on the CPU, in float64)."""
        one = torch.ones(1, 1, 1, dtype=torch.float64, device="cpu")
        weights = self.adjoint(one)
        return torch.allclose(weights, torch.full_like(weights, 1.0 / (self.height * self.width)))


def _first_conv(linear: nn.Linear, channels: int, height: int, width: int, pooling: _Pooling | None,
                pooled_shape) -> nn.Conv2d:
    h, w = pooled_shape[-2:]
    if linear.in_features != channels * h * w:
        raise ValueError(
            f"the first Linear takes {linear.in_features} features, but the flattened map has "
            f"{channels}x{h}x{w} = {channels * h * w}"
        )
    needed = linear.out_features * channels * height * width
    if needed > MAX_KERNEL_ELEMENTS and needed > linear.weight.numel():
        raise ValueError(
            f"the first Linear as a {height}x{width} convolution would need {needed:,} weights "
            f"({linear.out_features} x {channels} x {height} x {width}, {needed * 4 / 2**30:.1f} GiB in float32), "
            f"more than {MAX_KERNEL_ELEMENTS:,}; convolutionalize at a smaller input_size"
        )
    weight = linear.weight
    conv = nn.Conv2d(channels, linear.out_features, (height, width), bias=linear.bias is not None,
                     device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        w4 = weight.reshape(linear.out_features, channels, h, w)
        if pooling is None:
            kernel = w4
        else:
            kernel = pooling.adjoint(w4.reshape(-1, h, w)).reshape(linear.out_features, channels, height, width)
        conv.weight.copy_(kernel)
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def _pointwise(linear: nn.Linear) -> nn.Conv2d:
    weight = linear.weight
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1, bias=linear.bias is not None,
                     device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight[:, :, None, None])
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def _replay(model: nn.Module, step: dict) -> nn.Module:
    """Replay a recorded convolutionalize ``step`` (the weights are overwritten afterwards)."""
    new, _, _, _ = _convolutionalize(model, tuple(step["input_size"]))
    return new

