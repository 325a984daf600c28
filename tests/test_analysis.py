"""onebyone.analyze: counts checked against hand arithmetic and torch's FlopCounterMode."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import onebyone
from onebyone import LayerStats, OneByOneError, Report, analyze


def reference_flops(model: nn.Module, shape) -> int:
    """FLOPs of torch's own counter (2 per multiply-accumulate of conv / matmul)."""
    model = model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(*shape))
    return counter.get_total_flops()


# ------------------------------------------------------------------ the tutorial's arithmetic


def test_tutorial_first_layer_by_hand():
    m = nn.Sequential(nn.Conv2d(3, 512, 3, padding=1), nn.ReLU())
    r = analyze(m, (1, 3, 256, 256))
    assert isinstance(r, Report) and all(isinstance(row, LayerStats) for row in r.rows)
    conv = r.by_name()["0"]
    assert conv.params == 3 * 3 * 3 * 512 + 512 == 14_336
    assert conv.macs == 3 * 3 * 3 * 512 * 256 * 256 == 905_969_664
    assert conv.output_shape == (1, 512, 256, 256)
    assert conv.input_shapes == [(1, 3, 256, 256)]
    assert conv.formula == "3*3*3*512 + 512 = 14,336 params; 3*3*3*512 * 256*256 = 905,969,664 MACs"
    # bias add (1 per output element) and ReLU (1 per element) are the extra FLOPs
    n_out = 512 * 256 * 256
    assert r.total_flops == 2 * 905_969_664 + n_out + n_out
    assert conv.activation_bytes == 4 * n_out
    assert r.activation_bytes == 2 * 4 * n_out  # two leaf outputs, float32
    assert r.total_params == r.trainable_params == 14_336
    assert r.param_bytes == 4 * 14_336


@pytest.mark.parametrize(
    "layers, params",
    [
        ([(3, 512, 3)], 14_336),  # base
        ([(3, 512, 3), (512, 512, 1)], 14_336 + 512 * 512 + 512),  # project
        ([(3, 512, 3), (512, 64, 1)], 14_336 + 512 * 64 + 64),  # reduce
        ([(3, 512, 3), (512, 1024, 1)], 14_336 + 512 * 1024 + 1024),  # increase
        ([(3, 512, 3), (512, 64, 7)], 14_336 + 7 * 7 * 512 * 64 + 64),  # 7x7: 1,605,696
    ],
)
def test_tutorial_stacks(layers, params):
    mods = []
    for cin, cout, k in layers:
        mods += [nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU()]
    m = nn.Sequential(*mods)
    r = analyze(m, (1, 3, 32, 32))
    assert r.total_params == params
    macs = sum(k * k * cin * cout * 32 * 32 for cin, cout, k in layers)
    assert r.total_macs == macs
    assert reference_flops(m, (1, 3, 32, 32)) == 2 * r.total_macs


def test_seven_by_seven_conv_parameters():
    r = analyze(nn.Conv2d(512, 64, 7, padding=3), (1, 512, 8, 8))
    assert r.total_params == 1_605_696


# ------------------------------------------------------------------ against FlopCounterMode


def test_macs_match_flop_counter_on_conv_matmul_models():
    m = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.Conv2d(16, 32, 5, padding=2, groups=4),
        nn.Conv2d(32, 32, 3, padding=2, dilation=2, groups=32),
        nn.ConvTranspose2d(32, 8, 4, stride=2, padding=1),
        nn.Flatten(),
        nn.Linear(8 * 16 * 16, 10),
    )
    r = analyze(m, (2, 3, 16, 16))
    assert r.total_macs > 0
    assert 2 * r.total_macs == reference_flops(m, (2, 3, 16, 16))


def test_grouped_depthwise_dilated_transposed_by_hand():
    n, h = 2, 10
    grouped = nn.Conv2d(8, 16, 3, padding=1, groups=4, bias=False)
    r = analyze(grouped, (n, 8, h, h))
    assert r.total_params == 16 * (8 // 4) * 3 * 3
    assert r.total_macs == n * h * h * 16 * (8 // 4) * 9

    depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    r = analyze(depthwise, (n, 8, h, h))
    assert r.total_params == 8 * 9 + 8
    assert r.total_macs == n * h * h * 8 * 9

    dilated = nn.Conv2d(4, 6, 3, dilation=3)  # effective kernel 7: output 4x4
    r = analyze(dilated, (n, 4, h, h))
    assert r.rows[0].output_shape == (n, 6, 4, 4)
    assert r.total_macs == n * 4 * 4 * 6 * 4 * 9

    transposed = nn.ConvTranspose2d(6, 4, 3, stride=2, groups=2)  # weight (6, 2, 3, 3)
    r = analyze(transposed, (n, 6, 5, 5))
    assert r.rows[0].output_shape == (n, 4, 11, 11)
    assert r.total_params == 6 * 2 * 9 + 4
    # every input pixel of every input channel is spread over 3x3 x (4 / 2) outputs
    assert r.total_macs == n * 5 * 5 * 6 * 9 * (4 // 2)

    conv1d = nn.Conv1d(4, 8, 5)
    assert analyze(conv1d, (1, 4, 20)).total_macs == 16 * 8 * 4 * 5
    conv3d = nn.Conv3d(2, 3, 3)
    assert analyze(conv3d, (1, 2, 5, 5, 5)).total_macs == 27 * 3 * 2 * 27


@settings(max_examples=30, deadline=None)
@given(
    groups=st.sampled_from([1, 2, 4]),
    in_per_group=st.integers(1, 3),
    out_per_group=st.integers(1, 3),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    transposed=st.booleans(),
    bias=st.booleans(),
    size=st.integers(6, 10),
)
def test_any_conv2d_matches_flop_counter_and_hand_count(
    groups, in_per_group, out_per_group, kernel, stride, padding, dilation, transposed, bias, size
):
    # a direct convolution needs its dilated kernel to fit in the padded input
    assume(transposed or dilation * (kernel - 1) + 1 <= size + 2 * padding)
    in_channels, out_channels = groups * in_per_group, groups * out_per_group
    common = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias)
    if transposed:
        conv = nn.ConvTranspose2d(in_channels, out_channels, kernel, **common)
    else:
        conv = nn.Conv2d(in_channels, out_channels, kernel, **common)
    shape = (2, in_channels, size, size)
    out = conv(torch.randn(*shape))
    meta, cpu = analyze(conv, shape), analyze(conv, shape, device="cpu")
    assert meta.rows[0].output_shape == tuple(out.shape)
    assert meta.total_macs == cpu.total_macs
    assert 2 * meta.total_macs == reference_flops(conv, shape)
    # by hand: a direct conv does k*k*(in/groups) MACs per output element; a transposed one
    # spreads every input element over k*k*(out/groups) outputs
    per = kernel * kernel * (out_per_group if transposed else in_per_group)
    assert meta.total_macs == per * (math.prod(shape) if transposed else out.numel())
    assert meta.total_params == sum(p.numel() for p in conv.parameters())


# ------------------------------------------------------------------ functional code


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 3, 3, 3))
        self.proj = nn.Parameter(torch.randn(8, 5))

    def forward(self, x):
        y = F.conv2d(x, self.w, padding=1)  # N x 8 x 6 x 6
        y = F.relu(y) + y
        z = y.flatten(2).transpose(1, 2)  # N x 36 x 8
        z = z @ self.proj  # N x 36 x 5
        return torch.einsum("nij,nkj->nik", z, z)  # N x 36 x 36


def test_functional_only_model():
    r = analyze(Functional(), (2, 3, 6, 6))
    conv = 2 * 36 * 8 * 3 * 9
    matmul = 2 * 36 * 8 * 5
    einsum = 2 * 36 * 36 * 5
    assert r.total_macs == conv + matmul + einsum
    assert 2 * r.total_macs == reference_flops(Functional(), (2, 3, 6, 6))
    assert r.total_params == 8 * 27 + 40
    # all work belongs to the model's own row
    assert len(r.rows) == 1 and r.rows[0].name == "" and r.rows[0].macs == r.total_macs
    # relu and the add: 1 FLOP per element each
    assert r.rows[0].extra_flops == 2 * (2 * 8 * 6 * 6)


def test_residual_add_is_attributed_to_the_container():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)

        def forward(self, x):
            return self.conv(x) + x

    m = nn.Sequential(Block())
    rows = analyze(m, (1, 4, 5, 5)).by_name()
    assert rows["0"].macs == 0 and rows["0"].extra_flops == 4 * 5 * 5
    assert rows["0.conv"].macs == 4 * 4 * 9 * 25 and rows["0.conv"].extra_flops == 0
    assert rows["0"].is_leaf is False and rows["0.conv"].is_leaf is True


# ------------------------------------------------------------------ sharing and buffers


def test_shared_module_counted_once():
    shared = nn.Linear(6, 6)
    m = nn.Sequential(shared, nn.ReLU(), shared)
    r = analyze(m, (3, 6))
    assert r.total_params == 6 * 6 + 6
    calls = [row for row in r.rows if row.name == "0"]
    assert [c.call_index for c in calls] == [0, 1]
    assert [c.params for c in calls] == [42, 0]  # parameters counted at the first call only
    assert r.total_macs == 2 * 3 * 6 * 6  # but the work of both calls counts
    assert sum(row.params for row in r.rows) == r.total_params


def test_tied_weights_counted_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(50, 8)
            self.head = nn.Linear(8, 50, bias=False)
            self.head.weight = self.embed.weight

        def forward(self, ids):
            return self.head(self.embed(ids))

    r = analyze(Tied(), [torch.zeros(2, 7, dtype=torch.long)])
    assert r.total_params == 50 * 8
    rows = r.by_name()
    assert rows["embed"].params == 400 and rows["head"].params == 0
    assert rows["head"].macs == 2 * 7 * 8 * 50


def test_buffers_are_not_parameters():
    m = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4))
    r = analyze(m, (1, 3, 4, 4))
    assert r.total_params == 12 + 8  # conv weight + BN weight and bias
    assert r.buffers == 4 + 4 + 1  # running mean, running var, num_batches_tracked
    assert r.buffer_bytes == 8 * 4 + 8  # float32 stats + int64 counter
    frozen = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    frozen[0].requires_grad_(False)
    r = analyze(frozen, (1, 4))
    assert (r.trainable_params, r.non_trainable_params) == (10, 20)


# ------------------------------------------------------------------ devices and dtypes


def test_meta_and_cpu_counts_identical():
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1, ceil_mode=True),
        nn.Conv2d(8, 8, 3, groups=2),
        nn.GELU(),
        nn.AvgPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.LayerNorm(8),
        nn.Linear(8, 4),
        nn.Hardtanh(),
        nn.Softmax(dim=1),
    )
    meta = analyze(m, (2, 3, 17, 17))
    cpu = analyze(m, (2, 3, 17, 17), device="cpu")
    assert meta.to_dict() | {"device": ""} == cpu.to_dict() | {"device": ""}
    assert meta.device == "meta" and cpu.device == "cpu"


def test_cat_and_functional_meta_equals_cpu():
    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 2, 1)
            self.b = nn.Conv2d(4, 3, 3, padding=1)

        def forward(self, x):
            y = torch.cat([self.a(x), self.b(x)], 1)
            return (y * 2 - 1).mean(dim=(2, 3))

    meta, cpu = analyze(Branches(), (1, 4, 6, 6)), analyze(Branches(), (1, 4, 6, 6), device="cpu")
    assert meta.to_dict() | {"device": ""} == cpu.to_dict() | {"device": ""}
    assert meta.rows[0].output_shape == (1, 5)


def test_attention_counts_the_same_on_meta_and_cpu():
    # eval + no_grad on CPU would take attention's fused fast path, which has no rule
    d, heads, ff, n, s = 16, 2, 32, 2, 5
    layer = nn.TransformerEncoderLayer(d, heads, ff, batch_first=True).eval()
    in_proj, out_proj = n * s * d * 3 * d, n * s * d * d
    scores_and_mix = 2 * n * heads * s * s * (d // heads)
    feed_forward = 2 * n * s * d * ff
    expected = in_proj + scores_and_mix + out_proj + feed_forward
    for device in ("meta", "cpu"):
        r = analyze(layer, (n, s, d), device=device)
        assert r.total_macs == expected, device
        assert r.by_name()["self_attn"].macs == in_proj + scores_and_mix + out_proj
    assert torch.backends.mha.get_fastpath_enabled()  # the global switch is restored


def test_dtype_sets_byte_counts():
    r = analyze(nn.Linear(10, 10), (1, 10), dtype=torch.float16)
    assert r.param_bytes == 2 * 110 and r.dtype == "float16"


# ------------------------------------------------------------------ the user's model is untouched


def test_model_unchanged_and_no_hooks_left():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    m.train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    analyze(m, (2, 3, 8, 8), device="cpu", train=True)  # BN in train mode updates stats
    analyze(m, (2, 3, 8, 8))
    assert m.training
    for k, v in m.state_dict().items():
        assert v.device.type == "cpu"
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    for mod in m.modules():
        assert not mod._forward_hooks and not mod._forward_pre_hooks


def test_failing_forward_names_the_module():
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(10, 2))
    m.eval()
    with pytest.raises(OneByOneError) as info:
        analyze(m, (1, 3, 8, 8))
    msg = str(info.value)
    assert "'2'" in msg and "Linear" in msg and "(1, 288)" in msg
    assert info.value.__cause__ is not None
    assert not m.training
    assert all(not mod._forward_hooks and not mod._forward_pre_hooks for mod in m.modules())
    assert next(m.parameters()).device.type == "cpu"


def test_failing_forward_in_training_leaves_model_as_it_was():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
            self.head = nn.Linear(7, 2)  # wrong: the flattened map has 4*6*6 = 144 features

        def forward(self, x):
            return self.head(self.body(x).flatten(1))

    m = Net().train()
    seen = []
    handle = m.body.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    for device in ("meta", "cpu"):
        with pytest.raises(OneByOneError, match=r"'head' \(Linear\) on input shapes \(2, 144\)"):
            analyze(m, (2, 3, 8, 8), device=device, train=True)
    assert m.training and m.body.training and m.head.training
    # the user's own hook does not run on the copy (torch's own hooks, like weight_norm's,
    # do: tests/test_analysis_guarantees.py) and stays registered on the original, alone
    assert seen == []
    assert list(m.body._forward_hooks) == [handle.id]
    assert all(not mod._forward_pre_hooks for mod in m.modules())
    assert all(not mod._forward_hooks for mod in m.modules() if mod is not m.body)
    for k, v in m.state_dict().items():  # BN running stats not updated, nothing moved
        assert v.device.type == "cpu"
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_forward_updating_a_buffer_in_eval_leaves_the_original():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.register_buffer("calls", torch.zeros((), dtype=torch.long))

        def forward(self, x):
            self.calls += 1  # in place, even in eval mode
            return self.fc(x)

    m = Counter().eval()
    analyze(m, (1, 3), device="cpu")
    analyze(m, (1, 3))
    assert int(m.calls) == 0


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_channel_mismatch_error_is_one_error(device):
    with pytest.raises(
        OneByOneError, match=r"module '0' \(Conv2d\) on input shapes \(1, 4, 8, 8\)"
    ):
        analyze(nn.Sequential(nn.Conv2d(3, 8, 3)), (1, 4, 8, 8), device=device)
    # a mismatch inside the model, on the meta device too (its fast path checks the channels)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(5, 6, 3))
    with pytest.raises(OneByOneError, match=r"module '1' \(Conv2d\) on input shapes \(1, 4, 6, 6\)"):
        analyze(net, (1, 3, 8, 8), device=device)
    # Our part of the message (the module, the shapes) and then torch's, whose wording varies:
    # 2.13 "Kernel size can't be greater than actual input size", 2.11 (meta) "Given input size
    # per channel: [8, 8]. Calculated output size per channel: [0, 0]. Output size is too small".
    with pytest.raises(OneByOneError) as info:
        analyze(nn.Conv2d(3, 4, 9), (1, 3, 8, 8), device=device)
    assert re.fullmatch(
        r"forward failed in the model \(Conv2d\) on input shapes \(1, 3, 8, 8\): RuntimeError: "
        r".*(Kernel size can't be greater than actual input size|Output size is too small).*",
        str(info.value),
    ), str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_bug_in_a_counting_rule_is_not_reported_as_a_user_error(monkeypatch):
    from onebyone.analysis import MAC_RULES
    from onebyone.errors import InternalError

    def broken(args, kwargs, out):
        raise RuntimeError("boom")

    monkeypatch.setitem(MAC_RULES, torch.ops.aten.convolution, broken)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    for device in ("meta", "cpu"):
        with pytest.raises(InternalError, match=r"a bug in onebyone .* RuntimeError: boom") as info:
            analyze(net, (1, 3, 8, 8), device=device)
        assert not isinstance(info.value, OneByOneError | ValueError)
        assert type(info.value.__cause__) is RuntimeError and str(info.value.__cause__) == "boom"
    # a rule that raises ValueError (a user-error type) is our bug all the same
    monkeypatch.setitem(MAC_RULES, torch.ops.aten.convolution, lambda a, k, o: int("x"))
    with pytest.raises(InternalError) as info:
        analyze(net, (1, 3, 8, 8))
    assert type(info.value.__cause__) is ValueError
    # while a genuine shape mismatch in the model is still the one-line user error
    monkeypatch.undo()
    with pytest.raises(OneByOneError, match=r"forward failed in module '2' \(Linear\)"):
        analyze(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(7, 2)), (1, 3, 8, 8))


def test_a_bug_in_a_meta_shortcut_is_not_reported_as_a_user_error(monkeypatch):
    from onebyone.analysis._meta_kernels import META_SHORTCUTS
    from onebyone.errors import InternalError

    def broken(*args):
        raise IndexError("boom")

    monkeypatch.setitem(META_SHORTCUTS, torch.ops.aten.convolution.default, broken)
    with pytest.raises(InternalError, match=r"meta shortcut .* IndexError: boom"):
        analyze(nn.Conv2d(3, 4, 3), (1, 3, 8, 8))
    # the operator itself decides when the input is wrong: the user's error, not ours
    with pytest.raises(OneByOneError, match=r"the model \(Conv2d\) on input shapes \(1, 5, 8, 8\)"):
        analyze(nn.Conv2d(3, 4, 3), (1, 5, 8, 8))


def test_a_bug_in_a_counting_rule_shows_a_traceback_on_the_command_line(monkeypatch):
    from typer.testing import CliRunner

    from onebyone.analysis import MAC_RULES
    from onebyone.cli import app
    from onebyone.errors import InternalError

    def broken(args, kwargs, out):
        raise ValueError("boom")

    monkeypatch.setitem(MAC_RULES, torch.ops.aten.convolution, broken)
    result = CliRunner().invoke(app, ["summary", "resnet20", "--input", "3x32x32"])
    assert result.exit_code not in (0, 2)  # not the one-line user error (exit 2)
    assert isinstance(result.exception, InternalError) and "boom" not in result.output


@pytest.mark.parametrize(
    "bad", [(3, 224, 224), (1, 3, 0, 4), (1, -3, 4, 4), (), "1x3", [(1, 2), "x"]]
)
def test_bad_input_size(bad):
    with pytest.raises(ValueError, match="input_size"):
        analyze(nn.Sequential(nn.Conv2d(3, 8, 3)), bad)


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"nn\.Module"):
        analyze("resnet50", (1, 3, 8, 8))
    with pytest.raises(TypeError, match="dtype"):
        analyze(nn.Linear(2, 2), (1, 2), dtype=torch.int64)
    with pytest.raises(ValueError, match="device"):
        analyze(nn.Linear(2, 2), (1, 2), device="nowhere")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' is not available"):
            analyze(nn.Linear(2, 2), (1, 2), device="cuda")


def test_several_inputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, a, b):
            return self.fc(a) + self.fc(b)

    r = analyze(Two(), [(4, 3), (4, 3)])
    assert r.input_shapes == [(4, 3), (4, 3)]
    assert r.total_macs == 2 * 4 * 3 * 2


# ------------------------------------------------------------------ exports


def test_dict_json_csv_use_attribute_names():
    r = analyze(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (1, 3, 6, 6))
    d = json.loads(r.to_json())
    for key in (
        "total_params",
        "trainable_params",
        "non_trainable_params",
        "buffers",
        "total_macs",
        "total_flops",
        "param_bytes",
        "activation_bytes",
        "rows",
    ):
        assert d[key] == (getattr(r, key) if key != "rows" else [row.to_dict() for row in r.rows])
    assert d["rows"][1]["output_shape"] == [1, 4, 4, 4]
    lines = r.to_csv().splitlines()
    assert lines[0].startswith("name,type,depth,input_shapes,output_shape,params")
    assert len(lines) == 1 + len(r.rows)
    md = r.to_markdown()  # 3*3*3*4 weights at 4*4 positions = 1,728 MACs
    assert "| 0 (Conv2d) | (1, 4, 4, 4) | 112 | 1,728 |" in md


def test_subtree_and_by_name():
    m = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), nn.Conv2d(4, 2, 1))
    r = analyze(m, (1, 3, 6, 6))
    assert r.subtree("0")["macs"] == 3 * 4 * 9 * 16
    assert r.subtree("")["macs"] == r.total_macs
    with pytest.raises(KeyError):
        r.subtree("nope")


# ------------------------------------------------------------------ the zoo: torchvision's figures


@pytest.mark.parametrize(
    "name, macs, params",
    [("resnet50", 4_089_184_256, 25_557_032), ("googlenet", 1_498_376_192, 6_624_904)],
)
def test_zoo_matches_torchvision_published_numbers(name, macs, params):
    model = onebyone.create_model(name)
    r = analyze(model, (1, 3, 224, 224))
    assert r.total_macs == macs
    assert r.total_params == params
    assert next(model.parameters()).device.type == "cpu"  # the meta copy left it alone


def test_huge_input_on_meta_costs_nothing():
    # 8 x 3 x 4096 x 4096 would need gigabytes of activations on a real device
    r = analyze(onebyone.create_model("resnet18"), (8, 3, 4096, 4096))
    assert r.activation_bytes > 10 * 2**30


# ------------------------------------------------------------------ uncounted ops, dtype, sizes


_LIB = torch.library.Library("onebyone_test", "DEF")  # a custom op with no counting rule
_LIB.define("mystery(Tensor x) -> Tensor")
_LIB.impl("mystery", lambda x: x * 2, "CPU")
_LIB.impl("mystery", lambda x: torch.empty_like(x), "Meta")


class UsesCustomOp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.ops.onebyone_test.mystery(torch.ops.onebyone_test.mystery(self.fc(x)))


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_an_op_without_a_rule_is_recorded_and_shown(device):
    r = analyze(UsesCustomOp(), (2, 4), device=device)
    assert r.uncounted_ops == {"onebyone_test.mystery": 2}
    assert r.total_macs == 2 * 4 * 4  # the Linear still counts
    note = "Not counted (no counting rule, counted as 0): onebyone_test.mystery (2 calls)"
    assert note in str(r) and note in r.to_markdown()
    assert json.loads(r.to_json())["uncounted_ops"] == {"onebyone_test.mystery": 2}


def test_known_models_have_no_uncounted_ops():
    r = analyze(onebyone.create_model("googlenet"), (1, 3, 64, 64))
    assert r.uncounted_ops == {}
    assert "Not counted" not in str(r)


def test_dtype_follows_the_model_by_default():
    half = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()).half()
    r = analyze(half, (1, 3, 10, 10))
    assert r.dtype == "float16" and r.param_bytes == 2 * (3 * 3 * 3 * 8 + 8)
    assert r.activation_bytes == 2 * 2 * (8 * 8 * 8)  # two leaf outputs, 2 bytes each
    assert analyze(half, (1, 3, 10, 10), dtype=torch.float32).param_bytes == 4 * 224
    assert analyze(nn.ReLU(), (1, 3)).dtype == "float32"  # no parameters: float32


@pytest.mark.parametrize(
    "shape", [(1, 3, 99999999999999999999, 2), (1, 3, 9999999999, 9999999999), (10**19, 3)]
)
def test_a_size_no_tensor_can_hold_is_a_value_error(shape):
    with pytest.raises(ValueError, match=r"input_size .* is too large"):
        analyze(onebyone.create_model("resnet20"), shape)


def test_an_input_too_large_for_memory_is_one_error(monkeypatch):
    import onebyone.analysis._inputs as inputs

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1 TB")

    monkeypatch.setattr(inputs.torch, "randn", out_of_memory)
    with pytest.raises(OneByOneError, match=r"cannot allocate the input .* GiB"):
        analyze(nn.Conv2d(3, 4, 3), (1, 3, 100_000, 100_000), device="cpu")


def test_units_go_on_to_tera_and_peta():
    from onebyone.analysis.render import human_bytes, human_count

    assert human_count(814_560 * 10**9) == "814.56 T"
    assert human_count(2 * 10**15) == "2.00 P"
    assert human_count(999) == "999"
    assert human_bytes(23785.98 * 2**30) == "23.23 TB"
    assert human_bytes(3 * 2**50) == "3.00 PB"
    assert human_bytes(1023) == "1023.00 B"


# ------------------------------------------------------------------ layout: one-way imports


def test_analysis_has_no_import_cycle():
    import ast
    from pathlib import Path

    folder = Path(onebyone.__file__).parent / "analysis"
    graph = {}
    for path in folder.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps.add(node.module or "__init__")
        graph[path.stem] = deps
    assert "render" not in graph["report"] and "render" not in graph["_text"]
    assert "report" not in graph["_text"]
    assert "analyze" not in graph["_recorder"] and "_recorder" not in graph["plan"]

    def visit(name, seen):
        assert name not in seen, f"import cycle: {' -> '.join([*seen, name])}"
        for dep in graph.get(name, ()):
            if dep != "__init__":
                visit(dep, [*seen, name])

    for name in graph:
        visit(name, [])


def test_out_of_memory_in_the_forward_says_how_much_it_needs():
    def out_of_memory():
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 9 GB")

    class Hungry(nn.Module):  # a forward that runs out of memory on a real device
        def forward(self, x):
            if x.device.type == "cpu":
                out_of_memory()
            return x

    m = nn.Sequential(nn.Conv2d(3, 8, 3), Hungry())
    with pytest.raises(OneByOneError, match=r"forward failed in module '1' \(Hungry\)") as info:
        analyze(m, (1, 3, 10, 10), device="cpu")
    # two leaf outputs of 8*8*8 floats, 3*3*3*8 + 8 parameters, a 3*10*10 input; 4 bytes each
    need = 2 * 8 * 8 * 8 * 4 + (3 * 3 * 3 * 8 + 8) * 4 + 3 * 10 * 10 * 4
    assert f"out of memory: a forward that keeps every layer's output needs {need / 1024:.2f} KB" in str(
        info.value
    )
    assert isinstance(info.value.__cause__, RuntimeError)
