"""Issue 14 for the surgery: nothing lost on overwrite or a full disk; a plan checked before building."""

from __future__ import annotations

import contextlib
import errno
import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from onebyone.errors import OneByOneError
from onebyone.models import create_model
from onebyone.surgery import fuse, load, save

pytestmark = pytest.mark.usefixtures("one_thread")

X = torch.randn(1, 3, 32, 32)


def fused_zoo_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model, _ = fuse(create_model("resnet20", num_classes=10).eval(), example_input=X)
    return model.eval()


def outputs(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(X)


def fail_atomic_write(monkeypatch, nth: int) -> None:
    """Make the ``nth`` atomic write from now on fail before its rename, as a kill there would."""
    import onebyone._io as io_module

    real = io_module.atomic_path
    calls = {"n": 0}

    @contextlib.contextmanager
    def failing(path):
        calls["n"] += 1
        with real(path) as tmp:
            if calls["n"] == nth:
                raise KeyboardInterrupt(f"killed during atomic write {nth} ({path})")
            yield tmp

    monkeypatch.setattr(io_module, "atomic_path", failing)


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- overwriting a plan (14.3)


@pytest.mark.parametrize("nth", [1, 2])
def test_an_overwrite_killed_midway_leaves_the_old_plan_loadable(tmp_path, monkeypatch, nth):
    a, b = fused_zoo_model(1), fused_zoo_model(2)
    assert not torch.equal(outputs(a), outputs(b))
    plan = save(a, tmp_path / "m", base="resnet20", base_kwargs={"num_classes": 10})
    fail_atomic_write(monkeypatch, nth)  # 1: during the weights; 2: after the weights' rename
    with pytest.raises(KeyboardInterrupt):
        save(b, tmp_path / "m", base="resnet20", base_kwargs={"num_classes": 10})
    monkeypatch.undo()
    assert torch.equal(outputs(load(plan)), outputs(a))  # A is still there, complete
    assert not any(n.endswith(".tmp") for n in names(tmp_path))
    # The next save completes; B loads and the kept copy of A is gone.
    save(b, tmp_path / "m", base="resnet20", base_kwargs={"num_classes": 10})
    assert torch.equal(outputs(load(plan)), outputs(b))
    assert names(tmp_path) == ["m.json", "m.safetensors"]


def test_a_plain_overwrite_leaves_only_the_new_pair(tmp_path):
    a, b = fused_zoo_model(1), fused_zoo_model(2)
    save(a, tmp_path / "m", base="resnet20", base_kwargs={"num_classes": 10})
    plan = save(b, tmp_path / "m", base="resnet20", base_kwargs={"num_classes": 10})
    assert names(tmp_path) == ["m.json", "m.safetensors"]
    assert torch.equal(outputs(load(plan)), outputs(b))


# ----------------------------------------------------------------------------- a full disk (14.2)


def full_disk(monkeypatch) -> None:
    """safetensors writes part of the file, then reports the full disk as its own error type."""
    import safetensors.torch
    from safetensors import SafetensorError

    def save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\0" * 100)
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)


def test_a_full_disk_is_an_oserror_and_leaves_the_old_files_intact(tmp_path, monkeypatch):
    a, b = fused_zoo_model(1), fused_zoo_model(2)
    plan = save(a, tmp_path / "m", base="resnet20", base_kwargs={"num_classes": 10})
    full_disk(monkeypatch)
    with pytest.raises(OSError) as info:
        save(b, tmp_path / "m", base="resnet20", base_kwargs={"num_classes": 10})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "m.safetensors")
    monkeypatch.undo()
    assert names(tmp_path) == ["m.json", "m.safetensors"]  # nothing half-written, no leftovers
    assert torch.equal(outputs(load(plan)), outputs(a))


def test_fuse_out_on_a_full_disk_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    from onebyone.cli import app

    full_disk(monkeypatch)
    result = CliRunner().invoke(app, ["fuse", "tutorial_reduce", "--input", "3x8x8", "--out", str(tmp_path / "out" / "f")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == f"error: {str(tmp_path / 'out' / 'f.safetensors')!r}: No space left on device"
    assert "Traceback" not in result.output
    folder = tmp_path / "out"
    assert not folder.exists() or names(folder) == []


# ----------------------------------------------------------------------------- hostile plans (14.12)


@pytest.fixture
def zoo_plan(tmp_path):
    return save(fused_zoo_model(1), tmp_path / "m", base="resnet20", base_kwargs={"num_classes": 10})


def edit(plan, change) -> None:
    document = json.loads(plan.read_text())
    change(document)
    plan.write_text(json.dumps(document))


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["base"]["kwargs"].update(num_classes=1e8), r"does not build with kwargs .*num_classes"),
    (lambda d: d["base"]["kwargs"].update(num_classes=100_000_000), r"do not match the model: .*shape mismatches"),
    (lambda d: d["base"]["kwargs"].update(colour="red"), r"does not build with kwargs .*TypeError: .*'colour'"),
    (lambda d: d["steps"].append({"op": "decompose", "layers": {"conv1": {"method": "tucker2", "ranks": [1e9, 4]}}}),
     r"step 1 \(decompose\): layer 'conv1': ranks must be ints in \[1, 1048576\]"),
    (lambda d: d["steps"].append({"op": "decompose", "layers": {"conv1": {"method": "tucker2", "ranks": [10**9, 4]}}}),
     r"ranks must be ints in \[1, 1048576\], got \[1000000000, 4\]"),
    (lambda d: d["steps"].append({"op": "fuse", "extra": 1}), r"step 1 \(fuse\): unknown fields \['extra'\]"),
    (lambda d: d["steps"].append({"op": "convolutionalize", "input_size": [1, 3, 100000, 100000]}),
     r"has 30,000,000,000 elements per example"),
])
def test_a_hostile_plan_fails_before_anything_is_built(zoo_plan, change, message):
    edit(zoo_plan, change)
    with pytest.raises(OneByOneError, match=message):
        load(zoo_plan)


def test_a_100000_deep_plan_is_a_library_error(zoo_plan):
    zoo_plan.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(OneByOneError, match="nests deeper than 16 levels"):
        load(zoo_plan)
    zoo_plan.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(OneByOneError, match="nests deeper than 16 levels"):
        load(zoo_plan)


def test_a_5000_digit_integer_is_a_library_error(zoo_plan):
    text = zoo_plan.read_text().replace('"num_classes": 10', '"num_classes": ' + "9" * 5000)
    zoo_plan.write_text(text)
    with pytest.raises(OneByOneError, match="not valid JSON"):
        load(zoo_plan)
    text = text.replace("9" * 5000, "9" * 1000)  # parses, but no builder takes it
    zoo_plan.write_text(text)
    with pytest.raises(OneByOneError, match="does not build with kwargs"):
        load(zoo_plan)


def test_a_huge_plan_file_is_refused_unread(zoo_plan):
    zoo_plan.write_text(" " * (2 << 20) + zoo_plan.read_text())
    with pytest.raises(OneByOneError, match="larger than 1,048,576 bytes"):
        load(zoo_plan)


def test_the_replay_table_and_the_schema_list_the_same_operations():
    from onebyone.surgery import _document, io

    assert tuple(io._REPLAY) == _document.OPS


# ----------------------------------------------------------------------------- convolutionalize on big maps (14.11)


class GapHead(nn.Module):
    """A 1x1 body, a global average pool and a head (affine, or with a ReLU between two Linears)."""

    def __init__(self, channels: int = 4, hidden: int | None = None):
        super().__init__()
        self.body = nn.Conv2d(3, channels, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = (nn.Linear(channels, 2) if hidden is None
                     else nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, 2)))

    def forward(self, x):
        return self.head(torch.flatten(self.pool(self.body(x)), 1))


def test_a_global_average_pool_head_on_a_big_map_builds_no_quadratic_matrix():
    from onebyone.surgery import convolutionalize

    # 1024x1024: the (H*W)^2 pooling matrix would be 8 TB in float64.
    net = GapHead().eval()
    conv_net, report = convolutionalize(net, (3, 1024, 1024))
    assert any("global average pooling removed" in n for n in report.notes)
    assert report.output_error < 1e-5
    assert isinstance(conv_net.head, nn.Conv2d) and conv_net.head.kernel_size == (1, 1)


def test_a_pool_folded_into_the_first_conv_on_a_big_map_is_exact():
    from onebyone.surgery import convolutionalize

    net = GapHead(hidden=3).eval()  # the ReLU keeps the pool inside: a 512x512 kernel over the map
    conv_net, report = convolutionalize(net, (3, 512, 512))
    assert [c.method for c in report.changes] == ["linear->conv512x512", "linear->conv1x1"]
    x = torch.randn(1, 3, 512, 512)
    with torch.no_grad():
        expected = net(x)
        # Independent reference: the kernel is the Linear's weight spread evenly over the map.
        kernel = net.head[0].weight[:, :, None, None].expand(3, 4, 512, 512) / (512 * 512)
        hidden = torch.relu((net.body(x) * kernel[None]).sum(dim=(2, 3, 4)) + net.head[0].bias)
        torch.testing.assert_close(net.head[2](hidden), expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(conv_net(x).flatten(1), expected, rtol=1e-4, atol=1e-5)


def test_a_kernel_too_big_to_build_is_refused_with_the_number_it_would_need():
    from onebyone.surgery import convolutionalize

    net = GapHead(channels=64, hidden=64).eval()
    with pytest.raises(ValueError, match=r"would need 1,073,741,824 weights \(64 x 64 x 512 x 512, 4\.0 GiB"):
        convolutionalize(net, (3, 512, 512))


def test_a_convolutionalized_global_pool_model_saves_and_loads(tmp_path):
    from onebyone.surgery import convolutionalize

    net = create_model("resnet20", num_classes=10).eval()
    conv_net, _ = convolutionalize(net, (3, 32, 32))
    again = load(save(conv_net, tmp_path / "c", base="resnet20", base_kwargs={"num_classes": 10})).eval()
    with torch.no_grad():
        assert torch.equal(again(X), conv_net.eval()(X))
