"""Training: ``fit`` with progress bars, per-epoch checkpoints, resume and DDP; ``evaluate``.

>>> from onebyone.train import evaluate, fit
>>> callable(fit) and callable(evaluate)
True
"""

from onebyone.train.checkpoint import has_checkpoint, load_checkpoint, read_state, save_checkpoint
from onebyone.train.config import TrainConfig
from onebyone.train.evaluate import evaluate
from onebyone.train.fit import fit
from onebyone.train.history import EpochRecord, History

__all__ = [
    "EpochRecord",
    "History",
    "TrainConfig",
    "evaluate",
    "fit",
    "has_checkpoint",
    "load_checkpoint",
    "read_state",
    "save_checkpoint",
]
