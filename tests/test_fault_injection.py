"""Fault injection for the files onebyone writes, outside checkpoints and surgery plans.

Every write goes through ``onebyone._io``: a temporary file beside the target, then one rename.
Here each step fails in turn (a write that stops half way, fsync, the rename, an interrupt) and
the previous file must be intact, byte for byte, with no temporary file left; the command line
must end with one ``error:`` line. A write that stops half way is a real one: the process's
file-size limit (RLIMIT_FSIZE) makes the kernel refuse the bytes past it (EFBIG), as a full
disk refuses them (ENOSPC), in the middle of the library's own write.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from onebyone import _io
from onebyone.cli import app

OLD = b"the previous, complete file\n"
LIMIT = 64 << 10  # bytes a file may grow to while a write is made to fail half way


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@contextlib.contextmanager
def _file_size_limit(limit: int = LIMIT):
    """Writes past ``limit`` bytes fail for real (EFBIG) while inside the block."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not a kill
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, old_handler)


class _InterruptedFile:
    """A file whose first write stores one byte, then the user presses Ctrl-C."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[:1])
        raise KeyboardInterrupt

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def _interrupting_open(*args, **kwargs):
    return _InterruptedFile(open(*args, **kwargs))


# Each writes ~4x LIMIT bytes, so a size limit stops it half way.
TEXT = "new text " * 30_000
NUMBERS = list(range(50_000))
WRITERS = {
    "text": lambda p: _io.write_text_atomic(p, TEXT),
    "json": lambda p: _io.write_json_atomic(p, {"new": NUMBERS}),
    "safetensors": lambda p: _io.save_safetensors_atomic({"w": torch.ones(65_536)}, p),
}


def _inject(
    faults: contextlib.ExitStack, monkeypatch, kind: str, fault: str, limit: int = LIMIT
) -> type[BaseException]:
    """Install ``fault`` for writer ``kind`` until ``faults`` closes; return what the write raises."""
    faults.callback(monkeypatch.undo)
    if fault == "mid-write":
        faults.enter_context(_file_size_limit(limit))
        # SafetensorError is not an OSError: see test_safetensors_write_error_is_an_os_error.
        return Exception if kind == "safetensors" else OSError
    if fault == "interrupt":
        if kind == "safetensors":
            def interrupted(tensors, filename, metadata=None):
                Path(filename).write_bytes(b"\x00" * 10)
                raise KeyboardInterrupt

            monkeypatch.setattr("safetensors.torch.save_file", interrupted)
        else:
            monkeypatch.setattr(_io, "open", _interrupting_open, raising=False)
        return KeyboardInterrupt
    if fault == "fsync":
        monkeypatch.setattr(os, "fsync", _enospc)
        return OSError
    if fault == "rename":
        monkeypatch.setattr(os, "replace", lambda *a, **k: _enospc())
        return OSError
    raise AssertionError(fault)


@pytest.mark.parametrize("fault", ["mid-write", "interrupt", "fsync", "rename"])
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_failed_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path, monkeypatch, kind, fault):
    target = tmp_path / f"out.{kind}"
    target.write_bytes(OLD)
    with contextlib.ExitStack() as faults:
        expected = _inject(faults, monkeypatch, kind, fault)
        with pytest.raises(expected):
            WRITERS[kind](target)
    assert target.read_bytes() == OLD
    assert _listing(tmp_path) == [target.name]


@pytest.mark.parametrize("fault", ["mid-write", "rename"])
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_failed_first_write_leaves_no_file_at_all(tmp_path, monkeypatch, kind, fault):
    with contextlib.ExitStack() as faults:
        expected = _inject(faults, monkeypatch, kind, fault)
        with pytest.raises(expected):
            WRITERS[kind](tmp_path / "sub" / f"new.{kind}")
    assert not (tmp_path / "sub").exists() or _listing(tmp_path / "sub") == []


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_successful_write_after_a_failure_is_complete(tmp_path, monkeypatch, kind):
    target = tmp_path / f"out.{kind}"
    target.write_bytes(OLD)
    with contextlib.ExitStack() as faults:
        _inject(faults, monkeypatch, kind, "rename")
        with pytest.raises(OSError):
            WRITERS[kind](target)
    WRITERS[kind](target)
    assert _listing(tmp_path) == [target.name]
    if kind == "json":
        assert json.loads(target.read_text()) == {"new": NUMBERS}
    elif kind == "safetensors":
        from safetensors.torch import load_file

        assert torch.equal(load_file(str(target))["w"], torch.ones(65_536))
    else:
        assert target.read_text() == TEXT


def test_a_real_write_error_names_the_target_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.json"
    target.write_bytes(OLD)
    with _file_size_limit(), pytest.raises(OSError) as info:
        _io.write_json_atomic(target, {"a": NUMBERS})
    assert info.value.errno == errno.EFBIG
    assert target.read_bytes() == OLD and _listing(tmp_path) == ["a.json"]


def test_safetensors_write_error_is_an_os_error(tmp_path):
    with _file_size_limit(), pytest.raises(OSError):
        _io.save_safetensors_atomic({"w": torch.ones(65_536)}, tmp_path / "w.safetensors")


# ---- summary --plot -----------------------------------------------------------------------------


def test_summary_plot_on_a_full_disk_is_one_line_and_keeps_the_old_plot(tmp_path):
    pytest.importorskip("matplotlib")

    plot = tmp_path / "layers.png"
    plot.write_bytes(OLD)
    with _file_size_limit(2048):  # the chart is ~20 kB: matplotlib's own write fails half way
        result = CliRunner().invoke(app, ["summary", "tutorial_base", "--plot", str(plot)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "File too large" in errors[0], result.output
    assert "Traceback" not in result.output
    assert plot.read_bytes() == OLD and _listing(tmp_path) == ["layers.png"]


def test_summary_plot_interrupted_keeps_the_old_plot(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    def interrupted(self, fname, *args, **kwargs):
        Path(fname).write_bytes(b"\x89PNG")
        raise KeyboardInterrupt

    plot = tmp_path / "layers.svg"
    plot.write_bytes(OLD)
    monkeypatch.setattr(Figure, "savefig", interrupted)
    result = CliRunner().invoke(app, ["summary", "tutorial_base", "--plot", str(plot)])
    monkeypatch.undo()
    assert result.exit_code == 130, result.output
    assert plot.read_bytes() == OLD and _listing(tmp_path) == ["layers.svg"]


# ---- compare: report.json and accuracy_vs_macs.png ----------------------------------------------


def _report():
    from onebyone.experiments.comparison import CompareReport, VariantResult

    return CompareReport([
        VariantResult("plain", None, 10, 400, None, None, 0.95, 3.0),
        VariantResult("reduced", "plain", 5, 100, None, None, 0.97, 2.0),
    ])  # fmt: skip


@pytest.mark.parametrize("fault", ["mid-write", "fsync", "rename"])
def test_compare_report_json_failure_keeps_the_old_report(tmp_path, monkeypatch, fault):
    from onebyone.experiments.comparison import write_outputs

    (tmp_path / "report.json").write_bytes(OLD)
    with contextlib.ExitStack() as faults:
        _inject(faults, monkeypatch, "json", fault, limit=64)  # the report is ~500 bytes
        with pytest.raises(OSError):
            write_outputs(_report(), tmp_path, plot=False)
    assert (tmp_path / "report.json").read_bytes() == OLD
    assert _listing(tmp_path) == ["report.json"]


def test_compare_plot_failure_keeps_the_old_png_and_a_complete_report(tmp_path):
    pytest.importorskip("matplotlib")
    from onebyone.experiments.comparison import write_outputs

    (tmp_path / "accuracy_vs_macs.png").write_bytes(OLD)
    with _file_size_limit(2048), pytest.raises(OSError):  # report.json fits, the png does not
        write_outputs(_report(), tmp_path, plot=True)
    assert (tmp_path / "accuracy_vs_macs.png").read_bytes() == OLD
    assert json.loads((tmp_path / "report.json").read_text()) == _report().to_dict()
    assert _listing(tmp_path) == ["accuracy_vs_macs.png", "report.json"]


def test_compare_cli_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    monkeypatch.setattr(os, "replace", lambda *a, **k: _enospc())
    result = CliRunner().invoke(app, [
        "compare", "plain_5x5", "--quick", "--subset", "10", "--test-subset", "10",
        "--no-latency", "--no-plot", "--out", str(out), "--quiet", "--device", "cpu",
    ])  # fmt: skip
    monkeypatch.undo()
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], result.output
    assert "Traceback" not in result.output
    assert not out.exists() or _listing(out) == []


# ---- data: the readers write nothing ------------------------------------------------------------


def test_data_readers_write_no_caches(tmp_path):
    import pickle
    import struct

    from onebyone import data

    images = np.zeros((2, 4, 4), np.uint8)
    for prefix in ("train", "t10k"):
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">HBB3i", 0, 8, 3, 2, 4, 4) + images.tobytes()
        )
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">HBBi", 0, 8, 1, 2) + b"\x00\x01")
    np.savez(tmp_path / "set.npz", train_images=images, train_labels=np.array([0, 1]))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "test_batch").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=2)
    )
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    for source, split in ((tmp_path, "train"), (tmp_path, "test"), (tmp_path / "set.npz", "train"),
                          (tmp_path / "c", "test")):  # fmt: skip
        assert len(data.load(source, split)) == 2
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
