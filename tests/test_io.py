"""onebyone._io: atomic writes leave complete files with the usual permissions."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from onebyone._io import atomic_path, save_safetensors_atomic, write_json_atomic, write_text_atomic


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_files_get_the_mode_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        with open(tmp_path / "reference", "w") as f:  # what a plain open() gives, the reference
            f.write("x")
        write_json_atomic(tmp_path / "a.json", {"a": 1})
        write_text_atomic(tmp_path / "a.txt", "hi")
        save_safetensors_atomic({"w": torch.zeros(2)}, tmp_path / "a.safetensors")
    finally:
        os.umask(old)
    expected = mode(tmp_path / "reference")
    assert expected == 0o666 & ~umask
    for name in ("a.json", "a.txt", "a.safetensors"):
        assert mode(tmp_path / name) == expected, name


def test_safetensors_round_trip_and_no_temp_left(tmp_path):
    from safetensors.torch import load_file

    t = torch.arange(6.0).reshape(2, 3)
    save_safetensors_atomic({"a": t, "b": t}, tmp_path / "w.safetensors", metadata={"k": "v"})
    got = load_file(str(tmp_path / "w.safetensors"))
    assert torch.equal(got["a"], t) and torch.equal(got["b"], t)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def test_failed_write_leaves_nothing(tmp_path):
    (tmp_path / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "keep.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert (tmp_path / "keep.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_unwritable_targets_name_the_target_not_a_temp_file(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(IsADirectoryError) as e:
        write_text_atomic(tmp_path / "folder", "hi")
    assert e.value.filename == str(tmp_path / "folder") and "is a directory" in e.value.strerror
    with pytest.raises(NotADirectoryError) as e:
        write_text_atomic(tmp_path / "a_file" / "sub" / "b.txt", "hi")
    assert e.value.filename == str(tmp_path / "a_file" / "sub" / "b.txt")
    assert f"{str(tmp_path / 'a_file')!r} is a file, not a folder" in e.value.strerror
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "folder"]  # no temp left


def test_cli_prints_an_os_error_as_one_line_naming_the_file(tmp_path):
    import typer
    from typer.testing import CliRunner

    from onebyone.cli._common import user_errors

    @user_errors
    def write(path):
        write_text_atomic(path, "x")

    cmd = typer.Typer()
    cmd.command()(write)
    target = tmp_path / "x"
    target.mkdir()
    result = CliRunner().invoke(cmd, [str(target)])
    assert result.exit_code == 2
    assert result.output == f"error: {str(target)!r}: is a directory, expected a file path\n"


def test_a_failed_safetensors_write_is_an_os_error_and_keeps_the_old_file(tmp_path):
    """A real write failure inside safetensors (a per-file size limit, as a full disk would
    fail): safetensors raises SafetensorError, which is not an OSError; we give it back as
    the OSError it was, naming the file, and the previous file is untouched."""
    import subprocess
    import sys
    import textwrap

    target = tmp_path / "w.safetensors"
    script = textwrap.dedent(
        f"""
        import resource, signal, torch
        from onebyone._io import save_safetensors_atomic
        save_safetensors_atomic({{"w": torch.zeros(10)}}, {str(target)!r})  # the old file
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
        try:
            save_safetensors_atomic({{"w": torch.zeros(100_000)}}, {str(target)!r})
        except OSError as e:
            print(type(e).__name__, e.errno, e.filename == {str(target)!r}, e.strerror)
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=120)  # fmt: skip
    assert out.stdout == "OSError 27 True cannot write: File too large\n", out.stderr[-2000:]
    from safetensors.torch import load_file

    assert load_file(str(target))["w"].shape == (10,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]  # no temp left
