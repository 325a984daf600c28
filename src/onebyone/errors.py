"""The library's own exception.

Failures inside the analyzer, the surgery and the trainer are re-raised as
:class:`OneByOneError` with the context (module name, shapes, file) added and the
original exception chained, so users see one error that says where things went wrong.
Bad argument values raise ``ValueError`` and bad types ``TypeError`` as in PyTorch.
A failure of onebyone's own code (a bug) raises :class:`InternalError`, which the command
line shows with its whole traceback.
"""

from __future__ import annotations

__all__ = ["InternalError", "OneByOneError"]


class OneByOneError(RuntimeError):
    """An operation of onebyone failed; the message says where and why.

    Example:
        >>> try:
        ...     raise OneByOneError("module 'features.3' failed on input (1, 3, 8, 8)")
        ... except OneByOneError as e:
        ...     print(e)
        module 'features.3' failed on input (1, 3, 8, 8)
    """


class InternalError(Exception):
    """A bug in onebyone, not in the user's model or input; ``__cause__`` is the original.

    Example:
        >>> try:
        ...     raise InternalError("the counting rule for aten.mm failed") from KeyError("m")
        ... except InternalError as e:
        ...     print(e, "<-", repr(e.__cause__))
        a bug in onebyone (please report it): the counting rule for aten.mm failed <- KeyError('m')
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"a bug in onebyone (please report it): {message}")
