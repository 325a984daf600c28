"""HTML pages: the resnet152 report's size, open and sort times in headless Chromium; tour --html's cost.

Targets (issue 19): a resnet152 report (over 500 rows) opens and sorts in under 1 s in headless
Chromium and the file is under 2 MB; ``onebyone tour --html`` takes under the tour's own time
plus 5 s.

* open: from ``page.goto`` to the load event, measured in Python (so it includes reading and
  parsing the file, layout and the script), and the browser's own navigation timing.
* sort: a click on the MACs header (the table scrolled into view first), timed in the page from
  the click to the second animation frame after it (the re-ordered table laid out and painted).
* CPU: the renderer process's CPU time over the same two spans (Chrome's ProcessTime metric),
  which the other jobs on a shared machine do not inflate the way they inflate wall time.
* tour: ``onebyone tour --quick`` with and without ``--html`` in fresh processes (the page's
  cost does not depend on --quick: the training steps only change the numbers), and the page
  alone from a finished tour's result.

Command (timings under the shared lock, one thread)::

    OMP_NUM_THREADS=1 flock /tmp/onebyone-bench.lock python benchmarks/bench_html.py
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import onebyone
from onebyone.html import report_html, tour_html

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]  # fmt: skip

SORT_JS = """() => new Promise(done => {
  const th = document.querySelector('#layers thead th:nth-child(6)');
  const t0 = performance.now();
  th.click();
  const t1 = performance.now();
  requestAnimationFrame(() => requestAnimationFrame(() => done([t1 - t0, performance.now() - t0])));
})"""


FRAMES_JS = "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


def _cpu(cdp) -> float:
    """CPU seconds of the page's renderer process so far (Chrome's ProcessTime metric)."""
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}["ProcessTime"]


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def bench_report(rounds: int, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("ONEBYONE_CHROMIUM") or shutil.which("chromium")
    t = time.perf_counter()
    report = onebyone.analyze(onebyone.create_model("resnet152"), (1, 3, 224, 224))
    t_analyze = time.perf_counter() - t
    renders = []
    for _ in range(rounds):
        t = time.perf_counter()
        path = report_html(report, out / "resnet152.html")
        renders.append(time.perf_counter() - t)
    size = path.stat().st_size
    opens, navs, sorts_js, sorts_paint, cpu_open, cpu_sort = [], [], [], [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        for _ in range(rounds):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            c0 = _cpu(cdp)
            t = time.perf_counter()
            page.goto(path.as_uri(), wait_until="load")
            opens.append(time.perf_counter() - t)
            page.evaluate(FRAMES_JS)
            cpu_open.append(_cpu(cdp) - c0)
            navs.append(page.evaluate(
                "(() => { const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime; })()"
            ) / 1000)  # fmt: skip
            rows = page.locator("#layers tbody tr").count()
            # A reader scrolls to the table before clicking its header: sort it on screen.
            page.evaluate("document.querySelector('#layers').scrollIntoView()")
            c0 = _cpu(cdp)
            js, paint = page.evaluate(SORT_JS)
            cpu_sort.append(_cpu(cdp) - c0)
            sorts_js.append(js / 1000)
            sorts_paint.append(paint / 1000)
            page.close()
        browser.close()
    print(f"resnet152 at 1x3x224x224: {len(report.rows)} rows ({rows} in the page's table); "
          f"analyze {t_analyze:.2f} s")  # fmt: skip
    print(f"  file            {size / 1e6:.2f} MB  (target < 2 MB)")
    print(f"  render + write  {_median(renders) * 1000:.0f} ms  (median of {rounds})")
    print(f"  open (goto->load, Python side)   {_median(opens) * 1000:.0f} ms  "
          f"(min {min(opens) * 1000:.0f}, max {max(opens) * 1000:.0f})")
    print(f"  open (browser navigation timing) {_median(navs) * 1000:.0f} ms")
    print(f"  sort by MACs: script {_median(sorts_js) * 1000:.0f} ms, to painted "
          f"{_median(sorts_paint) * 1000:.0f} ms  (max {max(sorts_paint) * 1000:.0f})")
    print(f"  open + sort     {(_median(opens) + _median(sorts_paint)) * 1000:.0f} ms  (target < 1000 ms)")
    print(f"  renderer CPU time (not slowed by other jobs' load): open {_median(cpu_open) * 1000:.0f} ms, "
          f"sort {_median(cpu_sort) * 1000:.0f} ms, sum {(_median(cpu_open) + _median(cpu_sort)) * 1000:.0f} ms")


def bench_tour(rounds: int, out: Path) -> None:
    from rich.console import Console

    from onebyone.tour import run_tour

    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "onebyone", "tour", "--quick"]
    plain, html = [], []
    for _ in range(rounds):  # interleaved, so a busy moment hurts both
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([*cmd, "--html", str(out / "tour.html")], env=env, check=True, capture_output=True)
        html.append(time.perf_counter() - t)
    result = run_tour(quick=True, console=Console(file=io.StringIO()))
    alone = []
    for _ in range(rounds):
        t = time.perf_counter()
        tour_html(out / "tour2.html", result=result)
        alone.append(time.perf_counter() - t)
    size = (out / "tour.html").stat().st_size
    print(f"tour --quick: {_median(plain):.2f} s; with --html: {_median(html):.2f} s; "
          f"difference {_median(html) - _median(plain):+.2f} s (target < +5 s); medians of {rounds}")
    print(f"  the page alone from a finished tour: {_median(alone):.2f} s; file {size / 1e3:.0f} kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as d:
        bench_report(args.rounds, Path(d))
        bench_tour(max(3, args.rounds // 2), Path(d))


if __name__ == "__main__":
    main()
