"""``onebyone slim`` end to end on a tiny model and data: the table, the files, resume, bad input."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import onebyone.surgery
from onebyone.cli import app
from onebyone.data import load as load_data
from onebyone.surgery import _finetune, load
from onebyone.train import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")

SOURCE = textwrap.dedent(
    """
    from torch import nn

    def build(num_classes=3):
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
        )
    """
)

runner = CliRunner()


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "net.py").write_text(SOURCE)
    rng = np.random.default_rng(0)

    def split(n):
        labels = rng.integers(0, 3, n)
        images = rng.integers(0, 60, (n, 10, 10)).astype(np.uint8)
        for i, c in enumerate(labels):  # the class is the bright band's position
            images[i, :, 3 * c : 3 * c + 3] += 150
        return images, labels

    (a, b), (c, d) = split(96), split(48)
    np.savez(tmp_path / "tiny.npz", train_images=a, train_labels=b, test_images=c, test_labels=d)
    return f"{tmp_path / 'net.py'}:build", str(tmp_path / "tiny.npz"), tmp_path


def _slim(spec, data, out, *extra):
    return runner.invoke(app, ["slim", spec, "--data", data, "--out", str(out), "--speedup", "1.5",
                               "--finetune", "1", "--batch-size", "16", *extra])


def test_slim_end_to_end_writes_a_loadable_model_and_the_report(setup):
    spec, data, tmp = setup
    out = tmp / "run"
    result = _slim(spec, data, out, "--estimate")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split() == ["before", "after", "ratio"])
    labels = [" ".join(line.split()[:-3]) for line in lines[header + 1 : header + 8]]
    assert labels == ["params", "MACs", "est. ms b1", "est. ms b8", "measured ms b1", "measured ms b8", "accuracy %"]
    report = json.loads((out / "report.json").read_text())
    timed = {f"ms_b{b}{tail}" for b in (1, 8) for tail in ("", "_median", "_spread")}
    assert set(report["before"]) == {"params", "macs", "est_ms_b1", "est_ms_b8", "accuracy", *timed}
    for b in (1, 8):  # shown (else None: unreliable) = the raw median
        shown, median = report["before"][f"ms_b{b}"], report["before"][f"ms_b{b}_median"]
        assert median > 0 and report["before"][f"ms_b{b}_spread"] >= 0 and shown in (None, median)
    assert json.loads((out / "stages.json").read_text()).keys() == {"compress", "finetune", "evaluate"}
    # The saved model is what was evaluated: rebuilt by surgery.load, its accuracy is the report's.
    model = load(out / "model.json", trust_code=True).eval()
    test = load_data(data, "test")
    assert 100 * evaluate(model, test, device="cpu")["accuracy"] == pytest.approx(report["after"]["accuracy"])
    assert report["after"]["params"] == sum(p.numel() for p in model.parameters())
    assert report["before"]["params"] == 32 * 9 + 32 + 64 + 32 * 64 * 9 + 64 + 64 * 64 + 64 + 64 * 3 + 3
    assert report["after"]["macs"] < report["before"]["macs"]


def test_resume_after_a_kill_between_stages_starts_after_compress(setup, monkeypatch):
    spec, data, tmp = setup
    out = tmp / "run"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_finetune, "finetune", killed)
    first = _slim(spec, data, out, "--estimate")
    assert first.exit_code == 130, first.output
    assert list(json.loads((out / "stages.json").read_text())) == ["compress"]
    assert not (out / "model.json").exists() and not (out / "report.json").exists()
    monkeypatch.undo()

    def no_compress(*args, **kwargs):
        raise AssertionError("compress ran again")

    monkeypatch.setattr(onebyone.surgery, "decompose", no_compress)
    again = _slim(spec, data, out, "--estimate", "--resume")
    assert again.exit_code == 0, again.output
    assert "compress: done before" in again.output
    assert (out / "report.json").is_file()
    load(out / "model.json", trust_code=True)


def _files(folder):
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize(("args", "message"), [
    (["--speedup", "1"], "error: --speedup must be a finite number > 1 (the target time is 1/speedup of the model's), got 1.0"),
    (["--speedup", "inf"], "error: --speedup must be a finite number > 1 (the target time is 1/speedup of the model's), got inf"),
    (["--speedup", "nan"], "got nan"),
    (["--finetune", "-1"], "error: --finetune must be an int >= 0 (epochs), got -1"),
    (["--round-to", "0"], "error: --round-to must be"),
    (["--batch-size", "0"], "error: --batch-size must be"),
    (["--calibration", "-1"], "error: --calibration must be"),
    (["--lr", "0"], "error: --lr must be a finite number > 0, got 0.0"),
    (["--lr", "nan"], "error: --lr must be a finite number > 0, got nan"),
])
def test_bad_options_are_one_line_and_write_nothing(setup, args, message):
    spec, data, tmp = setup
    out = tmp / "run"
    result = runner.invoke(app, ["slim", spec, "--data", data, "--out", str(out), *args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert _files(out) == []


@pytest.mark.parametrize(("extra", "expected"), [([], 0.5), (["--max-error", "0.75"], 0.75),
                                                   (["--max-error", "inf"], float("inf"))])
def test_max_error_reaches_decompose_and_the_report(setup, monkeypatch, extra, expected):
    spec, data, tmp = setup
    out = tmp / "run"
    seen = []
    real = onebyone.surgery.decompose

    def spy(net, **kwargs):
        seen.append(kwargs)
        return real(net, **kwargs)

    monkeypatch.setattr(onebyone.surgery, "decompose", spy)
    result = _slim(spec, data, out, "--estimate", "--finetune", "0", "--no-onnx", *extra)
    assert result.exit_code == 0, result.output
    assert [kwargs["max_error"] for kwargs in seen] == [expected]
    text = (out / "report.json").read_text()
    assert "Infinity" not in text  # plain JSON: no cap is null
    assert json.loads(text)["compress"]["max_error"] == (None if expected == float("inf") else expected)


@pytest.mark.parametrize(("value", "shown"), [("0", "0.0"), ("-1", "-1.0"), ("nan", "nan")])
def test_bad_max_error_is_one_line_and_writes_nothing(setup, value, shown):
    spec, data, tmp = setup
    out = tmp / "run"
    result = runner.invoke(app, ["slim", spec, "--data", data, "--out", str(out), "--max-error", value])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: --max-error must be a number > 0 (inf for no cap), got {shown}"
    assert _files(out) == []


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (float("nan"), ValueError), ("0.5", TypeError)])
def test_slim_api_refuses_a_bad_max_error_before_any_work(setup, value, error):
    _, data, tmp = setup
    out = tmp / "run"
    with pytest.raises(error, match=r"^max_error must be a number > 0 \(inf for no cap\), got "):
        onebyone.surgery.slim(_build(3), load_data(data, "train"), load_data(data, "test"), out, max_error=value)
    assert _files(out) == []


def test_class_count_mismatch_is_one_line(setup, tmp_path):
    spec, _, tmp = setup
    rng = np.random.default_rng(1)
    four = tmp / "four.npz"
    images, labels = rng.integers(0, 255, (8, 10, 10)).astype(np.uint8), np.arange(8) % 4
    np.savez(four, train_images=images, train_labels=labels, test_images=images, test_labels=labels)
    ckpt = tmp / "three.safetensors"
    from safetensors.torch import save_file

    net = {k: v.contiguous() for k, v in _build(3).state_dict().items()}
    save_file(net, str(ckpt))
    out = tmp / "run"
    result = runner.invoke(app, ["slim", spec, "--data", str(four), "--checkpoint", str(ckpt), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == ("error: model Sequential returns 3 class scores but the data has 4 classes; "
                                     "build it with num_classes=4")
    assert _files(out) == []


def test_checkpoint_mismatch_is_one_line(setup):
    spec, data, tmp = setup
    ckpt = tmp / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"0.weight": torch.zeros(8, 1, 3, 3)}, str(ckpt))
    out = tmp / "run"
    result = runner.invoke(app, ["slim", spec, "--data", data, "--checkpoint", str(ckpt), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1
    assert _files(out) == []


def test_a_non_empty_out_needs_resume(setup):
    spec, data, tmp = setup
    out = tmp / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = _slim(spec, data, out)
    assert result.exit_code == 2
    assert "is not empty; use --resume" in result.output
    assert _files(out) == ["keep.txt"]


def _build(num_classes):
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
    )


# ------------------------------------------------------------------- compress --speedup


def test_compress_speedup_estimate_end_to_end(setup):
    spec, _, tmp = setup
    out = tmp / "fast"
    result = runner.invoke(app, ["compress", spec, "--input", "1x10x10", "--speedup", "1.2", "--estimate",
                                 "--max-error", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "speedup target 1.2x by estimated time" in result.output
    assert (tmp / "fast.json").is_file() and (tmp / "fast.safetensors").is_file()


def test_compress_speedup_passes_the_targets_to_decompose(setup, monkeypatch):
    spec, _, tmp = setup
    seen = []

    def fake(net, **kwargs):
        seen.append(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(onebyone.surgery, "decompose", fake)
    base = ["compress", spec, "--input", "1x10x10", "--out", str(tmp / "x")]
    runner.invoke(app, [*base, "--speedup", "2"])
    runner.invoke(app, [*base, "--speedup", "3", "--estimate", "--max-error", "0.25"])
    runner.invoke(app, [*base, "--rank", "4"])
    picked = [{k: d.get(k) for k in ("speedup", "measure", "pointwise", "max_error")} for d in seen]
    assert picked == [
        {"speedup": 2.0, "measure": True, "pointwise": True, "max_error": 0.5},
        {"speedup": 3.0, "measure": False, "pointwise": True, "max_error": 0.25},
        {"speedup": None, "measure": False, "pointwise": None, "max_error": None},
    ]


@pytest.mark.parametrize(("args", "message"), [
    (["--speedup", "1"], "error: --speedup must be a finite number > 1 (the target time is 1/speedup of the model's), got 1.0"),
    (["--speedup", "0.5"], "got 0.5"),
    (["--speedup", "inf"], "error: --speedup must be a finite number > 1 (the target time is 1/speedup of the model's), got inf"),
    (["--speedup", "nan"], "got nan"),
    (["--speedup", "2", "--rank", "4"], "error: give exactly one of --energy, --budget or --rank (or --speedup, to choose by time)"),
    (["--speedup", "2", "--budget", "0.5"], "error: give exactly one of --energy, --budget or --rank (or --speedup, to choose by time)"),
    (["--rank", "4", "--estimate"], "error: --estimate goes with --speedup"),
    (["--speedup", "2", "--estimate", "--measure"], "error: give at most one of --measure or --estimate"),
    (["--speedup", "2", "--max-error", "0"], "error: --max-error must be a number > 0 (inf for no cap), got 0.0"),
    (["--speedup", "2", "--max-error", "nan"], "error: --max-error must be a number > 0 (inf for no cap), got nan"),
])
def test_compress_speedup_bad_options_are_one_line(setup, args, message):
    spec, _, tmp = setup
    result = runner.invoke(app, ["compress", spec, "--input", "1x10x10", "--out", str(tmp / "x"), *args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp / "x.json").exists()


def test_slim_latency_is_none_where_the_noise_makes_it_meaningless(monkeypatch):
    from onebyone import _timing
    from onebyone.surgery import _slim

    calls = iter(range(10_000))

    def noisy(fn, *, warmup, repeats):  # before, after, before, ... per round; batch 1 then batch 8
        i = next(calls)
        before = i % 2 == 0
        batch8 = i >= 10
        base = (8.0 if batch8 else 1.0) if before else (4.0 if batch8 else 0.5)
        return base * (5.0 if before and not batch8 and i % 4 == 0 else 1.0)  # before b1 jumps 5x

    monkeypatch.setattr(_timing, "median_seconds", noisy)
    out = _slim._latency_ms(nn.Identity(), nn.Identity(), (1, 2, 2), rounds=5)
    # before at batch 1: samples 5, 1, 5, 1, 5 s -> median 5, IQR 4 / 5 = 80% > 25%
    assert out["before"]["ms_b1"] is None and out["before"]["ms_b1_median"] == 5000.0
    assert out["before"]["ms_b1_spread"] == pytest.approx(0.8)
    assert out["after"] == {"ms_b1": 500.0, "ms_b1_median": 500.0, "ms_b1_spread": 0.0,
                            "ms_b8": 4000.0, "ms_b8_median": 4000.0, "ms_b8_spread": 0.0}
