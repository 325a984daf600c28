"""The trainer on real MNIST digits: learning, checkpoints, exact resume, refusals."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from onebyone.data import load
from onebyone.errors import OneByOneError
from onebyone.train import evaluate, fit, load_checkpoint, read_state, save_checkpoint


class SmallNet(nn.Module):
    """Conv + BN + dropout: exercises buffers and RNG, which resume must reproduce."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(4),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.1), nn.Linear(width * 7 * 7, num_classes)
        )
        self.explode_at: int | None = None  # raise KeyboardInterrupt at this training forward
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.explode_at is not None and self.calls == self.explode_at:
                raise KeyboardInterrupt
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def digits():
    return load("mnist5k").subset(640, seed=1), load("mnist5k", "test").subset(300, seed=1)


def test_one_epoch_beats_chance(digits):
    train, test = digits
    model = SmallNet()
    before = evaluate(model, test, device="cpu")["accuracy"]
    history = fit(model, train, test, epochs=1, batch_size=32, lr=0.02, quiet=True, device="cpu")
    after = evaluate(model, test, device="cpu")
    assert len(history) == 1 and history.last["epoch"] == 1
    assert after["accuracy"] == pytest.approx(history.last["val_accuracy"])
    # 10 balanced classes: chance is 10%. One epoch on 640 digits clearly beats it.
    assert after["accuracy"] > 0.6 > before
    assert after["count"] == 300


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_killed_mid_epoch_and_resumed_equals_uninterrupted(digits, tmp_path, optimizer):
    train, test = digits
    train = train.subset(192, seed=0)  # 6 steps of 32 per epoch
    kw = dict(
        epochs=3, batch_size=32, lr=0.02, optimizer=optimizer, quiet=True, device="cpu", seed=5
    )

    torch.manual_seed(0)
    ref = SmallNet()
    ref_hist = fit(ref, train, test, out_dir=tmp_path / "ref", **kw)

    torch.manual_seed(0)
    victim = SmallNet()
    victim.explode_at = 6 * 2 + 3  # in the middle of the third epoch
    with pytest.raises(KeyboardInterrupt):
        fit(victim, train, test, out_dir=tmp_path / "run", **kw)
    state = read_state(tmp_path / "run")
    assert state["epoch"] == 2 and len(state["history"]) == 2  # only the unfinished epoch is lost

    torch.manual_seed(123)  # a different init: everything must come from the checkpoint
    resumed = SmallNet()
    hist = fit(resumed, train, test, out_dir=tmp_path / "run", resume=True, **kw)
    assert [r["epoch"] for r in hist] == [1, 2, 3]
    assert read_state(tmp_path / "run")["epoch"] == 3
    ref_state, got = _params(ref), _params(resumed)
    for k in ref_state:
        torch.testing.assert_close(got[k], ref_state[k], msg=k)
    assert hist.last["val_accuracy"] == pytest.approx(ref_hist.last["val_accuracy"])


def test_resume_refuses_another_models_checkpoint(digits, tmp_path):
    train, test = digits
    fit(SmallNet(), train.subset(64), None, epochs=1, out_dir=tmp_path, quiet=True, device="cpu")
    before = _snapshot(tmp_path)
    with pytest.raises(
        ValueError, match=r"another model \(features\.0\.bias: saved shape \[8\], given \[4\]"
    ):
        fit(
            SmallNet(width=4),
            train,
            test,
            epochs=2,
            out_dir=tmp_path,
            resume=True,
            quiet=True,
            device="cpu",
        )
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        fit(SmallNet(), train, test, epochs=2, out_dir=tmp_path, quiet=True, device="cpu")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"lr": 0.0}, "lr must be a number > 0, got 0.0"),
        ({"lr": -1}, "lr must be a number > 0, got -1"),
        ({"optimizer": "lbfgs"}, "optimizer must be one of"),
    ],
)
def test_bad_arguments(digits, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit(SmallNet(), digits[0], None, out_dir=tmp_path, quiet=True, device="cpu", **kwargs)
    assert not any(tmp_path.iterdir())


def test_checkpoint_roundtrip_and_torn_checkpoint(tmp_path):
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path, model, opt, {"epoch": 1, "metrics": {"val_accuracy": 0.5}})
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epoch"] == 1 and state["metrics"] == {"val_accuracy": 0.5}

    other, other_opt = nn.Linear(3, 2), None
    other_opt = torch.optim.AdamW(other.parameters(), lr=0.1)
    load_checkpoint(tmp_path, other, other_opt)
    torch.testing.assert_close(other.weight, model.weight)
    a, b = opt.state_dict()["state"][0], other_opt.state_dict()["state"][0]
    torch.testing.assert_close(b["exp_avg_sq"], a["exp_avg_sq"])
    assert float(b["step"]) == float(a["step"]) == 1.0

    # One checkpoint: the state names an epoch folder holding the tensor files.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001", "state.json"]
    assert sorted(state["files"]["sha256"]) == ["model.safetensors", "optimizer.safetensors"]
    # A tensor file of another epoch in its place (its checksum differs): refused, not mixed.
    save_checkpoint(tmp_path / "next", model, opt, {"epoch": 2, "metrics": {}})
    (tmp_path / "epoch-0001" / "model.safetensors").write_bytes(
        (tmp_path / "next" / "epoch-0002" / "model.safetensors").read_bytes()
    )
    with pytest.raises(OneByOneError, match=r"model\.safetensors' is corrupted: its SHA-256"):
        load_checkpoint(tmp_path, other, other_opt)


def test_old_layout_still_loads_and_a_torn_one_is_refused(tmp_path):
    """A folder written before checkpoints had epoch folders (onebyone-checkpoint/1: the tensor
    files beside state.json, each stamped with its epoch) still loads, and resumes into the new
    layout; files of two epochs are refused."""
    from safetensors.torch import save_file

    model = nn.Linear(3, 2)
    v1 = {"format": "onebyone-checkpoint/1", "epoch": 1, "metrics": {},
          "model": {"class": "torch.nn.modules.linear.Linear", "shapes": {"weight": [2, 3], "bias": [2]}}}  # fmt: skip
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"), metadata={"epoch": "1"})
    (tmp_path / "state.json").write_text(json.dumps(v1))
    other = nn.Linear(3, 2)
    assert load_checkpoint(tmp_path, other)["epoch"] == 1
    torch.testing.assert_close(other.weight, model.weight, rtol=0, atol=0)
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"), metadata={"epoch": "2"})
    with pytest.raises(OneByOneError, match=r"written for epoch 2 but state\.json says 1"):
        load_checkpoint(tmp_path, other)
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"), metadata={"epoch": "1"})
    save_checkpoint(tmp_path, model, None, {"epoch": 2, "metrics": {}})  # resumed: new layout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0002", "state.json"]
    assert load_checkpoint(tmp_path, other)["epoch"] == 2


class _Killed(BaseException):
    """A process killed at this point: no except-Exception handler (no cleanup) runs."""


@pytest.fixture(scope="module")
def uninterrupted(digits):
    """The data, the settings and the model of a 3-epoch run that nothing interrupts."""
    train = digits[0].subset(96, seed=0)
    kw = dict(epochs=3, batch_size=32, lr=0.02, optimizer="adamw", quiet=True, device="cpu", seed=3)
    torch.manual_seed(0)
    ref = SmallNet()
    fit(ref, train, None, **kw)
    return train, kw, ref


@pytest.mark.parametrize("kind", ["error", "kill"])
@pytest.mark.parametrize("failing_write", [1, 2, 3])
def test_a_checkpoint_write_failing_at_any_step_keeps_the_last_complete_one(
    uninterrupted, tmp_path, monkeypatch, failing_write, kind
):
    """Fault injection: the n-th atomic write (rename) of epoch 2's checkpoint fails, as an
    error (disk full) or as a kill. The epoch-1 checkpoint must stay complete, resume must
    find it, and the resumed run must end exactly where the uninterrupted run ends."""
    import importlib

    import onebyone._io as io_module

    fit_module = importlib.import_module("onebyone.train.fit")  # the module, not the function

    train, kw, ref = uninterrupted

    writes = {"armed": False, "count": 0}
    real_replace, real_save = os.replace, fit_module.save_checkpoint

    def replace(src, dst):
        if writes["armed"]:
            writes["count"] += 1
            if writes["count"] == failing_write:
                raise OSError(28, "No space left on device") if kind == "error" else _Killed()
        return real_replace(src, dst)

    def save(directory, model, opt, state):
        writes["armed"] = state["epoch"] == 2
        return real_save(directory, model, opt, state)

    def replace_killed(src, dst):  # a real kill leaves the temporary file behind
        try:
            return replace(src, dst)
        except _Killed:
            os.link(src, str(src)[: -len(".tmp")] + "-kept.tmp")
            raise

    monkeypatch.setattr(io_module.os, "replace", replace_killed)
    monkeypatch.setattr(fit_module, "save_checkpoint", save)
    torch.manual_seed(0)
    with pytest.raises(OSError if kind == "error" else _Killed):
        fit(SmallNet(), train, None, out_dir=tmp_path, **kw)
    monkeypatch.undo()

    state = read_state(tmp_path)
    assert state["epoch"] == 1 and len(state["history"]) == 1
    resumed = SmallNet()
    history = fit(resumed, train, None, out_dir=tmp_path, resume=True, **kw)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=0, msg=k)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0003", "state.json"]


def test_a_flipped_byte_is_refused_on_resume(digits, tmp_path):
    train = digits[0].subset(64)
    fit(SmallNet(), train, None, epochs=1, out_dir=tmp_path, quiet=True, device="cpu")
    path = tmp_path / "epoch-0001" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit of the last weight: still a valid safetensors file
    path.write_bytes(bytes(data))
    with pytest.raises(OneByOneError, match=r"model\.safetensors' is corrupted: its SHA-256 differs"):
        fit(SmallNet(), train, None, epochs=2, out_dir=tmp_path, resume=True, quiet=True,
            device="cpu")  # fmt: skip
    assert read_state(tmp_path)["epoch"] == 1  # nothing was written


def test_model_that_cannot_take_the_data_fails_before_training(digits, tmp_path):
    train, _ = digits
    wrong_input = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    # The user's forward failing is a OneByOneError (as in analyze), naming the innermost
    # module running and its input shapes, with torch's own error chained.
    with pytest.raises(OneByOneError) as info:
        fit(wrong_input, train, None, out_dir=tmp_path, quiet=True, device="cpu")
    assert str(info.value).startswith(
        "model Sequential cannot run on the training samples (1x28x28): forward failed in "
        "module '1' (Linear) on input shapes (2, 784): RuntimeError: mat1 and mat2"
    )
    assert isinstance(info.value.__cause__, RuntimeError)
    too_few = SmallNet(num_classes=5)
    with pytest.raises(ValueError, match="returns 5 class scores but the data has 10 classes"):
        fit(too_few, train, None, out_dir=tmp_path, quiet=True, device="cpu")
    too_many = SmallNet(num_classes=12)  # scores for classes no label names: refused as well
    with pytest.raises(ValueError) as info:
        fit(too_many, train, None, out_dir=tmp_path, quiet=True, device="cpu")
    assert str(info.value) == (f"model {type(too_many).__name__} returns 12 class scores but the data has 10 "
                               "classes; build it with num_classes=10")
    not_logits = nn.Sequential(nn.Conv2d(1, 10, 3))  # a map, not (N, classes)
    with pytest.raises(ValueError, match=r"must return logits of shape \(N, num_classes\)"):
        fit(not_logits, train, None, out_dir=tmp_path, quiet=True, device="cpu")
    assert not any(tmp_path.iterdir())

    class AuxInTraining(nn.Module):  # GoogLeNet-like: a tuple of logits in training mode
        def __init__(self):
            super().__init__()
            self.net = SmallNet()

        def forward(self, x):
            out = self.net(x)
            return (out, out) if self.training else out

    with pytest.raises(ValueError, match="returned tuple in training mode"):
        fit(AuxInTraining(), train, None, quiet=True, device="cpu")
    # The check runs in eval mode (BatchNorm statistics untouched) and gives every module
    # its own flag back.
    from onebyone.train._model_check import check_model_fits_data

    net = SmallNet()
    net.features[1].eval()
    stats = net.features[1].running_mean.clone()
    assert check_model_fits_data(net, train, torch.device("cpu"), torch.preserve_format) == (1, 28, 28)
    assert net.training is True and net.features[1].training is False
    assert net.features[0].training is True
    torch.testing.assert_close(net.features[1].running_mean, stats, rtol=0, atol=0)


def test_forward_failing_in_training_is_a_onebyone_error(digits):
    """A forward that works in eval mode (the check) but fails in training mode: the same
    error type as a failure in the check, with the epoch and the batch's shape."""

    class FailsInTraining(SmallNet):
        def forward(self, x):
            if self.training:
                raise ZeroDivisionError("user bug")
            return super().forward(x)

    model = FailsInTraining()
    with pytest.raises(OneByOneError) as info:
        fit(model, digits[0].subset(64), None, epochs=1, batch_size=32, quiet=True, device="cpu")
    assert str(info.value) == (
        "model FailsInTraining cannot run on the training samples (1x28x28) in training, "
        "epoch 1: forward failed on input shapes (32, 1, 28, 28): ZeroDivisionError: user bug"
    )
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_metadata_is_kept_in_state_json(digits, tmp_path):
    meta = {"model": {"spec": "x", "kwargs": {"width": 8}}}
    fit(SmallNet(), digits[0].subset(32), None, epochs=1, out_dir=tmp_path, quiet=True,
        device="cpu", metadata=meta)  # fmt: skip
    assert read_state(tmp_path)["metadata"] == meta
    with pytest.raises(ValueError, match="metadata must be JSON-able"):
        fit(SmallNet(), digits[0], None, metadata={"f": object()}, quiet=True, device="cpu")


def test_resume_names_a_missing_parameter(tmp_path):
    save_checkpoint(tmp_path, nn.Sequential(nn.Linear(3, 2)), None, {"epoch": 1, "metrics": {}})
    with pytest.raises(ValueError, match=r"1\.bias of the given model is not in the checkpoint"):
        load_checkpoint(tmp_path, nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2)))
    with pytest.raises(ValueError, match=r"0\.bias of the checkpoint is not in the given model"):
        load_checkpoint(tmp_path, nn.Sequential(nn.Linear(3, 2, bias=False)))


def test_train_config_is_validated_once_and_frozen(tmp_path):
    import dataclasses
    import math

    from onebyone.train import TrainConfig
    from onebyone.train._schedule import lr_at

    cfg = TrainConfig.from_fit_args(resume=tmp_path / "a", epochs=2)
    assert cfg.out_dir == cfg.resume_dir == tmp_path / "a"  # resume=path writes there too
    cfg = TrainConfig.from_fit_args(out_dir=tmp_path / "b", resume=tmp_path / "a")
    assert (cfg.out_dir, cfg.resume_dir) == (tmp_path / "b", tmp_path / "a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0
    with pytest.raises(ValueError, match="resume=True needs out_dir"):
        TrainConfig.from_fit_args(resume=True)
    with pytest.raises(ValueError, match="schedule must be one of 'cosine', 'constant'; got 'step'"):
        TrainConfig(schedule="step")
    with pytest.raises(TypeError, match="quiet must be a bool, got 'yes'"):
        TrainConfig(quiet="yes")
    # The schedule by hand: 100 steps, warm-up max(1, 100 // 20) = 5 steps, then cosine to 0.
    assert [lr_at("cosine", 0.5, s, 100) for s in (0, 4)] == [0.1, 0.5]
    assert lr_at("cosine", 0.5, 5 + 95 // 2, 100) == pytest.approx(0.25 * (1 + math.cos(math.pi * 47 / 95)))
    assert lr_at("cosine", 0.5, 99, 100) == pytest.approx(0.25 * (1 + math.cos(math.pi * 94 / 95)))
