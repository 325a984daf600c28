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
        # --input takes summary's format (784 is valid); a size the model cannot take fails in it
        (["--rank", "4", "--input", "8x8"], "forward failed in module '0' (Conv2d) on input shapes (1, 8, 8)"),
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


def _tagged_models_and_fake_clock(monkeypatch, fake):
    """Two tagged models and a fake clock: each timed call "takes" its model's next value (ms)."""
    from torch import nn

    from onebyone import _timing

    order = []

    class Tagged(nn.Module):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x):
            order.append((self.tag, x.shape[0]))
            return self.conv(x)

    fake = {k: iter(v) for k, v in fake.items()}

    def fake_measure(fn, *, warmup=3, repeats=15, max_seconds=None):
        assert (warmup, repeats) == (0, 1)
        n = len(order)
        fn()
        return _timing.Measurement((next(fake[order[n][0]]) / 1000,))

    monkeypatch.setattr(_timing, "measure", fake_measure)
    return Tagged("b").train(), Tagged("a").train(), order


def test_latency_pair_warms_up_interleaves_and_takes_medians(monkeypatch):
    from onebyone.cli._surgery_common import latency_pair

    before, after, order = _tagged_models_and_fake_clock(
        monkeypatch, {"b": [5, 1, 9, 3, 7, 2, 2, 8, 2, 2], "a": [4, 4, 6, 1, 2, 3, 3, 1, 3, 3]}
    )
    tb, ta = latency_pair(before, after, (1, 2, 2), rounds={1: 5, 8: 5})
    # Per batch: three untimed warm-ups each, then strictly alternating rounds.
    assert order == ([("b", 1), ("a", 1)] * 3 + [("b", 1), ("a", 1)] * 5
                     + [("b", 8), ("a", 8)] * 3 + [("b", 8), ("a", 8)] * 5)  # fmt: skip
    assert (1000 * tb[1].median, 1000 * ta[1].median) == (5.0, 4.0)  # of [5, 1, 9, 3, 7], [4, 4, 6, 1, 2]
    assert (1000 * tb[8].median, 1000 * ta[8].median) == (2.0, 3.0)  # of [2, 2, 8, 2, 2], [3, 3, 1, 3, 3]
    assert before.training and after.training  # modes restored


def test_latency_rounds_stop_at_the_time_budget_but_not_before_five(monkeypatch):
    from onebyone.cli._surgery_common import latency_pair

    before, after, _ = _tagged_models_and_fake_clock(
        monkeypatch, {"b": [1000] * 5 + [10] * 20, "a": [1000] * 5 + [10] * 20}
    )
    tb, ta = latency_pair(before, after, (1, 2, 2), rounds={1: 6, 8: 20}, max_seconds=1.0)
    assert len(tb[1].samples) == 5 and len(ta[1].samples) == 5  # 1 s spent after round 1
    assert len(tb[8].samples) == 20  # 20 rounds of 2 * 10 ms: within the budget


def test_compress_says_unreliable_instead_of_a_latency_noise_made_absurd(monkeypatch):
    from onebyone._timing import Measurement
    from onebyone.cli import _surgery_common
    from onebyone.cli._surgery_common import echo_totals, latency_cells

    steady = {1: Measurement((0.010,) * 7), 8: Measurement((0.050,) * 7)}
    # The case: batch 1 at 911.83 ms, batch 8 at 208.51 ms for the same model.
    absurd = {1: Measurement((0.91183,) * 7), 8: Measurement((0.20851,) * 7)}
    noisy = {1: Measurement((0.010, 0.011, 0.090, 0.010, 0.200, 0.012, 0.150)), 8: steady[8]}
    assert latency_cells(steady) == {"b1": 10.0, "b8": 50.0}
    assert latency_cells(absurd) == {"b1": None, "b8": None}
    assert latency_cells(noisy) == {"b1": None, "b8": 50.0}
    lines = []
    monkeypatch.setattr(_surgery_common.typer, "echo", lambda text="", **_: lines.append(text))
    echo_totals({"params": 10, **latency_cells(absurd)}, {"params": 5, **latency_cells(steady)})
    text = "\n".join(lines)
    assert "911.83" not in text and "208.51" not in text
    b1 = next(line for line in lines if line.startswith("latency b1"))
    assert b1.split()[3:] == ["unreliable", "10.00", "-"]
    assert "params" in lines[1] and "2.00x" in lines[1]
    assert lines[-1].startswith("unreliable: the repeated timings varied by more than 25%")


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


@pytest.fixture
def steady_latency(monkeypatch):
    """Latency figures without timing anything (these tests are about the files and counts)."""
    from onebyone._timing import Measurement
    from onebyone.cli import _surgery_common

    def fake(before, after, size, **_):
        times = {1: Measurement((0.001,) * 5), 8: Measurement((0.004,) * 5)}
        return times, times

    monkeypatch.setattr(_surgery_common, "latency_pair", fake)


def _invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_saved_model_is_a_model_for_every_command(tmp_path, steady_latency):
    from onebyone.analysis import analyze
    from onebyone.surgery import load_weights

    slim = tmp_path / "slim" / "r20"
    out = _invoke("compress", "resnet20", "--input", "1x28x28", "--rank", "0.5", "-o", slim)
    assert "note: resnet20 has random weights (no --checkpoint)" in out
    saved = load(slim.with_suffix(".json"))
    expected = sum(p.numel() for p in saved.parameters())
    # summary and plan read x.json and x.safetensors alike; the counts are the saved model's.
    for name in ("r20.json", "r20.safetensors"):
        report = json.loads(_invoke("summary", tmp_path / "slim" / name, "--format", "json"))
        assert report["total_params"] == expected
    assert f"{expected:,}" in _invoke("summary", slim.with_suffix(".json"))
    _invoke("plan", slim.with_suffix(".safetensors"))
    # fuse, then compress again and convolutionalize: each saved plan keeps the zoo base and
    # adds its step, and loads back equal to what the command computed.
    _invoke("fuse", slim.with_suffix(".json"), "-o", tmp_path / "fused")
    _invoke("compress", tmp_path / "fused.safetensors", "--rank", "0.5", "-o", tmp_path / "again")
    _invoke("convolutionalize", tmp_path / "again.json", "-o", tmp_path / "conv")
    document = json.loads((tmp_path / "conv.json").read_text())
    assert document["base"] == {"spec": "resnet20", "kwargs": {"in_channels": 1}}
    assert [s["op"] for s in document["steps"]] == ["decompose", "fuse", "decompose", "convolutionalize"]
    # train fine-tunes a saved model; compress --checkpoint then tests it on the same data.
    runs = tmp_path / "runs" / "ft"
    _invoke("train", slim.with_suffix(".json"), "--epochs", "1", "--subset", "10", "--out", runs, "-q")
    out = _invoke("fuse", slim.with_suffix(".json"), "--checkpoint", runs, "-o", tmp_path / "ff")
    assert "random weights" not in out
    # The accuracy before, checked with a plain loop over the bundled test digits.
    from onebyone.data import load as load_data

    net = load(slim.with_suffix(".json"))
    (weights,) = runs.glob("epoch-*/model.safetensors")  # the checkpoint's one epoch folder
    load_weights(net, weights)
    net.eval()
    test = load_data("mnist5k", "test")
    correct = 0
    with torch.no_grad():
        for i in range(len(test)):
            x, y = test[i]
            correct += int(net(x.unsqueeze(0)).argmax(1).item() == int(y))
    assert f"test accuracy on mnist5k (1,000 samples): {100 * correct / len(test):.2f}% before" in out
    fused = load(tmp_path / "ff.json").eval()
    correct_after = 0
    with torch.no_grad():
        for i in range(len(test)):
            x, y = test[i]
            correct_after += int(fused(x.unsqueeze(0)).argmax(1).item() == int(y))
    assert f"{100 * correct_after / len(test):.2f}% after" in out
    assert analyze(net, (1, 1, 28, 28)).total_params == expected


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "missing.json", "does not exist; expected a model saved by compress"),
    (lambda d: (d / "w.safetensors").write_bytes(b"x") and d / "w.safetensors",
     "is a weights file without its plan"),
])  # fmt: skip
def test_a_bad_saved_model_is_one_line(tmp_path, make, message):
    path = make(tmp_path)
    for command in (["summary"], ["plan"], ["fuse", "-o", str(tmp_path / "o")]):
        result = runner.invoke(app, [command[0], str(path), *command[1:]])
        assert result.exit_code == 2 and message in result.output, result.output


def test_a_saved_model_keeps_its_channels(tmp_path, steady_latency):
    _invoke("fuse", "resnet20", "-o", tmp_path / "f")  # 3 input channels
    result = runner.invoke(app, ["train", str(tmp_path / "f.json"), "--epochs", "1",
                                 "--out", str(tmp_path / "runs")])  # fmt: skip
    assert result.exit_code == 2
    assert "is a saved model with 3 input channels, and this run needs 1" in result.output


def test_compress_takes_a_flat_input_like_summary(tmp_path, steady_latency):
    (tmp_path / "mlp.py").write_text(textwrap.dedent("""
        from torch import nn

        def build():
            return nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    """))  # fmt: skip
    spec = f"{tmp_path / 'mlp.py'}:build"
    out = _invoke("compress", spec, "--input", "784", "--rank", "16", "-o", tmp_path / "m")
    # Linear(784, 64) at rank 16: 784*16 + 16*64 + 64 weights instead of 784*64 + 64.
    assert "at input 784" in out
    net = load(tmp_path / "m.json", trust_code=True)
    assert sum(p.numel() for p in net.parameters()) < 784 * 64 + 64 + 64 * 10 + 10


def test_fuse_with_nothing_to_fuse_says_so_without_an_empty_table(tmp_path, steady_latency):
    out = _invoke("fuse", "tutorial_base", "-o", tmp_path / "f")
    assert "nothing to do: fuse found no layer to change in tutorial_base" in out
    assert not any(line.split()[:2] == ["layer", "method"] for line in out.splitlines())
    assert (tmp_path / "f.json").is_file()
