"""Rich tables and text rendered to plain text, at the terminal's width or without wrapping.

One helper for every table the library prints (the analysis summary, the plan, the surgery
report): ``render_rich`` returns the text, so callers can print it, save it or compare it with
a golden file. ``output_width`` is the width to render for: the terminal's when the output is
a terminal, else ``None`` (no wrapping and no colour codes, for pipes and files).
"""

from __future__ import annotations

import io
import sys
from typing import Any, TextIO

__all__ = ["MIN_WIDTH", "output_width", "render_rich"]

# The narrowest terminal the tables are laid out for; narrower ones get 80 columns anyway.
MIN_WIDTH = 80
_UNLIMITED = 100_000


def output_width(file: TextIO | None = None) -> int | None:
    """The terminal's width (at least ``MIN_WIDTH``) if ``file`` is a terminal, else None.

    Example:
        >>> import io
        >>> output_width(io.StringIO()) is None
        True
    """
    file = sys.stdout if file is None else file
    isatty = getattr(file, "isatty", None)
    if isatty is None or not isatty():
        return None
    from rich.console import Console

    return max(MIN_WIDTH, Console(file=file).width)


def render_rich(*renderables: Any, width: int | None = None, color: bool = False) -> str:
    """Render rich tables and strings (one after another) to text.

    Args:
        *renderables: rich renderables (``Table``...) or plain strings (printed as they are,
            without markup or highlighting).
        width: the width to lay out for; None lays out without limit (no wrapping).
        color: keep colour codes (for a terminal) instead of plain text.

    Returns:
        The text, trailing spaces stripped, ending with a newline.

    Example:
        >>> from rich.table import Table
        >>> t = Table("a", "b")
        >>> t.add_row("1", "2")
        >>> print(render_rich(t, "one line", width=40), end="")
        ┏━━━┳━━━┓
        ┃ a ┃ b ┃
        ┡━━━╇━━━┩
        │ 1 │ 2 │
        └───┴───┘
        one line
    """
    from rich.console import Console
    from rich.text import Text

    console = Console(
        width=width or _UNLIMITED,
        record=True,
        no_color=not color,
        force_terminal=color,
        color_system="auto" if color else None,
        file=io.StringIO(),
        highlight=False,
        legacy_windows=False,
    )
    try:
        for item in renderables:
            if isinstance(item, str):
                console.print(Text(item), soft_wrap=width is None)
            else:
                console.print(item)
        text = console.export_text(styles=color)
    finally:
        console.file.close()
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
