"""Pieces shared by the surgery commands (compress, convolutionalize, fuse)."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from onebyone.cli._common import parse_shape


def build(model: str, checkpoint: Path | None, num_classes: int | None, input: str | None = None):
    """The model from its spec, with the checkpoint's weights loaded strictly, in eval mode.

    A zoo model is built for ``--input``'s channels; a ``--checkpoint`` folder (or file) written
    by ``onebyone train`` brings back the arguments the model was trained with. Returns the
    model and the builder kwargs (saved in the plan so that ``load`` rebuilds the same model).
    """
    from onebyone.cli._model import build_kwargs, load_spec, resolve_checkpoint
    from onebyone.surgery import load_weights

    shape = input_size(None, input) if input is not None else None
    weights, trained = (None, {}) if checkpoint is None else resolve_checkpoint(checkpoint, model)
    channels = trained.get("in_channels")
    if shape is not None and isinstance(channels, int) and shape[0] != channels:
        raise ValueError(
            f"--input {input!r} has {shape[0]} channels but --checkpoint {str(checkpoint)!r} was "
            f"trained with in_channels={channels}; use --input {channels}x{shape[1]}x{shape[2]}"
        )
    kwargs = build_kwargs(model, input_shape=shape, num_classes=num_classes, trained=trained)
    net = load_spec(model, **kwargs)
    if weights is not None:
        load_weights(net, weights)
    return net.eval(), kwargs


def input_size(net, text: str | None, option: str = "--input") -> tuple[int, ...]:
    """(C, H, W) from ``--input`` or the model's ``default_input_size``."""
    if text is not None:
        size = parse_shape(text, option)
        if len(size) != 3:
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
    before, after, size: tuple[int, ...], *, rounds: dict[int, int] | None = None
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Median eval latency in ms of ``before`` and ``after`` at batch 1 and batch 8.

    The two models are timed in alternating rounds (before, after, before, after...), so that a
    change in the load of a shared machine hits both alike; each figure is the median of its
    rounds. Returns ``((before_b1, before_b8), (after_b1, after_b8))``.
    """
    import statistics

    from onebyone import _timing
    from onebyone._modes import eval_mode

    rounds = rounds or {1: 7, 8: 5}
    param = next(before.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    times: dict[str, dict[int, float]] = {"before": {}, "after": {}}
    with eval_mode(before, after), torch.inference_mode():
        for batch, n in rounds.items():
            x = torch.randn(batch, *size, device=device)
            before(x)  # warm-up, untimed
            after(x)
            samples: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(n):
                for key, net in (("before", before), ("after", after)):
                    samples[key].append(_timing.median_seconds(lambda net=net, x=x: net(x), warmup=0, repeats=1))
            for key in samples:
                times[key][batch] = 1000.0 * statistics.median(samples[key])
    b, a = times["before"], times["after"]
    return (b[1], b[8]), (a[1], a[8])


def echo_totals(before: dict, after: dict) -> None:
    """Print a before/after totals table: params, MACs, latency."""
    rows = [("params", "params", "{:,}"), ("MACs", "macs", "{:,}"), ("latency b1 (ms)", "b1", "{:.2f}"),
            ("latency b8 (ms)", "b8", "{:.2f}")]
    typer.echo(f"{'':18}{'before':>18}{'after':>18}{'ratio':>9}")
    for label, key, fmt in rows:
        if before.get(key) is None or after.get(key) is None:
            continue
        ratio = before[key] / after[key] if after[key] else float("inf")
        typer.echo(f"{label:18}{fmt.format(before[key]):>18}{fmt.format(after[key]):>18}{ratio:>8.2f}x")


def torch_threads_note() -> str:
    from onebyone.cli._common import plural

    return f"CPU, {plural(torch.get_num_threads(), 'thread')}, torch {torch.__version__}"


def save_and_echo(net, out_path: Path, model: str, kwargs: dict) -> None:
    """Save ``net`` as OUT.json + OUT.safetensors (rebuilt from ``model``) and say what was written."""
    from onebyone.surgery import save

    plan = save(net, out_path, base=model, base_kwargs=kwargs)
    typer.echo(f"wrote {plan} and {plan.with_suffix('.safetensors')}")


def echo_report_and_save(before, after, report, size: tuple[int, ...], out_path: Path, model: str,
                         kwargs: dict) -> None:
    """Print the surgery report, the before/after totals (params, MACs, latency), then save ``after``."""
    typer.echo(report.to_text())
    typer.echo("")
    (b1, b8), (a1, a8) = latency_pair(before, after, size)
    typer.echo(f"totals at input {'x'.join(map(str, size))} ({torch_threads_note()}):")
    echo_totals(
        {"params": report.params_before, "macs": report.macs_before, "b1": b1, "b8": b8},
        {"params": report.params_after, "macs": report.macs_after, "b1": a1, "b8": a8},
    )
    save_and_echo(after, out_path, model, kwargs)
