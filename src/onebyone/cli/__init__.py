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
from onebyone.cli.calibrate_cmd import calibrate  # noqa: E402
from onebyone.cli.compare_cmd import compare  # noqa: E402
from onebyone.cli.compress_cmd import compress  # noqa: E402
from onebyone.cli.convolutionalize_cmd import convolutionalize  # noqa: E402
from onebyone.cli.diff_cmd import diff  # noqa: E402
from onebyone.cli.fuse_cmd import fuse  # noqa: E402
from onebyone.cli.models_cmd import models  # noqa: E402
from onebyone.cli.plan_cmd import plan  # noqa: E402
from onebyone.cli.profile_cmd import profile  # noqa: E402
from onebyone.cli.slim_cmd import slim  # noqa: E402
from onebyone.cli.summary_cmd import summary  # noqa: E402
from onebyone.cli.tour_cmd import tour  # noqa: E402
from onebyone.cli.train_cmd import train  # noqa: E402

app.command("calibrate")(calibrate)
app.command("compare")(compare)
app.command("compress")(compress)
app.command("convolutionalize")(convolutionalize)
app.command("diff")(diff)
app.command("fuse")(fuse)
app.command("models")(models)
app.command("plan")(plan)
app.command("profile")(profile)
app.command("slim")(slim)
app.command("summary")(summary)
app.command("tour")(tour)
app.command("train")(train)


def main() -> None:
    """Entry point of the ``onebyone`` console script and ``python -m onebyone``.

    Usage mistakes (a missing option, a value of the wrong type, an unknown command) print one
    line, ``error: ...``, on stderr and exit 2, like every other user mistake; ``--help`` and
    ``--version`` exit 0; an interrupt exits 130.
    """
    import sys

    try:
        from typer._click import exceptions as click_exceptions  # typer vendors click
    except ImportError:  # pragma: no cover - older typer, click installed beside it
        from click import exceptions as click_exceptions

    try:
        code = app(standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as e:
        # Building the error rendered the help already when rich is present (the message is
        # then empty); plain click returns the text.
        if e.format_message().strip():
            typer.echo(e.format_message())
        code = 2
    except click_exceptions.ClickException as e:  # UsageError, BadParameter, NoSuchOption...
        hint = f" (see '{e.ctx.command_path} --help')" if getattr(e, "ctx", None) is not None else ""
        print(f"error: {' '.join(e.format_message().split())}{hint}", file=sys.stderr)
        code = 2
    except (typer.Abort, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code if isinstance(code, int) else 0)
