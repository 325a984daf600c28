"""Running the user's forward inside the surgery: a failure names the module and the shapes.

The user's model failing is the user's error (:class:`~onebyone.errors.OneByOneError`, the
original chained), reported as the analyzer reports it: the innermost module that was running
and the shapes it was called with. Our own code inside the forward (hooks decorated with
``onebyone._internal.ours``) raises ``InternalError``, which goes through untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from onebyone._modes import eval_mode
from onebyone.errors import InternalError, OneByOneError


def run_forward(
    model: nn.Module, x: torch.Tensor, *, context: str = "", call: Callable[[torch.Tensor], Any] | None = None
) -> Any:
    """``model(x)`` in eval mode without gradients; a failure becomes one OneByOneError.

    ``context`` starts the message (e.g. ``"input_size (1, 3, 8, 8) does not fit the model: "``);
    ``call`` runs instead of ``model`` (a torch.fx interpreter over it, say; the exception it
    chains, if any, is the one reported).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(10, 2))
        >>> run_forward(net, torch.zeros(1, 3, 5, 5))
        Traceback (most recent call last):
        ...
        onebyone.errors.OneByOneError: forward failed in module '2' (Linear) on input shapes (1, 72): RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x72 and 10x2)
    """
    stack: list[tuple[str, nn.Module, tuple]] = []
    names = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}

    def enter(module, args, kwargs):
        shapes = tuple(tuple(a.shape) for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor))
        stack.append((names.get(id(module), "?"), module, shapes))

    def leave(module, args, kwargs, output):
        if stack:
            stack.pop()

    handles = []
    for m in {id(m): m for m in model.modules()}.values():
        handles.append(m.register_forward_pre_hook(enter, with_kwargs=True))
        handles.append(m.register_forward_hook(leave, with_kwargs=True))
    try:
        with eval_mode(model), torch.no_grad():
            return model(x) if call is None else call(x)
    except InternalError:
        raise  # our bug: the whole traceback, not a one-line user error
    except Exception as e:
        if call is not None and e.__cause__ is not None:
            e = e.__cause__  # the node's own error, not the interpreter's dump of the node
        if isinstance(e, InternalError):
            raise e from e.__cause__
        raise OneByOneError(context + _describe(e, stack, model, tuple(x.shape))) from e
    finally:
        for h in handles:
            h.remove()


def _describe(e: Exception, stack: list, model: nn.Module, input_shape: tuple) -> str:
    detail = " ".join(str(e).split())
    detail = f"{type(e).__name__}: {detail}" if detail else type(e).__name__
    # No module open: the model's own code failed (or an interpreter ran its graph node by node).
    name, module, shapes = stack[-1] if stack else ("", model, (input_shape,))
    where = f"module {name!r} ({type(module).__name__})" if name else f"the model ({type(module).__name__})"
    shown = ", ".join(map(str, shapes)) or "no tensors"
    return f"forward failed in {where} on input shapes {shown}: {detail}"
