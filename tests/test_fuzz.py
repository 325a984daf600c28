"""Property-based fuzz of every public entry point, each against an independent reference.

Layers and their functional forms are checked against plain PyTorch written here (a loop over
the groups, ``F.conv2d``, ``nn.Linear``); models must build and run or refuse cleanly; analyze
must count the same on meta as on the CPU; surgery at full rank must be exact; the data loaders
must read what was written and refuse corrupted files with a message naming the file, without
allocating more than the file could hold; the CLI must exit 0 or 2 with one line.

The default profile (tests/conftest.py) derandomizes and keeps this file at ~20 s; run
``HYPOTHESIS_PROFILE=explore pytest tests/test_fuzz.py`` for new random examples and
``_SCALE`` times more of them. Bugs found here in other areas are kept as
``xfail(strict=True)`` cases with a one-line reproduction, for their owners to fix.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import pickle
import struct
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from onebyone import (
    ChannelMean,
    ChannelProjection,
    ChannelSum,
    CrossChannelPool,
    Maxout,
    MaxoutConv2d,
    OneByOneError,
    analyze,
    create_model,
    data,
    list_models,
    surgery,
)
from onebyone.functional import channel_project, cross_channel_pool

pytestmark = pytest.mark.usefixtures("one_thread")

_EXPLORE = os.environ.get("HYPOTHESIS_PROFILE") == "explore"
_SCALE = 20 if _EXPLORE else 1


def fuzz(examples: int, *, explore: int | None = None):
    """Hypothesis settings for one property: ``examples`` draws, or ``explore`` (default
    ``_SCALE`` times more) with ``HYPOTHESIS_PROFILE=explore``."""
    return settings(
        max_examples=(explore or examples * _SCALE) if _EXPLORE else examples,
        deadline=None,  # the machine is shared: never fail on time
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    tol = {torch.float64: 1e-10, torch.float32: 1e-5}[expected.dtype]
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol, equal_nan=True)


# ---- layers and functional forms ----------------------------------------------------------------


def _groups(channels: int, k: int, grouping: str, stride: int) -> list[list[int]]:
    """The channel indices each output pools: the documented rule, written out as lists."""
    if grouping == "interleaved":
        n = channels // k
        return [[j + i * n for i in range(k)] for j in range(n)]
    return [list(range(start, start + k)) for start in range(0, channels - k + 1, stride)]


def _reference_pool(x, k, mode, grouping, stride, dim, p):
    d = dim % x.dim()
    groups = _groups(x.shape[d], k, grouping, stride)
    if mode == "wta":
        out = torch.zeros_like(x)
        for idx in groups:
            sel = x.index_select(d, torch.tensor(idx))
            m = sel.amax(d, keepdim=True)
            out.index_copy_(d, torch.tensor(idx), torch.where(sel == m, sel, 0))
        return out
    parts = []
    for idx in groups:
        sel = x.index_select(d, torch.tensor(idx))
        if mode == "max":
            r = sel.amax(d)
        elif mode == "avg":
            r = sel.sum(d) / k
        elif mode == "sum":
            r = sel.sum(d)
        elif math.isinf(p):
            r = sel.abs().amax(d)
        else:
            r = sel.abs().pow(p).sum(d).pow(1 / p)
        parts.append(r)
    return torch.stack(parts, d)


@st.composite
def pool_cases(draw):
    mode = draw(st.sampled_from(["max", "avg", "sum", "lp", "wta"]))
    grouping = draw(st.sampled_from(["contiguous", "interleaved"]))
    k = draw(st.integers(1, 4))
    overlap = grouping == "contiguous" and mode != "wta" and draw(st.booleans())
    stride = draw(st.integers(1, k)) if overlap else k
    groups = draw(st.integers(1, 4))
    channels = k + (groups - 1) * stride
    rank = draw(st.integers(1, 4))
    shape = [draw(st.integers(1, 3)) for _ in range(rank)]
    d = draw(st.integers(0, rank - 1))
    shape[d] = channels
    dim = d - rank if draw(st.booleans()) else d
    p = draw(st.sampled_from([1.0, 2.0, 3.0, 0.5, math.inf]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    # Distinct values (no ties) keep wta and max gradients unambiguous.
    x = torch.randperm(math.prod(shape), generator=torch.Generator().manual_seed(draw(st.integers(0, 99))))
    x = (x.to(dtype) - x.numel() / 2).reshape(shape) / 3
    return x, k, mode, grouping, stride, dim, p


@fuzz(60)
@given(pool_cases(), st.booleans())
def test_cross_channel_pool_matches_a_loop_over_groups(case, channels_last):
    x, k, mode, grouping, stride, dim, p = case
    if channels_last and x.dim() == 4:
        x = x.to(memory_format=torch.channels_last)
    expected = _reference_pool(x, k, mode, grouping, stride, dim, p)
    layer = CrossChannelPool(k, mode=mode, grouping=grouping, stride=stride, dim=dim, p=p)
    _close(layer(x), expected)
    _close(cross_channel_pool(x, k, mode=mode, grouping=grouping, stride=stride, dim=dim, p=p), expected)
    if mode in ("max", "avg", "sum"):
        # The gradient of the pooled sum, against autograd through the reference.
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        layer(a).sum().backward()
        _reference_pool(b, k, mode, grouping, stride, dim, p).sum().backward()
        _close(a.grad, b.grad)


@st.composite
def projection_cases(draw):
    n = draw(st.integers(1, 3))
    c_in, c_out = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = draw(st.integers(1, 3))
    bias = draw(st.booleans())
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    return n, c_in, c_out, h, w, stride, bias, dtype


@fuzz(50)
@given(projection_cases(), st.booleans(), st.booleans())
def test_channel_projection_matches_conv2d(case, channels_last, unbatched):
    n, c_in, c_out, h, w, stride, bias, dtype = case
    proj = ChannelProjection(c_in, c_out, stride=stride, bias=bias, act_layer=None, dtype=dtype)
    x = torch.randn(n, c_in, h, w, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    expected = F.conv2d(x, proj.weight, proj.bias, stride=stride)
    _close(proj(x), expected)
    _close(channel_project(x, proj.weight, proj.bias, stride=stride), expected)
    if unbatched:
        _close(proj(x[0]), expected[0])
    # Gradients against nn.Conv2d holding the same weights.
    conv = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=bias, dtype=dtype)
    conv.load_state_dict(proj.state_dict())
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    (proj(a) * torch.arange(expected.numel(), dtype=dtype).view_as(expected)).sum().backward()
    (conv(b) * torch.arange(expected.numel(), dtype=dtype).view_as(expected)).sum().backward()
    _close(a.grad, b.grad)
    _close(proj.weight.grad, conv.weight.grad)


def test_channel_projection_batch_zero():
    proj = ChannelProjection(3, 2, act_layer=None)
    assert proj(torch.randn(0, 3, 2, 2)).shape == (0, 2, 2, 2)


@fuzz(40)
@given(
    st.integers(1, 5), st.integers(1, 4), st.integers(1, 3), st.booleans(),
    st.sampled_from(["contiguous", "interleaved"]), st.integers(0, 3),
)  # fmt: skip
def test_maxout_matches_linear_then_max(in_features, out_features, pieces, bias, grouping, lead):
    m = Maxout(in_features, out_features, pieces=pieces, bias=bias, grouping=grouping)
    x = torch.randn(*([2] * lead), in_features)
    z = x @ m.linear.weight.T + (m.linear.bias if bias else 0)
    if grouping == "contiguous":
        expected = z.reshape(*z.shape[:-1], out_features, pieces).amax(-1)
    else:
        expected = z.reshape(*z.shape[:-1], pieces, out_features).amax(-2)
    _close(m(x), expected)


@fuzz(30)
@given(
    st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
    st.sampled_from(["contiguous", "interleaved"]), st.integers(0, 1), st.integers(1, 2),
)  # fmt: skip
def test_maxout_conv2d_matches_conv_then_max(c_in, c_out, kernel, pieces, grouping, padding, stride):
    m = MaxoutConv2d(c_in, c_out, kernel, pieces=pieces, grouping=grouping, padding=padding, stride=stride)
    x = torch.randn(2, c_in, 5, 5)
    z = F.conv2d(x, m.conv.weight, m.conv.bias, stride=stride, padding=padding)
    n, _, h, w = z.shape
    if grouping == "contiguous":
        expected = z.reshape(n, c_out, pieces, h, w).amax(2)
    else:
        expected = z.reshape(n, pieces, c_out, h, w).amax(1)
    _close(m(x), expected)
    _close(m(x[0]), expected[0])


@fuzz(30)
@given(st.integers(1, 4), st.data(), st.booleans())
def test_channel_sum_and_mean_match_torch(rank, draw, keepdim):
    shape = [draw.draw(st.integers(1, 3)) for _ in range(rank)]
    dim = draw.draw(st.integers(-rank, rank - 1))
    x = torch.randn(shape, dtype=torch.float64)
    _close(ChannelSum(dim=dim, keepdim=keepdim)(x), x.sum(dim, keepdim=keepdim))
    _close(ChannelMean(dim=dim, keepdim=keepdim)(x), x.mean(dim, keepdim=keepdim))


_BAD_VALUES = [0, -1, 2.5, "3", None, True, 2**63]


@fuzz(40)
@given(st.sampled_from(["pool_size", "stride", "mode", "grouping", "p", "dim"]), st.sampled_from([*_BAD_VALUES, "bogus", float("nan")]))
def test_pool_bad_arguments_name_themselves(argument, value):
    kwargs = {"pool_size": 2, argument: value}
    try:
        CrossChannelPool(**kwargs)(torch.randn(1, 4, 2, 2))
    except (ValueError, TypeError) as e:
        assert argument in str(e) or "dim=" in str(e), str(e)


# ---- models and analyze -------------------------------------------------------------------------


def _build(name: str, **kwargs) -> nn.Module:
    try:
        return create_model(name, **kwargs)
    except ValueError as e:  # feature extractors take no num_classes: the message says so
        if "num_classes" not in kwargs or "num_classes" not in str(e):
            raise
        kwargs.pop("num_classes")
        return create_model(name, **kwargs)


def _size(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in _build(name, num_classes=7).parameters())


# Models cheap enough to build for real in the default run; every model when exploring.
_MODELS = list_models()
_CHEAP = [n for n in _MODELS if _EXPLORE or _size(n) < 1_000_000]


@fuzz(12, explore=60)
@given(st.sampled_from(_CHEAP), st.integers(1, 3), st.integers(1, 12), st.integers(8, 40), st.integers(1, 2))
def test_create_model_runs_or_refuses_small_inputs(name, in_channels, num_classes, side, batch):
    model = _build(name, in_channels=in_channels, num_classes=num_classes).eval()
    x = torch.randn(batch, in_channels, side, side)
    try:
        with torch.no_grad():
            out = model(x)
    except (ValueError, OneByOneError) as e:
        # Too small an input for the architecture: a clear refusal, not a crash.
        assert str(side) in str(e) or "size" in str(e).lower(), str(e)
        return
    assert out.shape[0] == batch and torch.isfinite(out).all()
    if getattr(model, "num_classes", None) is not None:
        assert out.shape[1] == num_classes


@fuzz(10, explore=40)
@given(st.sampled_from(_CHEAP), st.integers(1, 3), st.integers(8, 36), st.booleans())
def test_analyze_counts_the_same_on_meta_and_cpu(name, in_channels, side, train):
    model = _build(name, in_channels=in_channels, num_classes=5)
    shape = (1, in_channels, side, side)
    try:
        meta = analyze(model, shape, train=train)
    except (ValueError, OneByOneError):
        with pytest.raises((ValueError, OneByOneError)):
            analyze(model, shape, device="cpu", train=train)
        return
    cpu = analyze(model, shape, device="cpu", train=train)
    for key in ("total_params", "total_macs", "total_flops", "param_bytes", "activation_bytes"):
        assert getattr(meta, key) == getattr(cpu, key), key
    assert [(r.name, r.macs, r.output_shape) for r in meta.rows] == [
        (r.name, r.macs, r.output_shape) for r in cpu.rows
    ]
    # And the parameter count is the model's own, counted independently.
    assert meta.total_params == sum(p.numel() for p in model.parameters())


# ---- surgery ------------------------------------------------------------------------------------


@st.composite
def conv_stacks(draw):
    layers, c = [], draw(st.integers(1, 6))
    c0 = c
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "conv", "bn", "relu"]))
        if kind == "conv":
            out, k = draw(st.integers(1, 6)), draw(st.sampled_from([1, 3]))
            layers.append(nn.Conv2d(c, out, k, padding=k // 2, bias=draw(st.booleans())))
            c = out
        elif kind == "bn":
            bn = nn.BatchNorm2d(c)
            g = torch.Generator().manual_seed(draw(st.integers(0, 99)))
            bn.running_mean.copy_(torch.randn(c, generator=g))
            bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            bn.weight.data.copy_(torch.randn(c, generator=g))
            bn.bias.data.copy_(torch.randn(c, generator=g))
            layers.append(bn)
        else:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).double().eval(), c0


@fuzz(25)
@given(conv_stacks(), st.sampled_from(["tucker2", "reduce"]))
def test_decompose_at_full_rank_is_exact(stack, method):
    # float32: decompose rounds float64 models' factors to float32 (the xfail below).
    model, c = stack
    model = model.float()
    x = torch.randn(2, c, 6, 6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    new, _report = surgery.decompose(model, method=method, rank=1.0, example_input=x, only_if_cheaper=False)
    torch.testing.assert_close(new(x), model(x), rtol=1e-4, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # input untouched


def test_decompose_float64_at_full_rank_is_float64_exact():
    m = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False)).double().eval()
    x = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    new, _report = surgery.decompose(m, rank=1.0, example_input=x, only_if_cheaper=False)
    torch.testing.assert_close(new(x), m(x), rtol=1e-10, atol=1e-12)


@fuzz(25)
@given(conv_stacks(), st.booleans())
def test_fuse_is_exact_in_eval(stack, cheaper):
    model, c = stack
    x = torch.randn(2, c, 6, 6, dtype=torch.float64)
    new, _report = surgery.fuse(model, example_input=x, only_if_cheaper=cheaper)
    torch.testing.assert_close(new(x), model(x), rtol=1e-9, atol=1e-9)


@st.composite
def classifier_heads(draw):
    c, side = draw(st.integers(1, 4)), draw(st.integers(2, 6))
    width = draw(st.integers(1, 5))
    pool = draw(st.sampled_from(["none", "avg1", "avg2"]))
    layers: list[nn.Module] = [nn.Conv2d(c, width, 3, padding=1), nn.ReLU()]
    h = side
    if pool != "none":
        h = min(int(pool[-1]), side)
        layers.append(nn.AdaptiveAvgPool2d(h))
    layers.append(nn.Flatten())
    features = width * h * h
    for _ in range(draw(st.integers(0, 1))):
        hidden = draw(st.integers(1, 6))
        layers += [nn.Linear(features, hidden), nn.ReLU()]
        features = hidden
    layers.append(nn.Linear(features, draw(st.integers(1, 5))))
    return nn.Sequential(*layers).eval(), (c, side, side), pool == "avg1"


@fuzz(6, explore=100)  # ~0.5 s each: convolutionalize traces and checks the model
@given(classifier_heads())
def test_convolutionalize_gives_the_same_logits_at_the_input_size(case):
    model, size, global_pool = case
    x = torch.randn(2, *size)
    new, _report = surgery.convolutionalize(model, size)
    scores = new(x)
    # At input_size: a 1x1 map holding the logits, or (global average pool head) the map whose
    # mean is the logits (the documented contract).
    logits = scores.mean((2, 3)) if global_pool else scores.flatten(1)
    torch.testing.assert_close(logits, model(x), rtol=1e-4, atol=1e-5)


def test_block_with_the_wrong_channel_count_is_a_value_error():
    from onebyone import BasicBlock

    with pytest.raises(ValueError, match="BasicBlock"):
        BasicBlock(4, 4)(torch.randn(1, 3, 8, 8))


# ---- data loaders -------------------------------------------------------------------------------


def _idx(arr: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x0C: ">i4"}[code]
    return struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}i", *arr.shape) + arr.astype(dtype).tobytes()


def _corrupt(raw: bytes, draw) -> bytes:
    raw = bytearray(raw)
    for _ in range(draw.draw(st.integers(1, 4))):
        op = draw.draw(st.sampled_from(["flip", "truncate", "insert", "int"]))
        at = draw.draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[at] ^= 1 << draw.draw(st.integers(0, 7))
        elif op == "truncate":
            del raw[at:]
        elif op == "insert":
            raw[at:at] = draw.draw(st.binary(min_size=1, max_size=8))
        elif len(raw) >= at + 4:  # overwrite 4 bytes with an extreme integer (a size field)
            raw[at : at + 4] = struct.pack(">i", draw.draw(st.sampled_from([-1, 0, 2**31 - 1, 2**20, 60000])))
    return bytes(raw)


@contextlib.contextmanager
def _peak_memory():
    tracemalloc.start()
    box = {}
    try:
        yield box
    finally:
        box["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def _load_or_refuse(path: Path, load, size: int):
    """Load ``path``; a refusal must be a ValueError naming the file; memory stays near the file's size."""
    with _peak_memory() as mem:
        try:
            result = load()
        except ValueError as e:
            assert path.name in str(e), str(e)
            result = None
    assert mem["peak"] < 64 * size + (2 << 20), (mem["peak"], size)
    return result


@st.composite
def image_sets(draw, channels=1, side=None):
    n = draw(st.integers(1, 5))
    h = side or draw(st.integers(1, 6))
    w = side or draw(st.integers(1, 6))
    seed = draw(st.integers(0, 1000))
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, channels, h, w) if channels > 1 else (n, h, w), dtype=np.uint8)
    labels = rng.integers(0, draw(st.integers(1, 12)), size=n)
    return images, labels


@fuzz(25)
@given(image_sets(), st.booleans(), st.data())
def test_idx_reads_what_was_written_and_refuses_corruption(sets, gz, draw):
    images, labels = sets
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = {}
        for kind, arr, code in (("images-idx3-ubyte", images, 0x08), ("labels-idx1-ubyte", labels, 0x0C)):
            raw = _idx(arr, code)
            files[kind] = root / f"train-{kind}{'.gz' if gz else ''}"
            files[kind].write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
        ds = data.load(root)
        assert np.array_equal(ds.images[:, 0].numpy(), images) and ds.labels.tolist() == labels.tolist()
        victim = files[draw.draw(st.sampled_from(sorted(files)))]
        victim.write_bytes(_corrupt(victim.read_bytes(), draw))
        ds = _load_or_refuse(victim, lambda: data.load(root), victim.stat().st_size + 1)
        if ds is not None:
            assert len(ds) == len(ds.labels) and int(ds.labels.max()) < ds.num_classes <= 100_000


@fuzz(25)
@given(image_sets(channels=3, side=32), st.sampled_from([2, 5]), st.booleans(), st.data())
def test_cifar_reads_what_was_written_and_refuses_corruption(sets, protocol, as_array, draw):
    images, labels = sets
    labels_obj = labels.astype(np.int64) if as_array else [int(v) for v in labels]
    batch = {b"batch_label": b"x", b"data": images.reshape(len(images), -1), b"labels": labels_obj}
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "test_batch"
        p.write_bytes(pickle.dumps(batch, protocol=protocol))
        ds = data.load_cifar(tmp, "test")
        assert np.array_equal(ds.images.numpy(), images) and ds.labels.tolist() == labels.tolist()
        p.write_bytes(_corrupt(p.read_bytes(), draw))
        ds = _load_or_refuse(p, lambda: data.load_cifar(tmp, "test"), p.stat().st_size + 1)
        if ds is not None:
            assert ds.input_size == (3, 32, 32) and len(ds) == len(ds.labels)


@fuzz(25)
@given(image_sets(), st.booleans(), st.sampled_from([np.int64, np.uint8, np.float32]), st.data())
def test_npz_reads_what_was_written_and_refuses_corruption(sets, compressed, label_dtype, draw):
    images, labels = sets
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "set.npz"
        (np.savez_compressed if compressed else np.savez)(p, train_images=images, train_labels=labels.astype(label_dtype))
        ds = data.load(p)
        assert np.array_equal(ds.images[:, 0].numpy(), images) and ds.labels.tolist() == labels.tolist()
        p.write_bytes(_corrupt(p.read_bytes(), draw))
        ds = _load_or_refuse(p, lambda: data.load(p), p.stat().st_size + 1)
        if ds is not None:
            assert len(ds) == len(ds.labels)


# ---- the command line ---------------------------------------------------------------------------

_COMMANDS = {
    "models": [],
    "summary": ["--input", "--batch", "--depth", "--format", "--channels-last", "--explain", "--device"],
    "plan": ["--input", "--batch", "--ratio", "--channels", "--sort", "--format"],
    "fuse": ["--out", "--input", "--num-classes", "--checkpoint"],
    "convolutionalize": ["--input", "--to", "--num-classes", "--out", "--checkpoint"],
    "compress": ["--out", "--energy", "--budget", "--rank", "--method", "--input", "--num-classes", "--round-to", "--iterations"],
}  # fmt: skip
_VALUES = [
    "tutorial_base", "tutorial_reduce", "nin_cifar10", "resnet2", "", "-1", "0", "1", "3", "0.5",
    "1.5", "nan", "inf", "1e400", "3x32x32", "1x28x28", "3x16x16", "0x3x3", "3x0x4", "3x", "x",
    "1,28,28", "json", "csv", "table", "markdown", "macs", "params", "bogus", "reduce", "tucker2",
    "cpu", "meta", "cuda:7", "--", "-", "--help", "--nope", "é", "a b", "/dev/null", "OUT",
]  # fmt: skip


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from onebyone.cli import main

    old = sys.argv
    sys.argv = ["onebyone", *argv]
    try:
        with pytest.raises(SystemExit) as info:
            main()
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return info.value.code, out, err


@fuzz(40)
@given(st.sampled_from(sorted(_COMMANDS)), st.data())
def test_cli_random_arguments_exit_0_or_2_with_one_line(capsys, command, draw):
    capsys.readouterr()  # capsys is shared by the examples: start each one empty
    with tempfile.TemporaryDirectory() as tmp:
        words = [command]
        for _ in range(draw.draw(st.integers(0, 5))):
            if _COMMANDS[command] and draw.draw(st.booleans()):
                words.append(draw.draw(st.sampled_from(_COMMANDS[command])))
            value = draw.draw(st.sampled_from(_VALUES))
            words.append(str(Path(tmp) / "out") if value == "OUT" else value)
        assume("--help" not in words)
        previous = os.getcwd()
        os.chdir(tmp)  # a bare --out value writes beside the working directory: keep it here
        try:
            code, out, err = _cli(words, capsys)
        finally:
            os.chdir(previous)
    assert code in (0, 2), (words, code, err[-2000:])
    assert "Traceback" not in err + out, (words, err[-2000:])
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") <= 1, (words, err)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["summary", "tutorial_base", "--batch", "99999999999999999999999"]),
        pytest.param(["summary", "tutorial_base", "--input", "3x99999999999x99999999999"]),
    ],
)
def test_cli_huge_sizes_are_one_line(argv, capsys):
    code, out, err = _cli(argv, capsys)
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err + out
