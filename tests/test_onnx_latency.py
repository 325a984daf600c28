"""onnxruntime latency before and after in the compress, fuse and slim reports (the onnx extra)."""

import json
import sys
import textwrap

import numpy as np
import pytest
from torch import nn
from typer.testing import CliRunner

import onebyone.onnx
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
        return real_profile(path, input_size, **kwargs)

    monkeypatch.setattr(_profile, "profile", spy)
    before, after = nn.Conv2d(3, 8, 3), nn.Conv2d(3, 2, 3)
    times = _profile.latency_before_after(before, after, (3, 6, 5), repeats=2, threads=1)
    assert sorted(seen) == sorted([
        ("before_b1.onnx", (1, 3, 6, 5), [[1, 3, 6, 5]], 1), ("after_b1.onnx", (1, 3, 6, 5), [[1, 3, 6, 5]], 1),
        ("before_b8.onnx", (8, 3, 6, 5), [[8, 3, 6, 5]], 1), ("after_b8.onnx", (8, 3, 6, 5), [[8, 3, 6, 5]], 1),
    ])
    for key in ("before", "after"):
        assert set(times[key]) == {"ort_ms_b1", "ort_ms_b8"}
        assert all(np.isfinite(v) and v > 0 for v in times[key].values())
    # the models are not changed (export works on a copy)
    assert before.weight.shape == (8, 3, 3, 3) and before.training


@pytest.mark.parametrize("command", ["compress", "fuse"])
def test_compress_and_fuse_print_onnxruntime_rows(real_latency, spec, tmp_path, command):
    extra = ["--rank", "0.5"] if command == "compress" else []
    result = runner.invoke(app, [command, spec, "--input", "1x8x8", "--out", str(tmp_path / "o"), *extra])
    assert result.exit_code == 0, result.output
    for label in ROWS:
        cells = _row(result.output, label)[len(label):].split()
        assert float(cells[0]) > 0 and float(cells[1]) > 0, cells
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
            assert set(fields) == {"ort_ms_b1", "ort_ms_b8"} and all(v > 0 for v in fields.values())
        else:
            assert fields == {}
    notes = [n for n in report["notes"] if "no onnxruntime latency" in n]
    if installed:
        assert notes == [] and _row(result.output, "onnxruntime ms b1") is not None
    else:
        assert len(notes) == 1 and "pip install 'onebyone[onnx]'" in notes[0] and notes[0] in result.output
        assert _row(result.output, "onnxruntime ms b1") is None
