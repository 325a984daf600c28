"""The compress, convolutionalize and fuse commands: output, files written, one-line errors."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from onebyone.cli import app
from onebyone.models import load_model
from onebyone.surgery import decompose, load

SOURCE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def build(num_classes=5):
        return nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, num_classes),
        )
    """
)

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def spec(tmp_path):
    (tmp_path / "net.py").write_text(SOURCE)
    return f"{tmp_path / 'net.py'}:build"


@pytest.fixture
def checkpoint(tmp_path, spec):
    from safetensors.torch import save_file

    torch.manual_seed(5)
    net = load_model(spec)
    path = tmp_path / "trained.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def test_compress_prints_table_totals_and_saves(tmp_path, spec, checkpoint):
    out = tmp_path / "small"
    result = runner.invoke(app, ["compress", spec, "--checkpoint", str(checkpoint), "--rank", "0.5",
                                 "--input", "3x8x8", "--round-to", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "tucker2" in result.output and "latency b8 (ms)" in result.output and "MACs" in result.output
    assert (tmp_path / "small.json").is_file() and (tmp_path / "small.safetensors").is_file()
    # The saved model equals the same decomposition done through the API.
    net = load_model(spec)
    from onebyone.surgery import load_weights

    load_weights(net, checkpoint)
    expected, _ = decompose(net.eval(), rank=0.5, round_to=4, example_input=torch.randn(1, 3, 8, 8))
    again = load(tmp_path / "small.json", trust_code=True).eval()  # its base is a file.py:callable
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(again(x), expected(x))
    assert json.loads((tmp_path / "small.json").read_text())["base"]["spec"] == spec


def test_fuse_and_convolutionalize_commands(tmp_path, spec, checkpoint):
    result = runner.invoke(app, ["fuse", spec, "--checkpoint", str(checkpoint), "--input", "3x8x8",
                                 "-o", str(tmp_path / "fused")])
    assert result.exit_code == 0, result.output
    assert "fold-bn" in result.output and (tmp_path / "fused.json").is_file()
    result = runner.invoke(app, ["convolutionalize", spec, "--input", "3x8x8", "--to", "3x16x16"])
    assert result.exit_code == 0, result.output
    assert "score map at 3x8x8: (1, 5, 1, 1)" in result.output
    assert "score map at 3x16x16: (1, 5, 5, 5)" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--energy", "1.5"], "--energy must be in (0, 1], got 1.5"),
        (["--budget", "1"], "--budget must be in (0, 1), got 1.0"),
        (["--rank", "0"], "--rank must be an integer >= 1, got 0"),
        (["--rank", "abc"], "--rank must be an int >= 1 or a fraction in (0, 1], got 'abc'"),
        (["--rank", "1.5"], "--rank must be an int >= 1 or a fraction in (0, 1], got '1.5'"),
        (["--rank", "4", "--energy", "0.5"], "give exactly one of --energy, --budget or --rank"),
        (["--rank", "4", "--method", "cp"], "--method must be one of 'tucker2', 'reduce'; got 'cp'"),
        (["--rank", "4", "--round-to", "0"], "--round-to must be an integer >= 1, got 0"),
        (["--rank", "4", "--iterations", "-1"], "--iterations must be an integer >= 0, got -1"),
        (["--rank", "4", "--input", "8x8"], "--input must be CxHxW"),  # the wording is the CLI's
        (["--budget", "0.01"], "--budget 0.01 cannot be met: decomposing every candidate layer at the lowest rank "
                               "leaves "),
        (["--rank", "1000"], "--rank 1000 is above the channels of every layer that can be decomposed; "
                             "expected an int <= 32 (the largest rank any layer takes) or a fraction in (0, 1]"),
    ],
)
def test_compress_bad_input_is_one_line(tmp_path, spec, args, message):
    result = runner.invoke(app, ["compress", spec, "--input", "3x8x8", "-o", str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    # A user mistake ends the command through SystemExit(2), never an uncaught exception.
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), lines
    assert not (tmp_path / "o.json").exists() and not (tmp_path / "o.safetensors").exists()


def test_checkpoint_mismatch_is_one_line(tmp_path, spec):
    from safetensors.torch import save_file

    path = tmp_path / "bad.safetensors"
    save_file({"0.weight": torch.zeros(4, 3, 3, 3)}, str(path))
    result = runner.invoke(app, ["fuse", spec, "--checkpoint", str(path), "--input", "3x8x8", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "shape mismatches: 0.weight (file (4, 3, 3, 3), model (16, 3, 3, 3))" in result.output
    assert "missing keys" in result.output


@pytest.mark.parametrize(("to", "message"), [
    ("3x4x4", "--to 3x4x4 is smaller than the size the network accepts (3x8x8)"),
    ("1x16x16", "--to must keep the 3 input channels of 3x8x8, got 1x16x16"),
    ("3x16", "--to must be CxHxW"),
])
def test_convolutionalize_bad_to_is_one_line(spec, to, message):
    result = runner.invoke(app, ["convolutionalize", spec, "--input", "3x8x8", "--to", to])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output


@pytest.mark.parametrize(("source", "words"), [
    ("from torch import nn\ndef build(depth):\n    return nn.Linear(depth, 2)\n", ["build", "depth"]),
    ("def build(:\n", ["SyntaxError"]),
])
def test_unusable_spec_is_one_line(tmp_path, source, words):
    path = tmp_path / "user.py"
    path.write_text(source)
    result = runner.invoke(app, ["fuse", f"{path}:build", "--input", "3x8x8", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("command", ["compress", "fuse", "convolutionalize"])
@pytest.mark.parametrize(("make", "out", "message"), [
    (lambda d: (d / "adir").mkdir(), "adir/", "--out '{d}/adir/' is a directory"),
    (lambda d: (d / "adir").mkdir(), "adir", "--out '{d}/adir' is a directory"),
    (lambda d: (d / "m.json").mkdir(), "m", "would write '{d}/m.json', which is a directory"),
    (lambda d: (d / "afile").write_text(""), "afile/sub/m", "'{d}/afile' is a file, not a folder"),
])
def test_bad_out_fails_before_any_work(tmp_path, spec, command, make, out, message):
    make(tmp_path)
    extra = ["--rank", "0.5"] if command == "compress" else []
    result = runner.invoke(app, [command, spec, "--input", "3x8x8", "-o", f"{tmp_path}/{out}", *extra])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    # One line and nothing else: no report, no timing, so the check ran before the work.
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message.format(d=tmp_path) in lines[0], lines
    assert not list(tmp_path.glob("**/*.safetensors"))


def test_save_refuses_a_directory_target(tmp_path):
    from torch import nn

    from onebyone.surgery import fuse, save

    fused, _ = fuse(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).eval())
    (tmp_path / "x.safetensors").mkdir()
    with pytest.raises(ValueError, match=r"x\.safetensors', which is a directory"):
        save(fused, tmp_path / "x", base="unused")


def test_latency_pair_interleaves_and_takes_medians(monkeypatch):
    from torch import nn

    from onebyone import _timing
    from onebyone.cli._surgery_common import latency_pair

    order = []

    class Tagged(nn.Module):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x):
            order.append((self.tag, x.shape[0]))
            return self.conv(x)

    # A fake clock: each timed call "takes" the next value of its model's sequence (seconds).
    fake = {"b": iter([5, 1, 9, 3, 7, 2, 2, 8]), "a": iter([4, 4, 6, 1, 2, 3, 3, 1])}

    def fake_median_seconds(fn, *, warmup=2, repeats=7):
        n = len(order)
        fn()
        return fake[order[n][0]].__next__() / 1000

    monkeypatch.setattr(_timing, "median_seconds", fake_median_seconds)
    before, after = Tagged("b").train(), Tagged("a").train()
    (b1, b8), (a1, a8) = latency_pair(before, after, (1, 2, 2), rounds={1: 5, 8: 3})
    # Per batch: one untimed warm-up each, then strictly alternating rounds.
    assert order == [("b", 1), ("a", 1)] + [("b", 1), ("a", 1)] * 5 + [("b", 8), ("a", 8)] + [("b", 8), ("a", 8)] * 3
    assert (b1, a1) == (5.0, 4.0)  # medians of [5, 1, 9, 3, 7] and [4, 4, 6, 1, 2]
    assert (b8, a8) == (2.0, 3.0)  # medians of [2, 2, 8] and [3, 3, 1]
    assert before.training and after.training  # modes restored


@pytest.mark.parametrize(("args", "message"), [
    (["vgg16", "--input", "3x20x20"], "vgg16 halves the input 5 times, so it needs at least 32x32"),
    (["googlenet", "--input", "3x10x10"], "googlenet needs inputs of at least 15x15"),
])
def test_convolutionalize_an_input_the_model_rejects_is_one_line(args, message):
    import subprocess
    import sys

    # A subprocess, so that what torch.fx might print to the real stderr is seen too.
    done = subprocess.run([sys.executable, "-m", "onebyone", "convolutionalize", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --input 3x"), done.stderr
    assert "input_size (1, 3, " in lines[0], done.stderr
    assert message in lines[0]
