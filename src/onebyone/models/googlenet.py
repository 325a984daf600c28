"""GoogLeNet (Szegedy et al., 2014): nine Inception modules with 1x1 reductions.

``torchvision_compat=True`` (the default) is torchvision's model exactly, BatchNorm and the
3x3 kernel in the "5x5" branch included (pytorch/vision#906), with identical state_dict keys;
``torchvision_compat=False`` uses the paper's true 5x5 convolutions.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from onebyone._checks import check_fraction, check_int
from onebyone.blocks.conv_block import BasicConv2d
from onebyone.blocks.inception import Inception, InceptionAux

from ._base import check_input, init_unless_meta, linear_or_identity
from ._registry import register_model

__all__ = ["GoogLeNet", "GoogLeNetOutputs"]

# (name, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj): the paper's Table 1.
_INCEPTIONS = (
    ("inception3a", 192, 64, 96, 128, 16, 32, 32),
    ("inception3b", 256, 128, 128, 192, 32, 96, 64),
    ("inception4a", 480, 192, 96, 208, 16, 48, 64),
    ("inception4b", 512, 160, 112, 224, 24, 64, 64),
    ("inception4c", 512, 128, 128, 256, 24, 64, 64),
    ("inception4d", 512, 112, 144, 288, 32, 64, 64),
    ("inception4e", 528, 256, 160, 320, 32, 128, 128),
    ("inception5a", 832, 256, 160, 320, 32, 128, 128),
    ("inception5b", 832, 384, 192, 384, 48, 128, 128),
)


class GoogLeNetOutputs(NamedTuple):
    """What GoogLeNet returns in training mode when it has auxiliary heads (torchvision's order).

    Train on ``loss(logits) + 0.3 * (loss(aux_logits1) + loss(aux_logits2))`` as in the paper;
    in eval mode the model returns the logits alone.

    Example:
        >>> import torch.nn.functional as F
        >>> scores = torch.tensor([[2.0, 0.0]])
        >>> out = GoogLeNetOutputs(scores, aux_logits2=scores, aux_logits1=scores)
        >>> y = torch.tensor([0])
        >>> aux = sum(F.cross_entropy(a, y) for a in (out.aux_logits1, out.aux_logits2))
        >>> round((F.cross_entropy(out.logits, y) + 0.3 * aux).item(), 4)  # 1.6 * log(1 + e^-2)
        0.2031
    """

    logits: Tensor
    aux_logits2: Tensor | None
    aux_logits1: Tensor | None


class GoogLeNet(nn.Module):
    """GoogLeNet (Inception v1) with optional auxiliary classifiers.

    In training mode with ``aux_logits=True``, ``forward`` returns
    ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)`` (the paper weights the auxiliary
    losses by 0.3); otherwise it returns the logits.

    Args:
        in_channels: channels of the input images.
        num_classes: outputs of the classifier(s); 0 for none.
        aux_logits: build the two auxiliary heads (after inception4a and inception4d).
        transform_input: re-normalise ImageNet-normalised input the way torchvision's
            pretrained weights expect (3 channels only).
        torchvision_compat: use torchvision's 3x3 kernel in the "5x5" branches (its checkpoints
            load); ``False`` builds the paper's 5x5 convolutions.
        dropout: dropout before the classifier (torchvision 0.2, the paper 0.4).
        aux_dropout: dropout in the auxiliary heads (0.7).

    Example:
        >>> import torch
        >>> model = GoogLeNet(num_classes=7).eval()
        >>> model(torch.randn(1, 3, 32, 32)).shape
        torch.Size([1, 7])
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_classes: int = 1000,
        aux_logits: bool = False,
        transform_input: bool = False,
        torchvision_compat: bool = True,
        dropout: float = 0.2,
        aux_dropout: float = 0.7,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.num_classes = check_int("num_classes", num_classes, minimum=0)
        for name, flag in (
            ("aux_logits", aux_logits),
            ("transform_input", transform_input),
            ("torchvision_compat", torchvision_compat),
        ):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        if transform_input and in_channels != 3:
            raise ValueError(
                f"transform_input=True re-normalises RGB input, so in_channels must be 3, "
                f"got {in_channels}"
            )
        check_fraction("dropout", dropout, low_open=False, high_open=True)
        check_fraction("aux_dropout", aux_dropout, low_open=False, high_open=True)
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.torchvision_compat = torchvision_compat
        self.model_name = "GoogLeNet"
        self.default_input_size = (1, in_channels, 224, 224)
        self.num_features = 1024
        # Below 15 pixels a ceil-mode max pool (maxpool3) would have no window left.
        self.min_input_size = 15

        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        k5 = 3 if torchvision_compat else 5
        for name, cin, c1, c3r, c3, c5r, c5, pp in _INCEPTIONS:
            module = Inception(
                cin, ch1x1=c1, ch3x3red=c3r, ch3x3=c3, ch5x5red=c5r, ch5x5=c5, pool_proj=pp,
                ch5x5_kernel_size=k5,
            )  # fmt: skip
            self.add_module(name, module)
            if name == "inception3b":
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            elif name == "inception4e":
                self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        if aux_logits:
            self.aux1: InceptionAux | None = InceptionAux(512, num_classes, dropout=aux_dropout)
            self.aux2: InceptionAux | None = InceptionAux(528, num_classes, dropout=aux_dropout)
        else:
            self.aux1 = None
            self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = linear_or_identity(1024, num_classes)

        init_unless_meta(self)

    def init_weights(self) -> None:
        """Initialise every layer as torchvision's GoogLeNet does: convolution and linear
        weights from a normal (std 0.01) truncated at +-2, BatchNorm at one and zero.

        The constructor calls it unless the model is on the meta device.

        Example:
            >>> model = GoogLeNet(num_classes=3)
            >>> model.init_weights()
            >>> bool(model.fc.weight.abs().max() <= 2)
            True
        """
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _transform(self, x: Tensor) -> Tensor:
        # From ImageNet mean/std normalisation to the (x - 0.5) / 0.5 the weights were trained on.
        mean = x.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = x.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        return x * (std / 0.5) + (mean - 0.5) / 0.5

    def _features(self, x: Tensor, with_aux: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
        check_input(x, in_channels=self.in_channels, model_name=self.model_name)
        if not isinstance(x, torch.fx.Proxy) and min(x.shape[-2:]) < self.min_input_size:
            raise ValueError(
                f"{self.model_name} needs inputs of at least {self.min_input_size}x"
                f"{self.min_input_size} pixels (its pools shrink the maps 32 times), got "
                f"{tuple(x.shape[-2:])}; resize or pad the input"
            )
        if self.transform_input:
            x = self._transform(x)
        aux1 = aux2 = None
        # N x 3 x 224 x 224
        x = self.maxpool1(self.conv1(x))
        # N x 64 x 56 x 56
        x = self.conv3(self.conv2(x))
        # N x 192 x 56 x 56
        x = self.maxpool2(x)
        # N x 192 x 28 x 28
        x = self.inception3a(x)
        # N x 256 x 28 x 28
        x = self.inception3b(x)
        # N x 480 x 28 x 28
        x = self.maxpool3(x)
        # N x 480 x 14 x 14
        x = self.inception4a(x)
        # N x 512 x 14 x 14
        if with_aux and self.aux1 is not None:
            aux1 = self.aux1(x)
        x = self.inception4b(x)
        # N x 512 x 14 x 14
        x = self.inception4c(x)
        # N x 512 x 14 x 14
        x = self.inception4d(x)
        # N x 528 x 14 x 14
        if with_aux and self.aux2 is not None:
            aux2 = self.aux2(x)
        x = self.inception4e(x)
        # N x 832 x 14 x 14
        x = self.maxpool4(x)
        # N x 832 x 7 x 7
        x = self.inception5a(x)
        # N x 832 x 7 x 7
        x = self.inception5b(x)
        # N x 1024 x 7 x 7
        return x, aux1, aux2

    def forward_features(self, x: Tensor) -> Tensor:
        """Return inception5b's maps (``N x 1024 x 7 x 7`` for 224x224 input).

        Example:
            >>> GoogLeNet().eval().forward_features(torch.randn(1, 3, 64, 64)).shape
            torch.Size([1, 1024, 2, 2])
        """
        return self._features(x, with_aux=False)[0]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool, drop out and classify (or return the pooled ``N x 1024`` vector).

        Example:
            >>> model, maps = GoogLeNet(num_classes=5).eval(), torch.randn(2, 1024, 7, 7)
            >>> model.forward_head(maps).shape, model.forward_head(maps, pre_logits=True).shape
            (torch.Size([2, 5]), torch.Size([2, 1024]))
        """
        x = torch.flatten(self.avgpool(x), 1)
        # N x 1024
        return x if pre_logits else self.fc(self.dropout(x))

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        """Classify ``x``: the logits, or in training mode with auxiliary heads
        ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``.

        Example:
            >>> model = GoogLeNet(num_classes=3, aux_logits=True)
            >>> x = torch.randn(2, 3, 64, 64)
            >>> type(model.train()(x)).__name__, model.eval()(x).shape
            ('GoogLeNetOutputs', torch.Size([2, 3]))
        """
        if self.training and self.aux_logits:
            x, aux1, aux2 = self._features(x, with_aux=True)
            return GoogLeNetOutputs(self.forward_head(x), aux2, aux1)
        return self.forward_head(self.forward_features(x))  # N x num_classes

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier (and the auxiliary heads' last layers) for ``num_classes``.

        Example:
            >>> model = GoogLeNet(aux_logits=True)
            >>> model.reset_classifier(3)
            >>> model.fc.out_features, model.aux1.fc2.out_features, model.num_classes
            (3, 3, 3)
        """
        self.fc = linear_or_identity(self.num_features, num_classes)
        for aux in (self.aux1, self.aux2):
            if aux is not None:
                aux.fc2 = linear_or_identity(1024, num_classes)
                aux.num_classes = num_classes
        self.num_classes = num_classes

    def extra_repr(self) -> str:
        return (
            f"model_name={self.model_name!r}, in_channels={self.in_channels}, "
            f"num_classes={self.num_classes}, aux_logits={self.aux_logits}, "
            f"transform_input={self.transform_input}, torchvision_compat={self.torchvision_compat}"
        )


@register_model
def googlenet(**kwargs: Any) -> GoogLeNet:
    """GoogLeNet, torchvision-compatible (6,624,904 parameters; 13,004,888 with aux heads).

    Example:
        >>> googlenet(num_classes=7, aux_logits=True).aux1.fc2
        Linear(in_features=1024, out_features=7, bias=True)
    """
    model = GoogLeNet(**kwargs)
    model.model_name = "googlenet"
    return model
