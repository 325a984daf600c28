"""fuse: BatchNorm folding and conv merges are exact in eval mode; what is not fused is reported."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from onebyone.surgery import NotFusable, decompose, fold_norm, fuse, merge_pair

pytestmark = pytest.mark.usefixtures("one_thread")


def randomize_bn(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-1, 1)
    return model.eval()


def test_sequential_conv_bn_and_chains_are_exact():
    net = randomize_bn(nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16),
        nn.Conv2d(16, 4, 1),  # kxk then 1x1
        nn.ReLU(),
        nn.Conv2d(4, 6, 1, bias=False), nn.Conv2d(6, 5, 3, padding=1),  # 1x1 (no bias) then padded kxk
        nn.Flatten(), nn.Linear(5 * 4 * 4, 12), nn.BatchNorm1d(12), nn.Linear(12, 3),
    ))
    x = torch.randn(4, 3, 8, 8)
    fused, report = fuse(net, example_input=x)
    assert_close(fused(x), net(x), rtol=1e-5, atol=1e-5)
    convs = [m for m in fused.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in fused.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    linears = [m for m in fused.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 3 and not norms and len(linears) == 1
    assert [c.method for c in report.changes].count("fold-bn") == 3
    assert report.output_error < 1e-5
    assert report.params_after < report.params_before


def test_residual_block_folds_through_fx():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(8)

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + x)

    net = randomize_bn(Block())
    x = torch.randn(2, 8, 6, 6)
    fused, report = fuse(net)
    assert_close(fused(x), net(x), rtol=1e-5, atol=1e-5)
    assert sorted(c.name for c in report.changes) == ["conv1", "conv2"]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    # conv1 then conv2 have a ReLU between them: never merged.
    assert "conv1 + conv2" not in {c.name for c in report.changes}


def test_untraceable_model_falls_back_to_sequential_order():
    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            if x.sum() > 1e9:  # data-dependent control flow: torch.fx cannot trace it
                return x
            return self.bn(self.body(x))

    net = randomize_bn(Gated())
    x = torch.randn(2, 3, 6, 6)
    fused, report = fuse(net)
    assert_close(fused(x), net(x), rtol=1e-5, atol=1e-5)
    assert any("does not trace with torch.fx" in n for n in report.notes)
    assert [c.name for c in report.changes] == ["body.0"]
    assert isinstance(fused.bn, nn.BatchNorm2d)  # outside any Sequential: left alone


def test_padded_kxk_after_1x1_with_bias_is_skipped_with_reason():
    net = nn.Sequential(nn.Conv2d(4, 6, 1), nn.Conv2d(6, 5, 3, padding=1)).eval()
    fused, report = fuse(net)
    assert not report.changes
    assert "lose the bias" in report.skipped[0].reason
    x = torch.randn(1, 4, 5, 5)
    assert_close(fused(x), net(x))


def test_1x1_with_bias_merges_when_unpadded_or_replicate_padded():
    for kwargs in ({"padding": 0}, {"padding": 1, "padding_mode": "replicate"}):
        net = nn.Sequential(nn.Conv2d(4, 6, 1), nn.Conv2d(6, 5, 3, **kwargs)).eval()
        fused, report = fuse(net)
        assert [c.method for c in report.changes] == ["merge"]
        x = torch.randn(2, 4, 7, 7)
        assert_close(fused(x), net(x), rtol=1e-5, atol=1e-5)


def test_two_kxk_convolutions_are_not_merged():
    net = nn.Sequential(nn.Conv2d(4, 6, 3), nn.Conv2d(6, 5, 3)).eval()
    _, report = fuse(net)
    assert not report.changes and "grow the kernel" in report.skipped[0].reason


@pytest.mark.parametrize(("layer", "norm", "reason"), [
    (nn.Conv2d(3, 4, 3), nn.BatchNorm2d(5), "BatchNorm has 5 features, the layer 4 outputs"),
    (nn.ReLU(), nn.BatchNorm2d(4), "the layer before it is a ReLU, not a Conv2d or Linear"),
    (nn.Conv2d(3, 4, 3), nn.LayerNorm(4), "LayerNorm is not a BatchNorm"),
])
def test_fold_norm_raises_not_fusable_with_the_reason(layer, norm, reason):
    with pytest.raises(NotFusable) as info:
        fold_norm(layer, norm.eval())
    assert str(info.value) == reason
    assert isinstance(info.value, ValueError)  # callers that catch ValueError still do


def test_merge_pair_raises_not_fusable_with_the_reason():
    with pytest.raises(NotFusable, match=r"^grouped convolutions are not merged$"):
        merge_pair(nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 4, 1))
    with pytest.raises(NotFusable, match="is not a pair of convolutions or Linears"):
        merge_pair(nn.Linear(4, 4), nn.Conv2d(4, 4, 1))


def test_batchnorm_without_running_stats_is_reported():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False)).eval()
    _, report = fuse(net)
    assert "track_running_stats=False" in report.skipped[0].reason


@pytest.mark.parametrize("method", ["tucker2", "reduce"])
def test_decomposed_bottlenecks_fuse_back_into_one_convolution(method):
    net = nn.Sequential(nn.Conv2d(16, 24, 3, padding=1), nn.ReLU(), nn.Conv2d(24, 24, 3, stride=2), nn.Flatten(),
                        nn.Linear(24 * 81, 10)).eval()
    x = torch.randn(2, 16, 20, 20)
    small, _ = decompose(net, method=method, rank=8, example_input=x)
    fused, _report = fuse(small)
    assert_close(fused(x), small(x), rtol=1e-5, atol=1e-5)
    assert [type(m) for m in fused.children()] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.Flatten, nn.Linear]
    assert fused.get_submodule("2").stride == (2, 2) and fused.get_submodule("0").padding == (1, 1)
    assert set(fused.state_dict()) == set(net.state_dict())
    # The merged weight is the low-rank product: rank 8 at most along the input channels.
    w = fused.get_submodule("2").weight.detach()
    assert torch.linalg.matrix_rank(w.transpose(0, 1).reshape(24, -1)) <= 8


def test_input_is_not_modified():
    net = randomize_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    fuse(net)
    assert isinstance(net[1], nn.BatchNorm2d)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k])


@settings(max_examples=30, deadline=None)
@given(
    k=st.sampled_from([1, 3, 5]),
    stride=st.sampled_from([1, 2]),
    padding=st.integers(0, 2),
    dilation=st.sampled_from([1, 2]),
    first_bias=st.booleans(),
    second_bias=st.booleans(),
    order=st.sampled_from(["kxk-1x1", "1x1-kxk"]),
)
def test_merge_pair_is_exact_or_explains(k, stride, padding, dilation, first_bias, second_bias, order):
    torch.set_num_threads(1)
    kxk_args = dict(kernel_size=k, stride=stride, padding=padding, dilation=dilation)
    if order == "kxk-1x1":
        first, second = nn.Conv2d(3, 5, bias=first_bias, **kxk_args), nn.Conv2d(5, 4, 1, bias=second_bias)
    else:
        first, second = nn.Conv2d(3, 5, 1, bias=first_bias), nn.Conv2d(5, 4, bias=second_bias, **kxk_args)
    if order == "1x1-kxk" and first_bias and padding > 0:
        with pytest.raises(NotFusable, match="lose the bias"):
            merge_pair(first, second)
        return
    merged = merge_pair(first, second)
    x = torch.randn(2, 3, 11, 11)
    with torch.no_grad():
        assert_close(merged(x), second(first(x)), rtol=1e-5, atol=1e-5)


def test_untraceable_model_still_merges_decomposed_layers():
    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3))

        def forward(self, x):
            if x.sum() > 1e9:
                return x
            return self.body(x)

    x = torch.randn(1, 16, 8, 8)
    small, _ = decompose(Gated().eval(), rank=4, example_input=x)
    fused, report = fuse(small)
    assert_close(fused(x), small(x), rtol=1e-5, atol=1e-5)
    assert [type(m) for m in fused.body] == [nn.Conv2d, nn.ReLU, nn.Conv2d]
    assert sum(c.method == "merge" for c in report.changes) == 4


def test_each_unmerged_pair_is_reported_once():
    net = nn.Sequential(nn.Conv2d(4, 6, 3), nn.Conv2d(6, 5, 3), nn.Conv2d(5, 5, 1), nn.Conv2d(5, 5, 1)).eval()
    fused, report = fuse(net)
    assert [s.name for s in report.skipped] == ["0 + 1"]
    assert len(report.changes) == 2
    x = torch.randn(1, 4, 9, 9)
    assert_close(fused(x), net(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("groups", [8, 2])
def test_bn_folds_into_depthwise_and_grouped_convs(groups):
    # Reference: the unfused model in eval mode. The folded conv must keep its groups.
    net = randomize_bn(nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=groups), nn.BatchNorm2d(8), nn.ReLU(),
    ))
    x = torch.randn(2, 8, 6, 6)
    fused, report = fuse(net, example_input=x)
    assert [c.method for c in report.changes] == ["fold-bn"]
    conv = next(m for m in fused.modules() if isinstance(m, nn.Conv2d))
    assert conv.groups == groups and conv.in_channels == 8
    assert conv.weight.shape == net[0].weight.shape
    assert_close(fused(x), net(x), rtol=1e-5, atol=1e-5)


def test_deliberate_bottlenecks_are_not_merged_into_costlier_layers():
    # MACs per output position, by hand: Linear 512*8 + 8*512 = 8,192 vs merged 512*512 = 262,144.
    net = nn.Sequential(nn.Linear(512, 8), nn.Linear(8, 512)).eval()
    _, report = fuse(net, example_input=torch.randn(1, 512))
    assert report.changes == [] and report.params_after == report.params_before
    (skip,) = report.skipped
    assert skip.name == "0 + 1"
    assert skip.reason.startswith("merging would cost more MACs (8,192 -> 262,144 per output position)")
    merged, report = fuse(net, example_input=torch.randn(1, 512), only_if_cheaper=False)
    assert [c.method for c in report.changes] == ["merge"]
    x = torch.randn(3, 512)
    assert_close(merged(x), net(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("layers", "merged"), [
    # 1x1 64->8 then 3x3 8->64: 512 + 4,608 = 5,120 < 36,864 merged: kept apart.
    ((nn.Conv2d(64, 8, 1, bias=False), nn.Conv2d(8, 64, 3, padding=1)), False),
    # 3x3 8->4 then 1x1 4->64: 288 + 256 = 544 < 4,608 merged: kept apart.
    ((nn.Conv2d(8, 4, 3, padding=1), nn.Conv2d(4, 64, 1)), False),
    # 1x1 4->16 on 4 input positions per output, then 3x3/2 16->4: 4 * 64 + 576 = 832 > 144 merged.
    ((nn.Conv2d(4, 16, 1, bias=False), nn.Conv2d(16, 4, 3, stride=2, padding=1)), True),
    # 3x3 8->16 then 1x1 16->4: 1,152 + 64 > 288 merged.
    ((nn.Conv2d(8, 16, 3), nn.Conv2d(16, 4, 1)), True),
])
def test_conv_pairs_merge_only_when_cheaper(layers, merged):
    net = nn.Sequential(*layers).eval()
    x = torch.randn(1, layers[0].in_channels, 8, 8)
    fused, report = fuse(net, example_input=x)
    assert bool(report.changes) == merged
    assert (report.macs_after < report.macs_before) == merged
    if not merged:
        assert "would cost more MACs" in report.skipped[0].reason
    assert_close(fused(x), net(x), rtol=1e-5, atol=1e-5)


def test_costlier_merge_on_request_round_trips(tmp_path):
    from onebyone.surgery import load, save

    net = nn.Sequential(nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)).eval()
    fused, _ = fuse(net, only_if_cheaper=False)
    assert sum(isinstance(m, nn.Conv2d) for m in fused.modules()) == 1
    path = tmp_path / "m.py"
    path.write_text("from torch import nn\ndef build():\n    return nn.Sequential(nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1))\n")
    again = load(save(fused, tmp_path / "f", base=f"{path}:build"), trust_code=True).eval()
    x = torch.randn(1, 16, 5, 5)
    assert torch.equal(again(x), fused(x))


def test_sequential_fallback_also_keeps_bottlenecks():
    class Untraceable(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(64, 4), nn.Linear(4, 64), nn.Linear(64, 8), nn.Linear(8, 2))

        def forward(self, x):
            if x.sum() > 1e9:  # data-dependent: torch.fx cannot trace it
                return x
            return self.body(x)

    net = Untraceable().eval()
    fused, report = fuse(net)
    assert any("does not trace" in n for n in report.notes)
    # 64->4->64 is a bottleneck (512 MACs vs 4,096 merged): kept; 4->64->8 costs 768 vs 32
    # merged, then 4->8->2 costs 48 vs 8: both merged.
    assert [c.name for c in report.changes] == ["body.1 + body.2", "body.1 + body.3"]
    assert any(s.name == "body.0 + body.1" and "would cost more MACs" in s.reason for s in report.skipped)
    x = torch.randn(3, 64)
    assert_close(fused(x), net(x), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- Linear + BatchNorm1d (issue 14 item 15)


def linear_bn() -> nn.Sequential:
    return randomize_bn(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))


def test_linear_then_batchnorm1d_on_a_3d_input_is_not_folded():
    net = linear_bn()
    x = torch.randn(2, 4, 4)  # (N, L, C): the BatchNorm normalizes L, the Linear mixes C
    fused, report = fuse(net, example_input=x)
    assert report.changes == []
    assert [s.name for s in report.skipped] == ["1"] and "3-D here" in report.skipped[0].reason
    with torch.no_grad():
        assert_close(fused(x), net(x))
    assert report.output_error == 0.0


def test_linear_then_batchnorm1d_without_an_input_is_not_folded_and_says_why():
    _, report = fuse(linear_bn())
    assert report.changes == [] and "pass example_input" in report.skipped[0].reason


def test_linear_then_batchnorm1d_on_a_2d_input_folds_exactly_and_replays():
    net = linear_bn()
    x = torch.randn(5, 4)
    fused, report = fuse(net, example_input=x)
    assert [c.method for c in report.changes] == ["fold-bn"]
    with torch.no_grad():
        # Independent reference: the BatchNorm's formula on the Linear's output, by hand.
        bn = net[1]
        y = net[0](x)
        expected = (y - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
        assert_close(fused(x), expected, rtol=1e-5, atol=1e-5)
    # The recorded step says which folds were proven, so a replay (no input) builds the same layers.
    from onebyone.surgery._recipe import get_recipe
    from onebyone.surgery.io import replay

    steps = get_recipe(fused)["steps"]
    assert steps == [{"op": "fuse", "exact_norms": ["1"]}]
    rebuilt = replay(linear_bn(), steps)
    rebuilt.load_state_dict(fused.state_dict(), strict=True)
    with torch.no_grad():
        assert_close(rebuilt.eval()(x), fused(x))
    unproven = replay(linear_bn(), [{"op": "fuse"}])  # a recipe without the proof leaves it alone
    assert isinstance(unproven.get_submodule("1"), nn.BatchNorm1d)


@pytest.mark.parametrize(("layer", "norm"), [
    (nn.Conv2d(3, 4, 1), nn.BatchNorm1d(4)),
    (nn.Linear(3, 4), nn.BatchNorm2d(4)),
])
def test_a_norm_over_another_axis_than_the_layers_output_is_not_fusable(layer, norm):
    with pytest.raises(NotFusable, match="normalizes dim 1"):
        fold_norm(layer, norm.eval())


# ----------------------------------------------------------------------------- the report's text (issue 16)


def test_fuse_with_nothing_to_do_says_so_and_why_instead_of_an_empty_table():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3)).eval()
    _, report = fuse(net, example_input=torch.randn(1, 3, 8, 8))
    lines = report.to_text().splitlines()
    # 3*4*9 + 4 + 4*2*9 + 2 = 186 parameters, none changed.
    assert lines[0] == "nothing to do: no BatchNorm directly after a Conv2d or Linear, and no two linear layers in a row"
    assert lines[1] == "params: 186 -> 186  (1.000x)"
    assert not any(line.startswith("layer") for line in lines)


def test_fuse_whose_candidates_were_all_skipped_points_to_the_reasons():
    net = nn.Sequential(nn.Conv2d(4, 6, 3), nn.Conv2d(6, 5, 3)).eval()
    _, report = fuse(net)
    lines = report.to_text().splitlines()
    assert lines[0] == "nothing to do: the one candidate was left alone, for the reason below"
    assert lines[1] == "skipped 0 + 1: neither convolution is a stride-1 unpadded 1x1: merging would grow the kernel"


def test_the_change_table_has_two_spaces_between_columns_and_no_trailing_spaces():
    net = randomize_bn(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)))
    _, report = fuse(net, example_input=torch.randn(1, 3, 6, 6))
    # Conv 3*8*9 + 8 = 224 and BatchNorm 2*8 = 16 parameters become one conv with a bias (224).
    assert report.to_text().splitlines()[:2] == [
        "layer  method   params",
        "0      fold-bn  240 -> 224",
    ]
