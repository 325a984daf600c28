"""The three transformations on zoo models: exact where they must be, and save/load round trips."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from onebyone.models import create_model
from onebyone.surgery import convolutionalize, decompose, fuse, load, save

pytestmark = pytest.mark.usefixtures("one_thread")


def with_statistics(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics, as after training, so folding is really tested."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_vgg16_score_maps_on_the_meta_device():
    with torch.device("meta"):
        model = create_model("vgg16")
    conv_net, report = convolutionalize(model, (3, 224, 224))
    assert [c.method for c in report.changes] == ["linear->conv7x7", "linear->conv1x1", "linear->conv1x1"]
    assert tuple(conv_net.get_submodule("classifier.0").weight.shape) == (4096, 512, 7, 7)
    with torch.device("meta"):
        assert tuple(conv_net(torch.empty(1, 3, 224, 224)).shape) == (1, 1000, 1, 1)
        assert tuple(conv_net(torch.empty(1, 3, 384, 384)).shape) == (1, 1000, 6, 6)
    assert report.params_after == report.params_before == 138_357_544


def small_vgg() -> nn.Module:
    from onebyone.models.vgg import VGG

    return VGG(((8,), (8,), (16,), (16,), (16,)), num_classes=10, hidden_features=32).eval()


@pytest.mark.parametrize("size", [32, 64, 224])
def test_vgg_convolutionalize_is_exact(size):
    # 32 and 64: the adaptive pool stretches a 1x1 / 2x2 map to 7x7; 224: it is the identity.
    model = small_vgg()
    conv_net, report = convolutionalize(model, (3, size, size))
    x = torch.randn(2, 3, size, size)
    assert_close(conv_net(x).flatten(1), model(x), rtol=1e-5, atol=1e-5)
    k = size // 32
    assert report.changes[0].method == f"linear->conv{k}x{k}"


@pytest.mark.parametrize("name", ["resnet18", "googlenet"])
def test_gap_models_convolutionalize_and_fuse_exactly(name):
    model = with_statistics(create_model(name, num_classes=7))
    x = torch.randn(2, 3, 64, 64)
    expected = model(x)
    conv_net, _ = convolutionalize(model, (3, 64, 64))
    assert_close(conv_net(x).mean(dim=(2, 3)), expected, rtol=1e-5, atol=1e-5)
    fused, report = fuse(model)
    assert_close(fused(x), expected, rtol=1e-5, atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert not report.skipped
    with pytest.raises(ValueError, match="expects input of shape N x 3"):
        fused(torch.randn(1, 1, 64, 64))  # the zoo's input check survives tracing


def test_resnet_decompose_full_rank_and_round_trip(tmp_path):
    model = with_statistics(create_model("resnet20", num_classes=7))
    x = torch.randn(2, 3, 32, 32)
    full, _ = decompose(model, rank=1.0, round_to=1, example_input=x, only_if_cheaper=False)
    assert (full(x) - model(x)).abs().max() < 1e-4
    small, report = decompose(model, budget=0.5, example_input=x)
    assert report.macs_after <= 0.5 * report.macs_before
    fused, _ = fuse(small)
    plan = save(fused, tmp_path / "r20", base="resnet20", base_kwargs={"num_classes": 7})
    again = load(plan).eval()
    assert torch.equal(again(x), fused(x))


def test_convolutionalized_zoo_model_round_trip(tmp_path):
    model = with_statistics(create_model("resnet18", num_classes=5))
    conv_net, _ = convolutionalize(model, (3, 64, 64))
    plan = save(conv_net, tmp_path / "r18", base="resnet18", base_kwargs={"num_classes": 5})
    again = load(plan).eval()
    x = torch.randn(1, 3, 96, 96)
    assert torch.equal(again(x), conv_net(x))
    assert again(x).shape == (1, 5, 3, 3)


@pytest.mark.slow
def test_real_vgg16_convolutionalize_is_exact_on_a_small_input():
    # The real 138M-parameter model on a 32x32 input: the features end at 1x1, which the
    # adaptive pool stretches to 7x7; that stretch is folded into a 1x1 kernel.
    model = create_model("vgg16", num_classes=10).eval()
    conv_net, report = convolutionalize(model, (3, 32, 32))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert_close(conv_net(x).flatten(1), model(x), rtol=1e-5, atol=1e-6)
    assert report.changes[0].method == "linear->conv1x1"
    assert report.output_error < 1e-5


def test_chained_surgeries_keep_the_model_description(tmp_path):
    model = with_statistics(create_model("resnet20", num_classes=7))
    kept = {"default_input_size": tuple(model.default_input_size), "num_classes": 7}
    fused, _ = fuse(model)
    conv_net, _ = convolutionalize(fused, (3, 32, 32))
    # No example_input: decompose needs the default_input_size the chain must have kept.
    small, report = decompose(conv_net, rank=8)
    for net in (fused, conv_net, small):
        assert {k: getattr(net, k, None) for k in kept} == kept
    assert report.changes
    x = torch.randn(1, 3, 32, 32)
    again = load(save(small, tmp_path / "chain", base="resnet20", base_kwargs={"num_classes": 7})).eval()
    assert torch.equal(again(x), small.eval()(x))
    assert getattr(again, "default_input_size", None) == kept["default_input_size"]
