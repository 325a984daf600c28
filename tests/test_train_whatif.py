"""The channels_last and 1x1-reduction what-ifs against hand arithmetic and real CPU steps.

References are independent of the analyzer: bytes and MACs worked out by hand on small
models, and the activations a real CPU forward saves (``saved_tensors_hooks``, storages told
apart by their data pointers) on a model built by hand with the same change.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from onebyone.analysis.memory import channels_last_whatif, reduction_whatif
from onebyone.cli import app

pytestmark = pytest.mark.usefixtures("one_thread")


def net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def test_reduction_by_hand():
    # Conv2d(4, 8, 3, padding=1) + ReLU on 2x4x6x6, mid = 2: the conv saved its input
    # (288 floats) and ReLU its output (576); after, the 1x1 saves the same input and the
    # 3x3 its own, smaller input (2x2x6x6 = 144 floats). MACs: 72 positions x 8 x 4 x 9
    # before; 72 x 2 x 4 (1x1) + 72 x 8 x 2 x 9 after.
    m = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU())
    w = reduction_whatif(m, (2, 4, 6, 6), fraction=0.5, optimizer="sgd")
    assert (w.name, w.in_channels, w.mid_channels) == ("0", 4, 2)
    assert w.saved_bytes == ((288 + 576) * 4, (288 + 144 + 576) * 4)
    assert w.macs == (72 * 8 * 4 * 9, 72 * 2 * 4 + 72 * 8 * 2 * 9)


def test_reduction_saved_bytes_equal_a_real_step_on_the_modified_model(real_saved_bytes):
    model, x = net(), torch.randn(2, 8, 12, 12)
    w = reduction_whatif(model, tuple(x.shape), fraction=0.25, optimizer="adam")
    # the conv with the largest input: the second (16x12x12, ReLU's output, counted on the
    # ReLU's row) over the first (8x12x12, the model's input)
    assert w.name == "3" and w.mid_channels == 4
    assert w.saved_bytes[0] == real_saved_bytes(copy.deepcopy(model), x)
    real = copy.deepcopy(model)
    real[3] = nn.Sequential(nn.Conv2d(16, 4, 1, bias=False), nn.Conv2d(4, 16, 3, padding=1, bias=False))
    assert w.saved_bytes[1] == real_saved_bytes(real, x)
    assert w.macs[1] < w.macs[0]


def test_reduction_of_a_named_nested_conv(real_saved_bytes):
    model, x = nn.Sequential(nn.ReLU(), net()), torch.randn(1, 8, 6, 6)
    w = reduction_whatif(model, tuple(x.shape), "1.3", fraction=0.5)
    real = copy.deepcopy(model)
    real[1][3] = nn.Sequential(nn.Conv2d(16, 8, 1, bias=False), nn.Conv2d(8, 16, 3, padding=1, bias=False))
    assert w.saved_bytes[1] == real_saved_bytes(real, x)
    assert w.saved_bytes[0] == real_saved_bytes(copy.deepcopy(model), x)


def test_reduction_rejects_bad_arguments():
    m = nn.Sequential(nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3))
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\], got 1.5"):
        reduction_whatif(m, (1, 4, 5, 5), fraction=1.5)
    with pytest.raises(ValueError, match=r"name: '0' is not a Conv2d of Sequential"):
        reduction_whatif(m, (1, 4, 5, 5), "0")
    assert reduction_whatif(nn.Sequential(nn.Linear(3, 2)), (1, 3)) is None


def test_channels_last_against_a_real_channels_last_step(real_saved_bytes):
    model, x = net(), torch.randn(2, 8, 12, 12)
    w = channels_last_whatif(model, tuple(x.shape), optimizer="sgd")
    assert w.saved_bytes[0] == real_saved_bytes(copy.deepcopy(model), x)
    real = copy.deepcopy(model).to(memory_format=torch.channels_last)
    assert w.saved_bytes[1] == real_saved_bytes(real, x.contiguous(memory_format=torch.channels_last))


def test_channels_last_nothing_changes_on_a_linear_model():
    # no 4-d tensor anywhere: the same step; Linear saves its input (2x6 floats), ReLU its output
    w = channels_last_whatif(nn.Sequential(nn.Linear(6, 5), nn.ReLU()), (2, 6), optimizer="sgd")
    assert w.saved_bytes == ((12 + 10) * 4,) * 2
    assert not w.changed


def test_cli_what_if_prints_three_lines():
    result = CliRunner().invoke(app, ["summary", "resnet20", "--input", "3,16,16", "--train", "--what-if"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("What if")]
    assert len(lines) == 3
    assert "checkpointed" in lines[0] and "channels_last" in lines[1] and "1x1 reduction" in lines[2]


def test_cli_what_if_needs_train():
    result = CliRunner().invoke(app, ["summary", "resnet20", "--what-if"])
    assert result.exit_code == 2
    assert "error: --what-if needs --train" in result.output


def test_cli_what_if_refuses_json():
    result = CliRunner().invoke(app, ["summary", "resnet20", "--train", "--what-if", "--format", "json"])
    assert result.exit_code == 2
    assert "error: --what-if prints text lines: use --format text or markdown, not json" in result.output
