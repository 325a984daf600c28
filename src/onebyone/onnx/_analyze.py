"""``analyze_onnx``: the PyTorch analyzer's :class:`~onebyone.analysis.Report` for an ``.onnx`` file.

One row per node, in the graph's order, under a root row for the graph. Nodes that cost
nothing and hold no parameters get no row when they only compute integer shapes (the
``Shape`` -> ``Concat`` arithmetic of dynamic-shape exports), are ``Constant`` or ``Identity``,
or ``Cast`` a tensor to the type it already has (as Keras exports do).

* ``params``: elements of the floating-point initializers that are weights (see
  ``_classify``), each counted once at the first node that uses it (through reshapes and
  transposes of the weight, as Keras exports have; a bias ``Add`` right after a Conv or MatMul
  counts with it). BatchNorm running statistics (inputs 3 and 4 of ``BatchNormalization``) are
  ``buffers``, as in PyTorch (which also counts ``num_batches_tracked``, absent from ONNX).
* ``macs`` and ``extra_flops``: the rules of :mod:`onebyone.onnx._rules`, the conventions of
  the PyTorch analyzer, on the shapes that ONNX shape inference gives.
* ``activation_bytes``: the bytes of the node's outputs.

Symbolic dimensions (a dynamic batch) are filled from ``input_size`` or refused, naming the
dimension. Nothing is run; the initializers' data is never read.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from onebyone.analysis.report import LayerStats, Report

from ._deps import require_onnx
from ._rules import OP_RULES, NodeCost, NodeView, rule_key

__all__ = ["analyze_onnx", "load_onnx"]

Shape = tuple[int, ...]

# Operators that pass a weight through unchanged in value count: the parameters of a
# transposed or reshaped initializer are counted at the node that consumes the result.
# (Their first input is the data; the others, shapes or axes, may be computed at run time.)
_PASS_THROUGH = {
    "Transpose", "Reshape", "Cast", "CastLike", "Identity", "Squeeze", "Unsqueeze", "Flatten",
    "Expand",  # a weight broadcast over the batch for a batched MatMul
}  # fmt: skip
# Input slots that hold a weight even when it has a single element.
_WEIGHT_SLOTS = {
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "Gemm": (0, 1, 2),
    "MatMul": (0, 1),
    "BatchNormalization": (1, 2),
    "LayerNormalization": (1, 2),
    "GroupNormalization": (1, 2),
    "InstanceNormalization": (1, 2),
    "PRelu": (1,),
    "Gather": (0,),  # an embedding table
}
# Initializers larger than this are handed to shape inference as typed inputs, without data.
_INLINE_LIMIT = 64


def load_onnx(path: str | os.PathLike, *, what: str = "analysing an .onnx file"):
    """Read an ``.onnx`` file's graph (not its external data), with clear errors for bad files.

    Raises:
        TypeError: ``path`` is not a str or path.
        FileNotFoundError: the file, or an external data file it names, is missing.
        ValueError: the file is not an ONNX model (or is truncated), or needs a newer opset than
            the installed onnx knows.
        MissingExtraError: the ``onnx`` extra is not installed.

    Example:
        >>> load_onnx("missing.onnx")
        Traceback (most recent call last):
        ...
        FileNotFoundError: ONNX file 'missing.onnx' does not exist
    """
    require_onnx(what)
    import onnx

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    file = Path(path)
    text = str(path)
    if not file.exists():
        raise FileNotFoundError(f"ONNX file {text!r} does not exist")
    if file.is_dir():
        raise ValueError(f"{text!r} is a directory; expected an .onnx file")
    try:
        proto = onnx.load(str(file), load_external_data=False)
    except Exception as e:
        raise ValueError(
            f"{text!r} is not an ONNX model, or is truncated or corrupted ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else 'cannot parse'})"
        ) from e
    if proto.ir_version >= 1 and proto.HasField("graph") and proto.graph.output and not proto.graph.node:
        raise ValueError(
            f"{text!r} has no operations: its graph has no nodes (its outputs are its inputs or "
            "constants); there is nothing to analyze or time"
        )
    if proto.ir_version < 1 or not proto.HasField("graph") or not proto.graph.node:
        raise ValueError(
            f"{text!r} is not an ONNX model, or is truncated or corrupted (no graph with nodes)"
        )
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            data = file.parent / location
            if not location or not data.is_file():
                raise FileNotFoundError(
                    f"ONNX file {text!r} keeps initializer {tensor.name!r} in the external data "
                    f"file {location!r}, which is missing (expected at {str(data)!r})"
                )
    known = onnx.defs.onnx_opset_version()
    for opset in proto.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > known:
            raise ValueError(
                f"{text!r} uses ONNX opset {opset.version}, newer than the installed onnx "
                f"supports (up to {known}); upgrade onnx and onnxruntime"
            )
    return proto


def analyze_onnx(
    path: str | os.PathLike, input_size: Any = None, *, strict: bool = True
) -> Report:
    """Count parameters, MACs and FLOPs per node of an ``.onnx`` file.

    Args:
        path: the ``.onnx`` file.
        input_size: the input shape with the batch, e.g. ``(1, 3, 224, 224)`` (a list of shapes
            for several inputs). Needed when an input has a symbolic dimension; where given,
            it must agree with the file's fixed dimensions.
        strict: raise for an operator with no counting rule (default); with False, such nodes
            count zero and are listed in ``report.uncounted``.

    Returns:
        A :class:`~onebyone.analysis.Report`, as :func:`onebyone.analyze` gives for a PyTorch
        model; ``report.uncounted`` lists ``"node (op)"`` for nodes with no rule.

    Raises:
        ValueError: a bad file, a symbolic dimension without ``input_size`` (named), an
            ``input_size`` that does not fit the model, or a shape that inference cannot give.
        NotImplementedError: an operator with no counting rule (named with its node), when
            ``strict``.
        FileNotFoundError: the file or its external data is missing.
        MissingExtraError: the ``onnx`` extra is not installed.

    Example:
        >>> import tempfile, pathlib, torch
        >>> from torch import nn
        >>> import onebyone
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.onnx"
        >>> conv = nn.Conv2d(3, 512, 3, padding=1)
        >>> _ = onebyone.export_onnx(conv, (1, 3, 16, 16), path, dynamic_spatial=True)
        >>> r = onebyone.analyze(path, (1, 3, 256, 256))
        >>> r.total_params, f"{r.total_macs:,}"
        (14336, '905,969,664')
    """
    proto = load_onnx(path)
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be a bool, got {strict!r}")
    import onnx
    import onnx.inliner

    if len(proto.functions):
        proto = onnx.inliner.inline_local_functions(proto)
    graph = proto.graph
    initializers = {t.name: t for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    shapes = _input_shapes(inputs, input_size, str(path))
    values = _infer(proto, shapes, str(path))

    constant_values = set(initializers)
    for node in graph.node:
        if node.op_type == "Constant":
            constant_values.update(node.output)
    if strict:
        _check_rules(graph, str(path))
    kinds = _classify(graph, initializers)
    counted: set[str] = set()
    rows: list[LayerStats] = []
    uncounted: list[str] = []
    sources = _weight_sources(graph, kinds, constant_values)
    bias_of = _bias_adds(graph, sources, constant_values)
    for index, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        name = node.name or (node.output[0] if node.output else f"node{index}")
        key = rule_key(node.op_type, node.domain)
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        view = NodeView(
            name=name,
            op_type=node.op_type,
            domain=node.domain,
            attributes=attributes,
            inputs=list(node.input),
            input_shapes=[values.get(i, (None, 0))[0] if i else None for i in node.input],
            output_shapes=[values.get(o, (None, 0))[0] for o in node.output],
        )
        rule = OP_RULES.get(key)
        if rule is None:
            uncounted.append(f"{name} ({key})")
            cost = NodeCost()
        else:
            try:
                cost = _apply(rule, view)
            except ValueError:
                if strict:
                    raise
                # a shape unknown behind an uncounted custom op: listed, not guessed
                uncounted.append(f"{name} ({key}, shape unknown)")
                cost = NodeCost()
        if node.output and all(o in sources for o in node.output):
            continue  # a weight being reshaped or cast: counted where it is used
        own = [s for i in node.input for s in sources.get(i, [])] + bias_of.get(index, [])
        own = [s for s in dict.fromkeys(own) if s not in counted]
        counted.update(own)
        params = sum(_numel(initializers[s]) for s in own)
        outs = [values.get(o) for o in node.output if o]
        out_shapes = [v[0] for v in outs if v is not None and v[0] is not None]
        if _is_shape_arithmetic(node, cost, params, outs) or _is_no_op(node, values, params):
            continue
        row = LayerStats(
            name=name,
            type=key,
            depth=1,
            input_shapes=[
                s
                for i, s in zip(node.input, view.input_shapes, strict=True)
                if i and i not in constant_values and s is not None
            ],
            output_shape=out_shapes[0] if len(out_shapes) == 1 else out_shapes,
            params=params,
            trainable=params,
            macs=cost.macs,
            extra_flops=cost.extra_flops,
            activation_bytes=sum(_bytes(v) for v in outs if v is not None),
            formula=_formula(params, [initializers[s] for s in own], cost, rule is None),
            is_leaf=True,
        )
        rows.append(row)
    return _report(path, graph, initializers, kinds, counted, shapes, values, rows, uncounted)


def _check_rules(graph, path: str) -> None:
    """NotImplementedError naming the nodes whose operator has no counting rule.

    Checked before counting: shape inference knows nothing of a custom op's outputs, so the
    nodes after it would otherwise fail first with an unknown shape.
    """
    missing = []
    for index, node in enumerate(graph.node):
        key = rule_key(node.op_type, node.domain)
        if key not in OP_RULES:
            missing.append(f"{node.name or (node.output[0] if node.output else f'node{index}')} ({key})")
    if missing:
        more = f" (and {len(missing) - 1} more: {', '.join(missing[1:4])})" if len(missing) > 1 else ""
        raise NotImplementedError(
            f"{path!r}: no counting rule for node {missing[0]}{more}; add one with "
            "onebyone.onnx.register_op_rule, or pass strict=False to count it as 0 and list it "
            "in report.uncounted"
        )


# ---------------------------------------------------------------------------- weights

_MAC_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


def _weight_sources(graph, kinds, constant_values) -> dict[str, list[str]]:
    """Value name -> the parameter initializers it is (through reshapes, transposes, casts)."""
    sources: dict[str, list[str]] = {name: [name] for name, kind in kinds.items() if kind == "param"}
    for node in graph.node:
        if node.op_type in _PASS_THROUGH and node.input and node.input[0] in sources:
            for out in node.output:
                sources[out] = list(sources[node.input[0]])
    return sources


def _bias_adds(graph, sources, constant_values) -> dict[int, list[str]]:
    """Index of a Conv/Gemm/MatMul node -> the bias initializer of the ``Add`` that follows it.

    Keras exports (and PyTorch's Linear on 3-D inputs) add the bias in a separate ``Add``, at
    most behind layout changes (``Transpose``, ``Cast``); its parameters belong to the layer,
    as in the framework's own summary. The ``Add`` keeps its FLOPs.
    """
    nodes = list(graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    uses: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    owner: dict[int, list[str]] = {}
    for node in nodes:
        if node.op_type != "Add" or len(node.input) != 2:
            continue
        weights = [i for i in node.input if i in sources]
        data = [i for i in node.input if i not in sources and i not in constant_values]
        if len(weights) != 1 or len(data) != 1:
            continue
        value = data[0]
        while value in producer and uses.get(value) == 1:
            prev = nodes[producer[value]]
            if prev.op_type in _MAC_OPS:
                has_bias = prev.op_type != "MatMul" and len(prev.input) > 2 and bool(prev.input[2])
                if not has_bias:
                    owner.setdefault(producer[value], []).extend(sources[weights[0]])
                break
            if prev.op_type not in _PASS_THROUGH or not prev.input:
                break
            value = prev.input[0]
    return owner


# ---------------------------------------------------------------------------- shapes


def _dim_text(dim) -> str:
    return dim.dim_param if dim.HasField("dim_param") else "?"


def _input_shapes(inputs, input_size: Any, path: str) -> dict[str, Shape]:
    """The concrete shape of each graph input, from the file and ``input_size``."""
    if input_size is None:
        given: list[Shape | None] = [None] * len(inputs)
    else:
        sizes = _check_sizes(input_size)
        if len(sizes) != len(inputs):
            raise ValueError(
                f"input_size gives {len(sizes)} shape(s) but {path!r} has {len(inputs)} input(s): "
                f"{', '.join(repr(v.name) for v in inputs)}"
            )
        given = list(sizes)
    out: dict[str, Shape] = {}
    for value, size in zip(inputs, given, strict=True):
        dims = list(value.type.tensor_type.shape.dim)
        if size is not None:
            if len(size) != len(dims):
                raise ValueError(
                    f"input_size {size} has rank {len(size)} but input {value.name!r} of {path!r} "
                    f"has rank {len(dims)} ({_describe(dims)})"
                )
            for axis, (d, s) in enumerate(zip(dims, size, strict=True)):
                if d.HasField("dim_value") and d.dim_value != s:
                    raise ValueError(
                        f"input_size {size} does not fit input {value.name!r} of {path!r}: axis "
                        f"{axis} is fixed at {d.dim_value} ({_describe(dims)})"
                    )
            out[value.name] = tuple(size)
            continue
        for axis, d in enumerate(dims):
            if not d.HasField("dim_value"):
                raise ValueError(
                    f"input {value.name!r} of {path!r} has the symbolic dimension "
                    f"{_dim_text(d)!r} (axis {axis} of {_describe(dims)}); give its size with "
                    "input_size (--input on the command line)"
                )
        out[value.name] = tuple(int(d.dim_value) for d in dims)
    return out


def _describe(dims) -> str:
    return "(" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else _dim_text(d) for d in dims) + ")"


def _check_sizes(input_size: Any) -> list[Shape]:
    def is_shape(s) -> bool:
        return (
            isinstance(s, (tuple, list))
            and len(s) > 0
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in s)
        )

    if is_shape(input_size):
        return [tuple(input_size)]
    if isinstance(input_size, (tuple, list)) and input_size and all(is_shape(s) for s in input_size):
        return [tuple(s) for s in input_size]
    raise ValueError(
        f"input_size must be a shape with the batch such as (1, 3, 224, 224), or a list of "
        f"shapes, got {input_size!r}"
    )


def _infer(proto, shapes: dict[str, Shape], path: str) -> dict[str, tuple[Shape | None, int]]:
    """Run ONNX shape inference on a light copy; return value name -> (shape, element type).

    Large initializers become typed graph inputs (their values are not needed for shapes),
    so the copy is small; the file's own value_info (symbolic shapes) is dropped. ONNX's own
    data propagation stops at some operators (``Reshape`` of a shape), so the integer shape
    arithmetic of dynamic-shape exports (``Shape`` -> ``Squeeze`` -> ``Concat`` -> ``Reshape``)
    is evaluated here once the shapes it reads are known, and inference runs again.
    """
    import onnx

    light = onnx.ModelProto()
    light.ir_version = proto.ir_version
    light.opset_import.extend(proto.opset_import)
    graph = light.graph
    graph.name = proto.graph.name
    graph.node.extend(proto.graph.node)
    for value in proto.graph.input:
        if value.name in shapes:
            graph.input.append(
                onnx.helper.make_tensor_value_info(
                    value.name, value.type.tensor_type.elem_type, list(shapes[value.name])
                )
            )
    for tensor in proto.graph.initializer:
        if _numel(tensor) <= _INLINE_LIMIT and tensor.data_location != onnx.TensorProto.EXTERNAL:
            graph.initializer.append(tensor)
        else:
            graph.input.append(
                onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
            )
    for value in proto.graph.output:
        graph.output.append(
            onnx.helper.make_tensor_value_info(value.name, value.type.tensor_type.elem_type, None)
        )
    folded: dict[str, Any] = {}
    for _ in range(16):
        out = _shapes_of(_run_inference(light, shapes, path))
        if not _fold_shape_arithmetic(light, out, folded):
            break
    for name, array in folded.items():
        out[name] = (tuple(int(d) for d in array.shape), _INT64 if array.dtype.kind == "i" else 9)
    for tensor in proto.graph.initializer:
        out[tensor.name] = (tuple(int(d) for d in tensor.dims), tensor.data_type)
    for node in proto.graph.node:
        if node.op_type == "Constant" and node.output and node.output[0] not in out:
            out[node.output[0]] = (None, 0)
    return out


_INT64 = 7
# Operators evaluated when all their inputs are known small integer tensors (shape arithmetic).
_FOLDABLE = {
    "Squeeze", "Unsqueeze", "Reshape", "Concat", "Gather", "Slice", "Cast", "Identity", "Add",
    "Sub", "Mul", "Div", "Mod", "Range", "Max", "Min", "Equal", "Less", "Greater", "Where", "Not",
    "Neg", "Abs", "Expand", "Tile", "ConstantOfShape", "ReduceProd", "ReduceSum", "Constant",
}  # fmt: skip
_FOLD_LIMIT = 1024


def _run_inference(light, shapes, path: str):
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(light, strict_mode=True, data_prop=True)
    except Exception as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"ONNX shape inference failed on {path!r} with inputs {shapes}: {detail}"
        ) from e


def _shapes_of(inferred) -> dict[str, tuple[Shape | None, int]]:
    out: dict[str, tuple[Shape | None, int]] = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tensor_type = value.type.tensor_type
        shape: Shape | None = None
        if tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in tensor_type.shape.dim):
            shape = tuple(int(d.dim_value) for d in tensor_type.shape.dim)
        if value.name not in out or out[value.name][0] is None:
            out[value.name] = (shape, tensor_type.elem_type)
    for tensor in inferred.graph.initializer:
        out[tensor.name] = (tuple(int(d) for d in tensor.dims), tensor.data_type)
    return out


def _fold_shape_arithmetic(light, shapes, folded: dict[str, Any]) -> bool:
    """Replace the nodes of ``light`` that compute small integer tensors by initializers."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    opsets = {o.domain or "": o.version for o in light.opset_import}
    known = {
        t.name: numpy_helper.to_array(t)
        for t in light.graph.initializer
        if t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.BOOL)
    }
    keep, new = [], []
    for node in light.graph.node:
        results = None
        if node.domain in ("", "ai.onnx") and node.op_type in ("Shape", "Size"):
            shape = shapes.get(node.input[0], (None, 0))[0]
            if shape is not None:
                attrs = {a.name: a.i for a in node.attribute}
                if node.op_type == "Size":
                    results = [np.array(math.prod(shape), dtype=np.int64)]
                else:
                    dims = list(shape)[attrs.get("start", 0) : attrs.get("end", len(shape))]
                    results = [np.array(dims, dtype=np.int64)]
        elif (
            node.domain in ("", "ai.onnx")
            and node.op_type in _FOLDABLE
            and all(i in known for i in node.input if i)
            and (node.op_type != "Constant" or _int_output(shapes, node))
        ):
            try:
                feeds = {i: known[i] for i in node.input if i}
                results = ReferenceEvaluator(node, opsets=opsets).run(None, feeds)
            except Exception:
                results = None  # left to shape inference
        if results is not None and all(
            isinstance(r, np.ndarray) and r.dtype.kind in "ib" and r.size <= _FOLD_LIMIT for r in results
        ):
            for name, array in zip(node.output, results, strict=False):
                known[name] = array
                folded[name] = array
                new.append(numpy_helper.from_array(np.asarray(array), name))
            continue
        keep.append(node)
    if not new:
        return False
    del light.graph.node[:]
    light.graph.node.extend(keep)
    light.graph.initializer.extend(new)
    return True


def _int_output(shapes, node) -> bool:
    import onnx

    elem = shapes.get(node.output[0], (None, 0))[1] if node.output else 0
    return elem in (onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.BOOL)


# ---------------------------------------------------------------------------- params


def _is_float(tensor) -> bool:
    import onnx

    return tensor.data_type in (
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
    )


def _classify(graph, initializers) -> dict[str, str]:
    """``param``, ``buffer`` (BatchNorm running statistics) or ``constant`` per initializer.

    A floating initializer is a parameter where it is a weight (a Conv/Gemm/MatMul/norm/PReLU
    weight or bias, an embedding table), or, when it has more than one element, where it is
    added, subtracted or multiplied in (a bias, a scale) or reshaped on the way to such a use.
    Other constants (the divisor of an adaptive pooling, a mask, a scalar) are not parameters.
    """
    buffer_use: dict[str, bool] = {}
    weight_use: set[str] = set()
    arithmetic_use: set[str] = set()
    for node in graph.node:
        for slot, name in enumerate(node.input):
            if name not in initializers:
                continue
            is_stat = node.op_type == "BatchNormalization" and slot in (3, 4)
            buffer_use[name] = buffer_use.get(name, True) and is_stat
            if slot in _WEIGHT_SLOTS.get(node.op_type, ()):
                weight_use.add(name)
            elif node.op_type in ("Add", "Sub", "Mul", "Einsum") or node.op_type in _PASS_THROUGH:
                arithmetic_use.add(name)
    kinds: dict[str, str] = {}
    for name, tensor in initializers.items():
        if not _is_float(tensor) or name not in buffer_use:
            kinds[name] = "constant"
        elif buffer_use[name]:
            kinds[name] = "buffer"
        elif name in weight_use or (name in arithmetic_use and _numel(tensor) > 1):
            kinds[name] = "param"
        else:
            kinds[name] = "constant"
    return kinds


def _numel(tensor) -> int:
    return int(math.prod(tensor.dims))


_ELEMENT_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}


def _element_bytes(elem_type: int) -> int:
    return _ELEMENT_BYTES.get(elem_type, 4)


def _bytes(value: tuple[Shape | None, int]) -> int:
    shape, elem_type = value
    return 0 if shape is None else math.prod(shape) * _element_bytes(elem_type)


def _is_shape_arithmetic(node, cost: NodeCost, params: int, outs) -> bool:
    """A zero-cost node computing integer shapes (``Shape``, ``Concat`` of sizes): no row."""
    import onnx

    if cost.macs or cost.extra_flops or params or not outs:
        return False
    integer = {onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.BOOL}
    return all(
        v is not None and v[1] in integer and (v[0] is None or len(v[0]) <= 1) for v in outs
    )


def _is_no_op(node, values, params: int) -> bool:
    """An ``Identity``, or a ``Cast`` to the type it already has (Keras exports chain them)."""
    if params or node.op_type not in ("Identity", "Cast") or len(node.input) != 1:
        return False
    before = values.get(node.input[0], (None, -1))[1]
    return node.op_type == "Identity" or before == values.get(node.output[0], (None, -2))[1]


def _apply(rule, view: NodeView) -> NodeCost:
    from onebyone.errors import InternalError

    try:
        return rule(view)
    except ValueError:
        raise  # an unknown shape: the message names the node
    except Exception as e:
        raise InternalError(
            f"the counting rule for {view.op_type} failed on node {view.name!r} "
            f"(input shapes {view.input_shapes})"
        ) from e


def _formula(params: int, tensors, cost: NodeCost, no_rule: bool) -> str:
    parts = []
    if params:
        terms = []
        for t in tensors:
            dims = [int(d) for d in t.dims]
            if sum(d != 1 for d in dims) <= 1:
                dims = [math.prod(dims)]  # a bias stored as 1x1x1xC
            if len(dims) >= 2:
                dims = [*dims[2:], dims[1], dims[0]]
            terms.append("*".join(map(str, dims)) if dims else "1")
        text = " + ".join(terms)
        parts.append(f"{text} = {params:,} params" if ("+" in text or "*" in text) else f"{params:,} params")
    if cost.macs:
        parts.append(f"{cost.formula} = {cost.macs:,} MACs")
    if no_rule:
        parts.append("no counting rule: not counted")
    return "; ".join(parts)


def _report(path, graph, initializers, kinds, counted, shapes, values, rows, uncounted) -> Report:
    # a parameter that only feeds the graph's outputs (never used by a counted node)
    rest = [n for n, k in kinds.items() if k == "param" and n not in counted]
    total = sum(_numel(initializers[n]) for n in counted) + sum(_numel(initializers[n]) for n in rest)
    param_bytes = sum(
        _numel(initializers[n]) * _element_bytes(initializers[n].data_type) for n in [*counted, *rest]
    )
    buffers = [initializers[n] for n, k in kinds.items() if k == "buffer"]
    output_values = [values.get(v.name, (None, 0)) for v in graph.output]
    out_shapes = [v[0] for v in output_values if v[0] is not None]
    input_values = [(shapes[name], _elem(graph, name)) for name in shapes]
    root = LayerStats(
        name="",
        type="ONNX graph",
        depth=0,
        input_shapes=list(shapes.values()),
        output_shape=out_shapes[0] if len(out_shapes) == 1 else out_shapes,
        activation_bytes=sum(_bytes(v) for v in output_values),
        is_leaf=False,
    )
    macs = sum(r.macs for r in rows)
    extra = sum(r.extra_flops for r in rows)
    first_type = input_values[0][1] if input_values else 1
    import onnx

    report = Report(
        model=Path(path).name,
        input_shapes=list(shapes.values()),
        dtype=str(onnx.helper.tensor_dtype_to_np_dtype(first_type)) if first_type else "float32",
        device="onnx",
        rows=[root, *rows],
        total_params=total,
        trainable_params=total,
        non_trainable_params=0,
        buffers=sum(_numel(b) for b in buffers),
        total_macs=macs,
        total_flops=2 * macs + extra,
        param_bytes=param_bytes,
        buffer_bytes=sum(_numel(b) * _element_bytes(b.data_type) for b in buffers),
        activation_bytes=sum(r.activation_bytes for r in rows),
        input_bytes=sum(_bytes(v) for v in input_values),
    )
    report.uncounted = uncounted  # not a dataclass field (yet): read it with getattr
    return report


def _elem(graph, name: str) -> int:
    return next((v.type.tensor_type.elem_type for v in graph.input if v.name == name), 1)
