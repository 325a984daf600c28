"""Counting rules per ONNX operator, with the conventions of the PyTorch analyzer.

* **MACs**: multiply-accumulates of ``Conv``, ``ConvTranspose``, ``Gemm`` and ``MatMul``
  (bias adds excluded).
* **Extra FLOPs**, per element: bias adds and pointwise arithmetic or activations 1 per
  output element; normalisations 4 per element (normalise, then scale and shift); softmax 3
  per output element; windowed pooling the kernel size per output element; global pooling and
  reductions 1 per input element.
* Data movement (reshapes, concatenations, slices, casts, pads, gathers) and comparisons cost
  nothing, as in the PyTorch analyzer; they have an explicit zero rule.

An operator with no rule is an error (or, with ``strict=False``, listed as uncounted): it is
never silently counted as zero. Add a rule with :func:`register_op_rule`; registering an
operator twice is an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["OP_RULES", "NodeCost", "NodeView", "register_op_rule", "rule_key"]

Shape = tuple[int, ...]


@dataclass
class NodeCost:
    """The cost of one node: MACs, extra FLOPs and a formula for the MACs.

    Example:
        >>> NodeCost(macs=8, formula="4*2 * 1").macs
        8
    """

    macs: int = 0
    extra_flops: int = 0
    formula: str = ""


@dataclass
class NodeView:
    """What a rule sees of one node: its attributes and the shapes of its inputs and outputs.

    Args:
        name: the node's name (or its first output's, when unnamed).
        op_type: the operator, e.g. ``"Conv"``.
        domain: the operator's domain (``""`` for standard ONNX).
        attributes: attribute name -> Python value.
        inputs: the input value names (``""`` for an omitted optional input).
        input_shapes: the shape of each input, or None if unknown.
        output_shapes: the shape of each output, or None if unknown.

    Example:
        >>> v = NodeView("fc", "Gemm", "", {"transB": 1}, ["x", "w", "b"],
        ...              [(1, 4), (2, 4), (2,)], [(1, 2)])
        >>> OP_RULES["Gemm"](v)
        NodeCost(macs=8, extra_flops=2, formula='4*2 * 1')
    """

    name: str
    op_type: str
    domain: str
    attributes: dict[str, Any]
    inputs: list[str]
    input_shapes: list[Shape | None]
    output_shapes: list[Shape | None] = field(default_factory=list)

    def has_input(self, index: int) -> bool:
        """True if optional input ``index`` is given."""
        return index < len(self.inputs) and bool(self.inputs[index])

    def input_shape(self, index: int) -> Shape:
        """The shape of input ``index``; a ValueError naming the node if it is unknown."""
        shape = self.input_shapes[index] if index < len(self.input_shapes) else None
        if shape is None:
            raise ValueError(
                f"node {self.name!r} ({self.op_type}): the shape of its input "
                f"{self.inputs[index] if index < len(self.inputs) else index!r} is unknown after "
                "ONNX shape inference; pass input_size to fix the symbolic dimensions"
            )
        return shape

    def output_shape(self, index: int = 0) -> Shape:
        """The shape of output ``index``; a ValueError naming the node if it is unknown."""
        shape = self.output_shapes[index] if index < len(self.output_shapes) else None
        if shape is None:
            raise ValueError(
                f"node {self.name!r} ({self.op_type}): the shape of its output {index} is unknown "
                "after ONNX shape inference; pass input_size to fix the symbolic dimensions"
            )
        return shape


Rule = Callable[[NodeView], NodeCost]

OP_RULES: dict[str, Rule] = {}


def rule_key(op_type: str, domain: str = "") -> str:
    """The key of an operator in :data:`OP_RULES`: ``"Conv"``, or ``"domain::Op"`` for a custom op.

    Example:
        >>> rule_key("Conv"), rule_key("Conv", "ai.onnx"), rule_key("Gelu", "com.microsoft")
        ('Conv', 'Conv', 'com.microsoft::Gelu')
    """
    return op_type if domain in ("", "ai.onnx") else f"{domain}::{op_type}"


def register_op_rule(*op_types: str, domain: str = "") -> Callable[[Rule], Rule]:
    """Register a counting rule for one or more operators (a decorator).

    Raises:
        ValueError: an operator already has a rule.

    Example:
        >>> @register_op_rule("MyScale", domain="com.example")
        ... def _my_scale(node):
        ...     return NodeCost(extra_flops=math.prod(node.output_shape()))
        >>> "com.example::MyScale" in OP_RULES
        True
        >>> del OP_RULES["com.example::MyScale"]
    """
    if not op_types or not all(isinstance(op, str) and op for op in op_types):
        raise ValueError(f"op_types must be operator names such as 'Conv', got {op_types!r}")

    def decorate(rule: Rule) -> Rule:
        keys = [rule_key(op, domain) for op in op_types]
        taken = [k for k in keys if k in OP_RULES]
        if taken:
            raise ValueError(f"a counting rule for {', '.join(map(repr, taken))} is already registered")
        for key in keys:
            OP_RULES[key] = rule
        return rule

    return decorate


def _join(factors: Sequence[int]) -> str:
    return "*".join(str(int(f)) for f in factors)


def _numel(shape: Shape) -> int:
    return int(math.prod(shape))


# ----------------------------------------------------------------------------- MACs


@register_op_rule("Conv")
def _conv(node: NodeView) -> NodeCost:
    # weight (out_channels, in_channels / groups, *kernel): each output pixel is a dot
    # product over the kernel and in_channels / groups maps.
    n = node.input_shape(0)[0]
    w = node.input_shape(1)
    out = node.output_shape()
    factors = [*w[2:], w[1], w[0]]
    spatial = out[2:]
    macs = n * math.prod(factors) * math.prod(spatial)
    formula = _join(factors) + " * " + _join(spatial) + (f" * {n}" if n != 1 else "")
    return NodeCost(macs, _numel(out) if node.has_input(2) else 0, formula)


@register_op_rule("ConvTranspose")
def _conv_transpose(node: NodeView) -> NodeCost:
    # weight (in_channels, out_channels / groups, *kernel): each input pixel is scattered
    # through the kernel into out_channels / groups maps.
    x = node.input_shape(0)
    w = node.input_shape(1)
    n = x[0]
    factors = [*w[2:], w[0], w[1]]
    spatial = x[2:]
    macs = n * math.prod(factors) * math.prod(spatial)
    formula = _join(factors) + " * " + _join(spatial) + (f" * {n}" if n != 1 else "")
    return NodeCost(macs, _numel(node.output_shape()) if node.has_input(2) else 0, formula)


@register_op_rule("Gemm")
def _gemm(node: NodeView) -> NodeCost:
    a, b = node.input_shape(0), node.input_shape(1)
    m, k = (a[1], a[0]) if node.attributes.get("transA", 0) else (a[0], a[1])
    n = b[0] if node.attributes.get("transB", 0) else b[1]
    extra = _numel(node.output_shape()) if node.has_input(2) else 0
    return NodeCost(m * k * n, extra, f"{k}*{n} * {m}")


def _broadcast(a: Shape, b: Shape) -> Shape:
    rank = max(len(a), len(b))
    a = (1,) * (rank - len(a)) + tuple(a)
    b = (1,) * (rank - len(b)) + tuple(b)
    return tuple(max(x, y) for x, y in zip(a, b, strict=True))


@register_op_rule("MatMul")
def _matmul(node: NodeView) -> NodeCost:
    a, b = list(node.input_shape(0)), list(node.input_shape(1))
    if len(a) == 1:
        a = [1, *a]
    if len(b) == 1:
        b = [*b, 1]
    m, k, n = a[-2], a[-1], b[-1]
    batch = math.prod(_broadcast(tuple(a[:-2]), tuple(b[:-2])))
    formula = f"{k}*{n} * {m}" + (f"*{batch}" if batch != 1 else "")
    return NodeCost(batch * m * k * n, 0, formula)


# ----------------------------------------------------------------------------- extra FLOPs


def _per_output(cost: int) -> Rule:
    def rule(node: NodeView) -> NodeCost:
        return NodeCost(extra_flops=cost * _numel(node.output_shape()))

    return rule


def _per_input(node: NodeView) -> NodeCost:
    return NodeCost(extra_flops=_numel(node.input_shape(0)))


def _window(node: NodeView) -> NodeCost:
    kernel = node.attributes.get("kernel_shape") or []
    return NodeCost(extra_flops=math.prod(kernel) * _numel(node.output_shape()))


def _variadic(node: NodeView) -> NodeCost:
    # Sum, Max, Min, Mean of k inputs: k - 1 operations per output element
    count = max(1, sum(1 for i in node.inputs if i) - 1)
    return NodeCost(extra_flops=count * _numel(node.output_shape()))


def _norm(node: NodeView) -> NodeCost:
    # normalise (2 per element), then scale and shift (2 more)
    affine = node.has_input(1) or node.has_input(2)
    return NodeCost(extra_flops=(4 if affine else 2) * _numel(node.input_shape(0)))


def _free(node: NodeView) -> NodeCost:
    return NodeCost()


ELEMENTWISE_OPS = (
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish",
    "Tanh", "Softplus", "Softsign", "Gelu", "Mish", "ThresholdedRelu", "Clip", "Erf", "Exp", "Log",
    "Sqrt", "Reciprocal", "Neg", "Abs", "Pow", "Sin", "Cos", "Add", "Sub", "Mul", "Div",
)  # fmt: skip
# Moving data and comparing costs nothing, as in the PyTorch analyzer (which has no rule for
# floor, sign, where or comparisons either).
FREE_OPS = (
    "Reshape", "Flatten", "Transpose", "Concat", "Split", "Slice", "Squeeze", "Unsqueeze",
    "Identity", "Dropout", "Shape", "Size", "Gather", "GatherElements", "GatherND", "Cast",
    "CastLike", "Expand", "Pad", "Constant", "ConstantOfShape", "Range", "Tile", "Resize",
    "Upsample", "DepthToSpace", "SpaceToDepth", "Where", "Equal", "Less", "LessOrEqual", "Greater",
    "GreaterOrEqual", "Not", "And", "Or", "Xor", "ScatterND", "ScatterElements", "Trilu",
    "Floor", "Ceil", "Round", "Sign", "Mod", "IsNaN", "IsInf",
)  # fmt: skip

register_op_rule(*ELEMENTWISE_OPS)(_per_output(1))
register_op_rule("Sum", "Max", "Min", "Mean")(_variadic)
register_op_rule("Softmax", "LogSoftmax")(_per_output(3))
register_op_rule("MaxPool", "AveragePool", "LpPool")(_window)
register_op_rule(
    "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ReduceMean", "ReduceSum", "ReduceMax",
    "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare",
    "ArgMax", "ArgMin",
)(_per_input)  # fmt: skip
register_op_rule(
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "InstanceNormalization"
)(_norm)
register_op_rule(*FREE_OPS)(_free)
