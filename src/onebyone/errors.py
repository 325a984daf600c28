"""The library's own exceptions, and the one error policy every entry point follows.

* A bad argument value raises ``ValueError`` and a bad type ``TypeError``, as in PyTorch,
  naming the argument, the value and what was expected.
* The user's own code failing inside onebyone (a model whose forward raises in
  :func:`~onebyone.analyze`, ``surgery.decompose``, ``surgery.convolutionalize`` or
  :func:`~onebyone.fit`) raises :class:`OneByOneError`, with the context (the module, the
  input shapes, the file) in the message and the original exception chained as
  ``__cause__``. The same mistake raises the same type whichever function met it.
* A failure of onebyone's own code (a bug) raises :class:`InternalError`, which the command
  line shows with its whole traceback; every other error is one line there.
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
