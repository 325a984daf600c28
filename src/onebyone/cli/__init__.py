"""The ``onebyone`` command line: a thin layer over the public API.

Each command lives in its own module and is registered here, explicitly.
"""

from __future__ import annotations

import typer
from typer.core import TyperCommand

from onebyone._version import __version__


class _Command(TyperCommand):
    """A command whose usage line shows ``MODEL``, as its help does, not typer's ``{MODEL}``."""

    def collect_usage_pieces(self, ctx):
        pieces = super().collect_usage_pieces(ctx)
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in pieces]


app = typer.Typer(
    name="onebyone",
    help="Understand, build and slim CNNs with 1x1 convolutions and cross-channel pooling.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help (click's layout): flags show no "<bool>", text reflows to the terminal's width.
    rich_markup_mode=None,
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
from onebyone.cli.export_cmd import export  # noqa: E402
from onebyone.cli.fuse_cmd import fuse  # noqa: E402
from onebyone.cli.models_cmd import models  # noqa: E402
from onebyone.cli.plan_cmd import plan  # noqa: E402
from onebyone.cli.profile_cmd import profile  # noqa: E402
from onebyone.cli.report_cmd import report  # noqa: E402
from onebyone.cli.slim_cmd import slim  # noqa: E402
from onebyone.cli.summary_cmd import summary  # noqa: E402
from onebyone.cli.tour_cmd import tour  # noqa: E402
from onebyone.cli.train_cmd import train  # noqa: E402

app.command("calibrate", cls=_Command)(calibrate)
app.command("compare", cls=_Command)(compare)
app.command("compress", cls=_Command)(compress)
app.command("convolutionalize", cls=_Command)(convolutionalize)
app.command("diff", cls=_Command)(diff)
app.command("export", cls=_Command)(export)
app.command("fuse", cls=_Command)(fuse)
app.command("models", cls=_Command)(models)
app.command("plan", cls=_Command)(plan)
app.command("profile", cls=_Command)(profile)
app.command("report", cls=_Command)(report)
app.command("slim", cls=_Command)(slim)
app.command("summary", cls=_Command)(summary)
app.command("tour", cls=_Command)(tour)
app.command("train", cls=_Command)(train)


def _command_path() -> str:
    """``onebyone CMD`` from the command line, for errors raised without a click context."""
    import sys

    names = {c.name for c in app.registered_commands}
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    return f"onebyone {command}" if command in names else "onebyone"


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
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path if ctx is not None else _command_path()} --help')"
        print(f"error: {' '.join(e.format_message().split())}{hint}", file=sys.stderr)
        code = 2
    except (typer.Abort, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code if isinstance(code, int) else 0)
