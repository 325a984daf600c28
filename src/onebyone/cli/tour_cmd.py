"""``onebyone tour``: the seeds' numbers, computed for real (the README's first command)."""

from __future__ import annotations

from pathlib import Path

import typer

from onebyone.cli._common import user_errors


@user_errors
def tour(
    quick: bool = typer.Option(False, "--quick", help="Skip the training steps (a few seconds)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the random filters and initialisations."),
    html: Path | None = typer.Option(None, "--html", help="Also write the tour as one HTML page."),
) -> None:
    """Walk through 1x1 convolutions and cross-channel pooling with real numbers."""
    from rich.console import Console

    from onebyone.tour import run_tour

    if html is not None:  # html: check the page's path before the tour runs
        from onebyone.html import check_page_path

        check_page_path(html, "--html")
    console = Console()
    console = Console(width=max(console.width, 100))
    result = run_tour(quick=quick, console=console, seed=seed)
    if html is not None:  # html: the page from the tour's own numbers
        from onebyone.html import tour_html

        console.print(f"wrote {tour_html(html, result=result, seed=seed)}", highlight=False, soft_wrap=True)
