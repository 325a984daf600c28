"""``onebyone models``: list the zoo."""

from __future__ import annotations

import typer

from onebyone.cli._common import user_errors


@user_errors
def models(pattern: str = typer.Argument("*", metavar="PATTERN", help="fnmatch pattern, e.g. 'resnet*'.")) -> None:
    """List the registered models."""
    from onebyone.models import list_models

    names = list_models(pattern)
    if not names:
        raise ValueError(f"no model matches {pattern!r}; `onebyone models` lists them all")
    for name in names:
        typer.echo(name)
