"""convolutionalize: exact logits at the original size, score maps on larger inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from onebyone.surgery import convolutionalize

pytestmark = pytest.mark.usefixtures("one_thread")


def vgg_like(pool: int | None = 4) -> nn.Module:
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2))
            self.avgpool = nn.AdaptiveAvgPool2d(pool) if pool else nn.Identity()
            self.classifier = nn.Sequential(
                nn.Linear(8 * (pool or 4) ** 2, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 32), nn.ReLU(),
                nn.Dropout(), nn.Linear(32, 5),
            )

        def forward(self, x):
            x = self.features(x)  # N x 8 x h x w
            x = self.avgpool(x)
            x = torch.flatten(x, 1)
            return self.classifier(x)

    return Net().eval()


def test_flatten_head_is_exact_and_slides_like_crops():
    net = vgg_like(pool=4)
    conv_net, report = convolutionalize(net, (3, 10, 10))
    x = torch.randn(2, 3, 10, 10)
    out = conv_net(x)
    assert out.shape == (2, 5, 1, 1)
    assert_close(out.flatten(1), net(x), rtol=1e-5, atol=1e-6)
    assert report.output_error < 1e-5
    assert [c.method for c in report.changes] == ["linear->conv4x4", "linear->conv1x1", "linear->conv1x1"]
    # On a 14x14 image the body has stride 2: score (i, j) is the original net on the 10x10 crop at (2i, 2j).
    big = torch.randn(1, 3, 14, 14)
    scores = conv_net(big)
    assert scores.shape == (1, 5, 3, 3)
    for i in range(3):
        for j in range(3):
            crop = big[:, :, 2 * i : 2 * i + 10, 2 * j : 2 * j + 10]
            assert_close(scores[:, :, i, j], net(crop), rtol=1e-5, atol=1e-5)
    assert isinstance(conv_net.get_submodule("classifier.0"), nn.Conv2d)
    assert set(conv_net.state_dict()) == set(net.state_dict())
    assert isinstance(net.classifier[0], nn.Linear)  # the input is untouched


def test_adaptive_pool_that_upsamples_is_folded_into_the_kernel():
    # A small input: the body gives a 2x2 map that the adaptive pool stretches to 3x3.
    net = vgg_like(pool=3)
    conv_net, report = convolutionalize(net, (3, 6, 6))
    x = torch.randn(3, 3, 6, 6)
    assert_close(conv_net(x).flatten(1), net(x), rtol=1e-5, atol=1e-6)
    assert report.changes[0].method == "linear->conv2x2"


def test_global_average_pool_head_moves_the_linear_before_the_pool():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.dropout = nn.Dropout(0.2)
            self.fc = nn.Linear(8, 7)

        def forward(self, x):
            x = torch.relu(self.conv(x))
            x = x + self.conv2(x)
            x = torch.flatten(self.avgpool(x), 1)
            return self.fc(self.dropout(x))

    net = Res().eval()
    conv_net, report = convolutionalize(net, (3, 8, 8))
    x = torch.randn(2, 3, 8, 8)
    scores = conv_net(x)
    assert scores.shape == (2, 7, 8, 8)
    assert_close(scores.mean(dim=(2, 3)), net(x), rtol=1e-5, atol=1e-6)
    assert conv_net.get_submodule("fc").kernel_size == (1, 1)
    assert "global average pooling removed" in report.notes[0]
    assert conv_net(torch.randn(1, 3, 16, 16)).shape == (1, 7, 16, 16)


def test_functional_mean_and_view_heads():
    class MeanHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3)
            self.fc = nn.Linear(6, 4)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3)))

    class ViewHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3)
            self.fc1 = nn.Linear(6 * 4 * 4, 10)
            self.fc2 = nn.Linear(10, 4)

        def forward(self, x):
            x = F.avg_pool2d(self.conv(x), 2)
            x = x.view(x.size(0), -1)
            return self.fc2(F.relu(self.fc1(x)))

    x = torch.randn(2, 3, 10, 10)
    net = MeanHead().eval()
    conv_net, _ = convolutionalize(net, (3, 10, 10))
    assert_close(conv_net(x).mean((2, 3)), net(x), rtol=1e-5, atol=1e-6)
    net = ViewHead().eval()
    conv_net, report = convolutionalize(net, (3, 10, 10))
    assert_close(conv_net(x).flatten(1), net(x), rtol=1e-5, atol=1e-6)
    assert report.changes[0].method == "linear->conv8x8"  # the 2x2 average pool folded into an 8x8 kernel


def test_shrinking_max_pool_in_the_head_is_not_supported():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveMaxPool2d(2), nn.Flatten(), nn.Linear(16, 3))
    with pytest.raises(NotImplementedError, match="max pooling maps 6x6 to 2x2"):
        convolutionalize(net, (3, 8, 8))


def test_no_head_and_untraceable_models():
    with pytest.raises(ValueError, match="no classifier head found"):
        convolutionalize(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (3, 8, 8))

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            if x.sum() > 0:
                x = -x
            return self.fc(x.mean((2, 3)))

    with pytest.raises(NotImplementedError, match=r"traces with torch\.fx"):
        convolutionalize(Branchy(), (3, 4, 4))


@pytest.mark.parametrize("size", [(224, 224), (0, 3, 8, 8), "3x8x8", (3, 8.5, 8)])
def test_bad_input_size(size):
    with pytest.raises(ValueError, match="input_size must be"):
        convolutionalize(vgg_like(), size)


def test_pooling_to_1x1_that_is_not_global_is_folded_exactly():
    # AvgPool2d(7) on an 8x8 map gives 1x1 from the top-left 7x7 only: not a global average.
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AvgPool2d(7), nn.Flatten(), nn.Linear(4, 3)).eval()
    conv_net, report = convolutionalize(net, (3, 10, 10))
    x = torch.randn(2, 3, 10, 10)
    assert_close(conv_net(x).flatten(1), net(x), rtol=1e-5, atol=1e-6)
    assert report.changes[0].method == "linear->conv8x8"

    class PoolThenMean(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.pool = nn.AvgPool2d(3)
            self.fc1 = nn.Linear(4, 6)
            self.fc2 = nn.Linear(6, 2)

        def forward(self, x):
            x = self.pool(self.conv(x)).mean((2, 3))  # the pool drops the last 2 rows and columns
            return self.fc2(torch.relu(self.fc1(x)))

    net = PoolThenMean().eval()
    conv_net, _ = convolutionalize(net, (3, 10, 10))
    assert_close(conv_net(x).flatten(1), net(x), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- inputs the model rejects


def test_a_forward_that_fails_inside_a_layer_names_the_layer_and_its_input_shapes():
    from onebyone.errors import OneByOneError

    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))  # built for 8x8
    with pytest.raises(OneByOneError, match=r"^input_size \(1, 3, 9, 9\) does not fit the model: forward failed "
                                            r"in module '2' \(Linear\) on input shapes \(1, 392\): RuntimeError: "):
        convolutionalize(net, (3, 9, 9))


@pytest.mark.parametrize(("name", "size", "message"), [
    ("vgg16", (1, 3, 20, 20), r"vgg16 halves the input 5 times, so it needs at least 32x32"),
    ("googlenet", (1, 3, 10, 10), r"googlenet needs inputs of at least 15x15"),
    ("resnet20", (1, 1, 32, 32), r"resnet20 expects input of shape N x 3 x H x W"),
])
def test_an_input_the_model_rejects_gives_its_own_message_and_prints_nothing(name, size, message, capfd):
    from onebyone.errors import OneByOneError
    from onebyone.models import create_model

    # The user's forward failing is a OneByOneError everywhere (errors.py), the original chained.
    with pytest.raises(OneByOneError, match=message) as info:
        convolutionalize(create_model(name), size)
    assert str(info.value).startswith(f"input_size {size} does not fit the model: forward failed in the model (")
    assert f"on input shapes {size}: ValueError: " in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)
    assert "ShapeProp" not in str(info.value)
    assert capfd.readouterr() == ("", "")  # torch.fx printed no traceback


def test_a_model_that_only_fails_on_the_meta_device_is_still_convolutionalized():
    class ItemScaled(nn.Module):  # .item() cannot run on meta, but traces and runs on the CPU
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4 * 4 * 4, 3)

        def forward(self, x):
            x = self.conv(x) / (x.abs().max().item() + 1.0)
            return self.fc(torch.flatten(x, 1))

    net = ItemScaled().eval()
    conv_net, _ = convolutionalize(net, (3, 6, 6))
    x = torch.randn(2, 3, 6, 6)
    assert_close(conv_net(x).flatten(1), net(x), rtol=1e-5, atol=1e-6)


def test_a_forward_that_fails_only_on_real_values_is_one_error_and_prints_nothing(capfd):
    from onebyone.errors import OneByOneError

    class Cholesky(nn.Module):  # the meta device checks shapes only; zeros are not positive-definite
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3 * 2 * 2, 3)

        def forward(self, x):
            x = torch.linalg.cholesky(x)
            return self.fc(torch.flatten(x, 1))

    with pytest.raises(OneByOneError, match=r"^input_size \(1, 3, 2, 2\): forward failed in the model \(Cholesky\) "
                                            r"on input shapes \(1, 3, 2, 2\): _?LinAlgError: .*not positive-definite") as info:
        convolutionalize(Cholesky(), (3, 2, 2))
    assert isinstance(info.value.__cause__, torch.linalg.LinAlgError)
    assert "ShapeProp" not in str(info.value)
    assert capfd.readouterr() == ("", "")
