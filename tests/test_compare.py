"""`compare` on tiny subsets: the report's schema, hand-derived counts, the CLI's table."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from onebyone.cli import app
from onebyone.experiments import compare, list_variants

# Counted by hand from the architectures in onebyone/experiments/variants.py (28x28 input).
PLAIN_MACS = 25 * 1 * 32 * 784 + 25 * 32 * 64 * 196 + 3136 * 128 + 128 * 10
NIN_MACS = (25 * 32 + 32 * 16) * 784 + (25 * 16 * 32 + 32 * 24) * 196 + (9 * 24 * 64 + 64 * 10) * 49
# conv weights + biases, and 2 BatchNorm parameters per channel
NIN_PARAMS = sum(
    w + b + 2 * b
    for w, b in [
        (25 * 32, 32),
        (32 * 16, 16),
        (25 * 16 * 32, 32),
        (32 * 24, 24),
        (9 * 24 * 64, 64),
        (64 * 10, 10),
    ]
)
KEYS = [
    "name",
    "twin",
    "params",
    "macs",
    "latency_ms_b1",
    "latency_ms_b64",
    "accuracy",
    "train_seconds",
    "history",
]


def test_compare_report_json_and_plot(tmp_path):
    result = compare(
        ["plain_5x5", "nin_mlpconv"], epochs=2, train_subset=320, test_subset=200, batch_size=32, lr=0.02, device="cpu",
        out_dir=tmp_path, quiet=True,
    )  # fmt: skip
    report = json.loads((tmp_path / "report.json").read_text())
    assert list(report) == ["variants"]
    plain, nin = report["variants"]
    assert list(plain) == KEYS and list(nin) == KEYS
    assert (plain["name"], plain["twin"], nin["name"], nin["twin"]) == (
        "plain_5x5",
        None,
        "nin_mlpconv",
        "plain_5x5",
    )
    assert plain["macs"] == PLAIN_MACS == 11_065_088
    assert nin["macs"] == NIN_MACS and nin["params"] == NIN_PARAMS == 29_878
    for v in (plain, nin):
        assert v["latency_ms_b1"] > 0 and v["latency_ms_b64"] > 0 and v["train_seconds"] > 0
        assert 0.0 <= v["accuracy"] <= 1.0
    # Two epochs on 320 digits: the plain network clearly beats 10% chance. (NiN's BatchNorm
    # statistics need more steps than this before eval-mode accuracy means anything.)
    assert plain["accuracy"] > 0.3
    assert (tmp_path / "accuracy_vs_macs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for v in (plain, nin):  # the learning curve: one record per epoch, as fit returned it
        assert [r["epoch"] for r in v["history"]] == [1, 2]
        assert all(r["train_loss"] > 0 and 0 <= r["train_accuracy"] <= 1 for r in v["history"])
    (pair,) = result.pairs()
    assert pair["macs_ratio"] == pytest.approx(PLAIN_MACS / NIN_MACS)


def test_compare_cli_quick(tmp_path):
    result = CliRunner().invoke(app, [
        "compare", "plain_5x5", "nin_mlpconv", "--quick", "--subset", "200", "--test-subset", "100",
        "--no-latency", "--no-plot", "--out", str(tmp_path), "--quiet", "--device", "cpu",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "nin_mlpconv" in result.output and "4.40 M" in result.output and "11.07 M" in result.output
    )
    assert f"nin_mlpconv vs plain_5x5: {PLAIN_MACS / NIN_MACS:.1f}x fewer MACs" in result.output
    assert "smoke run" in result.output and "met:" not in result.output  # no verdict on a smoke run
    variants = json.loads((tmp_path / "report.json").read_text())["variants"]
    assert [v["latency_ms_b1"] for v in variants] == [None, None]
    assert not (tmp_path / "accuracy_vs_macs.png").exists()


def test_compare_cli_prints_the_verdict_as_text(tmp_path):
    # Without --quick each reduced variant gets a verdict on the claim (>= 97%, >= 2x fewer
    # MACs); one epoch on 200 digits cannot reach 97%, so it must say so, visibly.
    result = CliRunner().invoke(app, [
        "compare", "plain_5x5", "nin_mlpconv", "--epochs", "1", "--subset", "200",
        "--test-subset", "100", "--no-latency", "--no-plot", "--out", str(tmp_path), "--quiet",
        "--device", "cpu",
    ], terminal_width=200)  # fmt: skip
    assert result.exit_code == 0, result.output
    (line,) = [ln for ln in result.output.splitlines() if ln.startswith("nin_mlpconv vs")]
    acc = json.loads((tmp_path / "report.json").read_text())["variants"][1]["accuracy"]
    verdict = "ok" if acc >= 0.97 else "NOT met"
    assert line.endswith(f"[{verdict}: >= 97% and >= 2x]"), line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "0"], "--lr must be a number > 0, got 0.0"),
        (["--lr", "inf"], "--lr must be a number > 0, got inf"),
        (["--seed", "-1"], "--seed must be an integer >= 0, got -1"),
        (["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
        (["--optimizer", "lbfgs"], "--optimizer must be one of"),
        (["--device", "tpu"], "--device 'tpu'"),
        (["--subset", "5000"], "--subset must be 0 (all) or between 10 (one per class) and 4000"),
        (["--test-subset", "5"], "--test-subset must be 0 (all) or between 10"),
        (["--data", "mnist1m"], "unknown dataset 'mnist1m'"),
        (["--data", "/no/such/dir"], "does not exist"),
    ],
)
def test_compare_cli_bad_settings_fail_before_training(tmp_path, args, message):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["compare", "nin_mlpconv", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error:") and message in result.output
    assert len(result.output.splitlines()) == 1  # nothing trained or printed before the error
    assert not out.exists()


def test_compare_cli_bad_input(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["compare", "resnet_huge", "--out", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith(
        "error: unknown variant 'resnet_huge'"
    )
    result = runner.invoke(app, ["compare", "--epochs", "0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--epochs must be an integer >= 1, got 0" in result.output
    result = runner.invoke(app, ["compare", "--list"])
    assert result.exit_code == 0 and all(name in result.output for name in list_variants())


def test_compare_cli_checks_out_before_training(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    (tmp_path / "busy" / "report.json").mkdir(parents=True)
    for out, needle in (
        (a_file, "is a file; expected a folder"),
        (tmp_path / "busy", "report.json' is a directory"),
    ):
        result = CliRunner().invoke(app, ["compare", "plain_5x5", "--quick", "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: --out") and needle in result.output
        assert len(result.output.splitlines()) == 1  # nothing trained before the error
    assert a_file.read_text() == "keep me"


def _bottleneck_macs(c_in, mid, hw_in, stride=1):
    hw_out = hw_in // stride
    out = 4 * mid
    macs = c_in * mid * hw_in**2 + 9 * mid * mid * hw_out**2 + mid * out * hw_out**2
    if stride != 1 or c_in != out:  # projection shortcut
        macs += c_in * out * hw_out**2
    return macs


def _basic_macs(c_in, c_out, hw_in, stride=1):
    hw_out = hw_in // stride
    macs = 9 * c_in * c_out * hw_out**2 + 9 * c_out * c_out * hw_out**2
    if stride != 1 or c_in != c_out:
        macs += c_in * c_out * hw_out**2
    return macs


def test_residual_pair_macs_by_hand():
    from onebyone.analysis import analyze
    from onebyone.experiments import build_variant

    stem, head = 9 * 1 * 32 * 28 * 28, 128 * 10
    basic = stem + _basic_macs(32, 64, 14) + _basic_macs(64, 64, 14) + _basic_macs(64, 128, 14, 2)
    bottleneck = stem + head + sum(
        _bottleneck_macs(*args)
        for args in [(32, 16, 14), (64, 16, 14), (64, 16, 14), (64, 32, 14, 2), (128, 32, 7),
                     (128, 32, 7)]
    )  # fmt: skip
    basic += head
    got = {n: analyze(build_variant(n), (1, 1, 28, 28)).total_macs for n in ("resnet_basic", "resnet_bottleneck")}  # fmt: skip
    assert got == {"resnet_basic": basic, "resnet_bottleneck": bottleneck}
    assert basic / bottleneck >= 2  # the claim's cost half; compare measures the accuracy half


def test_plot_gives_every_point_a_legend_entry_maxout_included():
    """Each kind of point has a legend entry in its own colour; maxout, which has no twin, is
    named in its entry (it had no legend entry at all)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    from onebyone.experiments.comparison import CompareReport, VariantResult, _figure

    report = CompareReport([
        VariantResult("plain_5x5", None, 455_114, 11_065_088, None, None, 0.97, 1.0),
        VariantResult("nin_mlpconv", "plain_5x5", 29_878, 5_000_000, None, None, 0.98, 1.0),
        VariantResult("maxout", None, 85_642, 4_000_000, None, None, 0.98, 1.0),
    ])  # fmt: skip
    fig = _figure(report, plt)
    try:
        (ax,) = fig.axes
        legend = ax.get_legend()
        labels = [t.get_text() for t in legend.get_texts()]
        assert labels == ["naive", "1x1-reduced", "no twin: maxout"]
        colours = {
            label: tuple(h.get_facecolor()[0]) for label, h in zip(labels, legend.legend_handles, strict=True)
        }
        assert colours == {
            "naive": to_rgba("tab:red"),
            "1x1-reduced": to_rgba("tab:green"),
            "no twin: maxout": to_rgba("tab:purple"),
        }
        # every variant is drawn once, at its (MACs, accuracy %)
        drawn = sorted(tuple(map(float, xy)) for c in ax.collections for xy in c.get_offsets())
        assert drawn == sorted((float(v.macs), 100 * v.accuracy) for v in report.variants)
    finally:
        plt.close(fig)
