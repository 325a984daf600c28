"""``export_onnx``: write a model to ONNX, run the file in onnxruntime, compare, then rename.

The dynamo exporter (``torch.onnx.export(..., dynamo=True)``) is tried first; the TorchScript
exporter is used only if it fails, and the result says so. The exported graph is constant
folded but not rewritten: BatchNorm stays a ``BatchNormalization`` node (fold it explicitly
with ``onebyone.surgery.fuse`` first if you want it folded), and equal initializers stay
separate tensors, so that the file holds the model's own parameters, as the analyzer counts
them.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import logging
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from onebyone.errors import OneByOneError

from ._deps import require_onnx

__all__ = ["STANDARD_DOMAINS", "ExportResult", "export_onnx"]

# Operator domains of the ONNX standard; any other domain is a custom op.
STANDARD_DOMAINS = ("", "ai.onnx")

DEFAULT_RTOL = 1e-4


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote and how it was checked.

    Attributes:
        path: the ``.onnx`` file.
        exporter: ``"dynamo"`` or ``"torchscript"`` (the fallback).
        fallback_reason: why the dynamo exporter failed, when the fallback was used.
        opset: the ONNX opset of the file.
        input_size: the export input shape.
        dynamic_axes: axis -> symbolic name of the input, e.g. ``{0: "batch"}``.
        checked_sizes: the input shapes run in onnxruntime and in PyTorch.
        max_rel_error: the largest ``max|ort - torch| / max|torch|`` over those runs.
        op_types: the ONNX operator types in the graph, sorted.
        custom_ops: operators outside the standard domains (``domain::type``); empty when
            the file uses standard ONNX only.
        seconds: wall-clock time of the export and the checks.

    Example:
        >>> r = ExportResult(Path("m.onnx"), "dynamo", None, 18, (1, 3, 8, 8))
        >>> r.exporter
        'dynamo'
    """

    path: Path
    exporter: str
    fallback_reason: str | None
    opset: int
    input_size: tuple[int, ...]
    dynamic_axes: dict[int, str] = field(default_factory=dict)
    checked_sizes: list[tuple[int, ...]] = field(default_factory=list)
    max_rel_error: float = 0.0
    op_types: tuple[str, ...] = ()
    custom_ops: tuple[str, ...] = ()
    seconds: float = 0.0

    def __str__(self) -> str:
        sizes = ", ".join("x".join(map(str, s)) for s in self.checked_sizes)
        text = (
            f"wrote {self.path} (opset {self.opset}, {self.exporter} exporter); onnxruntime "
            f"matches PyTorch at {sizes} (max relative error {self.max_rel_error:.1e})"
        )
        if self.fallback_reason:
            text += f"; the dynamo exporter failed ({self.fallback_reason}), so the TorchScript exporter was used"
        return text


def export_onnx(
    model: nn.Module,
    input_size: Sequence[int],
    path: str | os.PathLike,
    *,
    dynamic_batch: bool = True,
    dynamic_spatial: bool = False,
    opset: int | None = None,
    rtol: float = DEFAULT_RTOL,
) -> ExportResult:
    """Export ``model`` to ONNX, check it in onnxruntime against PyTorch, and write it atomically.

    The model is copied and put in eval mode; the original is not changed. The file appears
    under ``path`` only once onnxruntime (CPU) has run it on random inputs at ``input_size``
    and, when an axis is dynamic, at a second size (batch + 1, spatial size x 1.5), giving the
    same outputs as PyTorch within ``rtol`` (``max|ort - torch| <= rtol * max|torch|``).

    Args:
        model: the model to export.
        input_size: the input shape with the batch, e.g. ``(1, 3, 224, 224)``.
        path: the ``.onnx`` file to write; its folder must exist.
        dynamic_batch: make the batch axis dynamic.
        dynamic_spatial: make the axes after the channels dynamic (e.g. a convolutionalized
            model that gives a score map on a larger image).
        opset: the ONNX opset (default: the exporter's).
        rtol: the largest relative error accepted.

    Returns:
        An :class:`ExportResult`.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: a bad ``input_size``, ``path``, ``opset`` or ``rtol``, a model that does
            not run at the second size of a dynamic axis, or one with no operations to export
            (``nn.Identity``).
        FileNotFoundError: the folder of ``path`` does not exist.
        OneByOneError: the model's forward failed, both exporters failed, or onnxruntime
            disagrees with PyTorch (nothing is written then).
        MissingExtraError: the ``onnx`` extra is not installed.

    Example:
        >>> import tempfile, pathlib
        >>> from torch import nn
        >>> import onebyone
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "proj.onnx"
        >>> r = onebyone.export_onnx(nn.Conv2d(8, 4, 1), (1, 8, 6, 6), path)
        >>> r.op_types, r.checked_sizes
        (('Conv',), [(1, 8, 6, 6), (2, 8, 6, 6)])
    """
    require_onnx("exporting to ONNX")
    start = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    size = _check_size(input_size)
    out = _check_path(path)
    for name, flag in (("dynamic_batch", dynamic_batch), ("dynamic_spatial", dynamic_spatial)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    if dynamic_spatial and len(size) < 3:
        raise ValueError(
            f"dynamic_spatial needs an input with spatial axes (N, C, H, ...), got input_size {size}"
        )
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < 7):
        raise ValueError(f"opset must be an int >= 7, got {opset!r}")
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 < rtol < 1:
        raise ValueError(f"rtol must be a number between 0 and 1, got {rtol!r}")

    import onnx

    if opset is not None and opset > onnx.defs.onnx_opset_version():
        raise ValueError(
            f"opset {opset} is newer than the installed onnx supports (up to "
            f"{onnx.defs.onnx_opset_version()})"
        )
    work = copy.deepcopy(model).float().cpu().eval()
    axes = _dynamic_axes(size, dynamic_batch, dynamic_spatial)
    sizes = [size] + ([_second_size(size, axes)] if axes else [])
    references = [_reference(work, s, i) for i, s in enumerate(sizes)]

    from onebyone._io import atomic_path

    with atomic_path(out) as tmp:
        exporter, reason = _export(work, size, axes, tmp, opset)
        proto = onnx.load(str(tmp))
        if not proto.graph.node:  # nn.Identity: a file that onnxruntime runs but nothing can time or analyze
            raise ValueError(
                f"{type(model).__name__} has no operations to export: the ONNX graph would have no "
                "nodes (its outputs are its inputs or constants); nothing was written"
            )
        error = _verify(tmp, references, out)
        op_types, custom = _op_types(proto)
        opset_used = next(
            (o.version for o in proto.opset_import if o.domain in STANDARD_DOMAINS), 0
        )
        if opset is not None and opset_used != opset:
            raise ValueError(
                f"opset {opset} was asked for but the exporter could only give opset "
                f"{opset_used} (nothing was written); leave opset unset or choose another"
            )
        if error > rtol:
            raise OneByOneError(
                f"the exported model {str(out)!r} does not match PyTorch in onnxruntime: "
                f"relative error {error:.2e} > rtol {rtol:g} (nothing was written)"
            )
    return ExportResult(
        path=out,
        exporter=exporter,
        fallback_reason=reason,
        opset=int(opset_used),
        input_size=size,
        dynamic_axes=axes,
        checked_sizes=[tuple(x.shape) for x, _ in references],
        max_rel_error=error,
        op_types=op_types,
        custom_ops=custom,
        seconds=time.perf_counter() - start,
    )


# ---------------------------------------------------------------------------- checks


def _check_size(input_size: Any) -> tuple[int, ...]:
    if isinstance(input_size, torch.Size):
        input_size = tuple(input_size)
    if (
        not isinstance(input_size, Sequence)
        or isinstance(input_size, str)
        or len(input_size) < 2
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in input_size)
    ):
        raise ValueError(
            f"input_size must be the input shape with the batch, positive ints such as "
            f"(1, 3, 224, 224), got {input_size!r}"
        )
    return tuple(int(d) for d in input_size)


def _check_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    out = Path(path)
    if str(path).endswith(("/", os.sep)) or out.is_dir():
        raise ValueError(f"path {str(path)!r} is a directory; expected a file such as model.onnx")
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"path {str(path)!r} must end in .onnx, got the suffix {out.suffix or '(none)'!r}")
    parent = out.parent
    if not parent.exists():
        raise FileNotFoundError(
            f"path {str(path)!r}: the folder {str(parent)!r} does not exist (create it first)"
        )
    if not parent.is_dir():
        raise ValueError(f"path {str(path)!r}: {str(parent)!r} is a file, not a folder")
    return out


def _dynamic_axes(size: tuple[int, ...], batch: bool, spatial: bool) -> dict[int, str]:
    axes: dict[int, str] = {}
    if batch:
        axes[0] = "batch"
    if spatial:
        names = ("height", "width") if len(size) == 4 else tuple(f"dim{i}" for i in range(2, len(size)))
        for i, name in zip(range(2, len(size)), names, strict=True):
            axes[i] = name
    return axes


def _second_size(size: tuple[int, ...], axes: dict[int, str]) -> tuple[int, ...]:
    """The batch one larger and each dynamic spatial axis half as large again."""
    return tuple(
        (d + 1 if i == 0 else d + max(1, d // 2)) if i in axes else d for i, d in enumerate(size)
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _reference(model: nn.Module, size: tuple[int, ...], index: int):
    generator = torch.Generator().manual_seed(index)
    x = torch.randn(size, generator=generator)
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as e:
        if index == 0:
            raise OneByOneError(
                f"the model's forward failed on input {size}: {_first_line(e)}"
            ) from e
        raise ValueError(
            f"the model does not run at {size}, the second size checked for the dynamic axes "
            f"({_first_line(e)}); export with a static batch or spatial size, or make the model "
            "size-independent first (e.g. onebyone.surgery.convolutionalize for an FC head)"
        ) from e
    outputs = _flat_tensors(out)
    if not outputs:
        raise ValueError(f"the model returned no tensor on input {size}: got {type(out).__name__}")
    return x, [t.detach().float().numpy() for t in outputs]


def _flat_tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flat_tensors(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _flat_tensors(o)]
    return []


# ---------------------------------------------------------------------------- export


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress prints, logs and deprecation warnings."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _export(model, size, axes, tmp: Path, opset):
    """Write the model to ``tmp``; return ``(exporter, reason the dynamo exporter failed)``."""
    x = torch.randn(size)
    try:
        with _quiet():
            _export_dynamo(model, x, axes, tmp, opset)
        return "dynamo", None
    except Exception as e:
        reason = _first_line(e)
        dynamo_error = e
    try:
        with _quiet():
            _export_torchscript(model, x, axes, tmp, opset)
    except Exception as e:
        raise OneByOneError(
            f"both ONNX exporters failed on input {size}: dynamo: {reason}; torchscript: "
            f"{_first_line(e)}"
        ) from dynamo_error
    return "torchscript", reason


def _export_dynamo(model, x, axes, tmp: Path, opset) -> None:
    import onnx_ir as ir
    import onnx_ir.passes.common as passes
    from onnxscript import optimizer
    from torch.export import Dim

    shapes = ({axis: Dim.DYNAMIC for axis in axes},) if axes else None
    program = _dynamo_program(model, x, shapes, opset)
    graph_model = program.model
    passes.InlinePass()(graph_model)
    optimizer.fold_constants_ir(graph_model)
    _drop_zero_biases(graph_model, {name for name, _ in model.named_parameters(remove_duplicate=False)})
    passes.RemoveUnusedNodesPass()(graph_model)
    passes.RemoveUnusedOpsetsPass()(graph_model)
    _rename_symbols(graph_model, axes)
    ir.save(graph_model, tmp)


def _dynamo_program(model, x, shapes, opset):
    """``torch.onnx.export(..., dynamo=True, optimize=False)``, reusing the operator registry.

    The public function rebuilds its registry of ONNX decompositions on every call, which
    parses the source of some 500 functions (about 4 s of each export here). The exporter's
    own entry point takes a registry, so it is built once per opset and kept; if that internal
    entry point is not there (another torch version), the public function is used.
    """
    try:
        from torch.onnx._internal.exporter import _constants, _core
    except ImportError:
        _core = None
    if _core is None or not hasattr(_core, "export"):
        return torch.onnx.export(
            model, (x,), dynamo=True, dynamic_shapes=shapes, opset_version=opset,
            optimize=False,  # the default optimizer folds BatchNorm and merges equal weights
            verbose=False,
        )  # fmt: skip
    from torch.onnx import _constants as onnx_constants

    opset = opset or onnx_constants.ONNX_DEFAULT_OPSET
    registry = _registry(max(opset, _constants.TORCHLIB_OPSET))
    return _core.export(
        model, (x,), None, registry=registry, dynamic_shapes=shapes, optimize=False,
        opset_version=opset, verbose=False,
    )  # fmt: skip


@functools.cache
def _registry(opset: int):
    from torch.onnx._internal.exporter import _registration

    return _registration.ONNXRegistry.from_torchlib(opset_version=opset)


def _drop_zero_biases(graph_model, parameters: set[str]) -> None:
    """Remove the all-zero bias the exporter gives a bias-free ``Conv`` (it is no parameter)."""
    for node in graph_model.graph:
        if node.op_type not in ("Conv", "ConvTranspose") or node.domain not in STANDARD_DOMAINS:
            continue
        if len(node.inputs) < 3 or node.inputs[2] is None:
            continue
        bias = node.inputs[2]
        if bias.name in parameters or bias.const_value is None:
            continue
        if not bias.const_value.numpy().any():
            node.resize_inputs(2)


def _rename_symbols(graph_model, axes: dict[int, str]) -> None:
    """Give the input's symbolic dimensions the names of ``axes`` (``batch``, not ``s77``)."""
    import onnx_ir as ir

    graph = graph_model.graph
    if not graph.inputs or graph.inputs[0].shape is None:
        return
    shape = graph.inputs[0].shape
    rename = {}
    for axis, name in axes.items():
        if axis < len(shape) and isinstance(shape[axis], ir.SymbolicDim) and shape[axis].value:
            rename[shape[axis].value] = name
    if not rename or len(set(rename.values())) != len(rename):
        return
    values = list(graph.inputs) + list(graph.outputs)
    for node in graph:
        values.extend(node.outputs)
    for value in values:
        if value.shape is None:
            continue
        dims = [
            ir.SymbolicDim(rename[d.value])
            if isinstance(d, ir.SymbolicDim) and d.value in rename
            else d
            for d in value.shape
        ]
        if dims != list(value.shape):
            value.shape = ir.Shape(dims)


def _export_torchscript(model, x, axes, tmp: Path, opset) -> None:
    torch.onnx.export(
        model,
        (x,),
        str(tmp),
        dynamo=False,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": dict(axes)} if axes else None,
        opset_version=opset or 18,
        do_constant_folding=True,
    )


# ---------------------------------------------------------------------------- checks in onnxruntime


def _session(path: Path, shown: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = torch.get_num_threads()  # as many as PyTorch is told to use
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise OneByOneError(f"onnxruntime cannot load the exported {str(shown)!r}: {_first_line(e)}") from e


def _verify(tmp: Path, references, shown: Path) -> float:
    import numpy as np

    session = _session(tmp, shown)
    name = session.get_inputs()[0].name
    worst = 0.0
    for x, expected in references:
        try:
            got = session.run(None, {name: x.numpy()})
        except Exception as e:
            raise OneByOneError(
                f"onnxruntime failed to run the exported model on input {tuple(x.shape)}: "
                f"{_first_line(e)}"
            ) from e
        if len(got) != len(expected):
            raise OneByOneError(
                f"the exported model gives {len(got)} outputs, PyTorch {len(expected)}"
            )
        for g, e in zip(got, expected, strict=True):
            if tuple(g.shape) != tuple(e.shape):
                raise OneByOneError(
                    f"onnxruntime's output has shape {tuple(g.shape)}, PyTorch's {tuple(e.shape)} "
                    f"on input {tuple(x.shape)}"
                )
            scale = float(np.max(np.abs(e))) if e.size else 0.0
            diff = float(np.max(np.abs(g.astype(np.float64) - e))) if e.size else 0.0
            rel = diff / scale if scale > 0 else diff
            if not math.isfinite(rel):
                rel = math.inf
            worst = max(worst, rel)
    return worst


def _op_types(proto) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The operator types of every node (subgraphs and functions included), and the custom ones."""
    types: set[str] = set()
    custom: set[str] = set()
    local = {(f.domain, f.name) for f in proto.functions}

    def visit(nodes) -> None:
        for node in nodes:
            if (node.domain, node.op_type) in local:
                continue
            types.add(node.op_type)
            if node.domain not in STANDARD_DOMAINS:
                custom.add(f"{node.domain}::{node.op_type}")
            for attr in node.attribute:
                if attr.g is not None and attr.g.node:
                    visit(attr.g.node)
                for g in attr.graphs:
                    visit(g.node)

    visit(proto.graph.node)
    for function in proto.functions:
        visit(function.node)
    return tuple(sorted(types)), tuple(sorted(custom))
