"""onnxruntime latency before and after in the compress, fuse and slim reports (the onnx extra)."""

import json
import sys
import textwrap

import numpy as np
import pytest
from torch import nn
from typer.testing import CliRunner

import onebyone.onnx
from onebyone._timing import UNRELIABLE_NOTE
from onebyone.cli import app
from onebyone.onnx import _profile

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

runner = CliRunner()

SOURCE = textwrap.dedent(
    """
    from torch import nn

    def build(num_classes=3):
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes),
        )
    """
)

ROWS = ("onnxruntime b1 (ms)", "onnxruntime b8 (ms)")


@pytest.fixture
def real_latency(monkeypatch):
    """The real onnxruntime latency (conftest turns it off for every other test), few repeats."""
    real = _profile.latency_or_note
    monkeypatch.setattr(onebyone.onnx, "latency_or_note", lambda *a, **k: real(*a, **{**k, "repeats": 2, "warmup": 1}))


@pytest.fixture
def spec(tmp_path):
    (tmp_path / "net.py").write_text(SOURCE)
    return f"{tmp_path / 'net.py'}:build"


def _row(output, label):
    return next((line for line in output.splitlines() if line.startswith(label)), None)


def test_latency_before_after_exports_static_shapes_and_times_at_the_threads_given(monkeypatch):
    seen = []
    real_profile = _profile.profile

    def spy(path, input_size, **kwargs):
        graph = onnx.load(str(path)).graph
        dims = [[d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]
                for v in graph.input]
        seen.append((path.name, tuple(input_size), dims, kwargs["threads"]))
        results[path.stem] = real_profile(path, input_size, **kwargs)
        return results[path.stem]

    results = {}

    monkeypatch.setattr(_profile, "profile", spy)
    before, after = nn.Conv2d(3, 8, 3), nn.Conv2d(3, 2, 3)
    times = _profile.latency_before_after(before, after, (3, 6, 5), repeats=2, threads=1)
    assert sorted(seen) == sorted([
        ("before_b1.onnx", (1, 3, 6, 5), [[1, 3, 6, 5]], 1), ("after_b1.onnx", (1, 3, 6, 5), [[1, 3, 6, 5]], 1),
        ("before_b8.onnx", (8, 3, 6, 5), [[8, 3, 6, 5]], 1), ("after_b8.onnx", (8, 3, 6, 5), [[8, 3, 6, 5]], 1),
    ])
    for key in ("before", "after"):
        assert set(times[key]) == {"ort_ms_b1", "ort_ms_b8"}
        for batch in (1, 8):  # the median of the timed runs, or None where the machine's noise won
            v = times[key][f"ort_ms_b{batch}"]
            assert v is None or (np.isfinite(v) and v == pytest.approx(results[f"{key}_b{batch}"].median_ms))
    # the models are not changed (export works on a copy)
    assert before.weight.shape == (8, 3, 3, 3) and before.training


@pytest.mark.parametrize("command", ["compress", "fuse"])
def test_compress_and_fuse_print_onnxruntime_rows(real_latency, spec, tmp_path, command):
    extra = ["--rank", "0.5"] if command == "compress" else []
    result = runner.invoke(app, [command, spec, "--input", "1x8x8", "--out", str(tmp_path / "o"), *extra])
    assert result.exit_code == 0, result.output
    for label in ROWS:
        cells = _row(result.output, label)[len(label):].split()
        # a figure, or "unreliable" (and the footnote) when the shared machine was busy
        assert all(c == "unreliable" or float(c) > 0 for c in cells[:2]), cells
        assert "unreliable" not in cells or UNRELIABLE_NOTE in result.output
    assert "no onnxruntime latency" not in result.output


def test_no_onnx_skips_the_export(monkeypatch, spec, tmp_path):
    def fail(*args, **kwargs):
        raise AssertionError("latency_or_note called despite --no-onnx")

    monkeypatch.setattr(onebyone.onnx, "latency_or_note", fail)
    result = runner.invoke(app, ["fuse", spec, "--input", "1x8x8", "--out", str(tmp_path / "o"), "--no-onnx"])
    assert result.exit_code == 0, result.output
    assert _row(result.output, "params") is not None
    assert all(_row(result.output, label) is None for label in ROWS)


def test_without_the_extra_a_note_names_it(real_latency, monkeypatch, spec, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    result = runner.invoke(app, ["fuse", spec, "--input", "1x8x8", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "no onnxruntime latency" in line]
    assert len(notes) == 1 and "pip install 'onebyone[onnx]'" in notes[0] and "onnxruntime" in notes[0]
    assert all(_row(result.output, label) is None for label in ROWS)
    assert (tmp_path / "o.json").is_file()


@pytest.fixture
def tiny_data(tmp_path):
    rng = np.random.default_rng(0)

    def split(n):
        return rng.integers(0, 255, (n, 8, 8)).astype(np.uint8), rng.integers(0, 3, n)

    (a, b), (c, d) = split(32), split(16)
    np.savez(tmp_path / "tiny.npz", train_images=a, train_labels=b, test_images=c, test_labels=d)
    return str(tmp_path / "tiny.npz")


@pytest.mark.parametrize("installed", [True, False])
def test_slim_report_has_onnxruntime_fields_or_the_note(real_latency, monkeypatch, spec, tiny_data, tmp_path,
                                                        installed):
    if not installed:
        monkeypatch.setitem(sys.modules, "onnxruntime", None)
    out = tmp_path / "run"
    result = runner.invoke(app, ["slim", spec, "--data", tiny_data, "--out", str(out), "--speedup", "1.5",
                                 "--finetune", "0", "--estimate"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    for key in ("before", "after"):
        fields = {k: v for k, v in report[key].items() if k.startswith("ort_")}
        if installed:
            assert set(fields) == {"ort_ms_b1", "ort_ms_b8"}
            assert all(v is None or v > 0 for v in fields.values())  # None: unreliable (a busy machine)
        else:
            assert fields == {}
    notes = [n for n in report["notes"] if "no onnxruntime latency" in n]
    if installed:
        assert notes == [] and _row(result.output, "onnxruntime ms b1") is not None
    else:
        assert len(notes) == 1 and "pip install 'onebyone[onnx]'" in notes[0] and notes[0] in result.output
        assert _row(result.output, "onnxruntime ms b1") is None


# ------------------------------------------------------------------- noise: "unreliable", as in PyTorch's cells


STEADY_1, STEADY_8 = [10.0, 10.2, 9.9, 10.1, 10.0], [50.0, 50.5, 49.8, 50.1, 50.0]
NOISY = [10.0, 11.0, 90.0, 10.0, 200.0, 12.0, 150.0]  # quartiles 10.5 and 120 over a median of 12: 9.1


@pytest.fixture
def fake_profile(monkeypatch):
    """onnxruntime "timings" by file name (ms): before b1 noisy; after ran faster at batch 8 than at 1."""
    samples = {"before_b1": NOISY, "before_b8": STEADY_8, "after_b1": STEADY_8, "after_b8": STEADY_1}

    def fake(path, input_size, **kwargs):
        return _profile.ProfileResult(str(path), [tuple(input_size)], float(np.median(samples[path.stem])),
                                      samples[path.stem], kwargs.get("threads", 0))

    monkeypatch.setattr(_profile, "profile", fake)


def test_onnxruntime_latency_is_none_where_noise_won(fake_profile):
    times = _profile.latency_before_after(nn.Conv2d(1, 4, 3), nn.Conv2d(1, 2, 3), (1, 6, 6), repeats=5, threads=1)
    # before: b1's spread is 9.1 (> 0.25), b8's 0.006; after: batch 8 (10 ms) below batch 1 (50 ms)
    assert times == {"before": {"ort_ms_b1": None, "ort_ms_b8": 50.0}, "after": {"ort_ms_b1": None, "ort_ms_b8": None}}
    r = _profile.ProfileResult("m.onnx", [(1, 1, 6, 6)], 12.0, NOISY, 1)
    assert not r.reliable and str(r).endswith("; unreliable: the runs varied by 912% of the median")
    assert _profile.ProfileResult("m.onnx", [(1, 1, 6, 6)], 10.0, STEADY_1, 1).reliable


def test_compress_prints_unreliable_onnxruntime_rows(real_latency, fake_profile, spec, tmp_path):
    result = runner.invoke(app, ["fuse", spec, "--input", "1x8x8", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert _row(result.output, "onnxruntime b1 (ms)").split()[3:] == ["unreliable", "unreliable", "-"]
    assert _row(result.output, "onnxruntime b8 (ms)").split()[3:] == ["50.00", "unreliable", "-"]
    assert UNRELIABLE_NOTE in result.output


def test_slim_marks_unreliable_onnxruntime_rows(real_latency, fake_profile, spec, tiny_data, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["slim", spec, "--data", tiny_data, "--out", str(out), "--speedup", "1.5",
                                 "--finetune", "0", "--estimate"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert (report["before"]["ort_ms_b1"], report["before"]["ort_ms_b8"]) == (None, 50.0)
    assert (report["after"]["ort_ms_b1"], report["after"]["ort_ms_b8"]) == (None, None)
    assert _row(result.output, "onnxruntime ms b1").split()[3:] == ["unreliable", "unreliable", "-"]
    assert _row(result.output, "onnxruntime ms b8").split()[3:] == ["50.000", "unreliable", "-"]
    assert UNRELIABLE_NOTE in report["notes"] and UNRELIABLE_NOTE in result.output
