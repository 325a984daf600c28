"""save/load of surgically changed models: identical outputs after a round trip; bad files."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from torch import nn

from onebyone.errors import OneByOneError
from onebyone.surgery import convolutionalize, decompose, fuse, load, load_weights, save

MODEL_SOURCE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self, num_classes=5):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            )
            self.avgpool = nn.AdaptiveAvgPool2d(4)
            self.classifier = nn.Sequential(nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, num_classes))

        def forward(self, x):
            x = self.avgpool(self.features(x))
            return self.classifier(torch.flatten(x, 1))

    def build(num_classes=5):
        return Net(num_classes)
    """
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "mynet.py"
    path.write_text(MODEL_SOURCE)
    return f"{path}:build"


def trained(spec):
    from onebyone.models import load_model

    model = load_model(spec, num_classes=7)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return model.eval()


X = torch.randn(2, 3, 8, 8)


@pytest.mark.parametrize(
    "operations",
    [
        ("decompose",),
        ("decompose_budget",),
        ("fuse",),
        ("convolutionalize",),
        ("decompose", "fuse"),
        ("fuse", "decompose", "convolutionalize"),
    ],
)
def test_round_trip_gives_identical_outputs(tmp_path, spec, operations):
    model = trained(spec)
    for op in operations:
        if op == "decompose":
            model, _ = decompose(model, rank=8, example_input=X)
        elif op == "decompose_budget":
            model, _ = decompose(model, method="reduce", budget=0.8, round_to=4, example_input=X)
        elif op == "fuse":
            model, _ = fuse(model)
        else:
            model, _ = convolutionalize(model, (3, 8, 8))
    model.eval()
    plan_path = save(model, tmp_path / "out" / "small", base=spec, base_kwargs={"num_classes": 7})
    assert plan_path == tmp_path / "out" / "small.json"
    plan = json.loads(plan_path.read_text())
    assert [s["op"] for s in plan["steps"]] == [o.replace("_budget", "") for o in operations]
    assert plan["base"] == {"spec": spec, "kwargs": {"num_classes": 7}}
    again = load(plan_path, trust_code=True).eval()
    with torch.no_grad():
        assert torch.equal(again(X), model(X))
    assert again.state_dict().keys() == model.state_dict().keys()
    # Saved again from the loaded model, without naming the base: the plan carries it.
    second = save(again, tmp_path / "again")
    assert json.loads(second.read_text())["steps"] == plan["steps"]


def test_decompose_plan_records_the_ranks(tmp_path, spec):
    model, report = decompose(trained(spec), rank=8, example_input=X)
    plan = json.loads(save(model, tmp_path / "m", base=spec, base_kwargs={"num_classes": 7}).read_text())
    layers = plan["steps"][0]["layers"]
    assert layers == {c.name: {"method": c.method, "ranks": list(c.ranks)} for c in report.changes}
    assert layers["features.3"] == {"method": "tucker2", "ranks": [8, 8]}


def test_save_needs_a_base(tmp_path):
    model, _ = fuse(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval())
    with pytest.raises(ValueError, match="base is required"):
        save(model, tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def saved(tmp_path, spec):
    model, _ = decompose(trained(spec), rank=8, example_input=X)
    return save(model, tmp_path / "m", base=spec, base_kwargs={"num_classes": 7})


def test_truncated_weights_are_detected(saved):
    weights = saved.with_suffix(".safetensors")
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(OneByOneError, match="does not match the checksum"):
        load(saved)
    with pytest.raises(OneByOneError, match="not a readable safetensors file"):
        load_weights(nn.Linear(2, 2), weights)


def test_corrupted_plan_is_detected(saved):
    text = saved.read_text()
    saved.write_text(text[: len(text) // 2])
    with pytest.raises(OneByOneError, match="not valid JSON"):
        load(saved)
    saved.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(OneByOneError, match="not a onebyone surgery plan"):
        load(saved)


def test_plan_that_does_not_fit_its_base(saved):
    plan = json.loads(saved.read_text())
    plan["steps"][0]["layers"]["features.99"] = {"method": "tucker2", "ranks": [8, 8]}
    saved.write_text(json.dumps(plan))
    with pytest.raises(OneByOneError, match=r"step 0 \(decompose\) .* does not apply"):
        load(saved, trust_code=True)


def test_missing_files(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="plan file"):
        load(tmp_path / "nothing.json")
    saved.with_suffix(".safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="weights file"):
        load(saved)


def test_checkpoint_mismatch_lists_the_first_mismatches(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"0.weight": torch.zeros(8, 3, 3, 3), "0.bias": torch.zeros(8), "extra": torch.zeros(1)}, str(path))
    with pytest.raises(OneByOneError) as info:
        load_weights(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1)), path)
    message = str(info.value)
    assert "missing keys: 1.weight, 1.bias" in message
    assert "unexpected keys: extra" in message
    assert "0.weight (file (8, 3, 3, 3), model (4, 3, 3, 3))" in message


def test_fused_googlenet_with_aux_heads_round_trips(tmp_path):
    # fuse traces the inference graph whatever the mode, so load (whose base model is built in
    # training mode, aux heads active) replays the same structure.
    from onebyone.models import create_model

    kwargs = {"num_classes": 7, "aux_logits": True}
    net = create_model("googlenet", **kwargs).eval()
    fused, _ = fuse(net)
    assert not any(k.startswith("aux") for k in fused.state_dict())
    again = load(save(fused, tmp_path / "g", base="googlenet", base_kwargs=kwargs)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(again(x), fused(x))
        torch.testing.assert_close(again(x), net(x), rtol=1e-4, atol=1e-4)


def test_fuse_of_a_training_model_is_the_inference_graph():
    from onebyone.models import create_model

    net = create_model("googlenet", num_classes=7, aux_logits=True)  # training mode
    fused, _ = fuse(net)
    assert fused.training
    out = fused.eval()(torch.randn(1, 3, 64, 64))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 7)


def test_load_moves_the_model_to_map_location(saved):
    on_cpu = load(saved, map_location="cpu", trust_code=True)
    on_meta = load(saved, map_location=torch.device("meta"), trust_code=True)  # the one other device every machine has
    assert {p.device.type for p in on_cpu.parameters()} == {"cpu"}
    assert {p.device.type for p in on_meta.parameters()} == {"meta"}
    assert {b.device.type for b in on_meta.buffers()} <= {"meta"}
    # Same structure either way.
    assert [(k, v.shape) for k, v in on_meta.state_dict().items()] == [(k, v.shape) for k, v in on_cpu.state_dict().items()]


def test_load_rejects_a_bad_map_location(saved):
    with pytest.raises(ValueError, match=r"map_location must be a device .* got 'gpu0'"):
        load(saved, map_location="gpu0")


MARKED_SOURCE = textwrap.dedent(
    """
    import pathlib
    from torch import nn

    pathlib.Path(__file__).with_name("imported.marker").write_text("this module was imported")

    def build():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    """
)


def test_a_plan_whose_base_is_code_is_refused_unless_trusted(tmp_path):
    import sys

    (tmp_path / "marked.py").write_text(MARKED_SOURCE)
    spec = f"{tmp_path / 'marked.py'}:build"
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).eval()
    conv_net, _ = convolutionalize(net, (3, 8, 8))  # built here, not from the file
    plan = save(conv_net, tmp_path / "conv", base=spec)
    marker = tmp_path / "imported.marker"
    modules_before = set(sys.modules)

    for attempt in (lambda: load(plan), lambda: load(plan, trust_code=False)):
        with pytest.raises(ValueError, match="would import and run that code; pass trust_code=True") as info:
            attempt()
        assert repr(spec) in str(info.value)
    assert not marker.exists()  # refused before importing anything
    assert set(sys.modules) == modules_before

    # The same plan naming a package module is refused the same way.
    document = json.loads(plan.read_text())
    document["base"] = {"spec": "os:system", "kwargs": {"command": f"touch {marker}"}}
    plan.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="'os:system', which is not a zoo model"):
        load(plan)
    assert not marker.exists()

    # Trusted, the file is imported (the marker proves it) and the model comes back exactly.
    plan = save(conv_net, tmp_path / "conv", base=spec)
    again = load(plan, trust_code=True).eval()
    assert marker.read_text() == "this module was imported"
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(again(x), conv_net(x))
    with pytest.raises(TypeError, match="trust_code must be a bool"):
        load(plan, trust_code="yes")


def test_a_plan_whose_base_is_a_zoo_model_loads_without_trust_code(tmp_path):
    from onebyone.models import create_model

    fused, _ = fuse(create_model("resnet20", num_classes=3).eval())
    again = load(save(fused, tmp_path / "r20", base="resnet20", base_kwargs={"num_classes": 3})).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(again(x), fused(x))


def test_public_names_are_the_functions_and_replay_covers_every_op():
    # The modules are private (_decompose.py, ...): the public names are the functions themselves.
    import onebyone.surgery as surgery
    from onebyone.surgery import io

    assert callable(surgery.decompose) and surgery.decompose.__name__ == "decompose"
    assert callable(surgery.fuse) and surgery.fuse.__name__ == "fuse"
    assert callable(surgery.convolutionalize) and surgery.convolutionalize.__name__ == "convolutionalize"
    assert set(io._REPLAY) == {"decompose", "convolutionalize", "fuse"}
    with pytest.raises(OneByOneError, match="unknown operation 'prune'"):
        io.replay(nn.Linear(2, 2), [{"op": "prune"}])
