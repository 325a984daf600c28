"""The model zoo: every registered model builds, runs forward and backward on small inputs,
rejects wrong inputs early, and the torchvision families have torchvision's exact state_dict
layout (keys and shapes derived here from the architecture descriptions) and compute what a
functional re-implementation of torchvision's architecture computes."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from onebyone.blocks import BasicBlock, InvertedResidual
from onebyone.models import (
    GoogLeNet,
    GoogLeNetOutputs,
    NiN,
    ResNet,
    TutorialModel,
    create_model,
    list_models,
    load_model,
)

pytestmark = pytest.mark.usefixtures("one_thread")


CLASSIFIERS = [n for n in list_models() if not n.startswith("tutorial_")]
TUTORIALS = list_models("tutorial_*")
CIFAR_SIZED = {"nin_cifar10", "nin_cifar10_bn", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"}


def small_kwargs(name: str) -> dict:
    # VGG-16's 4096-wide FC layers (120M weights) are slow to train on CPU; its conv stack is
    # exercised in full, with narrow hidden FC layers (the full head is counted on meta).
    return {"hidden_features": 64} if name == "vgg16" else {}


def small_input(name: str, batch: int = 2, channels: int = 3) -> torch.Tensor:
    # Batch 2: BatchNorm in training mode needs > 1 value per channel at 1x1 maps.
    side = 16 if name in CIFAR_SIZED else 32
    return torch.randn(batch, channels, side, side)


def test_registry_lists_the_zoo():
    # Natural order: numbers compare as numbers (resnet18 before resnet101).
    assert list_models("resnet*") == [
        "resnet18", "resnet20", "resnet32", "resnet34", "resnet44", "resnet50", "resnet56",
        "resnet101", "resnet110", "resnet152",
    ]  # fmt: skip
    assert {"googlenet", "nin_cifar10", "vgg16"} <= set(CLASSIFIERS)
    assert TUTORIALS == [
        "tutorial_7x7", "tutorial_7x7_reduced", "tutorial_base", "tutorial_increase",
        "tutorial_project", "tutorial_reduce",
    ]  # fmt: skip


def test_list_models_natural_order_of_every_name():
    names = list_models()

    def key(name):  # an independent natural key, by hand: digit runs as numbers, before letters
        parts, digits = [], ""
        for ch in name:
            if ch.isdigit():
                digits += ch
                continue
            if digits:
                parts.append((0, int(digits), ""))
                digits = ""
            parts.append((1, 0, ch))
        return parts + ([(0, int(digits), "")] if digits else [])

    assert names == sorted(names, key=key)
    assert names.index("nin_cifar10") < names.index("nin_cifar10_bn")
    assert names.index("tutorial_7x7") < names.index("tutorial_7x7_reduced")


def test_unknown_model_suggests_close_matches():
    with pytest.raises(ValueError, match=r"unknown model 'resnet5'.*resnet50"):
        create_model("resnet5")


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_forward_backward(name):
    model = create_model(name, num_classes=7, **small_kwargs(name))
    model.train()
    out = model(small_input(name))
    assert out.shape == (2, 7)
    assert not torch.isnan(out).any()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_forward_backward(name):
    model = create_model(name)
    assert isinstance(model, TutorialModel)
    x = torch.randn(1, 3, 9, 9)
    out = model(x)
    assert out.shape == (1, model.out_channels, 9, 9)  # same padding keeps 9x9
    assert not torch.isnan(out).any() and bool((out >= 0).all())  # ends with ReLU
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.default_input_size == (1, 3, 256, 256)


def test_tutorial_models_structure():
    base = create_model("tutorial_base")
    assert [type(m) for m in base] == [nn.Conv2d, nn.ReLU]
    assert base.conv1.kernel_size == (3, 3) and base.conv1.out_channels == 512
    reduced = create_model("tutorial_7x7_reduced", in_channels=1)
    assert [(c.out_channels, c.kernel_size) for c in reduced if isinstance(c, nn.Conv2d)] == [
        (512, (3, 3)), (64, (1, 1)), (64, (7, 7)),
    ]  # fmt: skip
    assert reduced.default_input_size == (1, 1, 256, 256)
    assert load_model("tutorial_increase").out_channels == 1024
    with pytest.raises(ValueError, match=r"tutorial_base.*num_classes"):
        create_model("tutorial_base", num_classes=10)
    head = reduced[:2]  # slicing gives a plain Sequential of the same layers
    assert type(head) is nn.Sequential and head.conv1 is reduced.conv1


@pytest.mark.parametrize("name", CLASSIFIERS + TUTORIALS)
def test_wrong_channels_rejected_before_any_convolution(name):
    with torch.device("meta"):
        model = create_model(name)
    calls = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_pre_hook(lambda mod, args: calls.append(mod))
    with pytest.raises(ValueError, match=rf"{name} expects input of shape N x 3 x H x W"):
        model(torch.zeros(1, 1, 64, 64, device="meta"))
    with pytest.raises(ValueError, match=name):
        model(torch.zeros(3, 64, 64, device="meta"))  # no batch dimension
    assert calls == []


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_api(name):
    with torch.device("meta"):
        model = create_model(name, num_classes=7).eval()
    assert model.num_classes == 7 and model.in_channels == 3
    n, c, h, w = model.default_input_size
    assert (n, c) == (1, 3) and h == w == (32 if name in CIFAR_SIZED else 224)
    x = torch.zeros(model.default_input_size, device="meta")
    features = model.forward_features(x)
    assert features.dim() == 4
    assert model.forward_head(features, pre_logits=True).shape == (1, model.num_features)
    assert model.forward_head(features).shape == (1, 7)
    with torch.device("meta"):
        model.reset_classifier(4)
    assert model.num_classes == 4 and model(x).shape == (1, 4)
    text = repr(model)
    assert f"model_name={name!r}" in text and "num_classes=4" in text


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_one_channel_28x28(name):
    # The bundled MNIST subset: 1 x 28 x 28, 10 classes.
    with torch.device("meta"):
        model = create_model(name, in_channels=1, num_classes=10).eval()
    x = torch.zeros(2, 1, 28, 28, device="meta")
    if name == "vgg16":
        # Five 2x2 pools need >= 32 pixels: a clear error, not an opaque pooling failure.
        with pytest.raises(ValueError, match=r"vgg16.*at least 32x32"):
            model(x)
    else:
        assert model(x).shape == (2, 10)


def test_num_classes_zero_gives_features():
    with torch.device("meta"):
        model = create_model("resnet50", num_classes=0)
    assert model(torch.zeros(1, 3, 64, 64, device="meta")).shape == (1, 2048)


def test_small_input_errors_name_the_model():
    model = create_model("googlenet").eval()
    assert model(torch.randn(1, 3, 15, 15)).shape == (1, 1000)
    with pytest.raises(ValueError, match="googlenet needs inputs of at least 15x15"):
        model(torch.randn(1, 3, 14, 20))


def test_resnet_argument_errors():
    with pytest.raises(ValueError, match="shortcut"):
        create_model("resnet20", shortcut="D")
    with pytest.raises(ValueError, match="stride_in_1x1"):
        create_model("resnet18", stride_in_1x1=True)
    with pytest.raises(ValueError, match="layers and widths"):
        ResNet(layers=(1, 1), widths=(8,))
    with pytest.raises(ValueError, match=r"widths\[1\]"):
        ResNet(layers=(1, 1), widths=(8, 0))
    with pytest.raises(ValueError, match="stem"):
        ResNet(stem="tiny")


def test_googlenet_and_nin_argument_errors():
    with pytest.raises(ValueError, match="transform_input"):
        GoogLeNet(in_channels=1, transform_input=True)
    with pytest.raises(ValueError, match="dropout"):
        GoogLeNet(dropout=1.5)
    with pytest.raises(ValueError, match="kernel_sizes"):
        NiN(kernel_sizes=(5, 5))
    with pytest.raises(ValueError, match=r"pools\[0\]"):
        NiN(pools=("min", "avg"))
    with pytest.raises(ValueError, match=r"channels\[1\]"):
        NiN(channels=((8,), (8, 0), (8,)))


# ---------------------------------------------------------------- torchvision state_dict layout

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def add_bn(sd: OrderedDict, prefix: str, c: int) -> None:
    for k in BN:
        sd[f"{prefix}.{k}"] = () if k == "num_batches_tracked" else (c,)


def resnet_layout(kind: str, layers, num_classes=1000) -> OrderedDict:
    """torchvision's ResNet keys and shapes, from the architecture description."""
    sd: OrderedDict = OrderedDict()
    sd["conv1.weight"] = (64, 3, 7, 7)
    add_bn(sd, "bn1", 64)
    cin = 64
    for s, (n, width) in enumerate(zip(layers, (64, 128, 256, 512), strict=True)):
        for j in range(n):
            p = f"layer{s + 1}.{j}"
            stride = 2 if s > 0 and j == 0 else 1
            if kind == "basic":
                cout = width
                convs = [(cin, width, 3), (width, width, 3)]
            else:
                cout = 4 * width
                convs = [(cin, width, 1), (width, width, 3), (width, cout, 1)]
            for i, (a, b, k) in enumerate(convs, start=1):
                sd[f"{p}.conv{i}.weight"] = (b, a, k, k)
                add_bn(sd, f"{p}.bn{i}", b)
            if stride != 1 or cin != cout:
                sd[f"{p}.downsample.0.weight"] = (cout, cin, 1, 1)
                add_bn(sd, f"{p}.downsample.1", cout)
            cin = cout
    sd["fc.weight"] = (num_classes, cin)
    sd["fc.bias"] = (num_classes,)
    return sd


# name -> (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), the paper's Table 1
TABLE1 = OrderedDict(
    inception3a=(64, 96, 128, 16, 32, 32),
    inception3b=(128, 128, 192, 32, 96, 64),
    inception4a=(192, 96, 208, 16, 48, 64),
    inception4b=(160, 112, 224, 24, 64, 64),
    inception4c=(128, 128, 256, 24, 64, 64),
    inception4d=(112, 144, 288, 32, 64, 64),
    inception4e=(256, 160, 320, 32, 128, 128),
    inception5a=(256, 160, 320, 32, 128, 128),
    inception5b=(384, 192, 384, 48, 128, 128),
)


def googlenet_layout(aux: bool, num_classes=1000, k5=3) -> OrderedDict:
    sd: OrderedDict = OrderedDict()

    def basic(prefix, cin, cout, k):
        sd[f"{prefix}.conv.weight"] = (cout, cin, k, k)
        add_bn(sd, f"{prefix}.bn", cout)

    basic("conv1", 3, 64, 7)
    basic("conv2", 64, 64, 1)
    basic("conv3", 64, 192, 3)
    cin = 192
    for name, (c1, c3r, c3, c5r, c5, pp) in TABLE1.items():
        basic(f"{name}.branch1", cin, c1, 1)
        basic(f"{name}.branch2.0", cin, c3r, 1)
        basic(f"{name}.branch2.1", c3r, c3, 3)
        basic(f"{name}.branch3.0", cin, c5r, 1)
        basic(f"{name}.branch3.1", c5r, c5, k5)
        basic(f"{name}.branch4.1", cin, pp, 1)
        cin = c1 + c3 + c5 + pp
    if aux:
        for name, c in (("aux1", 512), ("aux2", 528)):
            basic(f"{name}.conv", c, 128, 1)
            sd[f"{name}.fc1.weight"] = (1024, 2048)
            sd[f"{name}.fc1.bias"] = (1024,)
            sd[f"{name}.fc2.weight"] = (num_classes, 1024)
            sd[f"{name}.fc2.bias"] = (num_classes,)
    sd["fc.weight"] = (num_classes, 1024)
    sd["fc.bias"] = (num_classes,)
    return sd


def vgg16_layout() -> OrderedDict:
    sd: OrderedDict = OrderedDict()
    index, cin = 0, 3
    for stage in ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)):
        for width in stage:
            sd[f"features.{index}.weight"] = (width, cin, 3, 3)
            sd[f"features.{index}.bias"] = (width,)
            index += 2  # conv, ReLU
            cin = width
        index += 1  # max pool
    for i, (a, b) in zip((0, 3, 6), ((25088, 4096), (4096, 4096), (4096, 1000)), strict=True):
        sd[f"classifier.{i}.weight"] = (b, a)
        sd[f"classifier.{i}.bias"] = (b,)
    return sd


def layout_of(model: nn.Module) -> OrderedDict:
    return OrderedDict((k, tuple(v.shape)) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("resnet18", resnet_layout("basic", (2, 2, 2, 2))),
        ("resnet34", resnet_layout("basic", (3, 4, 6, 3))),
        ("resnet50", resnet_layout("bottleneck", (3, 4, 6, 3))),
        ("resnet101", resnet_layout("bottleneck", (3, 4, 23, 3))),
        ("resnet152", resnet_layout("bottleneck", (3, 8, 36, 3))),
        ("googlenet", googlenet_layout(aux=False)),
        ("vgg16", vgg16_layout()),
    ],
)
def test_torchvision_state_dict_layout(name, expected):
    with torch.device("meta"):
        model = create_model(name)
    assert layout_of(model) == expected


def test_googlenet_layout_with_aux_and_paper_5x5():
    with torch.device("meta"):
        aux = create_model("googlenet", aux_logits=True, num_classes=7)
        paper = create_model("googlenet", torchvision_compat=False)
    assert layout_of(aux) == googlenet_layout(aux=True, num_classes=7)
    assert layout_of(paper) == googlenet_layout(aux=False, k5=5)


def fake_checkpoint(layout: OrderedDict, generator: torch.Generator) -> OrderedDict:
    """Random, well-scaled tensors with the given shapes: a stand-in for a torchvision file."""
    sd = OrderedDict()
    for key, shape in layout.items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=generator) + 0.5
        elif key.endswith(("running_mean", "bias")):
            sd[key] = 0.1 * torch.randn(shape, generator=generator)
        elif len(shape) == 1:  # BatchNorm weight
            sd[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            fan_in = torch.Size(shape[1:]).numel()
            sd[key] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
    return sd


def bn_ref(h, sd, prefix, eps):
    return F.batch_norm(
        h, sd[f"{prefix}.running_mean"], sd[f"{prefix}.running_var"], sd[f"{prefix}.weight"],
        sd[f"{prefix}.bias"], False, 0.0, eps,
    )  # fmt: skip


def resnet_ref(sd, x, kind, layers):
    """torchvision's ResNet (v1.5) written functionally from its description."""
    h = F.relu(bn_ref(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), sd, "bn1", 1e-5))
    h = F.max_pool2d(h, 3, 2, 1)
    for s, n in enumerate(layers):
        for j in range(n):
            p = f"layer{s + 1}.{j}"
            stride = 2 if s > 0 and j == 0 else 1
            if kind == "basic":
                o = F.conv2d(h, sd[f"{p}.conv1.weight"], stride=stride, padding=1)
                o = F.relu(bn_ref(o, sd, f"{p}.bn1", 1e-5))
                o = bn_ref(F.conv2d(o, sd[f"{p}.conv2.weight"], padding=1), sd, f"{p}.bn2", 1e-5)
            else:
                o = F.relu(bn_ref(F.conv2d(h, sd[f"{p}.conv1.weight"]), sd, f"{p}.bn1", 1e-5))
                o = F.conv2d(o, sd[f"{p}.conv2.weight"], stride=stride, padding=1)
                o = F.relu(bn_ref(o, sd, f"{p}.bn2", 1e-5))
                o = bn_ref(F.conv2d(o, sd[f"{p}.conv3.weight"]), sd, f"{p}.bn3", 1e-5)
            if f"{p}.downsample.0.weight" in sd:
                short = F.conv2d(h, sd[f"{p}.downsample.0.weight"], stride=stride)
                short = bn_ref(short, sd, f"{p}.downsample.1", 1e-5)
            else:
                short = h
            h = F.relu(o + short)
    return F.linear(h.mean((2, 3)), sd["fc.weight"], sd["fc.bias"])


def googlenet_ref(sd, x, transform_input):
    """torchvision's GoogLeNet (eval mode) written functionally from its description."""
    if transform_input:
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        x = (x * std + mean - 0.5) / 0.5  # undo ImageNet normalisation, map [0, 1] to [-1, 1]

    def basic(h, prefix, padding=0, stride=1):
        h = F.conv2d(h, sd[f"{prefix}.conv.weight"], stride=stride, padding=padding)
        return F.relu(bn_ref(h, sd, f"{prefix}.bn", 1e-3))

    def pool(h, k=3):
        return F.max_pool2d(h, k, 2, ceil_mode=True)

    h = pool(basic(x, "conv1", padding=3, stride=2))
    h = pool(basic(basic(h, "conv2"), "conv3", padding=1))
    for name in TABLE1:
        branches = [
            basic(h, f"{name}.branch1"),
            basic(basic(h, f"{name}.branch2.0"), f"{name}.branch2.1", padding=1),
            basic(basic(h, f"{name}.branch3.0"), f"{name}.branch3.1", padding=1),
            basic(F.max_pool2d(h, 3, 1, 1, ceil_mode=True), f"{name}.branch4.1"),
        ]
        h = torch.cat(branches, 1)
        if name == "inception3b":
            h = pool(h)
        elif name == "inception4e":
            h = pool(h, 2)
    return F.linear(h.mean((2, 3)), sd["fc.weight"], sd["fc.bias"])


@pytest.mark.parametrize(
    ("name", "kind", "layers"),
    [("resnet18", "basic", (2, 2, 2, 2)), ("resnet50", "bottleneck", (3, 4, 6, 3))],
)
def test_resnet_loads_a_torchvision_layout_checkpoint_and_matches(name, kind, layers):
    g = torch.Generator().manual_seed(1)
    sd = fake_checkpoint(resnet_layout(kind, layers), g)
    model = create_model(name)
    model.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(
            model.eval()(x), resnet_ref(sd, x, kind, layers), rtol=1e-4, atol=1e-4
        )


@pytest.mark.parametrize("transform_input", [False, True])
def test_googlenet_loads_a_torchvision_layout_checkpoint_and_matches(transform_input):
    g = torch.Generator().manual_seed(2)
    sd = fake_checkpoint(googlenet_layout(aux=True), g)
    model = create_model("googlenet", aux_logits=True, transform_input=transform_input)
    model.load_state_dict(sd, strict=True)  # torchvision's files include the aux heads
    x = torch.randn(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        out = model.eval()(x)
        torch.testing.assert_close(out, googlenet_ref(sd, x, transform_input), rtol=1e-4, atol=1e-4)


def test_googlenet_aux_outputs_in_training():
    model = create_model("googlenet", num_classes=7, aux_logits=True)
    out = model.train()(torch.randn(2, 3, 32, 32))
    assert isinstance(out, GoogLeNetOutputs)
    assert [t.shape for t in out] == [(2, 7)] * 3
    (out.logits.sum() + 0.3 * (out.aux_logits1.sum() + out.aux_logits2.sum())).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 7)  # plain logits in eval
    model.reset_classifier(3)
    assert model.aux1.fc2.out_features == model.aux2.fc2.out_features == 3


def test_resnet_variants():
    v1 = create_model("resnet50", stride_in_1x1=True)
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    b = create_model("resnet20", shortcut="B")
    assert isinstance(b.layer2[0].downsample[0], nn.Conv2d)
    a = create_model("resnet20")
    assert sum(p.numel() for p in a.layer2[0].downsample.parameters()) == 0
    z = create_model("resnet18", zero_init_residual=True)
    assert all(not blk.bn2.weight.detach().any() for blk in z.layer1)


def test_nin_structure():
    model = create_model("nin_cifar10")
    kinds = [type(m).__name__ for m in model.features]
    assert kinds == [
        "MLPConv",
        "MaxPool2d",
        "Dropout",
        "MLPConv",
        "AvgPool2d",
        "Dropout",
        "MLPConv",
    ]
    assert model.classifier.kernel_size == (1, 1) and model.classifier.out_channels == 10
    assert model.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 192, 8, 8)


@pytest.mark.parametrize("name", ["resnet20", "nin_cifar10", "googlenet", "tutorial_reduce"])
def test_fx_traceable(name):
    # The surgery traces models with torch.fx; the input checks must not get in the way.
    model = create_model(name).eval()
    traced = fx.symbolic_trace(model)
    x = torch.randn(2, 3, 16 if name in CIFAR_SIZED | {"tutorial_reduce"} else 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """A package ``userpkg_<id>`` on sys.path with a module per test case."""
    import sys

    name = f"userpkg_{id(tmp_path)}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "inst.py").write_text(
        "from torch import nn\nNET = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n"
    )
    (root / "broken.py").write_text("def f(:\n")
    (root / "raises.py").write_text("raise RuntimeError('no GPU here')\n")
    (root / "needs.py").write_text(
        "from torch import nn\n"
        "def build(depth):\n    return nn.Linear(depth, 2)\n"
        "def fails(num_classes=3):\n    raise RuntimeError('bad config')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for mod in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[mod]


def test_spec_instance_is_copied(user_package):
    import importlib

    original = importlib.import_module(f"{user_package}.inst").NET
    a = load_model(f"{user_package}.inst:NET")
    b = load_model(f"{user_package}.inst:NET")
    assert a is not original and b is not a
    a[1] = nn.Identity()  # what the surgery's load does to the model it gets
    with torch.no_grad():
        a[0].weight.zero_()
    assert isinstance(original[1], nn.ReLU) and isinstance(b[1], nn.ReLU)
    assert original[0].weight.abs().sum() > 0
    torch.testing.assert_close(b[0].weight, original[0].weight)


@pytest.mark.parametrize("suffix, words", [
    ("broken:f", ["SyntaxError", "broken"]),
    ("raises:f", ["RuntimeError", "no GPU here"]),
    ("needs:build", ["needs:build", "depth"]),
    ("needs:fails", ["needs:fails", "RuntimeError", "bad config"]),
])
def test_spec_errors_are_value_errors_naming_the_spec(user_package, suffix, words):
    spec = f"{user_package}.{suffix}"
    with pytest.raises(ValueError) as info:
        load_model(spec, num_classes=3)
    message = str(info.value)
    assert spec.split(":")[0] in message
    for word in words:
        assert word in message


def test_file_spec_callable_needing_arguments(tmp_path):
    path = tmp_path / "needs.py"
    path.write_text("from torch import nn\ndef build(depth):\n    return nn.Linear(depth, 2)\n")
    with pytest.raises(ValueError, match=r"needs\.py:build.*depth"):
        load_model(f"{path}:build")


# ------------------------------------------------------------------------ initialisation


INIT_MODELS = ["resnet20", "resnet50", "googlenet", "vgg16", "nin_cifar10"]


@pytest.mark.parametrize("name", INIT_MODELS)
def test_init_weights_is_called_once_and_never_on_meta(name, monkeypatch):
    cls = type(create_model(name, **small_kwargs(name)))
    calls = []
    real = cls.init_weights
    monkeypatch.setattr(cls, "init_weights", lambda self, **kw: calls.append(kw) or real(self, **kw))
    create_model(name, **small_kwargs(name))
    assert len(calls) == 1
    with torch.device("meta"):
        create_model(name, **small_kwargs(name))
    assert len(calls) == 1


def test_resnet_init_weights_reinitialises_like_torchvision():
    torch.manual_seed(0)
    model = create_model("resnet50")
    for p in model.parameters():
        p.data.fill_(3.0)
    model.init_weights()
    conv = model.layer3[0].conv2  # 256 -> 256, 3x3: Kaiming fan_out std = sqrt(2 / (256 * 9))
    std = (2 / (256 * 9)) ** 0.5
    assert abs(conv.weight.std().item() / std - 1) < 0.02
    assert abs(conv.weight.mean().item()) < 0.01 * std
    bn = model.layer3[0].bn2
    assert torch.equal(bn.weight, torch.ones(256)) and torch.equal(bn.bias, torch.zeros(256))
    assert torch.equal(model.layer1[0].bn3.weight, torch.ones(256))
    model.init_weights(zero_init_last=True)
    for blk in (b for stage in (model.layer1, model.layer4) for b in stage):
        assert not blk.bn3.weight.any() and blk.bn2.weight.all()


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet20"])
def test_zero_init_residual_blocks_start_as_their_shortcut(name):
    model = create_model(name, zero_init_residual=True).eval()
    x = torch.randn(2, model.layer1[0].in_channels, 8, 8)
    for blk in (model.layer1[0], model.layer2[0]):
        shortcut = x if blk.downsample is None else blk.downsample(x)
        torch.testing.assert_close(blk(x), torch.relu(shortcut))
        x = blk(x)


def test_zero_init_last_without_a_norm_does_nothing():
    blk = BasicBlock(4, 4, norm_layer=None)
    before = [p.clone() for p in blk.parameters()]
    blk.zero_init_last()
    assert all(torch.equal(a, b) for a, b in zip(before, blk.parameters(), strict=True))


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "nin_cifar10"])
def test_norm_layer_that_is_not_callable_is_a_type_error(name):
    # It used to say "'float' object is not callable" from deep inside the first block.
    with pytest.raises(TypeError, match=r"norm_layer must be a callable .* got float 0\.5"):
        create_model(name, norm_layer=0.5)


# ------------------------------------------------------------------------------ MobileNetV2

# (t, c, n, s) from the paper's Table 2: expansion, output channels, repeats, first stride.
TABLE2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip


def mobilenet_v2_blocks():
    """(index in features, in, out, stride, t) of each inverted residual block."""
    blocks, cin, index = [], 32, 1
    for t, c, n, s in TABLE2:
        for i in range(n):
            blocks.append((index, cin, c, s if i == 0 else 1, t))
            cin, index = c, index + 1
    return blocks


def mobilenet_v2_layout(num_classes=1000) -> OrderedDict:
    """torchvision's MobileNetV2 keys and shapes, from the architecture description."""
    sd: OrderedDict = OrderedDict()
    sd["features.0.0.weight"] = (32, 3, 3, 3)
    add_bn(sd, "features.0.1", 32)
    for index, cin, cout, _, t in mobilenet_v2_blocks():
        p, hidden, j = f"features.{index}.conv", cin * t, 0
        if t != 1:
            sd[f"{p}.0.0.weight"] = (hidden, cin, 1, 1)
            add_bn(sd, f"{p}.0.1", hidden)
            j = 1
        sd[f"{p}.{j}.0.weight"] = (hidden, 1, 3, 3)  # depthwise
        add_bn(sd, f"{p}.{j}.1", hidden)
        sd[f"{p}.{j + 1}.weight"] = (cout, hidden, 1, 1)
        add_bn(sd, f"{p}.{j + 2}", cout)
    sd["features.18.0.weight"] = (1280, 320, 1, 1)
    add_bn(sd, "features.18.1", 1280)
    sd["classifier.1.weight"] = (num_classes, 1280)
    sd["classifier.1.bias"] = (num_classes,)
    return sd


def mobilenet_v2_ref(sd, x):
    """torchvision's MobileNetV2 (eval mode) written functionally from its description."""

    def cba(h, prefix, stride=1, groups=1, act=True):
        w = sd[f"{prefix}.0.weight"]
        h = F.conv2d(h, w, stride=stride, padding=(w.shape[-1] - 1) // 2, groups=groups)
        h = bn_ref(h, sd, f"{prefix}.1", 1e-5)
        return F.relu6(h) if act else h

    h = cba(x, "features.0", stride=2)
    for index, cin, cout, stride, t in mobilenet_v2_blocks():
        p, o, j = f"features.{index}.conv", h, 0
        if t != 1:
            o, j = cba(o, f"{p}.0"), 1
        o = cba(o, f"{p}.{j}", stride=stride, groups=cin * t)
        o = bn_ref(F.conv2d(o, sd[f"{p}.{j + 1}.weight"]), sd, f"{p}.{j + 2}", 1e-5)
        h = h + o if stride == 1 and cin == cout else o
    h = cba(h, "features.18")
    return F.linear(h.mean((2, 3)), sd["classifier.1.weight"], sd["classifier.1.bias"])


def test_mobilenet_v2_layout_is_torchvisions():
    with torch.device("meta"):
        model = create_model("mobilenet_v2")
        seven = create_model("mobilenet_v2", num_classes=7)
    assert layout_of(model) == mobilenet_v2_layout()
    assert layout_of(seven) == mobilenet_v2_layout(num_classes=7)


def test_mobilenet_v2_loads_a_torchvision_layout_checkpoint_and_matches():
    g = torch.Generator().manual_seed(2)
    sd = fake_checkpoint(mobilenet_v2_layout(num_classes=10), g)
    model = create_model("mobilenet_v2", num_classes=10)
    model.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), mobilenet_v2_ref(sd, x), rtol=1e-4, atol=1e-4)


def test_mobilenet_v2_residuals_and_width_multiplier():
    model = create_model("mobilenet_v2")
    blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
    # A shortcut wherever the shape stays: 10 of the 17 blocks.
    assert [b.use_res_connect for b in blocks].count(True) == 10
    narrow = create_model("mobilenet_v2", width_mult=0.5)
    assert narrow.features[0][0].out_channels == 16 and narrow.num_features == 1280
    wide = create_model("mobilenet_v2", width_mult=1.4)
    assert wide.features[0][0].out_channels == 48 and wide.num_features == 1792
    with pytest.raises(ValueError, match="width_mult must be a number in"):
        create_model("mobilenet_v2", width_mult=0)
    with pytest.raises(ValueError, match=r"stages\[0\]"):
        create_model("mobilenet_v2", stages=((1, 16, 1),))
