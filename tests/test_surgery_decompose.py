"""decompose: exactness at full rank, monotone error, energy and budget met, skips, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from onebyone.surgery import DecomposedConv2d, DecomposedLinear, decompose

pytestmark = pytest.mark.usefixtures("one_thread")


def small_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=2, dilation=2),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(32, 32, 1),
        nn.Conv2d(32, 32, 3, padding=1, groups=32),
        nn.Conv2d(32, 32, 3, padding=1, groups=4),
        nn.Flatten(),
        nn.Linear(32 * 6 * 6, 24),
        nn.ReLU(),
        nn.Linear(24, 10),
    ).eval()


def hand_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Conv and Linear multiply-accumulates, from output sizes and weight shapes (test's own count)."""
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total += out.numel() * m.in_features

    hs = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return total


X = torch.randn(2, 3, 12, 12)


@pytest.mark.parametrize("method", ["tucker2", "reduce"])
def test_full_rank_reproduces_outputs(method):
    net = small_net()
    new, report = decompose(net, method=method, rank=1.0, round_to=1, example_input=X, only_if_cheaper=False)
    kinds = {c.name: c.method for c in report.changes}
    assert kinds == {"0": method, "2": method, "5": method, "11": "svd", "13": "svd"}
    assert isinstance(new[2], DecomposedConv2d) and isinstance(new[11], DecomposedLinear)
    with torch.no_grad():
        expected, got = net(X), new(X)
    assert (expected - got).abs().max() < 1e-4
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    for c in report.changes:
        assert c.weight_error < 1e-5 and c.output_error < 1e-5


def test_input_model_is_not_modified():
    net = small_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    types = [type(m) for m in net]
    new, _ = decompose(net, rank=0.5, example_input=X, only_if_cheaper=False)
    assert [type(m) for m in net] == types
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    assert new is not net and new[0] is not net[0]


def test_skips_grouped_depthwise_and_1x1_with_reasons():
    _, report = decompose(small_net(), rank=0.5, example_input=X, only_if_cheaper=False)
    reasons = {s.name: s.reason for s in report.skipped}
    assert "1x1" in reasons["7"]
    assert "depthwise" in reasons["8"]
    assert "grouped" in reasons["9"]
    assert {"7", "8", "9"}.isdisjoint(c.name for c in report.changes)


def test_not_cheaper_layers_are_left_alone():
    # A 3x3 conv from 3 channels: any tucker2 rewrite costs more than the layer itself.
    _, report = decompose(small_net(), rank=1.0, round_to=1, example_input=X)
    reasons = {s.name: s.reason for s in report.skipped}
    assert "would not reduce MACs" in reasons["0"]
    assert all(c.macs_after < c.macs_before for c in report.changes)


@pytest.mark.parametrize("method", ["tucker2", "reduce"])
def test_error_falls_as_rank_grows(method):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(24, 24, 3, padding=1)).eval()
    x = torch.randn(1, 24, 10, 10)
    errors = []
    for r in (2, 4, 8, 16, 24):
        new, report = decompose(net, method=method, rank=r, round_to=1, example_input=x, only_if_cheaper=False)
        with torch.no_grad():
            errors.append(float((new(x) - net(x)).norm() / net(x).norm()))
        assert report.changes[0].ranks == ((r, r) if method == "tucker2" else (r,))
    assert all(a >= b for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < 1e-5 and errors[0] > 0.1


def test_hooi_refines_hosvd():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(32, 32, 3)).eval()
    x = torch.randn(1, 32, 8, 8)
    _, r0 = decompose(net, rank=8, example_input=x, only_if_cheaper=False)
    _, r5 = decompose(net, rank=8, example_input=x, only_if_cheaper=False, iterations=5)
    assert r5.changes[0].weight_error <= r0.changes[0].weight_error + 1e-7


def kept_energy(matrix: np.ndarray, rank: int) -> float:
    s = np.linalg.svd(matrix, compute_uv=False)
    return float((s[:rank] ** 2).sum() / (s**2).sum())


@pytest.mark.parametrize("energy", [0.5, 0.8, 0.95])
def test_energy_is_met_with_the_smallest_ranks(energy):
    net = small_net()
    _new, report = decompose(net, energy=energy, round_to=1, example_input=X, only_if_cheaper=False)
    for c in report.changes:
        w = net.get_submodule(c.name).weight.detach().double().numpy()
        if c.method == "tucker2":
            unfoldings = [w.reshape(w.shape[0], -1), np.moveaxis(w, 1, 0).reshape(w.shape[1], -1)]
        elif c.method == "svd":
            unfoldings = [w]
        else:
            unfoldings = [np.moveaxis(w, 1, 0).reshape(w.shape[1], -1)]
        for m, r in zip(unfoldings, c.ranks, strict=True):
            assert kept_energy(m, r) >= energy - 1e-9
            assert r == 1 or kept_energy(m, r - 1) < energy


def test_round_to_rounds_ranks_up():
    net = nn.Sequential(nn.Conv2d(40, 64, 3)).eval()
    _, report = decompose(net, rank=5, round_to=8, example_input=torch.randn(1, 40, 8, 8))
    assert report.changes[0].ranks == (8, 8)


@pytest.mark.parametrize("budget", [0.3, 0.6])
@pytest.mark.parametrize("method", ["tucker2", "reduce"])
def test_budget_is_met(budget, method):
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    ).eval()
    x = torch.randn(1, 3, 16, 16)
    new, report = decompose(net, method=method, budget=budget, example_input=x)
    before, after = hand_macs(net, x), hand_macs(new, x)
    assert report.macs_before == before and report.macs_after == after
    assert after <= budget * before
    # Greedy, not wasteful: the most accurate layer choices come first, so the error stays finite.
    assert report.output_error < 1.0


def test_budget_that_cannot_be_met():
    net = nn.Sequential(nn.Conv2d(3, 8, 3)).eval()
    with pytest.raises(ValueError, match=r"budget 0\.01 cannot be met"):
        decompose(net, budget=0.01, example_input=torch.randn(1, 3, 8, 8))


@pytest.fixture
def fake_timing(monkeypatch):
    """Replace the clock: a call that runs a DecomposedConv2d "takes" times["after"] seconds,
    any other call times["before"]. Which module ran is seen by a global forward pre-hook, so the
    fake does not depend on the order in which decompose times the two."""
    import onebyone._timing

    times = {"before": 0.004, "after": 0.001}
    calls = []

    def fake_median_seconds(fn, *, warmup=2, repeats=7):
        seen = []
        handle = nn.modules.module.register_module_forward_pre_hook(lambda m, _: seen.append(type(m)))
        try:
            fn()
        finally:
            handle.remove()
        kind = "after" if DecomposedConv2d in seen else "before"
        calls.append(kind)
        return times[kind]

    monkeypatch.setattr(onebyone._timing, "median_seconds", fake_median_seconds)
    return times, calls


@pytest.mark.parametrize(("before", "after", "kept"), [(0.004, 0.001, True), (0.001, 0.004, False), (0.002, 0.002, False)])
def test_measure_keeps_only_rewrites_measured_faster(fake_timing, before, after, kept):
    times, calls = fake_timing
    times.update(before=before, after=after)
    net = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1)).eval()
    new, report = decompose(net, rank=0.25, measure=True, example_input=torch.randn(1, 64, 16, 16))
    assert "before" in calls and "after" in calls  # both the original and the rewrite were timed
    if kept:
        assert isinstance(new[0], DecomposedConv2d)
        (change,) = report.changes
        assert change.time_before_ms == pytest.approx(1000 * before)
        assert change.time_after_ms == pytest.approx(1000 * after)
        assert not any("measured" in s.reason for s in report.skipped)
    else:
        assert type(new[0]) is nn.Conv2d and torch.equal(new[0].weight, net[0].weight)
        assert report.changes == []
        (skip,) = [s for s in report.skipped if s.name == "0"]
        assert skip.reason.startswith("measured slower or equal")
        assert report.macs_after == report.macs_before


def test_rank_above_every_layer_is_an_error():
    # The widest rank a layer of small_net takes: min(out, in) of its kxk convs and Linears is 32.
    with pytest.raises(ValueError, match=r"rank 1000 is above the channels of every layer .* expected an int <= 32"):
        decompose(small_net(), rank=1000, example_input=X)
    # A rank some layers take is fine: the others are skipped with the reason.
    _, report = decompose(small_net(), rank=24, example_input=X, only_if_cheaper=False)
    assert {c.name for c in report.changes} == {"5", "11"}
    assert any("rank 24 is above the layer's channels" in s.reason for s in report.skipped)


def test_default_input_size_is_used():
    net = nn.Sequential(nn.Conv2d(32, 32, 3))
    net.default_input_size = (32, 8, 8)
    _, report = decompose(net, rank=8)
    assert report.changes[0].macs_before == 32 * 32 * 9 * 6 * 6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"energy": 0.0}, r"energy must be in \(0, 1\], got 0.0"),
        ({"energy": 1.5}, r"energy must be in \(0, 1\], got 1.5"),
        ({"budget": 1.0}, r"budget must be in \(0, 1\), got 1.0"),
        ({"budget": 0.0}, r"budget must be in \(0, 1\), got 0.0"),
        ({"rank": 0}, r"rank must be an integer >= 1, got 0"),
        ({"rank": 1.5}, r"rank must be an int >= 1 .* got 1.5"),
        ({"rank": -0.5}, r"rank must be an int >= 1 .* got -0.5"),
        ({"rank": 64, "layers": ["2"]}, r"rank: rank 64 is above the layer's channels \(16\) for layer '2'"),
        ({"rank": 4, "layers": ["conv9"]}, r"no layer named 'conv9'"),
        ({"rank": 4, "layers": ["1"]}, r"'1' is a ReLU, expected a Conv2d or a Linear"),
        ({}, r"give exactly one of rank, energy or budget; got none"),
        ({"rank": 4, "energy": 0.5}, r"got rank, energy"),
        ({"rank": 4, "method": "cp"}, r"method must be one of 'tucker2', 'reduce'; got 'cp'"),
        ({"rank": 4, "round_to": 0}, r"round_to must be an integer >= 1, got 0"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        decompose(small_net(), example_input=X, **kwargs)


def test_missing_example_input():
    with pytest.raises(ValueError, match="example_input is required"):
        decompose(small_net(), rank=4)


def test_decomposed_conv2d_constructor():
    x = torch.randn(1, 8, 6, 6)
    m = DecomposedConv2d(8, 16, kernel_size=3, padding=1, method="reduce", ranks=(4,))
    assert [tuple(c.weight.shape) for c in m] == [(4, 8, 1, 1), (16, 4, 3, 3)]
    assert m(x).shape == (1, 16, 6, 6)
    assert DecomposedConv2d(8, 16, method="reduce", ranks=4).ranks == (4,)
    with pytest.raises(TypeError):
        DecomposedConv2d(8, 16, method="reduce")  # the ranks are required
    with pytest.raises(ValueError, match=r"ranks for method 'tucker2' must have 2 entries, got \(4,\)"):
        DecomposedConv2d(8, 16, ranks=(4,))


def test_a_bug_in_our_decomposition_code_is_not_reported_as_a_user_error(monkeypatch):
    from onebyone.errors import InternalError, OneByOneError
    from onebyone.surgery import _tucker

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    net = nn.Sequential(nn.Conv2d(32, 32, 3), nn.ReLU())
    monkeypatch.setattr(_tucker, "tucker2", broken)
    with pytest.raises(InternalError, match=r"decomposing '0' .* RuntimeError: boom") as info:
        decompose(net, rank=8, example_input=torch.randn(1, 32, 8, 8))
    assert not isinstance(info.value, OneByOneError | ValueError)
    assert type(info.value.__cause__) is RuntimeError and str(info.value.__cause__) == "boom"

    # a factorization that fails on the weights themselves stays the user's error, layer named
    def singular(*args, **kwargs):
        raise torch.linalg.LinAlgError("the algorithm failed to converge")

    monkeypatch.setattr(_tucker, "tucker2", singular)
    with pytest.raises(OneByOneError, match=r"decomposing '0' .* failed to converge"):
        decompose(net, rank=8, example_input=torch.randn(1, 32, 8, 8))


def test_a_shape_mismatch_in_the_model_is_still_one_user_error():
    from onebyone.errors import OneByOneError

    net = nn.Sequential(nn.Conv2d(8, 8, 3), nn.Conv2d(7, 8, 1))  # 8 channels reach a 7-channel conv
    with pytest.raises(OneByOneError, match=r"^forward failed in module '1' \(Conv2d\) on input shapes \(1, 8, 6, 6\): "
                                            r"RuntimeError: .*expected input\[1, 8, 6, 6\] to have 7 channels") as info:
        decompose(net, rank=4, example_input=torch.randn(1, 8, 8, 8))
    assert len(str(info.value).splitlines()) == 1
    assert isinstance(info.value.__cause__, RuntimeError)


def test_meta_weights_are_refused_before_any_work():
    with torch.device("meta"):
        net = nn.Sequential(nn.Conv2d(8, 8, 3))
    with pytest.raises(ValueError, match=r"weights on the meta device \('0\.weight'"):
        decompose(net, rank=4)


def test_non_finite_weights_are_refused_with_the_layer_named():
    net = nn.Sequential(nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
    with torch.no_grad():
        net[2].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"layer '2' has non-finite weights"):
        decompose(net, rank=4, example_input=torch.randn(1, 8, 10, 10))
    assert torch.isnan(net[2].weight).any()  # the input model is left as it was


# ----------------------------------------------------------------------------- keyword calls, batch 0 (issue 14 item 17)


class KeywordCalls(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        x = self.conv(input=x)  # layers called with keyword arguments
        return self.fc(input=x.mean((2, 3)))


def test_layers_called_with_keyword_arguments_are_decomposed():
    net = KeywordCalls().eval()
    x = torch.randn(2, 16, 8, 8)
    small, report = decompose(net, rank=1.0, example_input=x, only_if_cheaper=False)
    assert [c.name for c in report.changes] == ["conv", "fc"]
    # 16 * 16 * 9 weights over 8x8 outputs (padding 1); the Linear: one row per example.
    assert [c.macs_before for c in report.changes] == [16 * 16 * 9 * 64, 16 * 16]
    with torch.no_grad():
        torch.testing.assert_close(small(x), net(x), rtol=1e-4, atol=1e-5)  # full rank: exact


def test_a_batch_0_example_input_decomposes_and_says_no_error_was_measured():
    net = nn.Sequential(nn.Conv2d(16, 16, 3), nn.Flatten(), nn.Linear(16 * 36, 8)).eval()
    small, report = decompose(net, rank=4, example_input=torch.randn(0, 16, 8, 8), only_if_cheaper=False)
    assert [c.name for c in report.changes] == ["0", "2"]
    assert report.output_error is None and all(c.output_error is None for c in report.changes)
    assert any("batch 0" in n for n in report.notes)
    assert report.macs_before == 16 * 16 * 9 * 36 + 16 * 36 * 8  # per example, as for batch 1
    assert small(torch.randn(0, 16, 8, 8)).shape == (0, 8)
