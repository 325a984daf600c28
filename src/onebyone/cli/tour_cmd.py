"""``onebyone tour``: the seeds' numbers, computed for real (the README's first command)."""

from __future__ import annotations

import typer

from onebyone.cli._common import set_threads, threads_option, user_errors


@user_errors
def tour(
    quick: bool = typer.Option(False, "--quick", help="Skip the training steps (a few seconds)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the random filters and initialisations."),
    threads: int | None = threads_option(),
) -> None:
    """Walk through 1x1 convolutions and cross-channel pooling with real numbers."""
    from rich.console import Console

    from onebyone.tour import run_tour

    set_threads(threads)

    # The terminal's own width (80 columns and up fit); a pipe or a file gets 80 columns (or
    # $COLUMNS), plain text without colour codes.
    console = Console()
    run_tour(quick=quick, console=console, seed=seed)
