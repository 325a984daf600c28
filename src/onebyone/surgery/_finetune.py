"""``finetune``: recover a slimmed model's accuracy by distillation from the original.

The student (the model after surgery) is trained to match the teacher's (the original's)
logits: ``kd_weight * T^2 * KL(softmax(t / T) || softmax(s / T)) + ce_weight * CE(s, y)``
(Hinton et al., 2015; the ``T^2`` keeps the soft term's gradients on the scale of the hard one).
Training goes through :func:`onebyone.fit`, so it has its progress display, per-epoch
checkpoints, resume and torchrun DDP; fit wraps the student (after surgery) for DDP, never the
other way round. The teacher is frozen and kept out of the trained module and its checkpoints.
"""

from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from onebyone._modes import eval_mode

__all__ = ["Distiller", "FinetuneResult", "finetune", "kl_to_teacher"]


class Distiller(nn.Module):
    """The student, trained against a frozen teacher; ``forward`` returns the student's logits.

    In training mode each forward also runs the teacher (no grad) on the same batch, and
    :meth:`training_loss` (which :func:`onebyone.fit` uses instead of cross-entropy) mixes the
    distillation and label terms. The teacher is not a submodule: it is neither trained nor saved.

    Args:
        student: the model to train.
        teacher: the model to match (set to eval mode, never changed).
        temperature: the softmax temperature ``T`` of the distillation term.
        kd_weight: weight of the distillation term.
        ce_weight: weight of the cross-entropy on the labels.

    Example:
        >>> s, t = nn.Linear(4, 3), nn.Linear(4, 3)
        >>> d = Distiller(s, t, temperature=2.0)
        >>> logits = d(torch.randn(5, 4))
        >>> d.training_loss(logits, torch.zeros(5, dtype=torch.long)).shape
        torch.Size([])
    """

    def __init__(
        self, student: nn.Module, teacher: nn.Module, *, temperature: float = 4.0, kd_weight: float = 0.9,
        ce_weight: float = 0.1,
    ) -> None:
        super().__init__()
        self.student = student
        object.__setattr__(self, "teacher", teacher.eval())  # not registered: not trained or saved
        self.temperature = _positive("temperature", temperature)
        self.kd_weight = _positive("kd_weight", kd_weight, zero=True)
        self.ce_weight = _positive("ce_weight", ce_weight, zero=True)
        if self.kd_weight == 0 and self.ce_weight == 0:
            raise ValueError("kd_weight and ce_weight are both 0: nothing to train on")
        self._teacher_logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The student's logits; in training mode the teacher's are kept for the loss."""
        logits = self.student(x)
        if self.training:
            first = next(self.teacher.parameters(), None)
            if first is not None and first.device != x.device:
                self.teacher.to(x.device)
            with torch.no_grad():
                self._teacher_logits = self.teacher(x).float()
        return logits

    def training_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mixed loss of the last training-mode forward."""
        t = self.temperature
        loss = logits.new_zeros(())
        if self.kd_weight:
            loss = loss + self.kd_weight * t * t * _kl(logits, self._teacher_logits, t)
        if self.ce_weight:
            loss = loss + self.ce_weight * F.cross_entropy(logits, y)
        return loss


def _kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """Mean over the batch of KL(softmax(teacher / t) || softmax(student / t))."""
    return F.kl_div(
        F.log_softmax(student_logits.float() / t, dim=1), F.log_softmax(teacher_logits.float() / t, dim=1),
        log_target=True, reduction="batchmean",
    )


def _shape(out: Any) -> Any:
    return tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__


def _positive(name: str, value: Any, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise ValueError(f"{name} must be a finite number {'>= 0' if zero else '> 0'}, got {value}")
    return value


def kl_to_teacher(student: nn.Module, teacher: nn.Module, data, *, temperature: float = 1.0,
                  batch_size: int = 256) -> float:
    """Mean KL(teacher || student) of the softmaxes at ``temperature`` over ``data`` (eval mode).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> m = nn.Linear(4, 3)
        >>> kl_to_teacher(m, m, TensorDataset(torch.randn(8, 4), torch.zeros(8, dtype=torch.long)))
        0.0
    """
    from onebyone.train.evaluate import iter_batches

    first = next(student.parameters(), None)
    dev = first.device if first is not None else torch.device("cpu")
    total, count = 0.0, 0
    with eval_mode(student, teacher), torch.inference_mode():
        for x, _ in iter_batches(data, range(len(data)), batch_size):
            x = x.to(dev)
            s, t = student(x), teacher(x)
            total += float(_kl(s, t, temperature)) * x.shape[0]
            count += x.shape[0]
    return max(total / max(count, 1), 0.0)


@dataclass
class FinetuneResult:
    """What :func:`finetune` did: the training history and both models evaluated.

    ``teacher``/``student_before``/``student_after`` are :func:`onebyone.train.evaluate`
    results (``accuracy``, ``loss``, ``count``) on the validation data (None without it);
    ``kl_before``/``kl_after`` the mean KL to the teacher (temperature 1) on the same data.
    """

    history: Any
    teacher: dict | None = None
    student_before: dict | None = None
    student_after: dict | None = None
    kl_before: float | None = None
    kl_after: float | None = None
    settings: dict = field(default_factory=dict)


def finetune(
    student: nn.Module,
    teacher: nn.Module,
    train_data,
    val_data=None,
    *,
    epochs: int = 2,
    temperature: float = 4.0,
    kd_weight: float = 0.9,
    ce_weight: float = 0.1,
    lr: float = 1e-4,
    optimizer: str = "adamw",
    device: str | torch.device = "cpu",
    **fit_kwargs: Any,
) -> tuple[nn.Module, FinetuneResult]:
    """Return a copy of ``student`` trained to match ``teacher`` on ``train_data``, and a result.

    Args:
        student: the slimmed model (copied; the original is not changed).
        teacher: the original model (not changed; used in eval mode).
        train_data: a dataset of ``(image, label)``.
        val_data: evaluated for the teacher and the student before and after, or None.
        epochs: training epochs.
        temperature: softmax temperature of the distillation term.
        kd_weight: weight of the distillation term (KL to the teacher, scaled by T^2).
        ce_weight: weight of the cross-entropy on the labels.
        lr: peak learning rate (fine-tuning wants a small one).
        optimizer: fit's optimizer. AdamW at 1e-4 by default: a slimmed model whose norms were
            folded has no BatchNorm left, and SGD at 0.01 diverged on one (the VGG benchmark).
        device: where to train.
        **fit_kwargs: passed to :func:`onebyone.fit` (``batch_size``, ``optimizer``,
            ``out_dir``, ``resume``, ``quiet``, ``seed``...).

    Returns:
        ``(new_student, result)``.

    Raises:
        ValueError: a bad weight or temperature, or a teacher whose output shape differs
            from the student's on the training samples.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> x = torch.randn(32, 6); y = (x[:, 0] > 0).long()
        >>> teacher, student = nn.Linear(6, 2), nn.Linear(6, 2)
        >>> new, result = finetune(student, teacher, TensorDataset(x, y), TensorDataset(x, y),
        ...                        epochs=1, batch_size=8, quiet=True)
        >>> new is student, result.kl_after is not None
        (False, True)
    """
    from onebyone.train import evaluate, fit
    from onebyone.train.evaluate import iter_batches

    if not isinstance(student, nn.Module) or not isinstance(teacher, nn.Module):
        raise TypeError(
            f"student and teacher must be nn.Modules, got {type(student).__name__} and {type(teacher).__name__}"
        )
    new = copy.deepcopy(student)
    frozen = copy.deepcopy(teacher).eval().requires_grad_(False)
    distiller = Distiller(new, frozen, temperature=temperature, kd_weight=kd_weight, ce_weight=ce_weight)
    x, _ = next(iter(iter_batches(train_data, list(range(min(2, len(train_data)))), 2)))
    with eval_mode(new, frozen), torch.no_grad():
        s_out, t_out = new(x), frozen(x)
    if not isinstance(s_out, torch.Tensor) or not isinstance(t_out, torch.Tensor) or s_out.shape != t_out.shape:
        raise ValueError(
            f"teacher returns {_shape(t_out)} but the student {_shape(s_out)} on {x.shape[0]} training "
            "samples; distillation needs the same output shape (the same classes)"
        )
    result = FinetuneResult(history=None, settings={
        "epochs": epochs, "temperature": distiller.temperature, "kd_weight": distiller.kd_weight,
        "ce_weight": distiller.ce_weight, "lr": lr, "optimizer": optimizer,
    })
    if val_data is not None:
        result.teacher = evaluate(frozen, val_data, device=device)
        result.student_before = evaluate(new, val_data, device=device)
        result.kl_before = kl_to_teacher(new, frozen, val_data)
    result.history = fit(distiller, train_data, val_data, epochs=epochs, lr=lr, optimizer=optimizer, device=device,
                         **fit_kwargs)
    new.eval()
    if val_data is not None:
        result.student_after = evaluate(new, val_data, device=device)
        result.kl_after = kl_to_teacher(new, frozen.to(next(new.parameters()).device), val_data)
    return new, result
