"""convolutionalize on more heads (issue 20): inception_v3's pool/dropout/flatten/fc, convnext's norm."""

import pytest
import torch
from torch import nn

from onebyone.surgery import convolutionalize

pytestmark = pytest.mark.usefixtures("one_thread")


class InceptionLikeHead(nn.Module):
    """torchvision inception_v3's ending: avgpool, dropout, torch.flatten, fc."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.avgpool(self.body(x))
        x = self.dropout(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


class LayerNorm2d(nn.LayerNorm):
    """torchvision convnext's channel LayerNorm on an NCHW map."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNextLikeHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(LayerNorm2d(16), nn.Flatten(1), nn.Linear(16, 5))

    def forward(self, x):
        return self.classifier(self.avgpool(self.body(x)))


def test_inception_like_head_gives_a_score_map_whose_mean_is_the_logits():
    net = InceptionLikeHead().eval()
    new, report = convolutionalize(net, (3, 12, 12))
    assert report.output_error < 1e-6
    big = torch.randn(2, 3, 24, 24)
    scores = new(big)
    assert scores.shape == (2, 5, 22, 22)  # the body's map: the pool is gone
    # The reference: the original model on the larger input (its adaptive pool averages the map).
    torch.testing.assert_close(scores.mean(dim=(2, 3)), net(big), rtol=1e-5, atol=1e-5)


def test_convnext_like_head_says_why_there_is_no_score_map():
    net = ConvNextLikeHead().eval()
    new, report = convolutionalize(net, (3, 12, 12))
    assert report.output_error < 1e-6
    note = next(n for n in report.notes if n.startswith("no score map"))
    assert "avgpool (AdaptiveAvgPool2d)" in note and "layer_norm" in note
    assert "no score map" in report.to_text()
    big = torch.randn(2, 3, 24, 24)
    assert new(big).shape == (2, 5, 1, 1)
    torch.testing.assert_close(new(big).flatten(1), net(big), rtol=1e-5, atol=1e-5)
