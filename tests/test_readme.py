"""The README's Python examples run as written, in order, in one namespace."""

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_examples():
    assert len(_python_blocks()) >= 5


def test_readme_examples_run(capsys):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    namespace: dict = {}
    try:
        for i, block in enumerate(_python_blocks()):
            try:
                exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
            except Exception as e:  # name the block that failed
                pytest.fail(f"README python block {i + 1} failed: {type(e).__name__}: {e}")
    finally:
        torch.set_num_threads(previous)
    out = capsys.readouterr().out
    # The numbers the README's comments promise.
    assert "1,605,696" in out and "233,600" in out
    # resnet50 at 8x3x512x512 from torchvision's published 4,089,184,256 MACs at 224: every
    # feature map grows by 512/224 = 16/7 per side; the 2048 -> 1000 classifier does not.
    fc = 2048 * 1000
    convs_224 = 4_089_184_256 - fc
    assert namespace["big"].total_macs == 8 * (convs_224 * 16**2 // 7**2 + fc)
    # The training example learns: far above chance (10%) after its one epoch, as its comment says.
    result = namespace["onebyone"].evaluate(namespace["net"], namespace["test"])
    assert result["accuracy"] > 0.7 and result["count"] == 1000


def _cli_lines() -> list[list[str]]:
    """``onebyone CMD ...`` lines of the README's bash blocks, comments dropped, as words."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        for line in block.splitlines():
            words = line.split("#")[0].split()
            if "onebyone" in words:
                words = words[words.index("onebyone") + 1 :]
                if words and not words[0].startswith("-"):
                    lines.append(words)
    return lines


def test_readme_commands_use_real_commands_and_options():
    from typer.main import get_command

    from onebyone.cli import app

    commands = get_command(app).commands
    lines = _cli_lines()
    assert len(lines) >= 10
    for words in lines:
        assert words[0] in commands, words
        known = {opt for p in commands[words[0]].params for opt in (*p.opts, *p.secondary_opts)}
        for word in words[1:]:
            if word.startswith("--"):
                assert word in known, (words[0], word)


def test_readme_states_the_threads_default_and_its_measurements():
    text = README.read_text(encoding="utf-8")
    assert "### Threads" in text and "`--threads N`" in text
    from onebyone.cli._common import DEFAULT_THREADS

    assert f"else **{DEFAULT_THREADS}**" in text
