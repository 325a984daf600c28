"""``onebyone tour``: the seeds' numbers, computed for real (the README's first command)."""

from __future__ import annotations

from pathlib import Path

import typer

from onebyone.cli._common import set_threads, threads_option, user_errors


@user_errors
def tour(
    quick: bool = typer.Option(False, "--quick", help="Skip the training steps (a few seconds)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the random filters and initialisations."),
    html: Path | None = typer.Option(None, "--html", help="Also write the tour as one HTML page."),
    threads: int | None = threads_option(),
) -> None:
    """Walk through 1x1 convolutions and cross-channel pooling with real numbers."""
    from rich.console import Console

    from onebyone.tour import run_tour

    set_threads(threads)
    if html is not None:  # html: check the page's path before the tour runs
        from onebyone.html import check_page_path

        check_page_path(html, "--html")
    # The terminal's own width (80 columns and up fit); a pipe or a file gets 80 columns (or
    # $COLUMNS), plain text without colour codes.
    console = Console()
    result = run_tour(quick=quick, console=console, seed=seed)
    if html is not None:  # html: the page from the tour's own numbers
        from onebyone.html import tour_html

        console.print(f"wrote {tour_html(html, result=result, seed=seed)}", highlight=False, soft_wrap=True)
