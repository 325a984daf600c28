"""`onebyone train` end to end, its refusals, and a real 2-process DDP run on CPU (gloo)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from onebyone.cli import app

MODEL_PY = textwrap.dedent(
    """
    from torch import nn

    def small(in_channels=3, num_classes=1000, width=8):
        return nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.MaxPool2d(4), nn.Flatten(), nn.Linear(width * 7 * 7, num_classes),
        )

    def wide(in_channels=3, num_classes=1000):
        return small(in_channels, num_classes, width=12)

    def asserting(in_channels=3, num_classes=10):
        class Net(nn.Module):
            def forward(self, x):
                assert x.shape[1] == 3, "need RGB"
                return x
        return Net()

    def cifar_mlp(in_channels=3, num_classes=10):
        # built for 3x32x32 whatever it is given: it cannot run on 1x28x28 digits
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))
    """
)


@pytest.fixture()
def model_file(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(MODEL_PY)
    return path


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_train_cli_writes_checkpoint_and_refuses_other_model(model_file, tmp_path):
    out = tmp_path / "run"
    # The factory defaults to 3 channels / 1000 classes: the command builds it for the data.
    code, text = _run("train", f"{model_file}:small", "--data", "mnist5k", "--epochs", "1",
                      "--out", out, "--subset", "320", "--lr", "0.02", "--quiet", "--device", "cpu")  # fmt: skip
    assert code == 0, text
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 1 and state["metrics"]["val_accuracy"] > 0.3
    assert (out / "epoch-0001" / "model.safetensors").stat().st_size > 0
    assert state["input_size"] == [1, 28, 28]
    # One word for one number: the epoch line's "val" accuracy is the final line's.
    acc = f"{100 * state['metrics']['val_accuracy']:.2f}%"
    assert f"done: 1 epoch, val accuracy {acc} (on the test split); checkpoint in {out}" in text

    before = _snapshot(out)
    code, text = _run(
        "train", f"{model_file}:wide", "--epochs", "2", "--out", out, "--resume", "-q"
    )
    assert (
        code == 2
        and text.startswith("error:")
        and "another model" in text
        and len(text.splitlines()) == 1
    )
    code, text = _run("train", f"{model_file}:small", "--epochs", "2", "--out", out, "-q")
    assert code == 2 and "already holds a checkpoint" in text
    assert _snapshot(out) == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "mnist1m"], "unknown dataset 'mnist1m'"),
        (["--data", "/no/such/dir"], "does not exist"),
        (["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
        (["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
        (["--lr", "0"], "--lr must be a number > 0"),
        (["--lr", "inf"], "--lr must be a number > 0, got inf"),
        (["--resume"], "holds no checkpoint"),
        (["--optimizer", "lbfgs"], "--optimizer must be one of"),
        (["--schedule", "step"], "--schedule must be one of"),
        (["--device", "tpu"], "--device 'tpu'"),
        (["--subset", "5000"], "--subset must be 0 (all) or between 10 (one per class) and 4000"),
        (["--weight-decay", "-1"], "--weight-decay must be a number >= 0, got -1.0"),
    ],
)
def test_train_cli_bad_input(model_file, tmp_path, extra, message):
    code, text = _run("train", f"{model_file}:small", "--out", tmp_path / "o", "-q", *extra)
    assert code == 2, text
    assert text.startswith("error:") and message in text and len(text.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_train_cli_checks_out_before_any_work(model_file, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "state.json").mkdir()  # a folder where the checkpoint state goes
    for out, needle in (
        (a_file, "is a file; expected a folder"),
        (a_file / "sub", "is a file, not a folder"),
        (tmp_path / "d", "state.json' is a directory"),
    ):
        code, text = _run("train", f"{model_file}:small", "--out", out, "-q", "--epochs", "1")
        assert code == 2, text
        assert text.startswith("error: --out") and needle in text and len(text.splitlines()) == 1
    assert a_file.read_text() == "keep me"


def test_train_cli_model_that_cannot_take_the_data_fails_before_training(model_file, tmp_path):
    out = tmp_path / "o"
    code, text = _run("train", f"{model_file}:cifar_mlp", "--out", out, "-q", "--subset", "100")
    assert code == 2, text
    assert text.startswith(
        "error: model Sequential cannot run on the training samples (1x28x28): forward failed in "
        "module '1' (Linear) on input shapes (2, 784): RuntimeError: mat1 and mat2"
    )
    assert len(text.splitlines()) == 1
    code, text = _run("train", f"{model_file}:asserting", "--out", out, "-q", "--subset", "100")
    assert code == 2, text
    assert text == (
        "error: model Net cannot run on the training samples (1x28x28): forward failed in the "
        "model (Net) on input shapes (2, 1, 28, 28): AssertionError: need RGB\n"
    )
    assert not out.exists()


def test_trained_folder_feeds_compress(model_file, tmp_path):
    """train stores how the model was built; compress reads it back from the folder."""
    run = tmp_path / "r20"
    code, text = _run("train", "resnet20", "--epochs", "1", "--subset", "100", "--out", run,
                      "-q", "--device", "cpu")  # fmt: skip
    assert code == 0, text
    state = json.loads((run / "state.json").read_text())
    assert state["metadata"] == {
        "model": {"spec": "resnet20", "kwargs": {"in_channels": 1, "num_classes": 10}},
        "data": "mnist5k",  # what compress/fuse --checkpoint test the accuracy on
    }
    for checkpoint in (run, run / "epoch-0001" / "model.safetensors"):
        code, text = _run("compress", "resnet20", "--checkpoint", checkpoint, "--rank", "8",
                          "--input", "1x28x28", "--out", tmp_path / "small")  # fmt: skip
        assert code == 0, text
        plan = json.loads((tmp_path / "small.json").read_text())
        assert plan["base"]["kwargs"] == {"in_channels": 1, "num_classes": 10}
    # As the README shows it: the folder alone says how the model was built (1 channel) and
    # the size it was trained at (28x28 digits, not resnet20's default 32x32).
    assert state["input_size"] == [1, 28, 28]
    code, text = _run("compress", "resnet20", "--checkpoint", run, "--budget", "0.5",
                      "--out", tmp_path / "readme")  # fmt: skip
    assert code == 0, text
    assert "totals at input 1x28x28 (" in text and "1x32x32" not in text
    assert json.loads((tmp_path / "readme.json").read_text())["base"]["kwargs"]["in_channels"] == 1
    code, text = _run("compress", "resnet20", "--checkpoint", run, "--rank", "8",
                      "--input", "3x32x32", "--out", tmp_path / "x")  # fmt: skip
    assert code == 2
    assert "--input '3x32x32' has 3 channels but --checkpoint" in text and "in_channels=1" in text
    code, text = _run("fuse", "resnet32", "--checkpoint", run, "--out", tmp_path / "f")
    assert code == 2
    assert text.startswith("error: --checkpoint") and "trained from 'resnet20', not 'resnet32'" in text
    code, text = _run("fuse", "resnet20", "--checkpoint", tmp_path, "--out", tmp_path / "f")
    assert code == 2 and "is a folder without a checkpoint (state.json) or model.safetensors" in text
    code, text = _run("fuse", "resnet20", "--checkpoint", run / "model.safetensors", "--out",
                      tmp_path / "f")  # fmt: skip
    assert code == 2 and "keeps its weights in an epoch folder; give the folder" in text
    state["metadata"] = {"model": "resnet20"}  # hand-edited: not the {"spec", "kwargs"} entry
    (run / "state.json").write_text(json.dumps(state))
    code, text = _run("fuse", "resnet20", "--checkpoint", run, "--out", tmp_path / "f")
    assert code == 2 and "malformed metadata.model entry" in text and len(text.splitlines()) == 1


def test_trained_user_model_matches_its_spec_however_the_path_is_spelled(model_file, tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(model_file.parent)
    code, text = _run("train", "nets.py:small", "--epochs", "1", "--subset", "100", "--out",
                      tmp_path / "run", "-q", "--device", "cpu")  # fmt: skip
    assert code == 0, text
    code, text = _run("fuse", "./nets.py:small", "--checkpoint", tmp_path / "run",
                      "--input", "1x28x28", "--out", tmp_path / "f")  # fmt: skip
    assert code == 0, text
    code, text = _run("fuse", "nets.py:wide", "--checkpoint", tmp_path / "run",
                      "--input", "1x28x28", "--out", tmp_path / "g")  # fmt: skip
    assert code == 2 and "trained from 'nets.py:small', not 'nets.py:wide'" in text


def test_ddp_two_processes_on_cpu(model_file, tmp_path, run_process_group):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "onebyone", "train", f"{model_file}:small",
           "--epochs", "1", "--subset", "320", "--batch-size", "16", "--lr", "0.02",
           "--out", str(out), "--device", "cpu", "--quiet"]  # fmt: skip
    code, stdout, stderr = run_process_group(cmd, env)
    assert code == 0, stderr[-3000:]
    assert stdout.count("done: 1 epoch,") == 1  # only rank 0 prints
    state = json.loads((out / "state.json").read_text())
    assert state["config"]["world_size"] == 2 and state["epoch"] == 1
    # Each process trained on its half of the 320 digits; the all-reduced count is the whole set.
    assert state["metrics"]["train_samples"] == 320
    assert state["metrics"]["val_accuracy"] > 0.3
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "epoch-0001",
        "epoch-0001/model.safetensors",
        "epoch-0001/optimizer.safetensors",
        "state.json",
    ]


def test_ctrl_c_keeps_the_last_checkpoint_and_resume_finishes(model_file, tmp_path):
    """A real SIGINT to a training process: the last complete checkpoint loads and resumes."""
    import time

    import torch

    from onebyone.models import load_model
    from onebyone.train import load_checkpoint, read_state

    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "onebyone", "train", f"{model_file}:small", "--epochs", "500",
           "--subset", "200", "--batch-size", "16", "--lr", "0.02", "--out", str(out),
           "--device", "cpu", "--quiet"]  # fmt: skip
    # Ctrl-C reaches the child as it would from a terminal, even where this test runs with SIGINT
    # ignored (a shell's background job without job control passes SIG_IGN on, and Python then
    # keeps ignoring it): the child starts with the default disposition.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "state.json").is_file():
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.3)  # somewhere in a later epoch (or in a checkpoint write: SIGINT waits)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode != 0 and "Traceback" not in stderr, stderr[-2000:]
    state = read_state(out)
    done = state["epoch"]
    assert 1 <= done < 500 and len(state["history"]) == done
    # Weights, optimizer state and state.json belong to the same epoch (else this raises).
    net = load_model(f"{model_file}:small", in_channels=1, num_classes=10)
    opt = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9, nesterov=True)
    load_checkpoint(out, net, opt)
    code, text = _run("train", f"{model_file}:small", "--epochs", done + 1, "--subset", "200",
                      "--batch-size", "16", "--lr", "0.02", "--out", out, "--resume", "--quiet",
                      "--device", "cpu")  # fmt: skip
    assert code == 0, text
    assert read_state(out)["epoch"] == done + 1 and f"done: {done + 1} epochs" in text


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch checkpoint of nets.py:small (AdamW), trained once for the tests below."""
    root = tmp_path_factory.mktemp("trained")
    (root / "nets.py").write_text(MODEL_PY)
    run = root / "run"
    code, text = _run("train", f"{root / 'nets.py'}:small", "--epochs", "1", "--subset", "100",
                      "--optimizer", "adamw", "--out", run, "-q", "--device", "cpu")  # fmt: skip
    assert code == 0, text
    return root / "nets.py", run


def _copy(run, tmp_path):
    import shutil

    return shutil.copytree(run, tmp_path / "run")


def _set(key, value):
    def edit(state):
        state[key] = value

    return edit


def _first_group_empty(state):
    state["optimizer"]["param_groups"] = [{}]


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (_set("epoch", None), "epoch must be an integer >= 0, got null"),
        (_set("epoch", [1]), "epoch must be an integer >= 0, got [1]"),
        ("1e400", "epoch must be an integer >= 0, got inf"),
        (_set("history", 5), "history must be a list of epoch records, got 5"),
        (_first_group_empty, "optimizer.param_groups[0].params must be a list of parameter ids"),
        (_set("optimizer", 5), "optimizer must be an object, got 5"),
        (_set("input_size", [1, 0, 28]), "input_size[] must be an integer >= 1, got 0"),
        (_set("files", {"dir": "../elsewhere"}), "files.dir must be an epoch folder name"),
        ("{", "is not a readable JSON checkpoint state"),
    ],
    ids=["null", "list", "1e400", "history", "param_groups", "optimizer", "input_size", "dir", "json"],
)
def test_a_corrupted_state_json_is_refused_in_one_line_by_every_command(trained, tmp_path, edit,
                                                                         needle):
    """train --resume and fuse --checkpoint read state.json with the one validated reader."""
    model_file, run = trained
    run = _copy(run, tmp_path)
    path = run / "state.json"
    if edit == "1e400":
        text = path.read_text()
        assert '"epoch": 1,' in text
        path.write_text(text.replace('"epoch": 1,', '"epoch": 1e400,', 1))
    elif edit == "{":
        path.write_text("{")
    else:
        state = json.loads(path.read_text())
        edit(state)
        path.write_text(json.dumps(state))
    spec = f"{model_file}:small"
    for args in (("train", spec, "--out", run, "--resume", "--epochs", "2", "-q", "--subset", "100"),
                 ("fuse", spec, "--checkpoint", run, "--out", tmp_path / "f")):  # fmt: skip
        code, text = _run(*args)
        assert code == 2, (args[0], text)
        assert text.startswith("error: ") and len(text.splitlines()) == 1, (args[0], text)
        assert "state.json" in text and needle in text, (args[0], text)
    assert not (tmp_path / "f.json").exists()


def test_a_flipped_byte_is_refused_by_resume_and_by_compress(trained, tmp_path):
    model_file, run = trained
    run = _copy(run, tmp_path)
    weights = run / "epoch-0001" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x10
    weights.write_bytes(bytes(data))
    spec = f"{model_file}:small"
    for args in (("train", spec, "--out", run, "--resume", "--epochs", "2", "-q", "--subset", "100"),
                 ("compress", spec, "--checkpoint", run, "--rank", "4", "--out", tmp_path / "s"),
                 ("fuse", spec, "--checkpoint", weights, "--out", tmp_path / "f")):  # fmt: skip
        code, text = _run(*args)
        assert code == 2, (args[0], text)
        assert text == (
            f"error: checkpoint file {str(weights)!r} is corrupted: its SHA-256 differs from the "
            "one state.json recorded when it was written (epoch 1); refusing to load it\n"
        ), args[0]


def test_disk_full_while_writing_the_optimizer_keeps_the_previous_checkpoint(trained, tmp_path):
    """A real failing write (a file-size limit: the optimizer file of AdamW, twice the model's
    size, cannot be written; the model file can): one line, exit 2, and the epoch-1
    checkpoint is intact and resumes."""
    model_file, run = trained
    run = _copy(run, tmp_path)
    model_bytes = (run / "epoch-0001" / "model.safetensors").stat().st_size
    optim_bytes = (run / "epoch-0001" / "optimizer.safetensors").stat().st_size
    assert model_bytes < 1.5 * model_bytes < optim_bytes
    limit = int(1.5 * model_bytes)
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"  # a failing write, not a killed process
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))\n"
        "from onebyone.cli import main\n"
        "sys.argv[0] = 'onebyone'\n"
        "main()\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-c", script, "train", f"{model_file}:small", "--epochs", "2",
           "--subset", "100", "--optimizer", "adamw", "--out", str(run), "--resume", "-q",
           "--device", "cpu"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 2, proc.stderr[-3000:]
    optim = run / "epoch-0002" / "optimizer.safetensors"
    assert proc.stderr == (
        f"error: {str(optim)!r}: cannot write: File too large; the checkpoint of epoch 1 in "
        f"{str(run)!r} is intact\n"
    )
    assert sorted(p.name for p in run.iterdir()) == ["epoch-0001", "state.json"]
    code, text = _run("train", f"{model_file}:small", "--epochs", "2", "--subset", "100",
                      "--optimizer", "adamw", "--out", run, "--resume", "-q", "--device", "cpu")  # fmt: skip
    assert code == 0, text
    assert json.loads((run / "state.json").read_text())["epoch"] == 2


def test_a_folder_of_the_old_layout_still_feeds_fuse_and_resumes(trained, tmp_path):
    """onebyone-checkpoint/1 (tensor files beside state.json, no checksums) is still read."""
    model_file, run = trained
    run = _copy(run, tmp_path)
    for name in ("model.safetensors", "optimizer.safetensors"):
        (run / "epoch-0001" / name).rename(run / name)
    (run / "epoch-0001").rmdir()
    state = json.loads((run / "state.json").read_text())
    state["format"] = "onebyone-checkpoint/1"
    del state["files"]
    (run / "state.json").write_text(json.dumps(state))
    spec = f"{model_file}:small"
    code, text = _run("fuse", spec, "--checkpoint", run, "--input", "1x28x28", "--out", tmp_path / "f")
    assert code == 0, text
    code, text = _run("train", spec, "--out", run, "--resume", "--epochs", "2", "-q", "--subset",
                      "100", "--optimizer", "adamw", "--device", "cpu")  # fmt: skip
    assert code == 0, text
    assert sorted(p.name for p in run.iterdir()) == ["epoch-0002", "state.json"]
