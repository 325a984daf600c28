"""ONNX export (checked in onnxruntime) and analysis of .onnx files (issue 17).

References are independent of the code under test: hand arithmetic for the counts, the
PyTorch analyzer (a different code path: aten operators on the meta device) for the same
models, onnxruntime against PyTorch's own forward for the exports, and graphs built by hand
with ``onnx.helper`` (no exporter involved) for the analyzer's rules.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import onebyone
from onebyone.cli import app
from onebyone.functional import POOL_GROUPINGS, POOL_MODES

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from onebyone.onnx import (  # noqa: E402
    STANDARD_DOMAINS,
    MissingExtraError,
    analyze_onnx,
    export_onnx,
    profile,
)

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()


def ort_run(path, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def node_domains(path) -> set[str]:
    return {n.domain for n in onnx.load(str(path)).graph.node}


# ---------------------------------------------------------------------------- export: layers


class AllPoolModes(nn.Module):
    """Every CrossChannelPool mode and grouping on one input, as separate outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 1)
        self.pools = nn.ModuleList(
            onebyone.CrossChannelPool(2, mode=mode, grouping=grouping)
            for mode, grouping in itertools.product(POOL_MODES, POOL_GROUPINGS)
        )
        self.strided = onebyone.CrossChannelPool(3, stride=2)

    def forward(self, x):
        y = self.conv(x)
        return (*(pool(y) for pool in self.pools), self.strided(y[:, :11]))  # 3 + 2 * 4 channels


class AllLayers(nn.Module):
    """Maxout (both groupings), MaxoutConv2d, ChannelProjection (plain and strided), ChannelMean/Sum."""

    def __init__(self) -> None:
        super().__init__()
        self.maxout_conv = onebyone.MaxoutConv2d(3, 4, 3, pieces=2, padding=1)
        self.maxout_conv_il = onebyone.MaxoutConv2d(3, 4, 3, pieces=3, grouping="interleaved", padding=1)
        self.project = onebyone.ChannelProjection(4, 6)
        self.project_s2 = onebyone.ChannelProjection(4, 6, stride=2, norm_layer=nn.BatchNorm2d)
        self.mean = onebyone.ChannelMean()
        self.sum = onebyone.ChannelSum(keepdim=True)
        self.maxout = onebyone.Maxout(6, 5, pieces=3)
        self.maxout_il = onebyone.Maxout(6, 5, pieces=2, grouping="interleaved")

    def forward(self, x):
        a = self.maxout_conv(x)
        b = self.maxout_conv_il(x)
        p = self.project(a)
        q = self.project_s2(b)
        flat = p.mean(dim=(2, 3))
        return p, q, self.mean(p), self.sum(q), self.maxout(flat), self.maxout_il(flat)


@pytest.mark.parametrize("module", [AllPoolModes, AllLayers])
def test_every_layer_and_mode_exports_to_standard_onnx(tmp_path, module):
    model = module().eval()
    path = tmp_path / "m.onnx"
    result = export_onnx(model, (2, 3, 7, 7), path)
    assert result.exporter == "dynamo" and result.fallback_reason is None
    assert result.custom_ops == () and node_domains(path) <= set(STANDARD_DOMAINS)
    assert result.checked_sizes == [(2, 3, 7, 7), (3, 3, 7, 7)]
    assert result.max_rel_error <= 1e-4
    if module is AllPoolModes:
        # max/wta -> ReduceMax, avg -> ReduceMean, sum -> ReduceSum, lp -> ReduceL2
        assert {"ReduceMax", "ReduceMean", "ReduceSum", "ReduceL2"} <= set(result.op_types)
    # independent of export_onnx's own check: a third batch size, compared output by output
    x = torch.randn(5, 3, 7, 7)
    with torch.no_grad():
        expected = model(x)
    for got, want in zip(ort_run(path, x.numpy()), expected, strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)
    # params and MACs of the file equal the PyTorch analyzer's
    ours, torchs = analyze_onnx(path, (4, 3, 7, 7)), onebyone.analyze(model, (4, 3, 7, 7))
    assert (ours.total_params, ours.total_macs) == (torchs.total_params, torchs.total_macs)


def test_export_is_atomic_and_leaves_the_model_alone(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path / "m.onnx"
    export_onnx(model, (1, 3, 8, 8), path)
    assert model.training  # not switched to eval
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temp file left


def test_batchnorm_stays_a_node_and_zero_biases_are_not_added(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU()).eval()
    path = tmp_path / "m.onnx"
    result = export_onnx(model, (1, 3, 8, 8), path)
    assert "BatchNormalization" in result.op_types
    conv = next(n for n in onnx.load(str(path)).graph.node if n.op_type == "Conv")
    assert len([i for i in conv.input if i]) == 2  # no bias input on a bias-free conv
    report = analyze_onnx(path, (1, 3, 8, 8))
    # 3*3*3*4 conv + 4 + 4 BN affine; running mean and var (8) are buffers, as in PyTorch
    assert report.total_params == 108 + 8 and report.buffers == 8


def test_verification_failure_writes_nothing(tmp_path, monkeypatch):
    from onebyone.onnx import _export

    monkeypatch.setattr(_export, "_verify", lambda *a, **k: 0.5)
    path = tmp_path / "m.onnx"
    with pytest.raises(onebyone.OneByOneError, match="does not match PyTorch"):
        export_onnx(nn.Conv2d(3, 4, 1), (1, 3, 4, 4), path)
    assert list(tmp_path.iterdir()) == []


def test_dynamo_failure_falls_back_to_torchscript_and_says_so(tmp_path, monkeypatch):
    from onebyone.onnx import _export

    def broken(*args, **kwargs):
        raise RuntimeError("simulated dynamo failure")

    monkeypatch.setattr(_export, "_export_dynamo", broken)
    path = tmp_path / "m.onnx"
    result = export_onnx(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (1, 3, 8, 8), path)
    assert result.exporter == "torchscript"
    assert "simulated dynamo failure" in result.fallback_reason and "TorchScript" in str(result)
    assert ort_run(path, np.zeros((2, 3, 8, 8), np.float32))[0].shape == (2, 4, 6, 6)


def test_model_forward_error_is_a_onebyone_error(tmp_path):
    with pytest.raises(onebyone.OneByOneError, match=r"forward failed on input \(1, 5, 8, 8\)"):
        export_onnx(nn.Conv2d(3, 4, 1), (1, 5, 8, 8), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dynamic_batch", [True, False])
def test_a_model_with_no_operations_says_so_and_writes_nothing(tmp_path, dynamic_batch):
    with pytest.raises(ValueError) as info:
        export_onnx(nn.Identity(), (1, 3, 8, 8), tmp_path / "m.onnx", dynamic_batch=dynamic_batch)
    assert str(info.value) == ("Identity has no operations to export: the ONNX graph would have no nodes (its "
                               "outputs are its inputs or constants); nothing was written")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "nets.py").write_text("from torch import nn\n\ndef same(num_classes=10):\n    return nn.Identity()\n")
    result = runner.invoke(app, ["export", f"{tmp_path / 'nets.py'}:same", "--input", "3x8x8",
                                 "--onnx", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and result.stderr.strip() == f"error: {info.value}"
    assert not (tmp_path / "m.onnx").exists()


def test_a_valid_file_with_no_operations_is_not_called_corrupt(tmp_path):
    f = TensorProto.FLOAT
    graph = helper.make_graph([], "empty", [helper.make_tensor_value_info("x", f, [1, 4])],
                              [helper.make_tensor_value_info("x", f, [1, 4])])
    path = tmp_path / "empty.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    onnx.checker.check_model(str(path))  # a valid model, which onnxruntime runs
    message = f"{str(path)!r} has no operations: its graph has no nodes (its outputs are its inputs or constants)"
    for call in (analyze_onnx, profile):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}; there is nothing to analyze or time$"):
            call(path)


def test_dynamic_spatial_refused_for_a_fixed_size_head(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    with pytest.raises(ValueError, match="convolutionalize"):
        export_onnx(model, (1, 3, 8, 8), tmp_path / "m.onnx", dynamic_spatial=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"input_size": (3, 8, 8, 0)}, ValueError, "input_size must be"),
        ({"input_size": "1x3x8x8"}, ValueError, "input_size must be"),
        ({"path": "m.txt"}, ValueError, "must end in .onnx"),
        ({"path": "no/such/folder/m.onnx"}, FileNotFoundError, "does not exist"),
        ({"opset": 3}, ValueError, "opset must be"),
        ({"opset": 999}, ValueError, "opset 999 is newer than the installed onnx"),
        ({"rtol": 0}, ValueError, "rtol must be"),
        ({"model": "resnet20"}, TypeError, "model must be an nn.Module"),
    ],
)
def test_export_bad_arguments(tmp_path, monkeypatch, kwargs, error, needle):
    monkeypatch.chdir(tmp_path)
    args = {"model": nn.Conv2d(3, 4, 1), "input_size": (1, 3, 8, 8), "path": "m.onnx", **kwargs}
    with pytest.raises(error, match=needle):
        export_onnx(args.pop("model"), args.pop("input_size"), args.pop("path"), **args)
    assert list(tmp_path.rglob("*")) == []


# ---------------------------------------------------------------------------- export: surgery


def test_surgery_outputs_export(tmp_path):
    from onebyone.surgery import decompose, fuse

    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1)
    ).eval()
    x = torch.randn(1, 3, 8, 8)
    small, _ = decompose(net, rank=0.5, example_input=x, only_if_cheaper=False)
    fused, _ = fuse(net, example_input=x)
    for name, model in (("decomposed", small.eval()), ("fused", fused.eval())):
        path = tmp_path / f"{name}.onnx"
        result = export_onnx(model, (1, 3, 8, 8), path)
        assert result.custom_ops == () and result.max_rel_error <= 1e-4, name
        assert ("BatchNormalization" in result.op_types) == (name == "decomposed"), name
        ours, torchs = analyze_onnx(path, (1, 3, 8, 8)), onebyone.analyze(model, (1, 3, 8, 8))
        assert (ours.total_params, ours.total_macs) == (torchs.total_params, torchs.total_macs), name


def test_convolutionalized_model_gives_a_score_map_in_onnxruntime(tmp_path):
    from onebyone.surgery import convolutionalize

    net = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10), nn.ReLU(), nn.Linear(10, 5)
    ).eval()
    conv_net, _ = convolutionalize(net, (3, 8, 8))
    conv_net.eval()
    path = tmp_path / "fcn.onnx"
    result = export_onnx(conv_net, (1, 3, 8, 8), path, dynamic_spatial=True)
    assert result.dynamic_axes == {0: "batch", 2: "height", 3: "width"}
    x = torch.randn(2, 3, 20, 14)
    (scores,) = ort_run(path, x.numpy())
    assert scores.shape == (2, 5, 13, 7)  # one score per 8x8 window
    with torch.no_grad():
        np.testing.assert_allclose(scores, conv_net(x).numpy(), rtol=1e-4, atol=1e-5)
        # the map's top-left cell is the original classifier on the top-left 8x8 crop
        np.testing.assert_allclose(scores[:, :, 0, 0], net(x[:, :, :8, :8]).numpy(), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- analysis: hand-built models


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(16, 48)
        self.out = nn.Linear(16, 8)

    def forward(self, x):  # N x S x 16
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        heads = [t.reshape(t.shape[0], t.shape[1], 2, 8).transpose(1, 2) for t in (q, k, v)]
        q, k, v = heads  # N x 2 x S x 8
        attn = torch.softmax(q @ k.transpose(-1, -2), dim=-1)  # N x 2 x S x S
        y = (attn @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], 16)
        return self.out(y)


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(torch.relu(self.conv(x)))


# (model, input size, params by hand, MACs by hand)
HAND = {
    # out 5x5: (11 + 2*1 - 2*(3-1) - 1) // 2 + 1; per output pixel 3*3*(8/4) MACs for 12 maps
    "grouped_dilated_strided": (
        nn.Conv2d(8, 12, 3, stride=2, padding=1, dilation=2, groups=4), (2, 8, 11, 11),
        12 * 2 * 3 * 3 + 12, 2 * (3 * 3 * 2 * 12) * 5 * 5,
    ),
    # each of the 5x5 input pixels is scattered through 3x3 taps into 4/2 maps, from 6 inputs
    "transposed_grouped": (
        nn.ConvTranspose2d(6, 4, 3, stride=2, groups=2), (1, 6, 5, 5),
        6 * 2 * 3 * 3 + 4, 3 * 3 * 6 * 2 * 5 * 5,
    ),
    "conv1d_strided": (nn.Conv1d(3, 5, 4, stride=3), (2, 3, 13), 5 * 3 * 4 + 5, 2 * 4 * 3 * 5 * 4),
    # qkv 16->48 on 2*5 tokens, Q K^T and A V per head (2 heads of 8), out 16->8
    "attention": (
        Attention(), (2, 5, 16),
        16 * 48 + 48 + 16 * 8 + 8,
        2 * 5 * 16 * 48 + 2 * 2 * 5 * 8 * 5 + 2 * 2 * 5 * 5 * 8 + 2 * 5 * 16 * 8,
    ),
    "shared_conv": (Shared(), (1, 4, 6, 6), 4 * 4 * 3 * 3 + 4, 2 * (3 * 3 * 4 * 4) * 6 * 6),
    "linear_3d": (nn.Linear(7, 3), (2, 4, 7), 7 * 3 + 3, 2 * 4 * 7 * 3),
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_counts_of_hand_built_models(tmp_path, name):
    model, size, params, macs = HAND[name]
    path = tmp_path / f"{name}.onnx"
    export_onnx(model.eval(), size, path)
    report = analyze_onnx(path, size)
    assert (report.total_params, report.total_macs) == (params, macs)
    reference = onebyone.analyze(model, size)
    assert (reference.total_params, reference.total_macs) == (params, macs)


def _graph_model(nodes, inputs, outputs, initializers=(), opset=18, functions=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], functions=list(functions))


def _init(name, shape, value=None):
    data = np.full(shape, 0.5 if value is None else value, dtype=np.float32)
    return numpy_helper.from_array(data, name)


def test_rules_on_a_hand_written_graph(tmp_path):
    """Gemm with transA, batched MatMul, a shared initializer, pooling, BN: no exporter involved."""
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Gemm", ["a", "w"], ["g"], transA=1, name="gemm"),  # a: 4x3 -> A: 3x4
        helper.make_node("MatMul", ["x", "w"], ["m1"], name="mm1"),  # x: 2x5x3x4 @ 4x6
        helper.make_node("MatMul", ["x", "w"], ["m2"], name="mm2"),  # shares w
        helper.make_node("Add", ["m1", "m2"], ["s"], name="add"),
        helper.make_node("MaxPool", ["s"], ["p"], kernel_shape=[2, 2], name="pool"),
        helper.make_node(
            "BatchNormalization", ["p", "scale", "bias", "mean", "var"], ["bn"], name="bn"
        ),
        helper.make_node("GlobalAveragePool", ["bn"], ["gap"], name="gap"),
    ]
    model = _graph_model(
        nodes,
        [helper.make_tensor_value_info("a", f, [4, 3]), helper.make_tensor_value_info("x", f, ["n", 5, 3, 4])],
        [helper.make_tensor_value_info("g", f, None), helper.make_tensor_value_info("gap", f, None)],
        [_init("w", [4, 6]), _init("scale", [5]), _init("bias", [5]), _init("mean", [5]), _init("var", [5], 1.0)],
    )
    path = tmp_path / "hand.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match=r"symbolic dimension 'n' \(axis 0"):
        analyze_onnx(path)
    report = analyze_onnx(path, [(4, 3), (2, 5, 3, 4)])
    rows = {r.name: r for r in report.rows}
    assert rows["gemm"].macs == 3 * 4 * 6 and rows["gemm"].params == 4 * 6  # w counted here
    assert rows["mm1"].macs == rows["mm2"].macs == 2 * 5 * 3 * 4 * 6
    assert rows["mm1"].params == rows["mm2"].params == 0  # shared: counted once
    assert rows["add"].extra_flops == 2 * 5 * 3 * 6
    assert rows["pool"].output_shape == (2, 5, 2, 5) and rows["pool"].extra_flops == 4 * 2 * 5 * 2 * 5
    assert rows["bn"].params == 10 and rows["bn"].extra_flops == 4 * 100
    assert rows["gap"].extra_flops == 100 and rows["gap"].output_shape == (2, 5, 1, 1)
    assert report.total_params == 24 + 10 and report.buffers == 10
    assert report.total_macs == 72 + 2 * 720
    assert rows["mm1"].activation_bytes == 2 * 5 * 3 * 6 * 4
    assert report.total_flops == 2 * report.total_macs + sum(r.extra_flops for r in report.rows)


def test_weight_expanded_over_a_dynamic_batch_counts_once(tmp_path):
    """ChannelProjection's bmm path: MatMul(Expand(W, [N, 3, 4]), x) with N read from the input."""
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], start=0, end=1),
        helper.make_node("Concat", ["s", "tail"], ["shape"], axis=0),
        helper.make_node("Expand", ["w", "shape"], ["we"], name="expand"),
        helper.make_node("MatMul", ["we", "x"], ["y"], name="mm"),
    ]
    tail = numpy_helper.from_array(np.array([3, 4], dtype=np.int64), "tail")
    model = _graph_model(
        nodes, [helper.make_tensor_value_info("x", f, ["n", 4, 5])], [helper.make_tensor_value_info("y", f, None)],
        [_init("w", [3, 4]), tail],
    )
    path = tmp_path / "expand.onnx"
    onnx.save(model, str(path))
    report = analyze_onnx(path, (2, 4, 5))
    rows = {r.name: r for r in report.rows}
    assert rows["mm"].params == 3 * 4 and rows["mm"].macs == 2 * 3 * 4 * 5
    assert rows["mm"].output_shape == (2, 3, 5) and report.total_params == 12


def test_custom_op_is_named_or_listed(tmp_path):
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("FancyOp", ["r"], ["z"], domain="com.example", name="fancy"),
        helper.make_node("Relu", ["z"], ["y"], name="after"),  # its input shape is unknown
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", f, [1, 4])], [helper.make_tensor_value_info("y", f, None)]
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)]
    )
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    with pytest.raises(NotImplementedError, match=r"node fancy \(com\.example::FancyOp\)"):
        analyze_onnx(path)
    report = analyze_onnx(path, strict=False)
    assert report.uncounted == ["fancy (com.example::FancyOp)", "after (Relu, shape unknown)"]
    assert "no counting rule" in report.rows[-2].formula
    assert report.rows[1].extra_flops == 4  # the Relu before it is counted
    result = runner.invoke(app, ["summary", str(path)])
    assert result.exit_code == 2 and "com.example::FancyOp" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_register_op_rule_refuses_duplicates():
    from onebyone.onnx import register_op_rule

    with pytest.raises(ValueError, match="'Conv' is already registered"):
        register_op_rule("Conv")(lambda node: None)


# ---------------------------------------------------------------------------- bad files


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "small.onnx"
    export_onnx(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), (1, 3, 8, 8), path)
    return path


def _external_data_model(folder):
    f = TensorProto.FLOAT
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    model = _graph_model(
        nodes, [helper.make_tensor_value_info("x", f, [1, 64])], [helper.make_tensor_value_info("y", f, None)],
        [_init("w", [64, 64])],
    )
    path = folder / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="ext.bin", size_threshold=0)
    return path


def test_external_data_present_and_missing(tmp_path):
    path = _external_data_model(tmp_path)
    assert analyze_onnx(path).total_params == 64 * 64
    (tmp_path / "ext.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"'ext\.bin', which is missing"):
        analyze_onnx(path)


def test_newer_opset_than_supported(tmp_path):
    f = TensorProto.FLOAT
    model = _graph_model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", f, [1, 4])],
        [helper.make_tensor_value_info("y", f, None)],
        opset=onnx.defs.onnx_opset_version() + 5,
    )
    path = tmp_path / "future.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match="newer than the installed onnx"):
        analyze_onnx(path)
    with pytest.raises(ValueError, match="newer than the installed onnx"):
        profile(path)


def test_bad_files_are_one_line_cli_errors(tmp_path, small_onnx):
    not_onnx = tmp_path / "text.onnx"
    not_onnx.write_text("this is not a model\n" * 50, encoding="utf-8")
    truncated = tmp_path / "truncated.onnx"
    data = small_onnx.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    ext = _external_data_model(tmp_path)
    (tmp_path / "ext.bin").unlink()
    cases = [
        (["summary", str(not_onnx)], "is not an ONNX model"),
        (["summary", str(truncated)], "is not an ONNX model"),
        (["summary", str(ext)], "which is missing"),
        (["summary", str(small_onnx)], "symbolic dimension 'batch'"),
        (["summary", str(tmp_path / "none.onnx")], "does not exist"),
        (["summary", str(small_onnx), "--input", "4x8x8"], "axis 1 is fixed at 3"),
        (["export", "tutorial_reduce", "--input", "3x8x8", "--onnx", str(tmp_path / "no" / "m.onnx")], "does not exist"),
        (["export", "tutorial_reduce", "--onnx", str(tmp_path / "m.txt")], "expected one of .onnx"),
        (["export", "--onnx", str(tmp_path / "m.onnx")], "give the MODEL"),
    ]
    for args, needle in cases:
        result = runner.invoke(app, args)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2, (args, result.output)
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (args, lines)
    assert not (tmp_path / "no").exists() and not (tmp_path / "m.onnx").exists()


def test_without_the_onnx_extra_one_line_names_it(tmp_path, monkeypatch, small_onnx):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a)
    )
    with pytest.raises(MissingExtraError, match=r"pip install 'onebyone\[onnx\]'"):
        export_onnx(nn.Conv2d(3, 4, 1), (1, 3, 4, 4), tmp_path / "m.onnx")
    with pytest.raises(ImportError, match="onnxruntime"):
        onebyone.analyze(small_onnx, (1, 3, 8, 8))
    for args in (
        ["summary", str(small_onnx), "--input", "3x8x8"],
        ["export", "tutorial_reduce", "--onnx", str(tmp_path / "m.onnx")],
    ):
        result = runner.invoke(app, args)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and "onebyone[onnx]" in lines[0], lines
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- CLI and profile


def test_cli_export_then_summary(tmp_path):
    path = tmp_path / "t.onnx"
    result = runner.invoke(app, ["export", "tutorial_project", "--input", "3x16x16", "--onnx", str(path), "--dynamic-spatial"])
    assert result.exit_code == 0, result.output
    assert "dynamo exporter" in result.stdout and "1x3x16x16, 2x3x24x24" in result.stdout
    result = runner.invoke(app, ["summary", str(path), "--input", "3x256x256", "--format", "json"])
    assert result.exit_code == 0, result.output
    import json

    doc = json.loads(result.stdout)
    convs = [r for r in doc["rows"] if r["type"] == "Conv"]
    # the tutorial's numbers: 3*3*3*512 + 512 and 512*512 + 512 params
    assert [r["params"] for r in convs] == [14_336, 262_656]
    assert [r["macs"] for r in convs] == [905_969_664, 17_179_869_184]
    assert doc["total_params"] == 276_992


def test_cli_export_from_a_plan_and_checkpoint(tmp_path):
    from onebyone.surgery import fuse, save

    base = onebyone.create_model("tutorial_reduce").eval()
    fused, _ = fuse(base)
    plan = save(fused, tmp_path / "fused", base="tutorial_reduce")
    out = tmp_path / "fused.onnx"
    result = runner.invoke(app, ["export", "--plan", str(plan), "--input", "3x8x8", "--onnx", str(out)])
    assert result.exit_code == 0, result.output
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(ort_run(out, x.numpy())[0], fused(x).numpy(), rtol=1e-4, atol=1e-5)

    from onebyone._io import save_safetensors_atomic

    weights = save_safetensors_atomic(base.state_dict(), tmp_path / "w.safetensors")
    out2 = tmp_path / "ckpt.onnx"
    result = runner.invoke(
        app, ["export", "tutorial_reduce", "--checkpoint", str(weights), "--input", "3x8x8", "--onnx", str(out2), "--static-batch"]
    )
    assert result.exit_code == 0, result.output
    with torch.no_grad():
        np.testing.assert_allclose(ort_run(out2, x.numpy())[0], base(x).numpy(), rtol=1e-4, atol=1e-5)
    result = runner.invoke(app, ["export", "tutorial_reduce", "--plan", str(plan), "--onnx", str(out2)])
    assert result.exit_code == 2 and "not both" in result.stderr


def test_profile_reports_medians(small_onnx):
    r = profile(small_onnx, (2, 3, 8, 8), repeats=5, warmup=1, threads=1)
    assert r.input_shapes == [(2, 3, 8, 8)] and len(r.samples_ms) == 5
    assert r.median_ms == sorted(r.samples_ms)[2]
    assert "1 thread" in str(r)
    with pytest.raises(ValueError, match="symbolic dimension 'batch'"):
        profile(small_onnx)
    with pytest.raises(ValueError, match="repeats"):
        profile(small_onnx, (1, 3, 8, 8), repeats=0)


def test_analyze_dispatch_and_report_formats(small_onnx):
    report = onebyone.analyze(str(small_onnx), (1, 3, 8, 8))
    assert report.total_params == 8 * 3 * 9 + 8 and report.total_macs == 3 * 3 * 3 * 8 * 6 * 6
    assert report.rows[0].name == "" and report.rows[0].output_shape == (1, 8, 6, 6)
    conv = report.rows[1]
    assert conv.formula == "3*3*3*8 + 8 = 224 params; 3*3*3*8 * 6*6 = 7,776 MACs"
    assert conv.activation_bytes == 8 * 6 * 6 * 4 and conv.input_shapes == [(1, 3, 8, 8)]
    assert report.to_csv() and report.to_markdown() and str(report)
    assert math.isclose(report.param_bytes, 4 * report.total_params)
    assert os.fspath(small_onnx).endswith(".onnx")


def test_profile_command_times_an_onnx_file_in_onnxruntime(tmp_path):
    path = tmp_path / "m.onnx"
    export_onnx(nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU()), (1, 3, 8, 8), path)
    result = runner.invoke(app, ["profile", str(path), "--input", "3x8x8", "--batch", "2", "--repeats", "3"])
    assert result.exit_code == 0, result.output
    # one line: the shape it ran at, the median and how it was measured
    assert re.fullmatch(
        r".*m\.onnx at 2x3x8x8: \d+\.\d\d ms median of 3 runs \(onnxruntime CPUExecutionProvider, "
        r"1 thread\)(; unreliable: the runs varied by \d+% of the median)?\n",  # noise on a busy machine
        result.output,
    ), result.output
    as_json = json.loads(runner.invoke(app, ["profile", str(path), "--input", "3x8x8", "--repeats", "2",
                                             "--format", "json"]).output)  # fmt: skip
    assert as_json["input_shapes"] == [[1, 3, 8, 8]] and len(as_json["samples_ms"]) == 2
    low, high = sorted(as_json["samples_ms"])  # inclusive quartiles of two: a quarter of the way in from each
    assert as_json["spread"] == pytest.approx((high - low) / 2 / ((low + high) / 2))
    assert as_json["reliable"] == (as_json["spread"] <= 0.25)
    # the exported batch is symbolic: without --input it is named in one line
    missing = runner.invoke(app, ["profile", str(path)])
    assert missing.exit_code == 2 and missing.output.count("\n") == 1
    assert "symbolic dimension 'batch'" in missing.output
