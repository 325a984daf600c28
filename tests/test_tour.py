"""`onebyone tour --quick`: the seeds' numbers, checked against hand arithmetic, at 80 columns."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from onebyone.cli import app

_EXPR_CHARS = set("0123456789,*+-/() ")


@pytest.fixture(scope="module")
def tour80() -> str:
    # Not a terminal (CliRunner): rich takes its width from COLUMNS, as in a pipe.
    result = CliRunner().invoke(app, ["tour", "--quick"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def _plain(expr: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3})", "", expr)  # 1,605,696 -> 1605696


def _evaluates(expr: str) -> bool:
    try:
        eval(_plain(expr))
    except SyntaxError:
        return False
    return True


def _derivations(text: str) -> list[tuple[str, str]]:
    """Every ``a*b + c = N`` in ``text``: the arithmetic on each side of each ``" = "``."""
    found = []
    for m in re.finditer(r" = ", text):
        start = m.start()
        while start > 0 and text[start - 1] in _EXPR_CHARS:
            start -= 1
        lhs = text[start : m.start()].rsplit(", ", 1)[-1].strip(" -")
        while lhs.count("(") > lhs.count(")"):
            lhs = lhs[lhs.index("(") + 1 :]
        rhs = re.match(r"[\d,*+\-/() .]*", text[m.end() :]).group(0)
        rhs = rhs.split(", ")[0].strip(" ,.")
        while rhs.count(")") > rhs.count("("):
            rhs = rhs[: rhs.rindex(")")]
        # Lines are joined: keep the longest run of words that is arithmetic ("N 1x1 ..." -> N).
        words = rhs.split(" ")
        while len(words) > 1 and not _evaluates(" ".join(words)):
            words.pop()
        rhs = " ".join(words)
        if re.search(r"\d[*+\-/]|[*+\-/] ?\d", lhs) and re.match(r"\d", rhs):
            found.append((lhs, rhs))
    return found


def test_tour_fits_80_columns_without_colour_codes_or_broken_words(tour80):
    lines = tour80.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    assert "\x1b[" not in tour80
    # Wrapped between words: a long sentence reads whole once its lines are joined.
    joined = " ".join(line.strip() for line in lines)
    assert "the exact count is 1,605,696, about 1.6 million, so the tutorial rounds down" in joined
    # Shapes are never split across lines.
    assert "(1, 512, 256, 256)" in tour80 and "(1, 10, 1, 15)" in tour80
    # One blank line before each section rule, none doubled anywhere.
    for k in range(2, 8):
        at = next(j for j, line in enumerate(lines) if line.startswith(f"{k}. ") or
                  (line.startswith("─") and lines[j + 1].startswith(f"{k}. ")))  # fmt: skip
        assert lines[at - 1] == "" and lines[at - 2] != ""
    assert "\n\n\n" not in tour80


def test_every_derivation_in_the_tour_is_right(tour80):
    joined = " ".join(line.strip() for line in tour80.splitlines())
    found = _derivations(joined)
    assert len(found) >= 35, found
    for lhs, rhs in found:
        value = eval(_plain(lhs))  # digits and + - * / ( ) only
        if re.fullmatch(r"[\d,]+\.\d+", rhs):  # a rounded ratio: 6.9, 56.00
            assert round(value, len(rhs.partition(".")[2])) == float(_plain(rhs)), (lhs, rhs)
        else:
            assert value == eval(_plain(rhs)), (lhs, rhs)


def test_tour_quick_prints_the_seeds_numbers(tour80):
    out = " ".join(line.strip() for line in tour80.splitlines())
    # The tutorial's layers: k*k*in*filters + filters, each derived in the tour.
    for expr, params in (("3*3*3*512 + 512", 14_336), ("1*1*512*512 + 512", 262_656),
                         ("1*1*512*64 + 64", 32_832), ("1*1*512*1024 + 1024", 525_312)):  # fmt: skip
        assert f"{expr} = {params:,}" in out
    assert "905,969,664" in out and 256 * 256 * 3 * 3 * 3 * 512 == 905_969_664
    # The model names print as text (rich would swallow "[tutorial_base]" as markup).
    for name in ("tutorial_base", "tutorial_project", "tutorial_reduce", "tutorial_increase"):
        assert f"[{name}]" in out
    assert "(None, 256, 256, 512)" in out and "(1, 512, 256, 256)" in out  # Keras, PyTorch
    # 7x7 with 64 filters on 512 maps, and after a 1x1 reduction to 64.
    direct, r1, r7 = 7 * 7 * 512 * 64 + 64, 512 * 64 + 64, 7 * 7 * 64 * 64 + 64
    assert (direct, r1 + r7) == (1_605_696, 233_600)
    assert f"= {r1:,} + {r7:,} = {r1 + r7:,}" in out and f"= {direct:,}" in out
    # The tutorial's "about a million" is named as a rounding, not as the count.
    assert '"about a million"' in out and "about 1.6 million" in out
    # Cross-channel pooling of 50 maps into 5 on a real digit, checked against reshape + amax,
    # with random filters said to be random and every picture labelled.
    assert "(1, 50, 28, 28)" in out and "(1, 5, 28, 28)" in out
    assert "equals reshape + amax: True" in out and "random 5x5 filters" in out
    for label in ["digit"] + [f"max maps {g * 10 + 1}-{g * 10 + 10}" for g in range(5)]:
        assert label in out
    # GoogLeNet 3a at 28x28: the convs have no bias; BatchNorm adds 2 per channel.
    naive_w = 192 * 64 + 9 * 192 * 128 + 25 * 192 * 32
    assert naive_w == 387_072 and naive_w + 64 + 128 + 32 == 387_296
    assert f"{naive_w + 2 * (64 + 128 + 32):,} params" in out  # 387,520
    assert "Parameters include BatchNorm" in out and "387,296" in out
    reduced_w = 192 * 64 + 192 * 96 + 9 * 96 * 128 + 192 * 16 + 25 * 16 * 32 + 192 * 32
    assert f"{naive_w * 28 * 28:,} MACs" in out and f"{reduced_w * 28 * 28:,} MACs" in out
    # Basic block on 64 maps vs bottleneck on 256 maps at 56x56 (BatchNorm adds 2 per channel).
    basic = 2 * 9 * 64 * 64 + 2 * 2 * 64
    bottleneck = 256 * 64 + 9 * 64 * 64 + 64 * 256 + 2 * (64 + 64 + 256)
    assert f"{basic:,} params" in out and f"{bottleneck:,} params" in out
    # The FC head as convolutions on a 28x84 strip: 15 positions at stride 4.
    assert "score map (1, 10, 1, 15)" in out and "(84 - 28)/4 + 1 = 15" in out
    assert "--quick: skipped" in out


def test_the_compare_table_has_plain_headers_and_fits_80_columns():
    import io

    from rich.console import Console

    from onebyone.experiments.comparison import CompareReport, VariantResult
    from onebyone.tour import _compare_table

    report = CompareReport([
        VariantResult("plain_5x5", None, 431_242, 12_943_360, 0.61, 21.5, 0.9712, 31.4),
        VariantResult("nin_mlpconv", "plain_5x5", 58_506, 3_137_920, 0.55, 18.25, 0.9655, 24.9),
    ])  # fmt: skip
    buffer = io.StringIO()
    Console(file=buffer, width=80).print(_compare_table(report))
    text = buffer.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    for header in ("model", "params", "MACs", "latency (ms)", "test accuracy", "train time (s)"):
        assert header in text
    assert "431,242" in text and "97.12%" in text and "ms b1" not in text


def test_training_steps_leave_no_extra_blank_lines_in_a_pipe(monkeypatch):
    import io

    from rich.console import Console

    from onebyone import tour

    def stub(i, console, result, **_):
        tour._title(console, i, "a training step")
        tour._say(console, "stub step done")

    monkeypatch.setattr(tour, "_step_fc_to_conv", stub)
    monkeypatch.setattr(tour, "_step_compare", stub)
    console = Console(file=io.StringIO(), width=80)  # not a terminal, like a pipe
    tour.run_tour(quick=False, console=console)
    text = console.file.getvalue()
    assert "\n\n\n" not in text and text.count("stub step done") == 2
