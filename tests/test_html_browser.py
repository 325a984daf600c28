"""Every kind of HTML page opened in headless Chromium (Debian's package, driven by Playwright).

Checked on each page: no console error, no request leaves the page, every chart has drawn,
and a screenshot is not blank; on tables: one row per report row, and a header click sorts.
Skipped, with the reason, when Playwright or a Chromium binary is missing (``.ci/run``
installs Debian's ``chromium``; ``pip install 'onebyone[dev]'`` installs Playwright, which
is pointed at that binary: no browser is ever downloaded).
"""

from __future__ import annotations

import io
import json
import os
import shutil

import pytest

import onebyone
from onebyone.html import compare_html, diff_html, report_html, tour_html

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install 'onebyone[dev]')"
)
CHROMIUM = os.environ.get("ONEBYONE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium binary (apt-get install chromium, or set ONEBYONE_CHROMIUM); .ci/run installs it",
)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """One page of each kind, built once for the module."""
    d = tmp_path_factory.mktemp("pages")
    report = onebyone.analyze(onebyone.create_model("resnet18"), (1, 3, 64, 64))
    # The same report with the time analysis' fields, for the time bars and the roofline.
    timed = onebyone.analyze(onebyone.create_model("resnet18"), (1, 3, 64, 64))
    for k, row in enumerate(timed.rows):
        if row.is_leaf:
            row.bytes_read, row.bytes_written = 4096 * (k + 1), 2048
            row.est_time_s = 1e-5 * (1 + k % 7)
    timed.device_profile = {"name": "test", "peak_flops": 1e11, "bandwidth": 2e10}
    other = onebyone.analyze(onebyone.create_model("resnet34"), (1, 3, 64, 64))
    history = [{"epoch": e, "val_accuracy": 0.9 + e / 100, "train_loss": 1 / e} for e in (1, 2)]
    variants = [
        {"name": "plain_5x5", "twin": None, "params": 455114, "macs": 11065088, "latency_ms_b1": 0.8,
         "latency_ms_b64": 20.0, "accuracy": 0.98, "train_seconds": 10.0, "history": history},
        {"name": "nin_mlpconv", "twin": "plain_5x5", "params": 29878, "macs": 4396672, "latency_ms_b1": 0.5,
         "latency_ms_b64": 12.0, "accuracy": 0.97, "train_seconds": 8.0, "history": history},
    ]  # fmt: skip
    (d / "report.json").write_text(json.dumps({"variants": variants}))
    return {
        "report": (report_html(report, d / "report.html"), report),
        "timed": (report_html(timed, d / "timed.html"), timed),
        "diff": (diff_html(report, other, d / "diff.html", labels=("resnet18", "resnet34")), None),
        "compare": (compare_html(d / "report.json", d / "compare.html"), None),
        "tour": (tour_html(d / "tour.html", quick=True), None),
    }


def _open(browser, path, **context):
    """Open ``path``; return the page, its console errors and every request that left the file."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 900}, **context)
    page = ctx.new_page()
    errors, outside = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        url = r.request.url
        if url.startswith(("file:", "data:")):
            r.continue_()
        else:
            outside.append(url)
            r.abort()

    page.route("**/*", route)
    page.goto(path.as_uri())
    return page, errors, outside


def _charts_drawn(page) -> list[str]:
    """The titles of charts that have no size or no marks (empty when every chart drew)."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('svg')).filter(s => {
        const b = s.getBoundingClientRect();
        const marks = s.querySelectorAll('rect, circle, polyline, line, path, image, text').length;
        return !(b.width > 0 && b.height > 0 && marks > 0);
      }).map(s => (s.querySelector('title') || {}).textContent)""")


def _not_blank(page) -> bool:
    from PIL import Image

    img = Image.open(io.BytesIO(page.screenshot(full_page=False))).convert("L")
    lo, hi = img.getextrema()
    return hi - lo > 100 and len(img.getcolors(maxcolors=1 << 16) or range(300)) > 20


@pytest.mark.parametrize("kind", ["report", "timed", "diff", "compare", "tour"])
def test_page_opens_offline_without_errors_and_draws(browser, pages, kind):
    path, _ = pages[kind]
    page, errors, outside = _open(browser, path)
    try:
        assert errors == [] and outside == []
        n = page.evaluate("document.querySelectorAll('svg').length")
        assert n >= 2 and _charts_drawn(page) == []
        assert _not_blank(page)
        assert page.evaluate("Array.from(document.images).every(i => i.complete)")
    finally:
        page.context.close()


def _column(page, table, i):
    return page.evaluate(
        f"Array.from(document.querySelectorAll('{table} tbody tr')).map(r => parseFloat(r.cells[{i}].dataset.v))"
    )


def test_report_table_has_every_row_and_sorts(browser, pages):
    path, report = pages["report"]
    page, errors, _ = _open(browser, path)
    try:
        assert page.locator("#layers tbody tr").count() == len(report.rows)
        page.click("#layers thead th:nth-child(6)")  # MACs: first click sorts largest first
        macs = _column(page, "#layers", 5)
        assert macs == sorted((r.macs for r in report.rows), reverse=True)
        page.click("#layers thead th:nth-child(6)")
        assert _column(page, "#layers", 5) == sorted(r.macs for r in report.rows)
        page.click("#layers thead th:nth-child(1)")  # back to execution order
        assert _column(page, "#layers", 0) == list(range(len(report.rows)))
        assert errors == []
    finally:
        page.context.close()


def test_report_table_folds_by_module(browser, pages):
    path, report = pages["report"]
    page, _, _ = _open(browser, path)
    try:
        visible = "document.querySelectorAll('#layers tbody tr:not(.hidden)').length"
        layer1 = [r for r in report.rows if r.name == "layer1" or r.name.startswith("layer1.")]
        row = page.locator("#layers tbody tr", has=page.locator("td.name", has_text="layer1")).first
        row.locator(".tog").click()
        assert page.evaluate(visible) == len(report.rows) - (len(layer1) - 1)
        row.locator(".tog").click()
        assert page.evaluate(visible) == len(report.rows)
        # Folded, then sorted by another column: every row shows again (no tree in that order).
        row.locator(".tog").click()
        page.click("#layers thead th:nth-child(6)")
        assert page.evaluate(visible) == len(report.rows)
    finally:
        page.context.close()


def test_report_reads_without_javascript(browser, pages):
    path, report = pages["report"]
    page, errors, _ = _open(browser, path, java_script_enabled=False)
    try:
        assert page.locator("#layers tbody tr").count() == len(report.rows)
        assert page.locator("details").count() > 0
        assert page.locator(".tog").count() > 0 and not page.locator(".tog").first.is_visible()
        assert _charts_drawn(page) == [] and errors == []
    finally:
        page.context.close()


def test_diff_and_compare_tables_sort(browser, pages):
    page, _, _ = _open(browser, pages["diff"][0])
    try:
        page.click("#matched thead th:nth-child(10)")  # MACs ratio, largest first
        ratios = _column(page, "#matched", 9)
        assert ratios == sorted(ratios, reverse=True) and len(ratios) > 10
    finally:
        page.context.close()
    page, _, _ = _open(browser, pages["compare"][0])
    try:
        page.click("#variants thead th:nth-child(7)")  # accuracy, highest first
        assert _column(page, "#variants", 6) == [0.98, 0.97]
        page.click("#variants thead th:nth-child(7)")
        assert _column(page, "#variants", 6) == [0.97, 0.98]
    finally:
        page.context.close()


def test_the_checks_catch_a_request_and_a_console_error(browser, tmp_path):
    # The guards above must be able to fail: a page that asks the network and logs an error.
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                   '<img src="http://example.invalid/x.png"><script>console.error("oops")</script></body></html>')  # fmt: skip
    page, errors, outside = _open(browser, bad)
    try:
        # the blocked image may log its own "Failed to load resource" before or after "oops"
        assert outside == ["http://example.invalid/x.png"] and "oops" in errors
    finally:
        page.context.close()
