"""ONNX in and out: export onebyone models verified in onnxruntime, analyze ``.onnx`` files.

Everything here needs the ``onnx`` extra (``pip install 'onebyone[onnx]'``); without it each
function raises :class:`MissingExtraError`, naming the extra. Importing this package needs
nothing beyond onebyone's own dependencies.

>>> from onebyone.onnx import STANDARD_DOMAINS
>>> STANDARD_DOMAINS
('', 'ai.onnx')
"""

from onebyone.onnx._deps import MissingExtraError, require_onnx
from onebyone.onnx._export import STANDARD_DOMAINS, ExportResult, export_onnx

__all__ = [
    "STANDARD_DOMAINS",
    "ExportResult",
    "MissingExtraError",
    "export_onnx",
    "require_onnx",
]
