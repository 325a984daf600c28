"""Self-contained HTML pages: a model's report, two models side by side, the compare run, the tour.

Each page is one file that loads nothing from the network (styles, script, charts and images
are inline), reads without JavaScript, follows the reader's light or dark theme, and is written
atomically. Charts are inline SVG built here, so no plotting package is needed.

>>> from torch import nn
>>> import tempfile, pathlib
>>> out = report_html(nn.Linear(4, 2), pathlib.Path(tempfile.mkdtemp()) / "r.html", input_size=(1, 4))
>>> out.suffix
'.html'
"""

from onebyone.html._page import check_page_path
from onebyone.html.compare import compare_html
from onebyone.html.report import diff_html, report_html
from onebyone.html.tour import tour_html

__all__ = ["check_page_path", "compare_html", "diff_html", "report_html", "tour_html"]
