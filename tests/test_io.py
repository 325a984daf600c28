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
