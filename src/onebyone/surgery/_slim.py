"""``slim``: compress a trained model to a target speedup, fine-tune it by distillation, evaluate, save.

Three stages, each finished one recorded in ``OUT/stages.json`` (written atomically):

1. ``compress``: fold the norms (:func:`~onebyone.surgery.fuse`), then
   :func:`~onebyone.surgery.decompose` with ``speedup`` (1x1 layers included), its factors
   fitted to the layer inputs of ``calibration`` training samples; saved as
   ``OUT/compressed.json`` + ``.safetensors``.
2. ``finetune``: :func:`~onebyone.surgery.finetune` against the original model, with fit's
   checkpoints in ``OUT/finetune`` (a killed run resumes inside the stage too); the result is
   saved as ``OUT/model.json`` + ``.safetensors``, loadable with :func:`onebyone.surgery.load`.
3. ``evaluate``: params, MACs, estimated and measured latency at batch 1 and 8, accuracy, before
   and after, in ``OUT/report.json``; with the ``onnx`` extra (and ``onnx=True``), the latency
   in onnxruntime too (``ort_ms_b1``, ``ort_ms_b8``), else a note naming the extra.

With ``resume=True`` a run starts after the last finished stage.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from onebyone._io import write_json_atomic
from onebyone._modes import eval_mode

__all__ = ["SlimResult", "slim"]

STAGES = ("compress", "finetune", "evaluate")
STAGES_FILE = "stages.json"


@dataclass
class SlimResult:
    """The before/after table of a slim run (also ``OUT/report.json``) and the stage notes.

    Example:
        >>> r = SlimResult({"params": 10, "macs": 100}, {"params": 5, "macs": 40})
        >>> print(r.to_text().splitlines()[1])
        params               10             5     2.00x
    """

    before: dict[str, Any]
    after: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    compress: dict | None = None
    finetune: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``report.json``."""
        return {"before": self.before, "after": self.after, "notes": self.notes, "compress": self.compress,
                "finetune": self.finetune}

    def to_text(self) -> str:
        """The before/after table (ratio: before / after; for accuracy, after - before in points).

        A latency that is None (its runs varied too much to mean anything) shows "unreliable".
        """
        rows = [
            ("params", "params", "{:,}"), ("MACs", "macs", "{:,}"),
            ("est. ms b1", "est_ms_b1", "{:.3f}"), ("est. ms b8", "est_ms_b8", "{:.3f}"),
            ("measured ms b1", "ms_b1", "{:.3f}"), ("measured ms b8", "ms_b8", "{:.3f}"),
            ("onnxruntime ms b1", "ort_ms_b1", "{:.3f}"), ("onnxruntime ms b8", "ort_ms_b8", "{:.3f}"),
            ("accuracy %", "accuracy", "{:.2f}"),
        ]
        out = [f"{'':18}{'before':>12}{'after':>14}{'ratio':>10}"]
        for label, key, fmt in rows:
            if key not in self.before or key not in self.after:
                continue
            b, a = self.before[key], self.after[key]
            if b is None or a is None:
                cells = ["unreliable" if v is None else fmt.format(v) for v in (b, a)]
                out.append(f"{label:18}{cells[0]:>12}{cells[1]:>14}{'-':>10}")
                continue
            ratio = f"{a - b:+.2f}pt" if key == "accuracy" else (f"{b / a:.2f}x" if a else "-")
            out.append(f"{label:18}{fmt.format(b):>12}{fmt.format(a):>14}{ratio:>10}")
        return "\n".join(out + self.notes)


def _stages(out: Path) -> dict:
    path = out / STAGES_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{str(path)!r} is not a slim run's stage file ({e}); start again in another --out") from e
    if not isinstance(data, dict):
        raise ValueError(f"{str(path)!r} is not a slim run's stage file; start again in another --out")
    return data


def _mark(out: Path, done: dict, stage: str, info: Any) -> None:
    done[stage] = info
    write_json_atomic(out / STAGES_FILE, done)


def _restore(model: nn.Module, plan: Path) -> nn.Module:
    """The model saved at ``plan`` by this run, rebuilt from ``model`` (no code named by the file runs)."""
    import copy

    from onebyone.surgery import _document
    from onebyone.surgery._recipe import get_recipe, set_recipe
    from onebyone.surgery.io import _find_weights, load_weights, replay

    document = _document.read_document(plan)
    own = get_recipe(model)
    steps = document["steps"][len(own["steps"]):]
    new = replay(copy.deepcopy(model), steps, plan)
    load_weights(new, _find_weights(plan, document))
    set_recipe(new, {"base": document["base"], "steps": document["steps"]})
    return new.eval()


def _fold_gain(model: nn.Module, fused: nn.Module, x: torch.Tensor, measure: bool, device_profile) -> float:
    """``model``'s time over ``fused``'s at ``x``: timed in alternating rounds (through the timing
    cache), or estimated."""
    from onebyone.analysis import analyze
    from onebyone.analysis.profiles import resolve_profile
    from onebyone.surgery import _speedup

    profile = resolve_profile(device_profile)
    if not measure:
        shape = tuple(x.shape)
        return float(analyze(model, shape, device_profile=profile).est_time_s
                     / analyze(fused, shape, device_profile=profile).est_time_s)
    cache = _speedup.TimingCache.load()
    gain = _speedup.whole_model_speedup(model, fused, x, cache, _speedup.device_key(profile.label, x))
    cache.save()
    return gain


def _calibration(data, count: int):
    """``count`` samples of ``data`` drawn with a fixed seed (classes mixed whatever the order), or None."""
    if count == 0 or len(data) == 0:
        return None
    from torch.utils.data import Subset

    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:count]
    return Subset(data, order.tolist())


def _latency_ms(before: nn.Module, after: nn.Module, size: tuple[int, ...], rounds: int = 5) -> dict:
    """Eval latency (ms) of both models at batch 1 and 8, timed in alternating rounds.

    ``ms_b1``/``ms_b8`` are None where the noise makes the figure meaningless
    (:func:`onebyone._timing.reliable_ms`); ``ms_b*_median`` and ``ms_b*_spread`` keep the raw
    median and its spread either way.
    """
    from onebyone._timing import alternating, reliable_ms

    runs: dict = {"before": {}, "after": {}}
    with eval_mode(before, after), torch.inference_mode():
        for batch in (1, 8):
            x = torch.randn(batch, *size)
            times = alternating({"before": lambda x=x: before(x), "after": lambda x=x: after(x)},
                                rounds=rounds, warmup=1, repeats=3)
            for key, m in times.items():
                runs[key][batch] = m
    out: dict = {}
    for key, measurements in runs.items():
        shown = reliable_ms(measurements)
        out[key] = {}
        for batch, m in measurements.items():
            out[key][f"ms_b{batch}"] = shown[batch]
            out[key][f"ms_b{batch}_median"] = 1000.0 * m.median
            out[key][f"ms_b{batch}_spread"] = m.spread
    return out


def _totals(model: nn.Module, size: tuple[int, ...], profile) -> dict:
    from onebyone.analysis import analyze

    r1 = analyze(model, (1, *size), device_profile=profile)
    r8 = analyze(model, (8, *size), device_profile=profile)
    return {"params": r1.total_params, "macs": r1.total_macs, "est_ms_b1": 1000 * r1.est_time_s,
            "est_ms_b8": 1000 * r8.est_time_s}


def slim(
    model: nn.Module,
    train_data,
    test_data,
    out_dir: str | Path,
    *,
    speedup: float = 2.0,
    max_error: float = 0.5,
    method: str = "tucker2",
    finetune_epochs: int = 2,
    measure: bool = True,
    resume: bool = False,
    device_profile=None,
    base: str | None = None,
    base_kwargs: dict | None = None,
    lr: float = 3e-3,
    batch_size: int = 16,
    calibration: int = 256,
    round_to: int = 8,
    quiet: bool = True,
    onnx: bool = True,
    log=print,
) -> SlimResult:
    """Compress ``model`` to ``speedup``, fine-tune by distillation, evaluate and save in ``out_dir``.

    Args:
        model: the trained model (not changed).
        train_data: the fine-tuning data (``(image, label)``; ``input_size`` and ``num_classes``
            are read when present).
        test_data: the data the accuracies are measured on.
        out_dir: the run's folder (created; must be empty unless ``resume``).
        speedup: the target speedup of the whole model (> 1).
        max_error: the largest relative weight error ``||W - W'|| / ||W||`` a decomposed layer
            may take (passed to :func:`~onebyone.surgery.decompose`; ``math.inf``: no cap); recorded
            in ``report.json`` as ``compress.max_error`` (null for no cap).
        method: decompose's method for kxk convolutions ("tucker2" or "reduce").
        finetune_epochs: epochs of distillation (0: none).
        measure: choose ranks by measured times (cached) instead of the estimate.
        resume: continue after the last finished stage of an earlier run in ``out_dir``.
        device_profile: the profile for the estimates (None: this machine's default).
        base: the spec ``surgery.load`` rebuilds the base model from (a zoo name...).
        base_kwargs: its builder keyword arguments.
        lr: the fine-tuning peak learning rate (AdamW, warm-up then cosine).
        batch_size: the fine-tuning batch size. 2 epochs of the 4,000 bundled MNIST images are
            500 steps at 16 but 126 at 64. On resnet20 cut to rank 8 (teacher 98.1%), with the
            weights' SVD: 1e-3 at 64 gave 91.7%, 3e-3 at 64 94.5%, 3e-3 at 16 96.6% (97.7% with
            ``calibration``); the VGG net kept its accuracy with both recipes.
        round_to: decompose's rank granularity (ranks are multiples of it, capped at the
            channels): 8 leaves a 16-channel layer only rank 8; smaller values let the chooser cut
            narrow layers finer.
        calibration: how many training samples (a fixed random draw) the factors are fitted to
            (decompose's ``calibration``: the layers' output error, not their weight error, is
            minimised, and the ranks and ``max_error`` go by it); 0 for the weights' own SVD.
            On resnet20/MNIST at rank 8 it left 28% test accuracy right after the cut instead
            of 10%, and 97.7% instead of 96.6% after 2 epochs of distillation (BENCHMARKS.md,
            "Slimming by time").
        quiet: no progress bars while fine-tuning.
        onnx: also time both models in onnxruntime (exported with static shapes at batch 1
            and 8, PyTorch's thread count); without the ``onnx`` extra, a note says so.
        log: called with a line of text at each stage.

    Returns:
        The :class:`SlimResult`, also written to ``OUT/report.json``.

    Raises:
        ValueError: a bad ``speedup`` or ``max_error``, a model whose class count differs from the data's, or an
            ``out_dir`` that holds files and ``resume`` is not set.
    """
    from onebyone._checks import check_int, check_max_error, check_speedup
    from onebyone.surgery import decompose, fuse, save
    from onebyone.surgery._finetune import finetune
    from onebyone.surgery._recipe import get_recipe, set_recipe
    from onebyone.train import evaluate, has_checkpoint
    from onebyone.train._model_check import check_model_fits_data

    speedup = check_speedup(speedup)
    max_error = check_max_error("max_error", max_error)
    if isinstance(finetune_epochs, bool) or not isinstance(finetune_epochs, int) or finetune_epochs < 0:
        raise ValueError(f"finetune_epochs must be an int >= 0, got {finetune_epochs!r}")
    if isinstance(calibration, bool) or not isinstance(calibration, int) or calibration < 0:
        raise ValueError(f"calibration must be an int >= 0 (training samples), got {calibration!r}")
    round_to = check_int("round_to", round_to)
    check_int("batch_size", batch_size)
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    size = tuple(getattr(train_data, "input_size", None) or train_data[0][0].shape)
    check_model_fits_data(model, train_data, torch.device("cpu"), torch.preserve_format)  # fit's own check
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file, expected a folder")
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise ValueError(f"--out {str(out)!r} is not empty; use --resume to continue a run there, or another folder")
    done = _stages(out) if resume else {}
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    kwargs = {"base": base, "base_kwargs": base_kwargs}

    if "compress" in done:
        log("compress: done before, loading compressed.json")
        small = _restore(model, out / "compressed.json")
        compress_info = done["compress"]
    else:
        fused, fuse_report = fuse(model, example_input=torch.zeros(1, *size))
        x8 = torch.randn(8, *size)
        # Folding the norms is part of the speedup: decompose is asked only for what remains.
        # Folding removes operators and cannot slow a model down: a measured slowdown is noise.
        fold_gain = max(1.0, _fold_gain(model, fused, x8, measure, device_profile))
        remaining = speedup / fold_gain
        if remaining > 1.0:
            small, report = decompose(
                fused, method=method, speedup=remaining, measure=measure, pointwise=True,
                device_profile=device_profile, example_input=x8, max_error=max_error, round_to=round_to,
                calibration=_calibration(train_data, calibration),
            )
            log(report.to_text())
            decompose_info = report.to_dict()
        else:
            small, decompose_info = fused, None
        log(f"folding the norms: {fold_gain:.2f}x; decompose asked for {remaining:.2f}x")
        save(small, out / "compressed", **kwargs)
        compress_info = {"fused": len(fuse_report.changes), "fold_gain": fold_gain, "decompose_target": remaining,
                         # null: no cap (plain JSON has no inf)
                         "max_error": max_error if math.isfinite(max_error) else None, "decompose": decompose_info}
        _mark(out, done, "compress", compress_info)

    if "finetune" in done:
        log("finetune: done before, loading model.json")
        final = _restore(model, out / "model.json")
        finetune_info = done["finetune"]
    else:
        if finetune_epochs:
            ft_dir = out / "finetune"
            final, ft = finetune(
                small, model, train_data, test_data, epochs=finetune_epochs, lr=lr, batch_size=batch_size,
                device="cpu", out_dir=ft_dir, resume=True if has_checkpoint(ft_dir) else None, quiet=quiet,
            )
            finetune_info = {"settings": ft.settings, "kl_before": ft.kl_before, "kl_after": ft.kl_after}
            # a deep copy of an fx.GraphModule (fuse's result) drops plain attributes: keep the recipe
            set_recipe(final, get_recipe(small))
        else:
            final, finetune_info = small, {"settings": {"epochs": 0}}
        save(final.eval(), out / "model", **kwargs)
        _mark(out, done, "finetune", finetune_info)

    before, after = _totals(model, size, device_profile), _totals(final, size, device_profile)
    times = _latency_ms(model, final, size)
    before.update(times["before"])
    after.update(times["after"])
    before["accuracy"] = 100 * evaluate(model, test_data, device="cpu")["accuracy"]
    after["accuracy"] = 100 * evaluate(final, test_data, device="cpu")["accuracy"]
    result = SlimResult(before, after, compress=compress_info, finetune=finetune_info)
    if onnx:
        from onebyone.onnx import latency_or_note

        ort, note = latency_or_note(model, final, size, threads=torch.get_num_threads())
        if ort is not None:
            before.update(ort["before"])
            after.update(ort["after"])
        elif note:
            result.notes.append(note)
    shown = [side.get(k) for side in (before, after) for k in ("ms_b1", "ms_b8", "ort_ms_b1", "ort_ms_b8")
             if k in side]
    if None in shown:
        from onebyone._timing import UNRELIABLE_NOTE

        result.notes.append(UNRELIABLE_NOTE)
    result.notes.append(f"measured on CPU, {torch.get_num_threads()} threads; model saved as {out / 'model.json'}")
    write_json_atomic(out / "report.json", result.to_dict())
    _mark(out, done, "evaluate", True)
    return result
