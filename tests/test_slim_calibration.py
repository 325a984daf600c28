"""slim(calibration=N): the factors are fitted to N training samples (decompose's calibration)."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import onebyone.surgery
from onebyone.surgery import slim

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    x = torch.rand(n, 1, 6, 6, generator=g)
    x[torch.arange(n), 0, :, 2 * y] += 2.0  # the class is a bright column
    ds = TensorDataset(x, y)
    ds.num_classes = 3
    return ds


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3)).eval()


@pytest.mark.parametrize(("count", "expected"), [(5, 5), (0, None), (256, 40)])
def test_slim_passes_a_seeded_draw_of_training_samples(tmp_path, monkeypatch, count, expected):
    seen = []

    def fake(net, **kwargs):
        seen.append(kwargs["calibration"])
        raise RuntimeError("stop after decompose's arguments")

    monkeypatch.setattr(onebyone.surgery, "decompose", fake)
    train = _data(40)
    with pytest.raises(RuntimeError, match="stop after"):
        slim(_net(), train, _data(9), tmp_path / "out", speedup=1.5, measure=False, calibration=count,
             log=lambda _: None, onnx=False)
    (calibration,) = seen
    if expected is None:
        assert calibration is None
        return
    assert len(calibration) == expected
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0))[:expected]
    torch.testing.assert_close(torch.stack([calibration[i][0] for i in range(expected)]), train.tensors[0][order])


def test_slim_with_calibration_end_to_end(tmp_path):
    (tmp_path / "net.py").write_text(
        "import torch\nfrom torch import nn\n\n\ndef build():\n"
        "    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),\n"
        "                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))\n"
    )
    result = slim(_net(), _data(48), _data(12), tmp_path / "out", speedup=1.2, measure=False, calibration=16,
                  finetune_epochs=0, log=lambda _: None, onnx=False, base=f"{tmp_path / 'net.py'}:build")
    notes = result.compress["decompose"]["notes"]
    assert "factors fitted to the layer inputs of 16 calibration samples" in notes


@pytest.mark.parametrize("bad", [-1, 1.5, True, "256"])
def test_bad_calibration_count(tmp_path, bad):
    with pytest.raises(ValueError, match="calibration must be an int >= 0"):
        slim(_net(), _data(8), _data(8), tmp_path / "out", calibration=bad, log=lambda _: None)


@pytest.mark.parametrize(("given", "expected"), [({}, 8), ({"round_to": 2}, 2)])
def test_slim_passes_round_to(tmp_path, monkeypatch, given, expected):
    seen = []

    def fake(net, **kwargs):
        seen.append(kwargs["round_to"])
        raise RuntimeError("stop after decompose's arguments")

    monkeypatch.setattr(onebyone.surgery, "decompose", fake)
    with pytest.raises(RuntimeError, match="stop after"):
        slim(_net(), _data(20), _data(9), tmp_path / "out", speedup=1.5, measure=False, log=lambda _: None,
             onnx=False, **given)
    assert seen == [expected]
