"""Train/eval flags of every submodule, kept intact across the surgery.

``model.train(flag)`` sets the flag of every submodule, so ``was = model.training; ...;
model.train(was)`` turns a frozen BatchNorm inside a training model back to training. These
helpers save and restore each module's own flag instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put ``models`` in eval mode for the block, then give each submodule its own flag back.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1))
        >>> _ = net[1].eval()  # a frozen BatchNorm inside a training model
        >>> with eval_mode(net):
        ...     net[0].training
        False
        >>> net.training, net[0].training, net[1].training
        (True, True, False)
    """
    saved = [(m, m.training) for model in models for m in model.modules()]
    try:
        for model in models:
            model.eval()
        yield
    finally:
        for m, flag in saved:
            m.training = flag


def copy_modes(source: nn.Module, target: nn.Module) -> nn.Module:
    """Give each module of ``target`` the flag of the module of ``source`` with the same name.

    A module with no namesake in ``source`` (a layer the surgery created) takes the flag of its
    nearest parent in ``target``. Returns ``target``.

    Example:
        >>> src = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
        >>> _ = src[1].eval()
        >>> dst = copy_modes(src, nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).eval())
        >>> dst.training, dst[0].training, dst[1].training
        (True, True, False)
    """
    flags = {name: m.training for name, m in source.named_modules(remove_duplicate=False)}
    result: dict[str, bool] = {}
    for name, m in target.named_modules(remove_duplicate=False):
        if name in flags:
            flag = flags[name]
        else:
            parent = name.rpartition(".")[0]
            flag = result.get(parent, source.training)
        result[name] = flag
        m.training = flag
    return target
