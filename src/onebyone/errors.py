"""The library's own exception.

Failures inside the analyzer, the surgery and the trainer are re-raised as
:class:`OneByOneError` with the context (module name, shapes, file) added and the
original exception chained, so users see one error that says where things went wrong.
Bad argument values raise ``ValueError`` and bad types ``TypeError`` as in PyTorch.
"""

from __future__ import annotations

__all__ = ["OneByOneError"]


class OneByOneError(RuntimeError):
    """An operation of onebyone failed; the message says where and why.

    Example:
        >>> try:
        ...     raise OneByOneError("module 'features.3' failed on input (1, 3, 8, 8)")
        ... except OneByOneError as e:
        ...     print(e)
        module 'features.3' failed on input (1, 3, 8, 8)
    """
