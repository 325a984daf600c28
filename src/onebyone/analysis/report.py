"""The analyzer's result: :class:`LayerStats` per module call and the model totals in :class:`Report`.

Definitions (also printed under the rendered table):

* ``params``: a row's *own* parameters (``recurse=False``), counted at the first call of
  the module and only if no earlier row counted the same tensor, so a shared module or a
  tied weight is counted once. ``total_params`` counts every parameter of the model once,
  including those of modules that the forward never called.
* ``buffers``: elements of registered buffers (BatchNorm running statistics), which are
  not parameters.
* ``macs``: multiply-accumulates of convolutions and matrix products done in the module's
  own forward (not in its children), bias adds excluded. ``total_macs`` is their sum.
* ``extra_flops``: elementwise work (bias adds, activations, norms, pooling, adds), per
  element; ``total_flops = 2 * total_macs + sum(extra_flops)``.
* ``activation_bytes``: the size of the module's output tensors. The total sums the rows
  of leaf modules (modules without children), plus containers' own outputs where the
  container has no children.
* ``bytes_read`` / ``bytes_written``: memory traffic of the module's own operators, each
  operator reading its tensor arguments once and writing its outputs once at their real
  dtypes; views and reshapes move nothing (see ``_traffic``).
* ``est_time_s``: the roofline estimate of the module's own operators on a device profile
  (``Report.device_profile`` names it); ``measured_time_s`` is a real run's median, when
  measured.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from ._text import render_markdown, render_text

__all__ = ["LayerStats", "OpCost", "Report"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class OpCost:
    """The work of one recorded operator call, kept for the time estimate.

    Args:
        op: the operator, e.g. ``"aten.convolution"``.
        op_class: its roofline class: ``conv1x1``, ``conv``, ``depthwise``, ``gemm`` or
            ``elementwise``.
        flops: ``2 * MACs + extra FLOPs`` of the call.
        bytes: bytes read plus bytes written.

    Example:
        >>> OpCost("aten.relu", "elementwise", 64, 512).bytes
        512
    """

    op: str
    op_class: str
    flops: int
    bytes: int


@dataclass
class LayerStats:
    """Counts for one call of one module, in execution order.

    Args:
        name: qualified module name (``"layer1.0.conv1"``); ``""`` for the model itself.
        type: the module's class name.
        depth: nesting depth, 0 for the model itself.
        input_shapes: shapes of the tensor arguments.
        output_shape: shape of the output tensor, or a list of shapes for several outputs.
        params: own parameters counted at this call (see the module docstring).
        trainable: own parameters counted here that require grad.
        macs: multiply-accumulates of the module's own operators.
        extra_flops: elementwise FLOPs of the module's own operators.
        activation_bytes: bytes of the module's output tensors.
        formula: how ``params`` and ``macs`` were obtained, e.g.
            ``"3*3*3*512 + 512 = 14,336 params; 3*3*3*512 * 256*256 = 905,969,664 MACs"``.
        is_leaf: True if the module has no child modules.
        call_index: 0 for a module's first call, 1 for its second, and so on.
        bytes_read: bytes its own operators read (inputs and weights).
        bytes_written: bytes its own operators write.
        est_time_s: estimated seconds of its own operators on the report's device profile.
        bound: what limits the estimate: ``"compute"``, ``"memory"`` or ``"overhead"``
            (``""`` when the row runs no operator).
        measured_time_s: measured seconds of the whole call (children included), or None.
        input_flattened_from: ``(C, H, W)`` when the first input was a 4-d map flattened
            to ``(N, C*H*W)``, else None.
        op_costs: one :class:`OpCost` per operator of the module's own forward.

    Example:
        >>> row = LayerStats("0", "Conv2d", 1, [(1, 3, 8, 8)], (1, 4, 8, 8), 112, 112, 6912)
        >>> row.macs
        6912
    """

    name: str
    type: str
    depth: int
    input_shapes: list[Shape]
    output_shape: Shape | list[Shape]
    params: int = 0
    trainable: int = 0
    macs: int = 0
    extra_flops: int = 0
    activation_bytes: int = 0
    formula: str = ""
    is_leaf: bool = True
    call_index: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    est_time_s: float = 0.0
    bound: str = ""
    measured_time_s: float | None = None
    input_flattened_from: Shape | None = None
    op_costs: list[OpCost] = field(default_factory=list, repr=False)

    @property
    def flops(self) -> int:
        """``2 * macs + extra_flops`` for this row."""
        return 2 * self.macs + self.extra_flops

    @property
    def bytes(self) -> int:
        """``bytes_read + bytes_written`` for this row."""
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float:
        """Arithmetic intensity: FLOPs per byte moved (0 when nothing moves)."""
        return self.flops / self.bytes if self.bytes else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the row as a JSON-ready dict (shapes become lists; ``op_costs`` left out)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "op_costs"}
        d["input_shapes"] = [list(s) for s in self.input_shapes]
        d["output_shape"] = _shape_to_json(self.output_shape)
        if self.input_flattened_from is not None:
            d["input_flattened_from"] = list(self.input_flattened_from)
        return d


def _shape_to_json(shape: Shape | list[Shape]) -> list:
    if isinstance(shape, list):
        return [list(s) for s in shape]
    return list(shape)


@dataclass
class Report:
    """Per-layer counts and totals of one model on one input size.

    Build it with :func:`onebyone.analyze`. The dict, JSON and CSV forms use the same names
    as the attributes.

    Attributes:
        rows: one :class:`LayerStats` per module call, in execution order.
        total_params: every parameter of the model, each tensor once (tied weights and
            shared modules count once); ``trainable_params + non_trainable_params``.
        buffers: elements of registered buffers (BatchNorm running statistics); not
            parameters.
        total_macs: multiply-accumulates of convolutions and matrix products, bias adds
            excluded (torchvision's convention: resnet50 at 1x3x224x224 is 4,089,184,256).
        total_flops: ``2 * total_macs`` plus the elementwise work of bias adds, norms,
            activations, pooling and adds, counted per element.
        param_bytes: bytes of the parameters in the analysis ``dtype``.
        activation_bytes: bytes of the outputs of every leaf-module call (modules without
            children), summed: the memory a forward would need if it kept every layer's
            output (a rough guide to training memory). It is not the peak memory of an
            inference pass, which frees outputs as it goes.
        input_bytes: bytes of the inputs.
        uncounted_ops: operators that ran but have no counting rule (they count 0), each
            with its number of calls; see ``MAC_RULES`` and ``FLOP_RULES`` to add one.
        bytes_read: bytes read by every operator (see the module docstring's traffic model).
        bytes_written: bytes written by every operator.
        est_time_s: the roofline estimate of the whole forward, in seconds.
        measured_time_s: the median measured time of the whole forward, or None.
        device_profile: the device profile behind ``est_time_s`` (its name and source).
        measured_device: where ``measured_time_s`` was measured (``""`` if not measured).
        measured_repeats: the number of timed runs behind each measured median.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> import onebyone
        >>> r = onebyone.analyze(nn.Conv2d(3, 512, 3, padding=1), (1, 3, 256, 256))
        >>> r.total_params, r.total_macs
        (14336, 905969664)
        >>> r.by_name()[""].type
        'Conv2d'
    """

    model: str
    input_shapes: list[Shape]
    dtype: str
    device: str
    rows: list[LayerStats] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    non_trainable_params: int = 0
    buffers: int = 0
    total_macs: int = 0
    total_flops: int = 0
    param_bytes: int = 0
    buffer_bytes: int = 0
    activation_bytes: int = 0
    input_bytes: int = 0
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    bytes_written: int = 0
    est_time_s: float = 0.0
    measured_time_s: float | None = None
    device_profile: str = ""
    measured_device: str = ""
    measured_repeats: int = 0

    # ------------------------------------------------------------------ queries

    def __iter__(self) -> Iterator[LayerStats]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def by_name(self) -> dict[str, LayerStats]:
        """Map each qualified module name to its first call's row.

        Example:
            >>> from torch import nn
            >>> import onebyone
            >>> r = onebyone.analyze(nn.Sequential(nn.Linear(4, 2)), (1, 4))
            >>> r.by_name()["0"].macs
            8
        """
        out: dict[str, LayerStats] = {}
        for row in self.rows:
            out.setdefault(row.name, row)
        return out

    def subtree(self, name: str) -> dict[str, int]:
        """Sum ``params``, ``macs``, ``extra_flops`` and ``flops`` over a module and its descendants.

        Every call of the module (and of its children) is included.

        Raises:
            KeyError: if no row has that name.

        Example:
            >>> from torch import nn
            >>> import onebyone
            >>> m = nn.Sequential(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)))
            >>> onebyone.analyze(m, (1, 4)).subtree("0")["macs"]
            18
        """
        if not any(r.name == name for r in self.rows):
            raise KeyError(
                f"no module named {name!r} in the report; names: {sorted(self.by_name())[:10]}"
            )
        prefix = f"{name}." if name else ""
        keep = [r for r in self.rows if r.name == name or r.name.startswith(prefix)]
        return {
            "params": sum(r.params for r in keep),
            "macs": sum(r.macs for r in keep),
            "extra_flops": sum(r.extra_flops for r in keep),
            "flops": sum(r.flops for r in keep),
        }

    # ------------------------------------------------------------------ exports

    def to_dict(self) -> dict[str, Any]:
        """Return every attribute as JSON-ready Python values.

        Example:
            >>> from torch import nn
            >>> import onebyone
            >>> d = onebyone.analyze(nn.Linear(4, 2), (1, 4)).to_dict()
            >>> d["total_params"], d["total_macs"], len(d["rows"])
            (10, 8, 1)
        """
        return {
            "model": self.model,
            "input_shapes": [list(s) for s in self.input_shapes],
            "dtype": self.dtype,
            "device": self.device,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "buffers": self.buffers,
            "total_macs": self.total_macs,
            "total_flops": self.total_flops,
            "param_bytes": self.param_bytes,
            "buffer_bytes": self.buffer_bytes,
            "activation_bytes": self.activation_bytes,
            "input_bytes": self.input_bytes,
            "uncounted_ops": dict(self.uncounted_ops),
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "est_time_s": self.est_time_s,
            "measured_time_s": self.measured_time_s,
            "device_profile": self.device_profile,
            "measured_device": self.measured_device,
            "measured_repeats": self.measured_repeats,
            "rows": [r.to_dict() for r in self.rows],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """Return :meth:`to_dict` as a JSON string (``indent=None`` for one line).

        Example:
            >>> import json
            >>> from torch import nn
            >>> import onebyone
            >>> r = onebyone.analyze(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), (1, 3, 10, 10))
            >>> d = json.loads(r.to_json())
            >>> d["total_macs"], [(row["name"], row["macs"]) for row in d["rows"]]
            (13824, [('', 0), ('0', 13824), ('1', 0)])
        """
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self) -> str:
        """Return one CSV line per row, with a header; shapes are written as ``1x3x224x224``.

        Example:
            >>> from torch import nn
            >>> import onebyone
            >>> print(onebyone.analyze(nn.Linear(4, 2), (1, 4)).to_csv().splitlines()[1])
            ,Linear,0,1x4,1x2,10,10,8,2,8,4*2 + 2 = 10 params; 4*2 * 1 = 8 MACs,56,8,...
        """
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        cols = [
            "name",
            "type",
            "depth",
            "input_shapes",
            "output_shape",
            "params",
            "trainable",
            "macs",
            "extra_flops",
            "activation_bytes",
            "formula",
            "bytes_read",
            "bytes_written",
            "est_time_s",
            "bound",
            "measured_time_s",
        ]
        writer.writerow(cols)
        for r in self.rows:
            writer.writerow(
                [
                    r.name,
                    r.type,
                    r.depth,
                    " ".join(_shape_text(s) for s in r.input_shapes),
                    _output_text(r.output_shape),
                    r.params,
                    r.trainable,
                    r.macs,
                    r.extra_flops,
                    r.activation_bytes,
                    r.formula,
                    r.bytes_read,
                    r.bytes_written,
                    f"{r.est_time_s:.6g}",
                    r.bound,
                    "" if r.measured_time_s is None else f"{r.measured_time_s:.6g}",
                ]
            )
        return buf.getvalue()

    def to_markdown(self, *, depth: int | None = None) -> str:
        """Return a Markdown table of the rows (folded to ``depth``) and the totals.

        Example:
            >>> from torch import nn
            >>> import onebyone
            >>> m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
            >>> r = onebyone.analyze(m, (1, 3, 10, 10), device_profile="cpu-fallback")
            >>> print("\\n".join(r.to_markdown().splitlines()[:4]))
            | Layer (type) | Output Shape | Param # | MACs | Bytes | FLOP/B | Est. time | Bound |
            |---|---|---:|---:|---:|---:|---:|---|
            | 0 (Conv2d) | (1, 8, 8, 8) | 224 | 13,824 | 4.05 KB | 6.8 | 5.47 us | overhead |
            | 1 (ReLU) | (1, 8, 8, 8) | 0 | 0 | 4.00 KB | 0.1 | 5.41 us | overhead |
        """
        return render_markdown(self, depth=depth)

    def __str__(self) -> str:
        return render_text(self)


def _shape_text(shape: Shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def _output_text(shape: Shape | list[Shape]) -> str:
    if isinstance(shape, list):
        return " ".join(_shape_text(s) for s in shape)
    return _shape_text(shape)
