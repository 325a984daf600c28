"""analyze(mode="train") against real CPU training steps, torch's FlopCounterMode and torch.optim.

References are independent of the analyzer: the saved activations of a real CPU forward
(the same ``saved_tensors_hooks``, storages told apart by their data pointers), the backward
FLOPs that ``torch.utils.flop_counter.FlopCounterMode`` counts on a real backward, the state
tensors that ``torch.optim`` allocates, and the live tensor bytes of a real step.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import onebyone
from onebyone.analysis import analyze
from onebyone.analysis._train_cost import optimizer_state_bytes, parse_memory
from onebyone.models import create_model, list_models

pytestmark = pytest.mark.usefixtures("one_thread")

CIFAR_SIZED = {"nin_cifar10", "nin_cifar10_bn", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"}
# Every zoo model, at small inputs (the tutorial models at batch 2 and 32x32: their layers are
# those of the 256x256 originals; only the map size is smaller).
ZOO = list_models()


def small(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    kwargs = {"hidden_features": 64} if name == "vgg16" else {}
    side = 16 if name in CIFAR_SIZED else 32
    model = create_model(name, **kwargs)
    return model, (2, 3, side, side)


def _outputs_loss(out) -> torch.Tensor:
    outs = [out] if isinstance(out, torch.Tensor) else [t for t in out if isinstance(t, torch.Tensor)]
    return sum(t.sum() for t in outs)


@pytest.mark.parametrize("name", ZOO)
def test_saved_bytes_equal_a_real_cpu_forward(name, real_saved_bytes):
    model, size = small(name)
    report = analyze(model, size, mode="train")
    assert report.train_cost.saved_bytes == real_saved_bytes(copy.deepcopy(model), torch.randn(size))
    assert sum(r.saved_bytes for r in report.rows) == report.train_cost.saved_bytes


def test_saved_bytes_by_hand():
    # Conv saves its input (2x3x10x10 floats) and BatchNorm its input (2x8x8x8) plus the batch
    # mean and inverse std (8 floats each); ReLU saves its output (2x8x8x8); Linear's input is
    # a view of that output, already counted, and its weight is a parameter.
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(512, 10))
    r = analyze(m, (2, 3, 10, 10), mode="train")
    assert [row.saved_bytes for row in r.rows[1:]] == [600 * 4, (1024 + 16) * 4, 1024 * 4, 0, 0]
    assert r.train_cost.saved_bytes == (600 + 1040 + 1024) * 4


@pytest.mark.parametrize("name", [n for n in ZOO if n not in ("resnet101", "resnet110", "resnet152")])
def test_backward_macs_equal_flop_counter_and_2x_forward(name):
    model, size = small(name)
    report = analyze(model, size, mode="train")
    real = copy.deepcopy(model).train()
    loss = _outputs_loss(real(torch.randn(size)))
    with FlopCounterMode(display=False) as counter:
        loss.backward()
    # FlopCounterMode's convolution_backward formula ignores `groups` (torch 2.13,
    # conv_backward_flop): it counts a depthwise layer's gradients `groups` times over, so
    # models with grouped convolutions are checked by hand below instead.
    if not any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in model.modules()):
        assert 2 * report.backward_macs == counter.get_total_flops()
    layers = [r for r in report.rows if r.type in ("Conv2d", "Linear")]
    first, rest = layers[0], layers[1:]
    assert first.backward_macs == first.macs  # no gradient for the input
    assert all(r.backward_macs == 2 * r.macs for r in rest)


def test_backward_macs_of_a_linear_by_hand():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    r = analyze(m, (5, 4), mode="train")
    # first: weight grad 5*4*3; second: input grad 5*3*2 and weight grad 5*3*2
    assert [row.backward_macs for row in r.rows] == [0, 60, 0, 60]
    assert r.backward_macs == 120


def test_backward_macs_of_a_depthwise_conv_by_hand():
    m = nn.Sequential(nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3, padding=1, groups=4))
    r = analyze(m, (2, 4, 8, 8), mode="train")
    # 1x1: weight gradient only, 2*64 pixels * 4*4; depthwise: input and weight gradients,
    # each 2*64 pixels * 4 channels * 9 taps; bias gradients are sums (extra FLOPs).
    assert [row.backward_macs for row in r.rows] == [0, 2 * 64 * 16, 2 * 2 * 64 * 4 * 9]
    assert r.rows[2].backward_flops == 2 * (2 * 2 * 64 * 4 * 9) + 2 * 4 * 64


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("sgd", lambda p: torch.optim.SGD(p, lr=0.1)),
        ("sgd-momentum", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
        ("adam", lambda p: torch.optim.Adam(p)),
        ("adamw", lambda p: torch.optim.AdamW(p)),
    ],
)
def test_optimizer_state_equals_torch_optim(name, make):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    model[0].bias.requires_grad_(False)
    opt = make(model.parameters())
    model(torch.randn(2, 3, 6, 6)).sum().backward()
    opt.step()
    real = sum(
        t.untyped_storage().nbytes()
        for state in opt.state.values()
        for t in state.values()
        if isinstance(t, torch.Tensor)
    )
    assert optimizer_state_bytes(list(model.parameters()), name) == real
    report = analyze(model, (2, 3, 6, 6), mode="train", optimizer=name)
    assert report.train_cost.optimizer_bytes == real
    grads = sum(p.grad.numel() * 4 for p in model.parameters() if p.grad is not None)
    assert report.train_cost.grad_bytes == grads


class LiveBytes(TorchDispatchMode):
    """The peak of live tensor bytes through real operators: every output storage from its
    creation until it is freed, checked after each operator."""

    def __init__(self, base: dict[int, int]) -> None:
        super().__init__()
        self.known = set(base)  # parameters, buffers, optimizer state, the input
        self.base = sum(base.values())
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                if st.data_ptr() in self.known:
                    continue
                if st.data_ptr() not in self.live or self.live[st.data_ptr()][0].expired():
                    self.live[st.data_ptr()] = (StorageWeakRef(st), st.nbytes())
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        self.peak = max(self.peak, self.base + sum(n for _, n in self.live.values()))
        return out


def measured_peak(model: nn.Module, size: tuple[int, ...], make_optimizer) -> int:
    """Peak live tensor bytes of a real CPU training step, after a first step."""
    real = copy.deepcopy(model).train()
    opt = make_optimizer(real.parameters())
    x = torch.randn(size)
    for _ in range(2):  # the first step creates the optimizer state
        opt.zero_grad()
        _outputs_loss(real(x)).backward()
        opt.step()
    tensors = {
        t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
        for t in (*real.parameters(), *real.buffers(), x)
    }
    for state in opt.state.values():
        for t in state.values():
            if isinstance(t, torch.Tensor):
                tensors[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    opt.zero_grad()
    with LiveBytes(tensors) as live:
        out = real(x)
        loss = _outputs_loss(out)
        loss.backward()
        opt.step()
    return live.peak


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "nin_cifar10_bn", "tutorial_reduce"])
def test_peak_within_10_percent_of_a_real_step(name):
    model, size = small(name)
    report = analyze(model, size, mode="train", optimizer="adamw")
    real = measured_peak(model, size, lambda p: torch.optim.AdamW(p))
    assert abs(report.train_cost.peak_bytes - real) <= 0.10 * real
    split = report.train_cost.peak_split
    assert sum(split.values()) == report.train_cost.peak_bytes
    assert set(split) == {"parameters", "gradients", "optimizer", "saved", "transient"}


def test_peak_of_a_small_mlp_equals_a_real_step():
    # SGD keeps no state; parameters 8*16+16 + 16*2+2 = 178 floats = 712 B.
    m = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    r = analyze(m, (4, 8), mode="train", optimizer="sgd")
    real = measured_peak(m, (4, 8), lambda p: torch.optim.SGD(p, lr=0.1))
    assert r.train_cost.param_bytes == 712
    assert r.train_cost.peak_bytes == real


def test_model_is_untouched_and_forward_counts_unchanged():
    model = create_model("resnet18")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fwd = analyze(model, (2, 3, 32, 32), train=True)
    train = analyze(model, (2, 3, 32, 32), mode="train")
    assert train.total_macs == fwd.total_macs
    assert [r.macs for r in train.rows] == [r.macs for r in fwd.rows]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters())


# ------------------------------------------------------------------ max_batch


def test_max_batch_is_the_boundary():
    m = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 10, 1))
    b = onebyone.max_batch(m, (3, 32, 32), memory="64MB", optimizer="sgd")
    fits = analyze(m, (b, 3, 32, 32), mode="train", optimizer="sgd").train_cost.peak_bytes
    over = analyze(m, (b + 1, 3, 32, 32), mode="train", optimizer="sgd").train_cost.peak_bytes
    assert fits <= 64 * 10**6 < over


def test_max_batch_memory_smaller_than_the_parameters():
    m = nn.Linear(1000, 1000)  # 4,004,000 B of parameters, as much again in gradients
    with pytest.raises(ValueError, match=r"less than the parameters alone need: 3\.82 MiB parameters"):
        onebyone.max_batch(m, (1000,), memory="4MB", optimizer="sgd")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("16GiB", 16 * 2**30), ("512MB", 512 * 10**6), ("80 GB", 80 * 10**9), ("1.5KiB", 1536), (7, 7)],
)
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["16 gigs", "GiB", "-1GB", ""])
def test_parse_memory_rejects(text):
    with pytest.raises(ValueError, match=r"memory must be a number and a unit, e.g. '16GiB'"):
        parse_memory(text)


# ------------------------------------------------------------------ bad input


def test_unknown_optimizer_lists_the_known():
    with pytest.raises(ValueError, match=r"unknown optimizer 'lion'; known: sgd, sgd-momentum, adam, adamw"):
        analyze(nn.Linear(2, 2), (1, 2), mode="train", optimizer="lion")


def test_unknown_mode():
    with pytest.raises(ValueError, match=r"mode must be 'forward' or 'train', got 'backward'"):
        analyze(nn.Linear(2, 2), (1, 2), mode="backward")


class ReturnsIndices(nn.Module):
    def forward(self, x):
        return x.argmax(dim=1)


class ReturnsNothing(nn.Module):
    def forward(self, x):
        return None


def test_output_that_cannot_be_a_loss_says_what_was_returned():
    with pytest.raises(ValueError, match=r"returned Tensor\(\(2,\), int64, requires_grad=False\)"):
        analyze(ReturnsIndices(), (2, 3), mode="train")
    with pytest.raises(ValueError, match=r"returned NoneType \(no tensor\)"):
        analyze(ReturnsNothing(), (2, 3), mode="train")


# ------------------------------------------------------------------ rendering and the CLI


def test_text_shows_backward_and_the_step():
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(512, 10))
    r = analyze(m, (2, 3, 10, 10), mode="train", optimizer="sgd")
    text = onebyone.analysis.render_text(r, width=200)
    assert "Bwd MACs" in text and "Saved" in text
    assert f"Backward MACs: {r.backward_macs:,}" in text
    assert "Most saved memory (top 3): 1 4.06 KB (39%), 2 4.00 KB (38%), 0 2.34 KB (23%)" in text
    assert "Bwd MACs" not in onebyone.analysis.render_text(analyze(m, (2, 3, 10, 10)))
    d = r.to_dict()
    assert d["train_cost"]["saved_bytes"] == r.train_cost.saved_bytes == 10656
    assert d["rows"][1]["backward_macs"] == r.rows[1].backward_macs


def test_cli_summary_train_and_max_batch():
    from typer.testing import CliRunner

    from onebyone.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["summary", "nin_cifar10", "--train", "--optimizer", "sgd", "--depth", "1"])
    assert res.exit_code == 0, res.output
    assert "Training step (sgd)" in res.output and "Peak memory estimate" in res.output
    res = runner.invoke(app, ["summary", "tutorial_reduce", "--input", "3x32x32", "--max-batch", "64MB"])
    assert res.exit_code == 0, res.output
    batch = int(res.output.split("max batch: ")[1].split()[0])
    expected = onebyone.max_batch(create_model("tutorial_reduce"), (3, 32, 32), memory="64MB")
    assert batch == expected
    res = runner.invoke(app, ["summary", "resnet18", "--max-batch", "16 gigs"])
    assert res.exit_code == 2
    assert res.output.startswith("error: --max-batch: memory must be a number and a unit")
    res = runner.invoke(app, ["summary", "resnet18", "--train", "--optimizer", "lion"])
    assert res.exit_code == 2 and "known: sgd, sgd-momentum, adam, adamw" in res.output


def test_backward_meta_shortcuts_match_torch():
    from onebyone.analysis._meta_kernels import META_SHORTCUTS

    aten = torch.ops.aten
    x = torch.randn(2, 4, 6, 6)
    w = torch.randn(5, 4, 3, 3)
    g = torch.randn(2, 5, 4, 4)
    pooled, idx = aten.max_pool2d_with_indices(x, [2, 2], [2, 2])
    cases = [
        (aten.threshold_backward.default, (x, x, 0.0)),
        (aten.native_batch_norm_backward.default,
         (x, x, torch.ones(4), None, None, torch.zeros(4), torch.ones(4), True, 1e-5, [True] * 3)),
        (aten.mm.default, (torch.randn(3, 4), torch.randn(4, 2))),
        (aten.sum.dim_IntList, (x, [0, 2], True)),
        (aten.sum.dim_IntList, (x, [-1], False)),
        (aten.convolution_backward.default,
         (g, x, w, [5], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [True, True, True])),
        (aten.convolution_backward.default,
         (g, x, w, [5], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [False, True, False])),
        (aten.max_pool2d_with_indices_backward.default,
         (pooled, x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)),
        (aten.avg_pool2d_backward.default, (pooled, x, [2, 2], [2, 2], [0, 0], False, True, None)),
    ]  # fmt: skip
    for op, args in cases:
        real = op(*args)
        meta_args = [a.to("meta") if isinstance(a, torch.Tensor) else a for a in args]
        ours = META_SHORTCUTS[op](*meta_args)
        real = real if isinstance(real, tuple) else (real,)
        ours = ours if isinstance(ours, tuple) else (ours,)
        assert [None if t is None else (t.shape, t.dtype) for t in ours] == [
            None if t is None else (t.shape, t.dtype) for t in real
        ], op


# ------------------------------------------------------------------ what-if: checkpointing


def test_checkpoint_whatif_against_a_real_checkpointed_step():
    from torch.utils.checkpoint import checkpoint

    from onebyone.analysis.memory import checkpoint_whatif

    model, size = small("resnet20")
    name = next(n for n, _ in model.named_children() if n.startswith("layer"))
    (w,) = checkpoint_whatif(model, size, [name], optimizer="adam")
    forward = analyze(model, size)
    # the block's forward runs again in the backward: its forward MACs are added
    assert w.backward_macs[1] - w.backward_macs[0] == forward.subtree(name)["macs"]
    assert w.saved_bytes[1] < w.saved_bytes[0]

    real = copy.deepcopy(model)
    block = real.get_submodule(name)
    inner = block.forward
    block.forward = lambda *a: checkpoint(inner, *a, use_reentrant=False)
    measured = measured_peak(real, size, lambda p: torch.optim.Adam(p))
    assert abs(w.peak_bytes[1] - measured) <= 0.10 * measured
    plain = measured_peak(model, size, lambda p: torch.optim.Adam(p))
    assert abs(w.peak_bytes[0] - plain) <= 0.10 * plain


def test_checkpoint_whatif_rejects_unknown_blocks():
    from onebyone.analysis.memory import checkpoint_whatif

    with pytest.raises(ValueError, match=r"blocks: 'nope' is not a submodule of Sequential"):
        checkpoint_whatif(nn.Sequential(nn.Linear(2, 2)), (1, 2), ["nope"])


def test_train_analysis_on_cpu_equals_meta():
    model, size = small("resnet20")
    a = analyze(model, size, mode="train", device="cpu")
    b = analyze(model, size, mode="train")
    assert a.train_cost == b.train_cost
    assert [(r.backward_macs, r.backward_flops, r.saved_bytes) for r in a.rows] == [
        (r.backward_macs, r.backward_flops, r.saved_bytes) for r in b.rows
    ]
