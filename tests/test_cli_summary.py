"""``onebyone summary`` and ``onebyone plan``: golden tables for the tutorial's models, formats, errors.

Regenerate the golden files with ``ONEBYONE_REGEN_GOLDEN=1 pytest tests/test_cli_summary.py``
and review the diff: the parameter counts asserted below are the tutorial's own.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import onebyone
from onebyone.cli import app

runner = CliRunner()
GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("ONEBYONE_REGEN_GOLDEN") == "1"

# The tutorial's Keras summaries: per-layer parameters and totals at 256x256x3.
# Sizes as Keras prints them (float32, 1 KB = 1024 bytes).
TUTORIAL = {
    "tutorial_base": ([14_336], "(None, 256, 256, 512)", "56.00 KB"),
    "tutorial_project": ([14_336, 262_656], "(None, 256, 256, 512)", "1.06 MB"),
    "tutorial_reduce": ([14_336, 32_832], "(None, 256, 256, 64)", "184.25 KB"),
    "tutorial_increase": ([14_336, 525_312], "(None, 256, 256, 1024)", "2.06 MB"),
}


def invoke(*args: str):
    return runner.invoke(app, list(args))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGEN:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with ONEBYONE_REGEN_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("model", sorted(TUTORIAL))
def test_tutorial_golden_tables(model):
    result = invoke("summary", model, "--channels-last", "--input", "3x256x256")
    assert result.exit_code == 0, result.output
    params, last_shape, size = TUTORIAL[model]
    text = result.stdout
    for p in params:
        assert f" {p:,} " in text
    assert last_shape in text
    total = sum(params)
    assert f"Total params: {total:,} ({size})" in text
    # the 3x3 conv (3 -> 512), then the 1x1 (512 -> C, if any), k*k*in*out per position
    one_by_one = {"tutorial_project": 512, "tutorial_reduce": 64, "tutorial_increase": 1024}
    macs = (3 * 3 * 3 * 512 + 512 * one_by_one.get(model, 0)) * 256 * 256
    assert f"Total MACs: {macs:,} " in text
    assert f"Trainable params: {total:,}" in text
    assert "Non-trainable params: 0 (0.00 B)" in text
    check_golden(f"summary_{model}.txt", text)


def test_explain_shows_the_formula():
    result = invoke("summary", "tutorial_base", "--input", "3x256x256", "--explain")
    assert result.exit_code == 0, result.output
    assert (
        "3*3*3*512 + 512 = 14,336 params; 3*3*3*512 * 256*256 = 905,969,664 MACs" in result.stdout
    )


def test_json_is_exactly_to_json():
    result = invoke("summary", "tutorial_reduce", "--format", "json", "--batch", "2")
    assert result.exit_code == 0, result.output
    model = onebyone.create_model("tutorial_reduce")
    expected = onebyone.analyze(model, (2, *model.default_input_size[1:])).to_json()
    assert result.stdout == expected + "\n"
    assert json.loads(result.stdout)["total_params"] == 47_168


def test_csv_and_markdown():
    csv = invoke("summary", "tutorial_base", "--format", "csv", "--input", "3x8x8").stdout
    assert csv.splitlines()[0].startswith("name,type,depth")
    md = invoke("summary", "tutorial_base", "--format", "markdown", "--input", "3x8x8").stdout
    assert md.startswith("| Layer (type) | Output Shape | Param # | MACs |")


def test_depth_folds_children():
    result = invoke("summary", "resnet18", "--depth", "1", "--input", "3x64x64")
    assert result.exit_code == 0, result.output
    assert "layer1 (Sequential+)" in result.stdout
    assert "layer1.0" not in result.stdout


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "macs.png"
    result = invoke("summary", "tutorial_7x7", "--input", "3x16x16", "--plot", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_command():
    result = invoke("plan", "tutorial_7x7", "--channels", "64")
    assert result.exit_code == 0, result.output
    assert "32,832 + 200,768 = 233,600" in result.stdout
    data = json.loads(invoke("plan", "tutorial_7x7", "--channels", "64", "--format", "json").stdout)
    assert data["entries"][0]["params_before"] == 1_605_696


def test_plan_ratio_reproduces_the_tutorial():
    # 512 input maps * 0.125 = a 1x1 reduction to 64 before the 7x7 convolution
    result = invoke("plan", "tutorial_7x7", "--ratio", "0.125", "--input", "3x32x32")
    assert result.exit_code == 0, result.output
    assert "1,605,696" in result.stdout and "32,832 + 200,768 = 233,600" in result.stdout


def test_spec_whose_callable_raises_is_one_line(tmp_path):
    spec = tmp_path / "broken.py"
    spec.write_text("def build():\n    raise RuntimeError('no weights here')\n", encoding="utf-8")
    result = invoke("summary", f"{spec}:build", "--input", "3x8x8")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "RuntimeError: no weights here" in lines[0] and "path/to/file.py:callable" in lines[0]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["summary", "no_such_model"], "unknown model"),
        (["summary", "missing_file.py:build"], "does not exist"),
        (["summary", "tutorial_base", "--input", "3x0x4"], "--input"),
        (["summary", "tutorial_base", "--format", "yaml"], "--format"),
        (["summary", "vgg16", "--input", "3x8x8"], "32x32"),
        (["summary", "resnet50", "--input", "1x3x224x224"], "without the batch"),
        (["summary", "tutorial_base", "--plot", "plot.txt"], "--plot"),
        (["plan", "tutorial_7x7", "--ratio", "2"], "--ratio"),
        (["plan", "tutorial_7x7", "--channels", "0"], "--channels"),
        (["plan", "tutorial_7x7", "--sort", "speed"], "--sort"),
    ],
)
def test_user_errors_are_one_line(args, needle):
    result = invoke(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]


def test_unloadable_spec_says_how_a_spec_is_spelled():
    result = invoke("summary", "no_such_model")
    assert (
        "package.module:callable" in result.stderr and "path/to/file.py:callable" in result.stderr
    )


def test_help_says_a_spec_runs_user_code():
    result = invoke("summary", "--help")
    assert result.exit_code == 0
    assert "RUN" in result.stdout


def test_zoo_model_is_built_for_the_input_channels():
    # resnet20's first convolution: 3x3, 16 filters, no bias: 16 * C * 9 parameters.
    result = invoke("summary", "resnet20", "--input", "1x28x28", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)["rows"]}
    assert rows["conv1"]["params"] == 16 * 1 * 9
    assert rows["conv1"]["input_shapes"] == [[1, 1, 28, 28]]


def test_plot_path_checked_before_any_work(tmp_path):
    for bad, needle in ((tmp_path, "is a directory"), (tmp_path / "f.txt", "'.txt'")):
        result = invoke("summary", "tutorial_base", "--plot", str(bad))
        assert result.exit_code == 2
        assert result.stdout == ""  # no table printed before the error
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "--plot" in lines[0] and needle in lines[0], lines


def test_user_model_with_a_chw_default_input_size(tmp_path):
    # A user's model may give default_input_size without the batch, (C, H, W).
    spec = tmp_path / "um.py"
    spec.write_text(
        "from torch import nn\n"
        "def make(in_channels=3):\n"
        "    net = nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.Flatten())\n"
        "    net.default_input_size = (in_channels, 28, 28)\n"
        "    return net\n",
        encoding="utf-8",
    )
    for extra in ([], ["--input", "3x28x28"]):
        result = invoke("summary", f"{spec}:make", "--format", "json", *extra)
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)["rows"]
        assert rows[0]["input_shapes"] == [[1, 3, 28, 28]] and rows[1]["params"] == 4 * 3 * 9 + 4
    result = invoke("summary", f"{spec}:make", "--input", "1x3x28x28")
    assert result.exit_code == 2 and "without the batch" in result.stderr


def test_plot_without_matplotlib_is_one_line_before_any_work(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.backend_bases", None)  # import fails
    result = invoke("summary", "tutorial_base", "--plot", str(tmp_path / "p.png"))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == "error: --plot needs matplotlib: pip install 'onebyone[plot]'"


# ------------------------------------------------------------------ width, huge inputs, nothing to do


@pytest.mark.parametrize("args", [("resnet50",), ("googlenet", "--explain"), ("tutorial_7x7", "--explain")])
def test_summary_fits_an_80_column_terminal(args):
    from onebyone.analysis import analyze, render_text
    from onebyone.cli.summary_cmd import _model_and_input

    net, size = _model_and_input(args[0], None, 1)
    text = render_text(analyze(net, size), explain="--explain" in args, width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "Total params:" in text and "\x1b[" not in text


def test_summary_to_a_pipe_is_not_wrapped_and_has_no_colour():
    result = invoke("summary", "googlenet", "--explain")
    assert result.exit_code == 0, result.output
    assert "\x1b[" not in result.stdout
    # each formula stays on its row's line; the convention note is one line
    assert any(line.startswith("MACs: multiply-accumulates") and line.endswith("its children.")
               for line in result.stdout.splitlines())
    stem = [line for line in result.stdout.splitlines() if "conv1.conv (Conv2d)" in line]
    assert stem and "7*7*3*64 = 9,408 params; 7*7*3*64 * 112*112 = 118,013,952 MACs" in stem[0]


@pytest.mark.parametrize(
    "args",
    [
        ("summary", "resnet20", "--input", "3x99999999999999999999x2"),
        ("summary", "resnet20", "--input", "3x9999999999x9999999999"),
        ("summary", "resnet20", "--batch", "99999999999999999999"),
        ("plan", "resnet20", "--input", "3x9999999999x9999999999"),
    ],
)
def test_sizes_no_tensor_can_hold_are_one_line(args):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "too large" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_plan_with_nothing_to_do_says_so():
    result = invoke("plan", "nin_cifar10", "--channels", "100000")
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.stdout and "Params now" not in result.stdout


class FakeTerminal:
    def isatty(self):
        return True

    def write(self, text):
        return len(text)

    def flush(self):
        pass


def test_output_width_is_the_terminal_width(monkeypatch):
    from onebyone._tables import output_width

    monkeypatch.setenv("COLUMNS", "100")
    assert output_width(FakeTerminal()) == 100
    monkeypatch.setenv("COLUMNS", "50")
    assert output_width(FakeTerminal()) == 80  # narrower terminals get the readable minimum
    assert output_width(io.StringIO()) is None  # a pipe or a file: no wrapping


@pytest.mark.parametrize("command", ["summary", "plan"])
def test_commands_lay_out_for_the_terminal(monkeypatch, command):
    import onebyone._tables as tables

    monkeypatch.setattr(tables, "output_width", lambda file=None: 80)
    extra = ["--explain"] if command == "summary" else []
    result = invoke(command, "googlenet", *extra)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
