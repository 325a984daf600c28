"""The ``onebyone`` command line: a thin layer over the public API.

Each command lives in its own module and is registered here, explicitly.
"""

from __future__ import annotations

import typer

from onebyone._version import __version__

app = typer.Typer(
    name="onebyone",
    help="Understand, build and slim CNNs with 1x1 convolutions and cross-channel pooling.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"onebyone {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Understand, build and slim CNNs with 1x1 convolutions and cross-channel pooling."""


# Commands: one module each, registered explicitly (keep this list sorted by command name).
from onebyone.cli.compare_cmd import compare  # noqa: E402
from onebyone.cli.compress_cmd import compress  # noqa: E402
from onebyone.cli.convolutionalize_cmd import convolutionalize  # noqa: E402
from onebyone.cli.fuse_cmd import fuse  # noqa: E402
from onebyone.cli.models_cmd import models  # noqa: E402
from onebyone.cli.plan_cmd import plan  # noqa: E402
from onebyone.cli.summary_cmd import summary  # noqa: E402
from onebyone.cli.tour_cmd import tour  # noqa: E402
from onebyone.cli.train_cmd import train  # noqa: E402

app.command("compare")(compare)
app.command("compress")(compress)
app.command("convolutionalize")(convolutionalize)
app.command("fuse")(fuse)
app.command("models")(models)
app.command("plan")(plan)
app.command("summary")(summary)
app.command("tour")(tour)
app.command("train")(train)


def main() -> None:
    """Entry point of the ``onebyone`` console script and ``python -m onebyone``."""
    app()
