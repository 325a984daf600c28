"""Pieces shared by the surgery commands (compress, convolutionalize, fuse)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
import typer

from onebyone import _timing
from onebyone.cli._common import parse_shape


def build(model: str, checkpoint: Path | None, num_classes: int | None, input: str | None = None):
    """The model from its spec, with the checkpoint's weights loaded strictly, in eval mode.

    A zoo model is built for ``--input``'s channels; a ``--checkpoint`` folder (or file) written
    by ``onebyone train`` brings back the arguments the model was trained with. Returns the
    model and the builder kwargs (saved in the plan so that ``load`` rebuilds the same model).
    A zoo model or code without ``--checkpoint`` has random weights: a one-line note says so.
    """
    from onebyone.cli._model import TrainedCheckpoint, build_kwargs, load_spec, read_checkpoint
    from onebyone.surgery import load_weights

    shape = input_size(None, input) if input is not None else None
    found = TrainedCheckpoint(None) if checkpoint is None else read_checkpoint(checkpoint, model)
    weights, trained = found.weights, found.kwargs
    channels = trained.get("in_channels")
    if shape is not None and len(shape) == 3 and isinstance(channels, int) and shape[0] != channels:
        raise ValueError(
            f"--input {input!r} has {shape[0]} channels but --checkpoint {str(checkpoint)!r} was "
            f"trained with in_channels={channels}; use --input {channels}x{shape[1]}x{shape[2]}"
        )
    kwargs = build_kwargs(model, input_shape=shape, num_classes=num_classes, trained=trained)
    net = load_spec(model, **kwargs)
    if weights is not None:
        load_weights(net, weights)
    if found.input_size is not None and len(found.input_size) == 3:
        with contextlib.suppress(AttributeError):  # a read-only property of the user's model
            net.default_input_size = (1, *found.input_size)  # the size it was trained at
    return net.eval(), kwargs


def random_weights_note(model: str, checkpoint: Path | None) -> None:
    """One line on stderr when MODEL's weights are random (a zoo model or code, no checkpoint)."""
    from onebyone.cli._model import saved_plan

    if checkpoint is None and saved_plan(model) is None:
        typer.echo(
            f"note: {model} has random weights (no --checkpoint): its errors and outputs below say "
            "nothing about a trained model; train it first (onebyone train) for real numbers",
            err=True,
        )


def echo_accuracy(before, after, checkpoint: Path | None, option: str = "--checkpoint") -> None:
    """Test accuracy before and after, on the dataset ``checkpoint`` was trained on, when known."""
    if checkpoint is None:
        return
    from onebyone.cli._model import trained_data
    from onebyone.train import evaluate
    from onebyone.train.checkpoint import MODEL_FILE

    weights = checkpoint / MODEL_FILE if checkpoint.is_dir() else checkpoint
    data = trained_data(weights)
    if data is None:
        typer.echo(f"accuracy: unknown ({option} {str(checkpoint)!r} does not record the dataset "
                   "it was trained on; onebyone train records it)")  # fmt: skip
        return
    from onebyone.data import load

    try:
        test = load(data, "test")
    except (ValueError, OSError) as e:
        typer.echo(f"accuracy: unknown (the training data {data!r} cannot be read: {e})")
        return
    a = evaluate(before, test, device="cpu")
    b = evaluate(after, test, device="cpu")
    typer.echo(
        f"test accuracy on {data} ({a['count']:,} samples): {100 * a['accuracy']:.2f}% before, "
        f"{100 * b['accuracy']:.2f}% after"
    )


def input_size(net, text: str | None, option: str = "--input", *, image: bool = False) -> tuple[int, ...]:
    """The input without the batch from ``--input`` (``3x32x32``, ``784``: the same format as
    ``summary``) or the model's ``default_input_size``; ``image``: it must be CxHxW."""
    if text is not None:
        size = parse_shape(text, option)
        if image and len(size) != 3:
            raise ValueError(
                f"{option} must be CxHxW without the batch, e.g. 3x224x224, got {text!r}"
            )
        return size
    from onebyone.cli._model import default_shape

    size = default_shape(net)
    if size is None:
        raise ValueError(f"{option} is required: the model has no default_input_size (e.g. {option} 3x224x224)")
    return size


def latency_pair(
    before, after, size: tuple[int, ...], *, rounds: dict[int, int] | None = None,
    max_seconds: float = 2.0,
) -> tuple[dict[int, Any], dict[int, Any]]:
    """Eval latency of ``before`` and ``after`` at batch 1 and batch 8, with its reliability.

    After three warm-up calls of each, the two models are timed in alternating rounds (before,
    after, before, after...), so that a change in the load of a shared machine hits both alike:
    up to ``rounds[batch]`` rounds, at least 5, stopping once ``max_seconds`` are spent on that
    batch. Returns ``({1: Measurement, 8: Measurement}, {1: ..., 8: ...})`` (seconds).
    """
    from onebyone._modes import eval_mode

    rounds = rounds or {1: 21, 8: 11}
    param = next(before.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    out: dict[str, dict[int, Any]] = {"before": {}, "after": {}}
    with eval_mode(before, after), torch.inference_mode():
        for batch, n in rounds.items():
            x = torch.randn(batch, *size, device=device)
            times = _timing.alternating(
                {"before": lambda x=x: before(x), "after": lambda x=x: after(x)},
                rounds=n, warmup=3, max_seconds=max_seconds,
            )
            for key, m in times.items():
                out[key][batch] = m
    return out["before"], out["after"]


def latency_cells(times: dict[int, Any]) -> dict[str, float | None]:
    """Milliseconds at batch 1 and 8, or None for a figure the noise made meaningless.

    A figure is dropped when its spread is above ``_timing.MAX_SPREAD``; both are dropped when
    batch 8 ran faster than batch 1 (eight images cannot take less time than one: the load
    changed between the two).

    Example:
        >>> from onebyone._timing import Measurement
        >>> latency_cells({1: Measurement((0.010,) * 5), 8: Measurement((0.050,) * 5)})
        {'b1': 10.0, 'b8': 50.0}
        >>> latency_cells({1: Measurement((0.9,) * 5), 8: Measurement((0.2,) * 5)})
        {'b1': None, 'b8': None}
    """
    cells = _timing.reliable_ms({1: times[1], 8: times[8]})
    return {"b1": cells[1], "b8": cells[8]}


def echo_totals(before: dict, after: dict) -> None:
    """Print a before/after totals table: params, MACs, latency ("unreliable" where noise won)."""
    rows = [("params", "params", "{:,}"), ("MACs", "macs", "{:,}"), ("latency b1 (ms)", "b1", "{:.2f}"),
            ("latency b8 (ms)", "b8", "{:.2f}"), ("onnxruntime b1 (ms)", "ort_ms_b1", "{:.2f}"),
            ("onnxruntime b8 (ms)", "ort_ms_b8", "{:.2f}")]
    typer.echo(f"{'':20}{'before':>16}{'after':>18}{'ratio':>9}")
    unreliable = False
    for label, key, fmt in rows:
        if key not in before or key not in after:
            continue
        b, a = before[key], after[key]
        if b is None or a is None:
            unreliable = True
            b_text = "unreliable" if b is None else fmt.format(b)
            a_text = "unreliable" if a is None else fmt.format(a)
            typer.echo(f"{label:20}{b_text:>16}{a_text:>18}{'-':>9}")
            continue
        ratio = b / a if a else float("inf")
        typer.echo(f"{label:20}{fmt.format(b):>16}{fmt.format(a):>18}{ratio:>8.2f}x")
    if unreliable:
        typer.echo(_timing.UNRELIABLE_NOTE)


def torch_threads_note() -> str:
    from onebyone.cli._common import plural

    return f"CPU, {plural(torch.get_num_threads(), 'thread')}, torch {torch.__version__}"


def save_and_echo(net, out_path: Path, model: str, kwargs: dict) -> None:
    """Save ``net`` as OUT.json + OUT.safetensors (rebuilt from ``model``) and say what was written."""
    from onebyone.cli._model import saved_plan
    from onebyone.surgery import save

    if saved_plan(model) is not None:  # a saved model: its plan keeps its base and steps
        plan = save(net, out_path)
    else:
        plan = save(net, out_path, base=model, base_kwargs=kwargs)
    typer.echo(f"wrote {plan} and {plan.with_suffix('.safetensors')}")


def onnx_option():
    """The ``--no-onnx`` flag of compress, fuse and slim."""
    return typer.Option(False, "--no-onnx", help="Skip the onnxruntime latency (it exports both models: seconds).")


def echo_report_and_save(before, after, report, size: tuple[int, ...], out_path: Path, model: str,
                         kwargs: dict, checkpoint: Path | None = None, *, onnx: bool = True) -> None:
    """Print the surgery report, the before/after totals (params, MACs, latency) and, for a
    ``checkpoint`` whose dataset is known, the test accuracy before and after; save ``after``.

    With ``onnx`` the totals gain onnxruntime latency rows (both models exported with static
    shapes at batch 1 and 8, same threads as PyTorch's) or, without the onnx extra, a note
    naming it.

    A surgery that changed nothing says so, and why, instead of printing an empty table."""
    random_weights_note(model, checkpoint)
    if not report.changes:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in report.skipped)
        typer.echo(f"nothing to do: {report.operation} found no layer to change in {model}"
                   + (f" ({reasons})" if reasons else ""))  # fmt: skip
        save_and_echo(after, out_path, model, kwargs)
        return
    typer.echo(report.to_text())
    typer.echo("")
    echo_accuracy(before, after, checkpoint)
    times_before, times_after = latency_pair(before, after, size)
    typer.echo(f"totals at input {'x'.join(map(str, size))} ({torch_threads_note()}; latency: "
               f"median of {len(times_before[1].samples)} runs at batch 1, "
               f"{len(times_before[8].samples)} at batch 8):")  # fmt: skip
    totals_before = {"params": report.params_before, "macs": report.macs_before, **latency_cells(times_before)}
    totals_after = {"params": report.params_after, "macs": report.macs_after, **latency_cells(times_after)}
    note = None
    if onnx:
        from onebyone.onnx import latency_or_note

        ort, note = latency_or_note(before, after, size, threads=torch.get_num_threads())
        if ort is not None:
            totals_before.update(ort["before"])
            totals_after.update(ort["after"])
    echo_totals(totals_before, totals_after)
    if note is not None:
        typer.echo(note)
    save_and_echo(after, out_path, model, kwargs)
