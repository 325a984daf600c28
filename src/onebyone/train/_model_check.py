"""Before training: one forward of two samples, and a failing forward named by its module.

A model built for other inputs fails at once with one clear line (which module, on which
shapes, and the model's own exception chained), as :func:`~onebyone.analyze` reports it,
instead of after the optimizer and the data loaders are set up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.data import Dataset

from onebyone.errors import OneByOneError
from onebyone.train.evaluate import iter_batches

__all__ = ["check_model_fits_data", "forward_error"]


def _shapes(args: tuple) -> str:
    shapes = [str(tuple(a.shape)) for a in args if isinstance(a, torch.Tensor)]
    return ", ".join(shapes) or "no tensors"


@contextlib.contextmanager
def _module_stack(model: nn.Module) -> Iterator[list[tuple[str, str, str]]]:
    """Record which modules are running (name, class, input shapes), innermost last."""
    stack: list[tuple[str, str, str]] = []
    handles = []
    for name, module in model.named_modules():

        def pre(mod: nn.Module, args: tuple, name: str = name) -> None:
            stack.append((name, type(mod).__name__, _shapes(args)))

        def post(mod: nn.Module, args: tuple, out: object) -> None:
            if stack:
                stack.pop()

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield stack
    finally:
        for h in handles:
            h.remove()


def forward_error(
    model: nn.Module,
    x: torch.Tensor,
    error: Exception,
    *,
    what: str = "",
    stack: list[tuple[str, str, str]] | None = None,
) -> OneByOneError:
    """The :class:`OneByOneError` for ``model``'s forward raising ``error`` on the batch ``x``.

    The caller chains ``error`` (``raise forward_error(...) from error``). ``stack`` names the
    innermost module that was running, when it was recorded.

    Example:
        >>> e = forward_error(nn.Linear(3, 2), torch.zeros(2, 1, 4, 4), RuntimeError("bad\\nmore"))
        >>> str(e)
        'model Linear cannot run on the training samples (1x4x4): forward failed on input shapes (2, 1, 4, 4): RuntimeError: bad'
    """
    sample = "x".join(map(str, x.shape[1:]))
    first = (str(error).strip().splitlines() or [""])[0]
    where = f" {what}" if what else ""
    if stack:
        name, cls, shapes = stack[-1]
        module = f"module {name!r} ({cls})" if name else f"the model ({cls})"
        failed = f"forward failed in {module} on input shapes {shapes}"
    else:
        failed = f"forward failed on input shapes {tuple(x.shape)}"
    return OneByOneError(
        f"model {type(model).__name__} cannot run on the training samples ({sample}){where}: "
        f"{failed}: {type(error).__name__}: {first}"
    )


def check_model_fits_data(
    model: nn.Module, train: Dataset, dev: torch.device, memory_format: torch.memory_format
) -> tuple[int, ...]:
    """Run ``model`` on two training samples (eval mode, no grad) and check its logits.

    Returns the shape of one sample, e.g. ``(1, 28, 28)``.

    Raises:
        OneByOneError: the forward raised; the message names the innermost module running
            and its input shapes, and the model's exception is chained.
        ValueError: the model returns something other than logits ``(N, num_classes)``, or
            another number of class scores than the data has classes (``num_classes``, when
            the data says).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long))
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> check_model_fits_data(net, data, torch.device("cpu"), torch.preserve_format)
        (1, 2, 2)
        >>> data.num_classes = 2
        >>> check_model_fits_data(net, data, torch.device("cpu"), torch.preserve_format)
        Traceback (most recent call last):
        ...
        ValueError: model Sequential returns 3 class scores but the data has 2 classes; build it with num_classes=2
        >>> check_model_fits_data(nn.Sequential(nn.Flatten(), nn.Linear(5, 3)), data,
        ...                       torch.device("cpu"), torch.preserve_format)
        Traceback (most recent call last):
        ...
        onebyone.errors.OneByOneError: model Sequential cannot run on the training samples (1x2x2): forward failed in module '1' (Linear) on input shapes (2, 4): RuntimeError: ...
    """
    from onebyone._modes import eval_mode

    x, _ = next(iter(iter_batches(train, list(range(min(2, len(train)))), 2)))
    x = x.to(dev)
    if x.dim() == 4:
        x = x.contiguous(memory_format=memory_format)
    sample = "x".join(map(str, x.shape[1:]))
    with eval_mode(model), torch.no_grad(), _module_stack(model) as stack:
        try:
            logits = model(x)
        except Exception as e:  # the user's forward failed on the user's data
            raise forward_error(model, x, e, stack=list(stack)) from e
    classes = getattr(train, "num_classes", None)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"model {type(model).__name__} must return logits of shape (N, num_classes) for "
            f"N samples of {sample}; it returned {shape} for N={x.shape[0]}"
        )
    if isinstance(classes, int) and logits.shape[1] != classes:
        raise ValueError(
            f"model {type(model).__name__} returns {logits.shape[1]} class scores but the data "
            f"has {classes} classes; build it with num_classes={classes}"
        )
    return tuple(x.shape[1:])
