"""ONNX in and out: export onebyone models verified in onnxruntime, analyze ``.onnx`` files.

Everything here needs the ``onnx`` extra (``pip install 'onebyone[onnx]'``); without it each
function raises :class:`MissingExtraError`, naming the extra. Importing this package needs
nothing beyond onebyone's own dependencies.

>>> from onebyone.onnx import STANDARD_DOMAINS
>>> STANDARD_DOMAINS
('', 'ai.onnx')
"""

from onebyone.onnx._analyze import analyze_onnx, load_onnx
from onebyone.onnx._deps import MissingExtraError, require_onnx
from onebyone.onnx._export import STANDARD_DOMAINS, ExportResult, export_onnx
from onebyone.onnx._profile import ProfileResult, latency_before_after, latency_or_note, profile
from onebyone.onnx._rules import OP_RULES, NodeCost, NodeView, register_op_rule

__all__ = [
    "OP_RULES",
    "STANDARD_DOMAINS",
    "ExportResult",
    "MissingExtraError",
    "NodeCost",
    "NodeView",
    "ProfileResult",
    "analyze_onnx",
    "export_onnx",
    "latency_before_after",
    "latency_or_note",
    "load_onnx",
    "profile",
    "register_op_rule",
    "require_onnx",
]
