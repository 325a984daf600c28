"""``PlainSlicesSequential``: an ``nn.Sequential`` whose slices are plain ``nn.Sequential``."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

__all__ = ["PlainSlicesSequential"]


class PlainSlicesSequential(nn.Sequential):
    """Base for Sequential subclasses built from constructor arguments (``MLPConv``, ...).

    ``nn.Sequential`` slices with ``self.__class__(...)``, which would call the subclass's
    constructor with modules; here a slice is a plain ``nn.Sequential`` (same names, same
    modules), since the constructor arguments no longer describe it. An int index is unchanged.

    Example:
        >>> from torch import nn
        >>> seq = PlainSlicesSequential(nn.Conv2d(3, 8, 1), nn.ReLU())
        >>> type(seq[:1]).__name__, type(seq[1]).__name__
        ('Sequential', 'ReLU')
    """

    def __getitem__(self, idx):
        # A slice is a plain Sequential: the constructor arguments no longer describe it.
        if isinstance(idx, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)
