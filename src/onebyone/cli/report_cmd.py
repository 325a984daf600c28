"""``onebyone report``: one self-contained HTML page for a model (charts, sortable table, hierarchy)."""

from __future__ import annotations

from pathlib import Path

import typer

from onebyone.cli._common import user_errors
from onebyone.cli.summary_cmd import BATCH_OPTION, INPUT_OPTION, MODEL_ARGUMENT, _model_and_input


@user_errors
def report(
    model: str = MODEL_ARGUMENT,
    input: str | None = INPUT_OPTION,
    batch: int = BATCH_OPTION,
    html: Path = typer.Option(
        ..., "--html", help="The page to write, e.g. report.html (in an existing folder)."
    ),
    device: str = typer.Option("meta", "--device", help="meta (no real forward), cpu or cuda."),
) -> None:
    """Write an HTML report: totals, a bar per layer, the sortable layer table, the module tree.

    The page is one file that works offline; it reads without JavaScript.
    Example: onebyone report resnet50 --input 3x224x224 --html resnet50.html
    """
    from onebyone.analysis import analyze
    from onebyone.cli._paths import check_out_file
    from onebyone.html import check_page_path, report_html

    check_page_path(html, "--html")  # before any work: a missing folder fails at once
    check_out_file(html, "--html", (".html", ".htm"))
    net, size = _model_and_input(model, input, batch)
    result = analyze(net, size, device=device)
    path = report_html(result, html, title=f"{model} ({'x'.join(map(str, size))})")
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {len(result.rows)} layers)", err=True)
