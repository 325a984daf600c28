"""Process-group setup for ``torchrun``: gloo on CPU, nccl on CUDA; rank 0 is the main process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "all_reduce_sum", "broadcast_floats", "setup", "teardown"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a ``torchrun`` job; the default is a single process.

    ``initialized_here`` is True when :func:`setup` created the process group, so that
    :func:`teardown` destroys only what it created.

    Example:
        >>> info = DistInfo()
        >>> info.enabled, info.is_main
        (False, True)
        >>> DistInfo(rank=1, world_size=2).is_main
        False
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        """True when more than one process trains (the model is wrapped in DDP).

        >>> DistInfo(world_size=2).enabled
        True
        """
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that prints and writes checkpoints.

        >>> DistInfo(rank=0, world_size=4).is_main
        True
        """
        return self.rank == 0


def setup(use_cuda: bool) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Without ``WORLD_SIZE`` > 1 in the environment (a plain ``python`` run) nothing is set up
    and a single-process :class:`DistInfo` comes back. A group that is already initialised
    is joined as it is (and left for its creator to destroy).

    Args:
        use_cuda: use the nccl backend and bind this process to ``LOCAL_RANK``'s GPU; gloo
            otherwise.

    Example:
        >>> import os
        >>> "WORLD_SIZE" in os.environ or setup(use_cuda=False) == DistInfo()
        True
    """
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
        )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return DistInfo()
    backend = "nccl" if use_cuda else "gloo"
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, initialized_here=True)


def teardown(info: DistInfo) -> None:
    """Destroy the process group if :func:`setup` created it; otherwise do nothing.

    >>> teardown(DistInfo())  # a single process: nothing to tear down
    """
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(info: DistInfo, values: list[float], device: torch.device) -> list[float]:
    """The element-wise sum of ``values`` over all processes (float64); ``values`` itself
    when a single process trains.

    Example:
        >>> all_reduce_sum(DistInfo(), [1.0, 2.5], torch.device("cpu"))
        [1.0, 2.5]
    """
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def broadcast_floats(info: DistInfo, values: list[float], device: torch.device) -> list[float]:
    """Rank 0's ``values`` on every process (float64); ``values`` itself when a single process
    trains.

    Example:
        >>> broadcast_floats(DistInfo(), [0.25, 0.9], torch.device("cpu"))
        [0.25, 0.9]
    """
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return t.tolist()
