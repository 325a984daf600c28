"""``InternalError``: a failure of onebyone's own code, kept apart from the user's errors.

The analyzer and the surgery run the user's forward with their own code inside it (counting
rules, hooks). An exception from the forward is the user's (a shape mismatch) and becomes a
one-line :class:`~onebyone.errors.OneByOneError`; an exception from our code is our bug. That
code raises it as ``InternalError`` chained to the original, which the forward's handler lets
through and the command line does not shorten: the user sees the whole traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from onebyone.errors import InternalError

__all__ = ["InternalError", "ours"]

F = TypeVar("F", bound=Callable[..., Any])


def ours(what: str) -> Callable[[F], F]:
    """Decorate our code that runs inside a user's forward: its exceptions become InternalError.

    Example:
        >>> @ours("the pre-hook")
        ... def hook():
        ...     raise KeyError("x")
        >>> hook()
        Traceback (most recent call last):
        ...
        onebyone.errors.InternalError: a bug in onebyone (please report it): the pre-hook raised KeyError: 'x'
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except InternalError:
                raise
            except Exception as e:
                raise InternalError(f"{what} raised {type(e).__name__}: {e}") from e

        return wrapper  # type: ignore[return-value]

    return decorate
