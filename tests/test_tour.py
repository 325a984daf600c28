"""`onebyone tour --quick`: the seeds' numbers, checked against hand arithmetic."""

from __future__ import annotations

from typer.testing import CliRunner

from onebyone.cli import app


def test_tour_quick_prints_the_seeds_numbers():
    result = CliRunner().invoke(app, ["tour", "--quick"], terminal_width=140)
    assert result.exit_code == 0, result.output
    out = result.output
    # The tutorial's layers: k*k*in*filters + filters.
    for params in (3 * 3 * 3 * 512 + 512, 512 * 512 + 512, 512 * 64 + 64, 512 * 1024 + 1024):
        assert f"{params:,} params" in out
    # The model names print as text (rich would swallow "[tutorial_base]" as markup).
    for name in ("tutorial_base", "tutorial_project", "tutorial_reduce", "tutorial_increase"):
        assert f"[{name}]" in out
    assert (
        "(None, 256, 256, 512)" in out and "(1, 512, 256, 256)" in out
    )  # Keras- and PyTorch-style
    # 7x7 with 64 filters on 512 maps, and after a 1x1 reduction to 64.
    direct, r1, r7 = 7 * 7 * 512 * 64 + 64, 512 * 64 + 64, 7 * 7 * 64 * 64 + 64
    assert f"{direct:,} params" in out and f"{r1:,} + {r7:,} = {r1 + r7:,} params" in out
    assert (direct, r1 + r7) == (1_605_696, 233_600)
    # Cross-channel pooling of 50 maps into 5 on a real digit, checked against reshape + amax.
    assert (
        "(1, 50, 28, 28)" in out
        and "(1, 5, 28, 28)" in out
        and "equals reshape + amax: True" in out
    )
    # GoogLeNet 3a at 28x28: conv MACs of the naive module (1x1, 3x3, 5x5 branches).
    naive_macs = (192 * 64 + 9 * 192 * 128 + 25 * 192 * 32) * 28 * 28
    reduced_macs = (
        (192 * 64 + 192 * 96 + 9 * 96 * 128 + 192 * 16 + 25 * 16 * 32 + 192 * 32) * 28 * 28
    )
    assert f"{naive_macs:,} MACs" in out and f"{reduced_macs:,} MACs" in out
    # Basic block on 64 maps vs bottleneck on 256 maps at 56x56 (BatchNorm adds 2 per channel).
    basic = 2 * 9 * 64 * 64 + 2 * 2 * 64
    bottleneck = 256 * 64 + 9 * 64 * 64 + 64 * 256 + 2 * (64 + 64 + 256)
    assert f"{basic:,} params" in out and f"{bottleneck:,} params" in out
    # The FC head as convolutions on a 28x84 strip: 15 positions at stride 4.
    assert "score map (1, 10, 1, 15)" in out
    assert "--quick: skipped" in out
