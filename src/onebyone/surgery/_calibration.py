"""``decompose(calibration=...)``: factors fitted to the inputs the layers see.

:func:`check_calibration` turns the user's calibration data into batches;
:func:`second_moments` runs them through the model and records each candidate layer's input
channel second moment ``S = sum x x^T`` (pixels pooled); :func:`build_calibrated` sets a
bottleneck's weights from the SVD of ``W S^1/2`` (the rank-r reduction with the least output
error on that data, :func:`~onebyone.surgery._tucker.whitened_factors`).
"""

from __future__ import annotations

import torch
from torch import nn

from onebyone._internal import ours
from onebyone.surgery import _tucker
from onebyone.surgery._forward import run_forward
from onebyone.surgery._ranks import Candidate
from onebyone.surgery.report import SurgeryReport

__all__ = ["CALIBRATION_BATCH", "build_calibrated", "check_calibration", "second_moments"]

CALIBRATION_BATCH = 32


def check_calibration(calibration) -> list[torch.Tensor] | None:
    """``calibration`` as batches of at most ``CALIBRATION_BATCH`` inputs (None stays None)."""
    if calibration is None:
        return None
    if isinstance(calibration, torch.Tensor):
        if calibration.dim() == 0 or calibration.shape[0] == 0:
            raise ValueError(
                f"calibration must be a batch of at least one input, got a tensor of shape {tuple(calibration.shape)}"
            )
        batches = list(calibration.detach().split(CALIBRATION_BATCH))
    elif hasattr(calibration, "__len__") and hasattr(calibration, "__getitem__") and not isinstance(
        calibration, str | bytes
    ):
        if len(calibration) == 0:
            raise ValueError("calibration is an empty dataset; expected at least one sample")
        batches = []
        for start in range(0, len(calibration), CALIBRATION_BATCH):
            items = [calibration[i] for i in range(start, min(start + CALIBRATION_BATCH, len(calibration)))]
            inputs = [item[0] if isinstance(item, tuple | list) else item for item in items]
            if not all(isinstance(x, torch.Tensor) for x in inputs):
                bad = next(type(x).__name__ for x in inputs if not isinstance(x, torch.Tensor))
                raise TypeError(f"calibration samples must be tensors or (tensor, label) pairs, got a {bad}")
            try:
                batches.append(torch.stack(inputs))
            except RuntimeError as e:
                raise ValueError(f"calibration samples must all have one shape: {e}") from None
    else:
        raise TypeError(
            f"calibration must be a tensor batch or a dataset of (input, label), got {type(calibration).__name__}"
        )
    if any(b.is_floating_point() and not torch.isfinite(b).all() for b in batches):
        raise ValueError("calibration holds NaN or inf values; expected finite model inputs")
    return batches


def second_moments(model: nn.Module, candidates: list[Candidate], batches: list[torch.Tensor], device,
               report: SurgeryReport) -> None:
    """Each candidate's input second moment ``sum x x^T`` over ``batches`` (pixels pooled)."""
    by_module = {id(c.module): c for c in candidates}

    @ours("decompose's calibration hook")
    def hook(module, args, kwargs, output):
        c = by_module[id(module)]
        inp = args[0] if args else kwargs["input"]
        channels = inp.shape[1] if c.kind != "svd" else inp.shape[-1]
        rows = (inp.movedim(1, -1) if c.kind != "svd" else inp).reshape(-1, channels).float()
        moment = (rows.T @ rows).double()
        c.second_moment = moment if c.second_moment is None else c.second_moment + moment

    handles = [c.module.register_forward_hook(hook, with_kwargs=True) for c in candidates]
    try:
        for batch in batches:
            run_forward(model, batch.to(device), context="calibration: ")
    finally:
        for h in handles:
            h.remove()
    count = sum(b.shape[0] for b in batches)
    report.notes.append(f"factors fitted to the layer inputs of {count} calibration samples")


def build_calibrated(c: Candidate, new: nn.Module) -> torch.Tensor:
    """Set ``new``'s weights from the input-weighted factors of ``c``; return the weight they make."""
    w = c.module.weight
    if c.kind == "svd":
        a, b = _tucker.whitened_factors(w, c.second_moment, c.ranks[0])
        new[0].weight.copy_(a)
        new[1].weight.copy_(b)
        return b @ a
    c_out, c_in, kh, kw = w.shape
    rank_in = c.ranks[-1]  # reduce: (r,); tucker2: (r_out, r_in)
    # every output of every kernel tap is one row: the 1x1 reduction is shared by all of them
    p, k = _tucker.whitened_factors(w.permute(0, 2, 3, 1).reshape(-1, c_in), c.second_moment, rank_in)
    kernel = k.reshape(c_out, kh, kw, rank_in).permute(0, 3, 1, 2)
    new[0].weight.copy_(p[:, :, None, None])
    if c.kind == "reduce":
        new[1].weight.copy_(kernel)
        return torch.einsum("orkl,ri->oikl", kernel, p)
    # tucker2: the output side spans the leading output directions on the data: the eigenvectors
    # of sum over taps of K S_r K^T, S_r the second moment of the reduced inputs P x (taps
    # taken as uncorrelated). The weights alone would weigh rarely used inputs like common ones.
    k64, p64 = kernel.double(), p.double()
    reduced = p64 @ c.second_moment.to(k64.device) @ p64.T
    output_moment = torch.einsum("orkl,rs,pskl->op", k64, reduced, k64)
    u_out = _tucker._leading_eigenvectors(output_moment, c.ranks[0]).to(w.dtype)
    core = torch.einsum("orkl,oa->arkl", kernel, u_out)
    new[1].weight.copy_(core)
    new[2].weight.copy_(u_out[:, :, None, None])
    return torch.einsum("arkl,oa,ri->oikl", core, u_out, p)
