"""Pieces shared by the surgery commands (compress, convolutionalize, fuse)."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from onebyone.cli._common import parse_shape


def build(model: str, checkpoint: Path | None, num_classes: int | None):
    """The model from its spec, with the checkpoint's weights loaded strictly, in eval mode."""
    from onebyone.models import load_model
    from onebyone.surgery import load_weights

    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    net = load_model(model, **kwargs)
    if checkpoint is not None:
        load_weights(net, checkpoint)
    return net.eval(), kwargs


def input_size(net, text: str | None, option: str = "--input") -> tuple[int, ...]:
    """(C, H, W) from ``--input`` or the model's ``default_input_size``."""
    if text is not None:
        size = parse_shape(text, option)
        if len(size) != 3:
            raise ValueError(f"{option} must be CxHxW, e.g. 3x224x224, got {text!r}")
        return size
    size = getattr(net, "default_input_size", None)
    if size is None:
        raise ValueError(f"{option} is required: the model has no default_input_size (e.g. {option} 3x224x224)")
    return tuple(size)[-3:]


def latency_pair(net, size: tuple[int, ...]) -> tuple[float, float]:
    """Median CPU latency in ms at batch 1 and batch 8."""
    from onebyone._timing import latency_ms

    return latency_ms(net, (1, *size), repeats=7), latency_ms(net, (8, *size), repeats=5)


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
    return f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
