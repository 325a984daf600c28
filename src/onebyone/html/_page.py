"""The page shell every HTML page shares: inline CSS (light and dark), the sorting script, escaping.

A page is one self-contained file: no stylesheet, script, font or image is fetched from
anywhere (the favicon is an empty ``data:`` URL so the browser does not ask for one). Every
table and chart is in the HTML itself, so the page reads without JavaScript; the script only
adds sorting and collapsing to tables marked ``sortable``.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path

from onebyone._version import __version__

__all__ = [
    "check_page_path", "esc", "fmt_bytes", "fmt_count", "fmt_ratio", "fmt_seconds", "page",
    "render_or_bug", "write_page",
]  # fmt: skip


def esc(text: object) -> str:
    """Escape ``text`` for HTML text and attribute values.

    >>> esc('<a href="x">')
    '&lt;a href=&quot;x&quot;&gt;'
    """
    return html.escape(str(text), quote=True)


def fmt_count(n: float | None) -> str:
    """A count in powers of 1000, e.g. ``4.09 G``; ``-`` for None.

    >>> fmt_count(4_089_184_256), fmt_count(512), fmt_count(None)
    ('4.09 G', '512', '-')
    """
    if n is None:
        return "-"
    value = float(n)
    for unit in ("", " K", " M", " G", " T"):
        if abs(value) < 1000 or unit == " T":
            return f"{int(n):,}" if unit == "" and float(n).is_integer() else f"{value:.3g}{unit}"
        value /= 1000
    return str(n)  # pragma: no cover - the loop always returns


def fmt_bytes(n: float | None) -> str:
    """Bytes in powers of 1024, e.g. ``97.7 MiB``; ``-`` for None.

    >>> fmt_bytes(102_760_448), fmt_bytes(100)
    ('98 MiB', '100 B')
    """
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    return str(n)  # pragma: no cover


def fmt_seconds(s: float | None) -> str:
    """A duration with a readable unit: ``1.5 ms``, ``12 us``; ``-`` for None.

    >>> fmt_seconds(0.0015), fmt_seconds(1.2e-5), fmt_seconds(2.0), fmt_seconds(None)
    ('1.5 ms', '12 us', '2 s', '-')
    """
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if abs(s) >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def fmt_ratio(a: float | None, b: float | None) -> str:
    """``b / a`` as ``0.25x``; ``-`` when either is missing or ``a`` is zero.

    >>> fmt_ratio(400, 100), fmt_ratio(0, 5), fmt_ratio(None, 1)
    ('0.25x', '-', '-')
    """
    if a is None or b is None or a == 0:
        return "-"
    return f"{b / a:.3g}x"


_CSS = """
:root { color-scheme: light dark; --fg:#1d1f24; --muted:#5b6170; --bg:#ffffff; --panel:#f4f5f8;
  --line:#d5d8e0; --accent:#2f6fd0; --accent2:#d0572f; --accent3:#2f9a5c; --accent4:#8a4fc9; }
@media (prefers-color-scheme: dark) {
  :root { --fg:#e6e8ee; --muted:#a3a9b8; --bg:#16181d; --panel:#20232b; --line:#3a3f4b;
    --accent:#6ea2f0; --accent2:#f08a62; --accent3:#5fcf8f; --accent4:#b38cf0; }
}
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1200px; padding: 1rem 1.5rem 4rem; background: var(--bg);
  color: var(--fg); font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 1.6rem; margin: .5rem 0 .2rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
  border-bottom: 1px solid var(--line); padding-bottom: .2rem; } h3 { font-size: 1.05rem; }
.sub, .note, figcaption { color: var(--muted); } .note { font-size: .9rem; }
code { font: .92em ui-monospace, SFMono-Regular, Menlo, monospace; }
.cards { display: flex; flex-wrap: wrap; gap: .6rem; margin: .8rem 0; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px;
  padding: .5rem .8rem; min-width: 9rem; }
.card b { display: block; font-size: 1.2rem; } .card span { color: var(--muted); font-size: .85rem; }
figure { margin: 1rem 0; } svg { max-width: 100%; height: auto; display: block; }
svg text { fill: var(--fg); font: 11px system-ui, sans-serif; }
svg .muted { fill: var(--muted); } svg .axis { stroke: var(--line); fill: none; }
svg .grid { stroke: var(--line); stroke-dasharray: 2 3; fill: none; }
svg .c0 { fill: var(--accent); } svg .c1 { fill: var(--accent2); } svg .c2 { fill: var(--accent3); }
svg .c3 { fill: var(--accent4); } svg .s0 { stroke: var(--accent); } svg .s1 { stroke: var(--accent2); }
svg .s2 { stroke: var(--accent3); } svg .s3 { stroke: var(--accent4); }
svg .box { fill: var(--panel); stroke: var(--line); } svg .edge { stroke: var(--muted); fill: none; }
svg .roof { stroke: var(--fg); fill: none; stroke-width: 1.5; }
svg image { image-rendering: pixelated; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .86rem; }
th, td { padding: .2rem .5rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { position: sticky; top: 0; background: var(--panel); text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; } th[aria-sort=descending]::after { content: " \\25BC"; }
tr.hidden { display: none; } tr:hover td { background: var(--panel); }
/* Fold toggles work only with the script, which marks the table "js"; out of order, hidden. */
.tog { display: none; color: var(--accent); cursor: pointer; padding: 0 .2rem; margin-left: -1.2rem;
  width: 1.2rem; } table.js .tog { display: inline-block; } table.flat .tog { visibility: hidden; }
details { margin-left: 1rem; } details > summary { cursor: pointer; margin-left: -1rem; }
.leaf { margin-left: 1rem; } .tree { font-size: .88rem; }
.tree .n { color: var(--muted); }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 1rem; }
footer { margin-top: 3rem; color: var(--muted); font-size: .8rem; }
"""

# Sorting: click a header; numbers sort by data-v. Collapsing: rows carry data-depth, and in
# execution order a row's toggle hides the rows below it that are deeper. Sorting by another
# column shows every row (a hierarchy has no meaning in another order); the first column
# (execution order) brings the tree back.
_JS = """
(function () {
  function key(row, i) {
    var c = row.cells[i], v = c.getAttribute('data-v');
    return v === null ? c.textContent.trim().toLowerCase() : parseFloat(v);
  }
  // The toggles are in the page (only rows with children have one); one listener serves all.
  function setupTree(table) {
    table.classList.add('js');
    table.tBodies[0].addEventListener('click', function (e) {
      var t = e.target.closest('.tog'); if (t) toggle(t);
    });
    table.tBodies[0].addEventListener('keydown', function (e) {
      var t = e.target.closest('.tog');
      if (t && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); toggle(t); }
    });
  }
  function toggle(b) {
    var row = b.closest('tr'), d = +row.getAttribute('data-depth');
    var open = b.getAttribute('aria-expanded') === 'true';
    b.setAttribute('aria-expanded', open ? 'false' : 'true');
    b.textContent = open ? '\\u25B8' : '\\u25BE';
    var hideBelow = open ? d : null, r = row.nextElementSibling;
    while (r && +r.getAttribute('data-depth') > d) {
      var rd = +r.getAttribute('data-depth');
      if (open) { r.classList.add('hidden'); }
      else if (hideBelow === null || rd <= hideBelow) {
        r.classList.remove('hidden');
        var t = r.querySelector('.tog');
        hideBelow = (t && t.getAttribute('aria-expanded') === 'false') ? rd : null;
      }
      r = r.nextElementSibling;
    }
  }
  function sortBy(table, i, th) {
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    if (th.getAttribute('aria-sort') === null && th.classList.contains('n') && i > 0) asc = false;
    var keyed = rows.map(function (r) { return [key(r, i), r]; });
    keyed.sort(function (a, b) {
      return (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0) * (asc ? 1 : -1);
    });
    var heads = table.tHead.rows[0].cells;
    for (var j = 0; j < heads.length; j++) heads[j].removeAttribute('aria-sort');
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    // Out of execution order the tree means nothing: show every row and hide the toggles.
    var inOrder = i === 0 && asc;
    table.classList.toggle('flat', !inOrder);
    if (!inOrder) {
      table.querySelectorAll('tr.hidden').forEach(function (r) { r.classList.remove('hidden'); });
      table.querySelectorAll('.tog[aria-expanded=false]').forEach(function (t) {
        t.setAttribute('aria-expanded', 'true'); t.textContent = '\\u25BE'; });
    }
    var frag = document.createDocumentFragment();
    keyed.forEach(function (k) { frag.appendChild(k[1]); });
    body.appendChild(frag);
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    if (table.classList.contains('tree')) setupTree(table);
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) (function (i, th) {
      th.tabIndex = 0; th.title = 'sort by this column';
      th.addEventListener('click', function () { sortBy(table, i, th); });
      th.addEventListener('keydown', function (e) { if (e.key === 'Enter') sortBy(table, i, th); });
    })(i, heads[i]);
  });
})();
"""


def page(title: str, body: str, *, subtitle: str = "") -> str:
    """Wrap ``body`` (HTML) into a whole page with the shared style and script.

    >>> text = page("resnet18", "<p>hi</p>")
    >>> text.startswith("<!DOCTYPE html>"), "<title>resnet18" in text, "http" in text
    (True, True, False)
    """
    sub = f'<p class="sub">{esc(subtitle)}</p>' if subtitle else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{esc(title)} - onebyone</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n{sub}\n{body}\n"
        f"<footer>Written by onebyone {esc(__version__)}. One self-contained file: it loads "
        "nothing from the network; tables and charts read without JavaScript (sorting and "
        "collapsing need it).</footer>\n"
        f"<script>{_JS}</script>\n</body>\n</html>\n"
    )


def render_or_bug(render, *args, **kwargs) -> str:
    """Call a renderer; a failure there is onebyone's bug, raised as :class:`InternalError`.

    The inputs were checked before rendering (a bad value or file is the caller's ValueError),
    so an exception inside a renderer must not reach the user as a one-line "mistake".

    >>> render_or_bug(lambda: {}["missing"])
    Traceback (most recent call last):
    ...
    onebyone.errors.InternalError: a bug in onebyone (please report it): rendering the page failed: KeyError: 'missing'
    """
    from onebyone.errors import InternalError

    try:
        return render(*args, **kwargs)
    except Exception as e:
        raise InternalError(f"rendering the page failed: {type(e).__name__}: {e}") from e


def write_page(path: str | os.PathLike, text: str) -> Path:
    """Write a page atomically: a failure leaves no file (and any older page in place).

    >>> import tempfile, pathlib
    >>> write_page(pathlib.Path(tempfile.mkdtemp()) / "p.html", page("t", "<p>hi</p>")).name
    'p.html'

    Raises:
        TypeError: ``path`` is not a str or path.
        FileNotFoundError: the folder of ``path`` does not exist (it is not created: a typo
            in a folder name should not scatter pages around).
        OSError: the folder cannot be written; the error names ``path``.
    """
    from onebyone._io import write_text_atomic

    check_page_path(path)
    return write_text_atomic(path, text)


def check_page_path(path: str | os.PathLike, option: str = "path") -> Path:
    """Check, before any work, that ``path`` can be written: a file name in an existing, writable folder.

    Raises:
        TypeError: ``path`` is not a str or path.
        FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError: naming
            ``path`` (the command line prints them as one line).

    >>> check_page_path("/no/such/folder/r.html")
    Traceback (most recent call last):
    ...
    FileNotFoundError: [Errno 2] cannot write the page: the folder '/no/such/folder' does not exist: '/no/such/folder/r.html'
    """
    import errno

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{option} must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    folder = p.parent
    if str(path).endswith(("/", os.sep)) or p.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; expected a file name such as report.html", str(p))
    if not folder.exists():
        raise FileNotFoundError(
            errno.ENOENT, f"cannot write the page: the folder {str(folder)!r} does not exist", str(p)
        )
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"cannot write the page: {str(folder)!r} is a file", str(p))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            errno.EACCES, f"cannot write the page: the folder {str(folder)!r} is not writable", str(p)
        )
    return p
