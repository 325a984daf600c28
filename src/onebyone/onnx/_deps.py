"""The optional ``onnx`` extra: one check, one error that names the extra to install."""

from __future__ import annotations

import importlib.util

from onebyone.errors import OneByOneError

__all__ = ["EXTRA_HINT", "MissingExtraError", "require_onnx"]

EXTRA_HINT = "pip install 'onebyone[onnx]'"

# The import name of each package of the extra (onnxruntime is what runs the checks).
_MODULES = ("onnx", "onnxruntime", "onnxscript")


class MissingExtraError(ImportError, OneByOneError):
    """An optional package is not installed; the message names the extra that provides it.

    It is an ``ImportError`` (what Python code expects) and a ``OneByOneError`` (so the command
    line prints it on one line).

    Example:
        >>> e = MissingExtraError("onebyone.export_onnx needs onnx: pip install 'onebyone[onnx]'")
        >>> isinstance(e, ImportError), isinstance(e, OneByOneError)
        (True, True)
    """


def require_onnx(what: str) -> None:
    """Raise :class:`MissingExtraError` naming ``what`` and the extra if a package is missing.

    Example:
        >>> require_onnx("exporting to ONNX")  # installed here: no error
    """
    missing = [m for m in _MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(
            f"{what} needs the onnx extra (missing: {', '.join(missing)}); install it with "
            f"{EXTRA_HINT}",
            name=missing[0],
        )
