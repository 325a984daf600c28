"""The HTML pages without a browser: content against hand numbers, offline, atomic, bad input.

The pages are also opened in headless Chromium in test_html_browser.py.
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import zlib

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import onebyone
from onebyone.cli import app
from onebyone.html import compare_html, diff_html, report_html, tour_html
from onebyone.html._svg import png_data_url
from onebyone.html.report import render_report

_URL_ATTR = re.compile(r"""(?:src|href|action|poster|data)\s*=\s*["']?([^"' >]+)""", re.I)


def _external_refs(text: str) -> list[str]:
    """Every URL the page would fetch: attributes and CSS url(); data: and #fragments are local."""
    refs = _URL_ATTR.findall(text) + re.findall(r"url\(\s*['\"]?([^)'\"]+)", text)
    return [r for r in refs if not r.startswith(("data:", "#"))]


def _conv_relu() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())


def test_report_page_has_one_row_per_report_row_and_hand_counted_values(tmp_path):
    report = onebyone.analyze(_conv_relu(), (1, 3, 10, 10))
    path = report_html(report, tmp_path / "r.html")
    text = path.read_text()
    assert text.count("<tr data-depth=") == len(report.rows) == 3
    # Conv2d(3, 8, 3) on 10x10: 8 output maps of 8x8, each point 3*3*3 MACs; 3*3*3*8 + 8 params.
    macs, params = 3 * 3 * 3 * 8 * 8 * 8, 3 * 3 * 3 * 8 + 8
    assert (macs, params) == (13_824, 224)
    assert f'data-v="{macs}"' in text and f'data-v="{params}">{params:,}' in text
    assert "13.8 K" in text  # the MACs card
    assert _external_refs(text) == []
    assert "<title>" in text and "prefers-color-scheme: dark" in text
    assert 'role="img"' in text and "<desc" in text  # alt text on every chart


def test_report_page_from_a_model_needs_input_size(tmp_path):
    with pytest.raises(ValueError, match="input_size"):
        report_html(_conv_relu(), tmp_path / "r.html")
    with pytest.raises(TypeError, match="report_or_model must be"):
        report_html("resnet18", tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()
    path = report_html(_conv_relu(), tmp_path / "r.html", input_size=(1, 3, 10, 10))
    assert path.read_text().count("<tr data-depth=") == 3


def test_report_hierarchy_folds_without_javascript_and_sums_subtrees():
    net = nn.Sequential(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)), nn.Linear(2, 1))
    text = render_report(onebyone.analyze(net, (1, 4)))
    tree = text.split('<div class="tree">', 1)[1]
    # The model and the inner Sequential have children: two <details>; three Linear leaves.
    assert tree.count("<details") == 2 and tree.count('class="leaf"') == 3
    # Subtree of "0": (4*3 + 3) + (3*2 + 2) = 23 params, 4*3 + 3*2 = 18 MACs.
    assert "23 params · 18 MACs" in tree


def _with_time(report, *, profile=None):
    """Put the time analysis' fields on every leaf row (as the time columns will)."""
    for k, row in enumerate(report.rows):
        if row.is_leaf:
            row.bytes_read = 1000 * (k + 1)
            row.bytes_written = 500
            row.est_time_s = 1e-4 * (k + 1)
            row.measured_time_s = 2e-4 * (k + 1)
    if profile is not None:
        report.device_profile = profile
    return report


def test_time_columns_and_roofline_show_the_reports_time():
    # every analyze report carries the roofline estimate: its column is always there
    plain = render_report(onebyone.analyze(_conv_relu(), (1, 3, 10, 10)))
    assert ">est. time</th>" in plain and ">measured</th>" not in plain
    report = _with_time(onebyone.analyze(_conv_relu(), (1, 3, 10, 10)),
                        profile={"name": "test", "peak_flops": 1e12, "bandwidth": 1e11})  # fmt: skip
    text = render_report(report)
    for head in ("bytes read", "bytes written", "est. time", "measured"):
        assert f">{head}</th>" in text
    for chart in ("bytes moved (read + written) per layer", "estimated time per layer", "measured time per layer"):
        assert f">{chart}</title>" in text
    assert "Roofline" in text and "<polyline" in text
    conv = report.rows[1]
    # The conv row's point: intensity = FLOPs / bytes moved, rate = FLOPs / measured time.
    intensity = conv.flops / (conv.bytes_read + conv.bytes_written)
    assert f"{intensity:.3g} FLOPs/byte" in text
    assert "test: 1 TFLOP/s, 93.1 GiB/s" in text  # 1e11 bytes/s = 93.1 GiB/s
    # The roof bends at the ridge point (peak / bandwidth = 10 FLOPs per byte), which lies
    # between the ReLU's intensity (about 0.15) and the conv's (about 11): three vertices.
    roof = re.search(r'<polyline class="roof" points="([^"]+)"', text).group(1)
    assert len(roof.split()) == 3


def test_roof_from_a_profile_object_or_its_label(monkeypatch):
    from types import SimpleNamespace

    import onebyone.analysis
    from onebyone.html.report import _profile_roof

    # As the time analysis' DeviceProfile: FLOP/s per op class; the roof is the fastest class.
    t4 = SimpleNamespace(name="t4", source="spec sheet", rates={"gemm": 8.1e12, "conv1x1": 6e12},
                         bandwidth=3.2e11, label=lambda: "t4 (spec sheet)")  # fmt: skip
    assert _profile_roof(SimpleNamespace(device_profile=t4)) == (8.1e12, 3.2e11, "t4")
    # A report carries only the label: it is looked up, and must match name and source.
    monkeypatch.setattr(onebyone.analysis, "resolve_profile",
                        lambda n: t4 if n == "t4" else SimpleNamespace(name="other"), raising=False)  # fmt: skip
    assert _profile_roof(SimpleNamespace(device_profile="t4 (spec sheet)")) == (8.1e12, 3.2e11, "t4")
    assert _profile_roof(SimpleNamespace(device_profile="t4 (my notes)")) is None
    assert _profile_roof(SimpleNamespace(device_profile="")) is None


def test_a_model_that_fails_analysis_leaves_no_file_and_keeps_an_old_one(tmp_path):
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    path = tmp_path / "r.html"
    with pytest.raises(onebyone.OneByOneError):
        report_html(Broken(), path, input_size=(1, 3))
    assert not path.exists() and os.listdir(tmp_path) == []
    path.write_text("old")
    with pytest.raises(onebyone.OneByOneError):
        report_html(Broken(), path, input_size=(1, 3))
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["r.html"]


def test_a_renderer_failure_is_our_bug_and_writes_nothing(tmp_path, monkeypatch):
    import onebyone.html.report as report_module

    def broken(report):
        raise KeyError("column")

    monkeypatch.setattr(report_module, "_table", broken)
    with pytest.raises(onebyone.InternalError, match="rendering the page failed: KeyError") as e:
        report_html(onebyone.analyze(nn.Linear(2, 1), (1, 2)), tmp_path / "r.html")
    assert isinstance(e.value.__cause__, KeyError) and os.listdir(tmp_path) == []


def test_bad_output_paths_fail_before_any_work(tmp_path):
    report = onebyone.analyze(_conv_relu(), (1, 3, 10, 10))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report_html(report, tmp_path / "missing" / "r.html")
    assert not (tmp_path / "missing").exists()  # no folder created either
    with pytest.raises(IsADirectoryError):
        report_html(report, tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises((NotADirectoryError, FileNotFoundError)):
        report_html(report, tmp_path / "file" / "r.html")
    with pytest.raises(TypeError, match="path must be"):
        report_html(report, 3)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_an_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            report_html(onebyone.analyze(nn.Linear(2, 1), (1, 2)), ro / "r.html")
    finally:
        ro.chmod(0o700)


def test_a_folder_without_write_permission_is_one_line_and_no_file(tmp_path, monkeypatch):
    # Root may write anywhere, so the folder's permission is faked where the page asks for it.
    import onebyone.html._page as page_module

    folder = tmp_path / "locked"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(page_module.os, "access",
                        lambda p, mode: False if os.fspath(p) == str(folder) else real_access(p, mode))  # fmt: skip
    with pytest.raises(PermissionError, match="not writable"):
        report_html(onebyone.analyze(nn.Linear(2, 1), (1, 2)), folder / "r.html")
    result = CliRunner().invoke(app, ["report", "resnet18", "--html", str(folder / "r.html")])
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1, result.output
    assert "not writable" in result.output
    assert os.listdir(folder) == []


def test_diff_page_ratios_against_hand_numbers(tmp_path):
    a = onebyone.analyze(nn.Sequential(nn.Conv2d(8, 8, 3), nn.ReLU()), (1, 8, 6, 6))
    b = onebyone.analyze(nn.Sequential(nn.Conv2d(8, 2, 3)), (1, 8, 6, 6))
    text = diff_html(a, b, tmp_path / "d.html", labels=("wide", "narrow")).read_text()
    # MACs: 8*9*8*16 = 9216 vs 8*9*2*16 = 2304, ratio 0.25; params 584 vs 146, ratio 0.25.
    assert (8 * 9 * 8 * 16, 8 * 9 * 2 * 16) == (9216, 2304)
    totals = text.split('id="totals"', 1)[1].split("</table>", 1)[0]
    # params (584 vs 146), MACs and parameter memory are 0.25x; FLOPs are not (18,688 vs 4,640:
    # bias adds and the ReLU), activations 0.125x (the ReLU's output is gone too).
    assert totals.count("0.25x") == 3 and "0.248x" in totals and "0.125x" in totals
    matched = text.split('id="matched"', 1)[1].split("</table>", 1)[0]
    assert matched.count("<tr>") == 1 + 2  # header + "(model)" and "0"
    assert "Only in wide (1)" in text and "Only in narrow" not in text
    assert _external_refs(text) == []


def test_diff_page_shows_time_and_its_ratio_when_both_reports_have_it():
    from onebyone.html.report import render_diff

    a = _with_time(onebyone.analyze(_conv_relu(), (1, 3, 10, 10)))
    b = _with_time(onebyone.analyze(_conv_relu(), (1, 3, 10, 10)))
    for row in b.rows:
        if row.is_leaf:
            row.measured_time_s /= 4  # b runs 4x faster, layer by layer
    text = render_diff(a, b)
    totals = text.split('id="totals"', 1)[1].split("</table>", 1)[0]
    # Leaves are rows 1 and 2: measured 2e-4 * 2 + 2e-4 * 3 = 1 ms vs 0.25 ms.
    assert "<td>measured time</td>" in totals and "1 ms" in totals and "250 us" in totals
    matched = text.split('id="matched"', 1)[1].split("</table>", 1)[0]
    assert ">time A</th>" in matched and matched.count(">0.25x<") >= 2


def test_diff_rejects_bad_labels(tmp_path):
    r = onebyone.analyze(nn.Linear(2, 1), (1, 2))
    with pytest.raises(ValueError, match="labels must be two strings"):
        diff_html(r, r, tmp_path / "d.html", labels="ab")
    assert not (tmp_path / "d.html").exists()


def _compare_json(tmp_path, **extra):
    data = {"variants": [
        {"name": "plain_5x5", "twin": None, "params": 455114, "macs": 11065088,
         "latency_ms_b1": 0.8, "latency_ms_b64": 20.0, "accuracy": 0.98, "train_seconds": 10.0},
        {"name": "nin_mlpconv", "twin": "plain_5x5", "params": 29878, "macs": 4396672,
         "latency_ms_b1": 0.5, "latency_ms_b64": 12.0, "accuracy": 0.97, "train_seconds": 8.0, **extra},
    ]}  # fmt: skip
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    return path


def test_compare_page_from_report_json(tmp_path):
    text = compare_html(_compare_json(tmp_path), tmp_path / "c.html").read_text()
    # Two scatter plots (MACs and latency), one point per variant each, one twin arrow each.
    assert text.count("<circle") == 4 and text.count('marker-end="url(#arr)"') == 2
    assert f"{11065088 / 4396672:.1f}x fewer MACs" in text  # 2.5x
    assert text.count("<tr><td>") == 2
    assert "no per-epoch history" in text


def test_compare_page_draws_learning_curves_when_history_is_there(tmp_path):
    history = [{"epoch": e, "val_accuracy": 0.9 + e / 100, "train_loss": 1 / e} for e in (1, 2, 3)]
    text = compare_html(_compare_json(tmp_path, history=history), tmp_path / "c.html").read_text()
    assert text.count("<polyline") == 1  # one series: the other variant has no history


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ('{"rows": []}', "no 'variants' list"),
     ('{"variants": [{"name": "a", "params": 1, "macs": 2}]}', "no numeric field 'accuracy'")],
)  # fmt: skip
def test_compare_page_names_the_file_and_the_field(tmp_path, content, message):
    src = tmp_path / "report.json"
    src.write_text(content)
    with pytest.raises(ValueError, match=message) as e:
        compare_html(src, tmp_path / "c.html")
    assert str(src) in str(e.value)
    assert not (tmp_path / "c.html").exists()


def test_tour_page_pictures_come_from_the_real_modules(tmp_path):
    from onebyone.html.tour import render_tour

    text = render_tour({"inception": {"naive_macs": 303464448, "reduced_macs": 128049152}})
    # Cross-channel pooling: the digit, 50 feature maps and 5 pooled maps, each an inline PNG.
    section = text.split("3. Cross-channel", 1)[1].split("<h2>", 1)[0]
    assert section.count("<image") == 1 + 50 + 5 and "reshape + amax: True" in section
    # Inception 3a branches, read from the modules: 64 + 128 + 32 + 192 (pool passes 192 through).
    assert "64 + 128 + 32 + 192 = 416 maps" in text and "64 + 128 + 32 + 32 = 256 maps" in text
    assert "1x1 conv 192→96" in text and "5x5 conv 16→32" in text
    # Bottleneck: 256*64 + 9*64*64 + 64*256 = 69,632 conv params (+ 768 BN) = 70,400.
    assert 256 * 64 + 9 * 64 * 64 + 64 * 256 + 2 * (64 + 64 + 256) == 70_400
    assert "Bottleneck: 70,400 params" in text
    # The head: Linear(3136, 128) reads 64x7x7 maps, so it is a 7x7 convolution.
    assert "Conv2d(64, 128, 7x7)" in text and "Conv2d(128, 10, 1x1)" in text
    assert _external_refs(text) == []


def test_tour_score_map_is_drawn_when_the_scores_are_there():
    from onebyone.html.tour import render_tour

    best = [7] * 5 + [2] * 5 + [1] * 5
    scores = [[[[10.0 if c == b else 0.0 for b in best]] for c in range(10)]]  # 1 x 10 x 1 x 15
    fc = {"best": best, "score_map": [1, 10, 1, 15], "at_digits": [7, 2, 1], "output_error": 1e-7}
    without = render_tour({"fc_to_conv": fc})
    text = render_tour({"fc_to_conv": {**fc, "scores": scores}})
    assert without.count("softmax") == 0 and text.count("softmax") == 10 * 15
    # softmax of [10, 0 x 9]: e^10 / (e^10 + 9) = 0.9996 -> 1.00; the others 4.5e-5 -> 0.00.
    assert text.count('fill-opacity="1.00"') == 15
    assert "window 0, class 7: score 10.00, softmax 1.00" in text


def test_tour_dot_product_is_the_conv_output():
    from onebyone.html.tour import _dot_product_section

    text = _dot_product_section(0)
    err = float(re.search(r"agree with PyTorch(?:'|&#x27;)s output to ([0-9.e+-]+)", text).group(1))
    assert err < 1e-5
    # Redo it here: the same seed draws the same conv and input.
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 2, kernel_size=1)
    x = torch.randint(0, 10, (1, 4, 3, 3)).float()
    with torch.no_grad():
        centre = conv(x)[0, :, 1, 1]
    for o in range(2):
        assert f"output map {o} at this pixel = {float(centre[o]):.3f}" in text


def test_tour_html_quick_writes_a_page(tmp_path):
    path = tour_html(tmp_path / "tour.html", quick=True)
    text = path.read_text()
    assert "14,336" in text and "Skipped in this run" in text
    with pytest.raises(TypeError, match="result must be"):
        tour_html(tmp_path / "t2.html", result=[1])


def test_png_data_url_round_trips():
    pixels = [[0, 128, 255], [7, 8, 9]]
    png = base64.b64decode(png_data_url(pixels).split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", png[16:24])
    idat_len = struct.unpack(">I", png[33:37])[0]
    raw = zlib.decompress(png[41 : 41 + idat_len])
    assert (w, h) == (3, 2)
    assert [list(raw[1 + r * 4 : 4 + r * 4]) for r in range(2)] == pixels


def test_cli_report_writes_the_page(tmp_path):
    out = tmp_path / "r18.html"
    result = CliRunner().invoke(app, ["report", "resnet18", "--input", "3x64x64", "--html", str(out)])
    assert result.exit_code == 0, result.output
    report = onebyone.analyze(onebyone.create_model("resnet18"), (1, 3, 64, 64))
    assert out.read_text().count("<tr data-depth=") == len(report.rows)


def test_cli_report_bad_input_is_one_line_and_no_file(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from torch import nn\nclass B(nn.Module):\n    def forward(self, x):\n"
        "        raise RuntimeError('boom')\ndef make():\n    return B()\n"
    )
    runner = CliRunner()
    for args, message in [
        (["resnet18", "--html", str(tmp_path / "no" / "r.html")], "does not exist"),
        (["resnet18", "--html", str(tmp_path / "r.txt")], "expected one of .html"),
        ([f"{bad}:make", "--input", "3x8x8", "--html", str(tmp_path / "r.html")], "boom"),
    ]:
        result = runner.invoke(app, ["report", *args])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert sorted(os.listdir(tmp_path)) == ["bad.py"]


def test_cli_tour_and_compare_write_pages(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["tour", "--quick", "--html", str(tmp_path / "tour.html")])
    assert result.exit_code == 0, result.output
    assert "14,336" in (tmp_path / "tour.html").read_text()
    result = runner.invoke(app, [
        "compare", "plain_5x5", "nin_mlpconv", "--quick", "--subset", "200", "--test-subset", "100",
        "--no-latency", "--no-plot", "--out", str(tmp_path / "c"), "--quiet", "--device", "cpu",
        "--html", str(tmp_path / "compare.html"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "c" / "report.json").read_text())
    text = (tmp_path / "compare.html").read_text()
    assert text.count("<tr><td>") == len(saved["variants"]) == 2
    for v in saved["variants"]:
        assert f'data-v="{v["macs"]}"' in text


def test_cli_html_paths_are_checked_before_the_work(tmp_path):
    runner = CliRunner()
    for cmd in (["tour", "--quick"], ["compare", "nin_mlpconv", "--quick", "--out", str(tmp_path)]):
        result = runner.invoke(app, [*cmd, "--html", str(tmp_path / "no" / "p.html")])
        assert result.exit_code == 2 and len(result.output.splitlines()) == 1, result.output
        assert result.output.startswith("error:") and "does not exist" in result.output
