"""Traffic, the roofline estimate, device profiles, calibration, measured profiles and diffs.

Bytes are checked against hand counts (each op reads its tensor arguments once and writes its
outputs once, float32 = 4 bytes); times against hand arithmetic on a profile with round rates.
No test asserts a timing: measured runs are only checked for shape (one time per row).
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import onebyone
from onebyone import CrossChannelPool, OneByOneError, analyze
from onebyone.analysis import (
    PRESETS,
    DeviceProfile,
    OpCost,
    estimate,
    load_profile,
    resolve_profile,
)
from onebyone.analysis.profiles import FALLBACK, default_profile_path, save_profile
from onebyone.cli import app

F32 = 4


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def traffic(model, shapes):
    r = analyze(model, shapes, device_profile="cpu-fallback")
    return r.bytes_read, r.bytes_written, r


# ------------------------------------------------------------------ bytes per op class


@pytest.mark.parametrize(
    "model, shapes, read, written",
    [
        # conv: input 2*3*10*10, weight 8*3*3*3, bias 8; output 2*8*8*8
        (nn.Conv2d(3, 8, 3), (2, 3, 10, 10), 600 + 216 + 8, 2 * 8 * 8 * 8),
        # linear (addmm): bias 2, input 3*4, weight 2*4; output 3*2
        (nn.Linear(4, 2), (3, 4), 2 + 12 + 8, 6),
        # matmul of 2-d tensors (mm): 6*4 and 4*5 in, 6*5 out
        (Fn(torch.matmul), [(6, 4), (4, 5)], 24 + 20, 30),
        # batched matmul (bmm): 2*3*4 and 2*4*5 in, 2*3*5 out
        (Fn(torch.bmm), [(2, 3, 4), (2, 4, 5)], 24 + 40, 30),
        # add: two 2*8 inputs, one output
        (Fn(torch.add), [(2, 8), (2, 8)], 32, 16),
        # cat along channels: 1*2*4*4 + 1*3*4*4 in, the same out
        (Fn(lambda a, b: torch.cat([a, b], 1)), [(1, 2, 4, 4), (1, 3, 4, 4)], 80, 80),
        # a view moves nothing
        (Fn(lambda x: x.view(4, -1)), (2, 2, 3), 0, 0),
        (Fn(lambda x: x.flatten(1).transpose(0, 1)), (2, 2, 3), 0, 0),
        # BatchNorm in eval: input 2*4*5*5 and four vectors of 4; output 2*4*5*5
        (nn.BatchNorm2d(4), (2, 4, 5, 5), 200 + 16, 200),
        # pooling 2x2: 1*4*8*8 in, 1*4*4*4 out (no indices written)
        (nn.MaxPool2d(2), (1, 4, 8, 8), 256, 64),
        (nn.AvgPool2d(2), (1, 4, 8, 8), 256, 64),
        (nn.AdaptiveAvgPool2d(1), (1, 4, 8, 8), 256, 4),
        # cross-channel pooling of 2 maps: 1*8*4*4 in, 1*4*4*4 out
        (CrossChannelPool(2), (1, 8, 4, 4), 128, 64),
        (CrossChannelPool(2, mode="avg"), (1, 8, 4, 4), 128, 64),
    ],
)
def test_bytes_by_hand(model, shapes, read, written):
    got_read, got_written, _ = traffic(model.eval(), shapes)
    assert (got_read, got_written) == (read * F32, written * F32)


def test_bytes_follow_the_dtype():
    r = analyze(nn.Linear(4, 2).half(), (3, 4), device_profile="cpu-fallback")
    assert (r.bytes_read, r.bytes_written) == (22 * 2, 6 * 2)


def test_meta_and_cpu_traffic_agree():
    m = onebyone.create_model("resnet20").eval()
    meta = analyze(m, (2, 3, 32, 32), device_profile="cpu-fallback")
    cpu = analyze(m, (2, 3, 32, 32), device="cpu", device_profile="cpu-fallback")
    assert [r.bytes for r in meta.rows] == [r.bytes for r in cpu.rows]


# ------------------------------------------------------------------ the roofline arithmetic


ROUND = DeviceProfile(
    name="round",
    description="round numbers",
    source="the test",
    rates={"conv1x1": 2e9, "conv": 1e9, "depthwise": 1e8, "gemm": 4e9, "elementwise": 1e9},
    bandwidth=1e9,
    overhead_s=1e-6,
)


def test_roofline_by_hand():
    # Conv2d(16, 32, 3, padding=1, bias=False) on 1x16x32x32: 9*16*32 * 32*32 MACs
    conv = nn.Conv2d(16, 32, 3, padding=1, bias=False)
    r = analyze(conv, (1, 16, 32, 32), device_profile=ROUND)
    flops = 2 * 9 * 16 * 32 * 32 * 32  # 9,437,184
    nbytes = (16 * 32 * 32 + 32 * 16 * 9 + 32 * 32 * 32) * 4  # 215,552
    row = r.rows[0]
    assert (row.flops, row.bytes) == (flops, nbytes)
    # compute 9.437 ms against memory 0.216 ms, plus 1 us: compute-bound
    assert row.est_time_s == pytest.approx(flops / 1e9 + 1e-6)
    assert row.bound == "compute" and row.intensity == pytest.approx(flops / nbytes)
    assert r.est_time_s == pytest.approx(row.est_time_s)
    assert r.device_profile == "round (the test)"


def test_memory_and_overhead_bound_by_hand():
    relu = analyze(nn.ReLU(), (1, 64, 64, 64), device_profile=ROUND).rows[0]
    n = 64 * 64 * 64  # 1 FLOP per element; 4 bytes read and 4 written per element
    assert relu.est_time_s == pytest.approx(8 * n / 1e9 + 1e-6) and relu.bound == "memory"
    tiny = analyze(nn.ReLU(), (1, 4), device_profile=ROUND).rows[0]
    assert tiny.est_time_s == pytest.approx(32 / 1e9 + 1e-6) and tiny.bound == "overhead"


def test_op_classes_pick_their_rate():
    dw = analyze(nn.Conv2d(8, 8, 3, groups=8, bias=False), (1, 8, 16, 16), device_profile=ROUND)
    flops = 2 * 9 * 8 * 14 * 14
    assert dw.rows[0].op_costs[0].op_class == "depthwise"
    assert dw.est_time_s == pytest.approx(max(flops / 1e8, dw.rows[0].bytes / 1e9) + 1e-6)
    pw = analyze(nn.Conv2d(8, 8, 1, bias=False), (1, 8, 16, 16), device_profile=ROUND)
    assert pw.rows[0].op_costs[0].op_class == "conv1x1"


def test_estimate_redoes_the_times_on_another_profile():
    r = analyze(nn.Conv2d(64, 64, 3), (8, 64, 56, 56), device_profile=ROUND)
    t4 = estimate(r, "t4")
    conv = r.rows[0].op_costs[0]
    expected = max(conv.flops / 8.1e12, conv.bytes / 320e9) + 5e-6
    assert t4.est_time_s == pytest.approx(expected)
    assert r.est_time_s == pytest.approx(conv.flops / 1e9 + 1e-6)  # the original is unchanged


def test_sixteen_bit_rates_apply_to_half_models():
    r = analyze(nn.Linear(4096, 4096).half(), (64, 4096), device_profile="a100-80gb")
    (cost,) = r.rows[0].op_costs
    assert cost.op_class == "gemm"
    assert r.est_time_s == pytest.approx(max(cost.flops / 312e12, cost.bytes / 2039e9) + 5e-6)


# ------------------------------------------------------------------ profiles


def test_presets_load_and_name_their_source():
    for name in ("h100-sxm", "h200", "a100-80gb", "l4", "t4"):
        p = resolve_profile(name)
        assert p is PRESETS[name] and "datasheet" in p.source
        assert all(rate > 0 for rate in p.rates.values())
    assert resolve_profile("T4") is PRESETS["t4"]
    assert resolve_profile(None) is FALLBACK  # nothing calibrated in this test's cache


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match=r"unknown device profile 'v100'.*a100-80gb, h100-sxm, h200, l4, t4"):
        resolve_profile("v100")
    with pytest.raises(TypeError, match="device_profile"):
        resolve_profile(3)


@pytest.mark.parametrize(
    "text, field",
    [
        ('{"name": "x", "rates": {', "not valid JSON"),
        ("hello", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (None, "'rates.gemm' must be a positive number, got 0"),
        ("negative", "'bandwidth' must be a positive number, got -1"),
        ("missing", "'rates.depthwise' must be a positive number, got None"),
        ("overhead", "'overhead_s' must be a number >= 0"),
    ],
)
def test_bad_profile_files_name_the_file_and_field(tmp_path, text, field):
    path = tmp_path / "p.json"
    good = PRESETS["t4"].to_dict()
    if text is None:
        good["rates"]["gemm"] = 0
        text = json.dumps(good)
    elif text == "negative":
        good["bandwidth"] = -1
        text = json.dumps(good)
    elif text == "missing":
        del good["rates"]["depthwise"]
        text = json.dumps(good)
    elif text == "overhead":
        good["overhead_s"] = "fast"
        text = json.dumps(good)
    path.write_text(text)
    with pytest.raises(ValueError, match=r"p\.json") as info:
        load_profile(path)
    assert field in str(info.value)
    result = CliRunner().invoke(app, ["summary", "resnet20", "--device-profile", str(path)])
    assert result.exit_code == 2 and result.output.startswith("error: ") and field in result.output


def test_saved_profile_round_trips_and_becomes_the_default(tmp_path):
    save_profile(ROUND)  # into $XDG_CACHE_HOME (a temporary folder in the tests)
    assert default_profile_path().is_file()
    assert load_profile(default_profile_path()) == ROUND
    assert analyze(nn.ReLU(), (1, 4)).device_profile == "round (the test)"
    result = CliRunner().invoke(app, ["summary", "tutorial_base"])
    assert "Estimated time:" in result.stdout and "on round (the test)" in result.stdout


# ------------------------------------------------------------------ calibrate


def test_calibrate_on_tiny_sizes_writes_a_valid_profile():
    progress = []
    p = onebyone.calibrate(quick=True, scale=0.05, progress=lambda *a: progress.append(a))
    assert load_profile(default_profile_path()) == p
    assert p.name == "calibrated-cpu" and "thread" in p.description
    assert set(p.rates) == {"conv1x1", "conv", "depthwise", "gemm", "elementwise", "pool"}
    assert progress[0][0] == "per-op overhead" and progress[-1] == ("done", 8, 8)
    assert p.cache_bytes == 0 or p.cache_bandwidth > 0


def test_a_failed_calibration_leaves_the_previous_profile(monkeypatch):
    import onebyone.analysis._calibrate as cal

    save_profile(ROUND)
    before = default_profile_path().read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(cal, "_median_time", broken)
    with pytest.raises(RuntimeError):
        onebyone.calibrate(quick=True, scale=0.05)
    assert default_profile_path().read_bytes() == before
    assert [p.name for p in default_profile_path().parent.iterdir()] == ["profile.json"]


def test_calibrate_bad_arguments():
    with pytest.raises(ValueError, match="device"):
        onebyone.calibrate("tpu", save=False)
    with pytest.raises(ValueError, match="scale"):
        onebyone.calibrate(scale=2, save=False)


def test_calibrate_command(tmp_path):
    out = tmp_path / "mine.json"
    result = CliRunner().invoke(app, ["calibrate", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout and load_profile(out).name == "calibrated-cpu"


# ------------------------------------------------------------------ measured profiles


def test_a_measured_profile_has_one_time_per_row_and_leaves_the_model_untouched():
    model = onebyone.create_model("resnet20")
    model.train()
    model.layer1.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    r = analyze(model, (2, 3, 32, 32), measure=True, repeats=2, warmup=1)
    assert r.measured_time_s > 0 and r.measured_device == "cpu" and r.measured_repeats == 2
    assert all(row.measured_time_s is not None and row.measured_time_s >= 0 for row in r.rows)
    assert model.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    assert "Measured time:" in str(r) and "Measured" in r.to_markdown()


def test_measure_bad_input():
    with torch.device("meta"):
        meta_model = nn.Linear(4, 2)
    with pytest.raises(ValueError, match="meta device"):
        analyze(meta_model, (1, 4), measure=True)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' is not available"):
            analyze(nn.Linear(4, 2), (1, 4), measure=True, device="cuda")
    with pytest.raises(ValueError, match="repeats"):
        analyze(nn.Linear(4, 2), (1, 4), measure=True, repeats=0)


def test_profile_command():
    result = CliRunner().invoke(app, ["profile", "nin_cifar10", "--repeats", "1", "--warmup", "0", "--sort", "time"])
    assert result.exit_code == 0, result.output
    assert "Measured" in result.stdout and "Where the time goes (measured)" in result.stdout
    bad = CliRunner().invoke(app, ["profile", "nin_cifar10", "--device", "meta"])
    assert bad.exit_code == 2 and "meta" in bad.output


# ------------------------------------------------------------------ summary --sort, plan, diff


def test_summary_sort_orders_rows():
    result = CliRunner().invoke(app, ["summary", "tutorial_7x7", "--sort", "macs", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    names = [line.split("|")[1].strip() for line in result.stdout.splitlines() if line.startswith("| conv")]
    assert names[0].startswith("conv2 ")  # the 7x7 layer has the most MACs
    bad = CliRunner().invoke(app, ["summary", "tutorial_7x7", "--sort", "speed"])
    assert bad.exit_code == 2 and "--sort" in bad.output


def test_plan_marks_what_cuts_macs_but_not_time():
    # on an H200 at 8x8, every layer is overhead-bound: a 1x1 in front only adds an operator
    p = onebyone.plan(onebyone.create_model("tutorial_7x7"), (1, 3, 8, 8), channels=64,
                      device_profile="h200")
    (e,) = p.entries
    assert e.macs_saved > 0 and e.time_saved_s < 0
    assert e.no_time_saved.startswith("overhead-bound")
    assert "cuts MACs but not the estimated time" in p.render()
    q = onebyone.plan(onebyone.create_model("tutorial_7x7"), (1, 3, 8, 8), channels=64,
                      device_profile="h200", sort="time")
    assert not q.entries[0].applied and q.total_macs_after == q.total_macs_before


def test_diff_of_two_zoo_models():
    a, b = onebyone.create_model("tutorial_7x7"), onebyone.create_model("tutorial_7x7_reduced")
    d = onebyone.diff(a, b, (1, 3, 32, 32), device_profile=ROUND)
    ra, rb = analyze(a, (1, 3, 32, 32)), analyze(b, (1, 3, 32, 32))
    assert d.total("params")[:2] == (ra.total_params, rb.total_params)
    macs_a, macs_b, ratio = d.total("macs")
    assert (macs_a, macs_b) == (ra.total_macs, rb.total_macs) and ratio == macs_b / macs_a
    only_b = [r.name for r in d.rows if r.a is None]
    assert only_b == ["conv3", "relu3"]  # the reduced twin's 7x7 follows its 1x1
    conv1 = next(r for r in d.rows if r.name == "conv1")
    assert conv1.ratio("macs") == 1.0
    assert "speedup" in d.render() and json.loads(d.to_json())["totals"]["macs"]["b"] == macs_b
    assert d.to_csv().splitlines()[0].startswith("name,type,params_a,params_b,params_ratio")
    assert d.to_markdown().startswith("| Layer (type) |")


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
def test_diff_command(fmt):
    result = CliRunner().invoke(
        app, ["diff", "tutorial_7x7", "tutorial_7x7_reduced", "--input", "3x16x16", "--format", fmt]
    )
    assert result.exit_code == 0, result.output
    assert "conv3" in result.stdout


def test_diff_bad_input():
    with pytest.raises(ValueError, match="input_size"):
        onebyone.diff(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(TypeError, match=r"nn\.Module or a Report"):
        onebyone.diff("resnet18", nn.Linear(2, 2), (1, 2))


def test_report_fields_keep_their_defaults_for_other_builders():
    from onebyone import LayerStats, Report

    row = LayerStats(name="x", type="Conv", depth=1, input_shapes=[(1, 3)], output_shape=(1, 3))
    r = Report(model="m", input_shapes=[(1, 3)], dtype="float32", device="onnx", rows=[row])
    assert (row.bytes, row.est_time_s, row.measured_time_s, r.uncounted_ops) == (0, 0.0, None, {})
    assert estimate(r, ROUND).est_time_s == 0.0 and OpCost("a", "gemm", 1, 1).bytes == 1
    with pytest.raises(OneByOneError.__mro__[1]):  # RuntimeError family stays the same
        raise OneByOneError("x")


def test_pooling_has_its_own_rate_and_small_ops_use_the_cache_bandwidth():
    slow_pool = DeviceProfile(
        name="p", description="", source="the test", rates={**ROUND.rates, "pool": 1e6},
        bandwidth=1e9, overhead_s=0.0, cache_bytes=1024, cache_bandwidth=1e10,
    )  # fmt: skip
    r = analyze(nn.MaxPool2d(2), (1, 4, 8, 8), device_profile=slow_pool)
    (cost,) = r.rows[0].op_costs
    assert cost.op_class == "pool" and cost.flops == 4 * 64  # 4 comparisons per output
    assert r.est_time_s == pytest.approx(256 / 1e6)  # compute-bound at the pool rate
    # without a pool rate, the elementwise one: 256 FLOPs at 1e9 take 0.256 us, less than the
    # (256 + 64) * 4 bytes at 1e9 B/s (1.28 us): memory-bound, plus 1 us overhead
    plain = analyze(nn.MaxPool2d(2), (1, 4, 8, 8), device_profile=ROUND).rows[0]
    assert plain.est_time_s == pytest.approx(1280 / 1e9 + 1e-6) and plain.bound == "memory"
    # ReLU on 64 floats moves 512 bytes (<= 1024: cache); on 4096 floats, 32 KB (memory)
    small = analyze(nn.ReLU(), (1, 64), device_profile=slow_pool).rows[0]
    large = analyze(nn.ReLU(), (1, 4096), device_profile=slow_pool).rows[0]
    # from the cache 512 B take 51.2 ns, less than 64 FLOPs at 1e9 (64 ns); from memory they
    # would take 512 ns
    assert small.est_time_s == pytest.approx(64 / 1e9) and small.bound == "compute"
    assert large.est_time_s == pytest.approx(32768 / 1e9) and large.bound == "memory"


def test_summary_with_measured_times_fits_80_columns():
    from onebyone.analysis import render_text

    r = analyze(onebyone.create_model("nin_cifar10"), (1, 3, 32, 32), measure=True, repeats=1, warmup=0)
    text = render_text(r, width=80, sort="time")
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "Measured" in text and "Where the time goes (measured)" in text
