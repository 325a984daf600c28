"""What analyze promises beyond the counts: the user's model is never touched, the user's random
stream does not move, and the meta device agrees with a real run (issue 14, items 5-7, 16, 17, 22).

The reference for "agrees" is always the real CPU run of the same model: the meta run must give
the same counts where it succeeds, and raise where it fails.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import onebyone
from onebyone.errors import OneByOneError

pytestmark = pytest.mark.usefixtures("one_thread")


class Fn(nn.Module):
    """A module around a function, to try functional code on both devices."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


# ---------------------------------------------------------------- the user's model is untouched


class ClampsItsWeight(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        with torch.no_grad():
            self.c.weight.clamp_(-0.01, 0.01)  # in place, on a parameter
        return self.c(x)


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("train", [False, True])
def test_forward_writing_a_parameter_leaves_the_users_weights(device, train):
    model = ClampsItsWeight()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    onebyone.analyze(model, (1, 3, 4, 4), device=device, train=train)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_measured_run_leaves_the_users_weights():
    model = ClampsItsWeight()
    before = model.c.weight.detach().clone()
    onebyone.analyze(model, (1, 3, 4, 4), measure=True, repeats=1, warmup=0)
    assert torch.equal(model.c.weight, before)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_users_hooks_do_not_run_on_the_copy(device):
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
    seen: list = []
    model.register_forward_hook(lambda m, args, out: seen.append(out))
    model[0].register_forward_pre_hook(lambda m, args: seen.append(args))
    model[0].register_forward_hook(lambda m, args, kwargs, out: seen.append(kwargs), with_kwargs=True)
    report = onebyone.analyze(model, (1, 3, 4, 4), device=device)
    assert seen == []
    assert report.total_macs == 3 * 4 * 4 * 4  # hand count: Cin * Cout * H * W
    # the hooks are still on the user's model, and still run there
    model(torch.zeros(1, 3, 4, 4))
    assert len(seen) == 3


def test_a_hook_that_reads_values_does_not_break_meta_analysis():
    model = nn.Sequential(nn.Conv2d(3, 4, 1))
    values = []
    model.register_forward_hook(lambda m, args, out: values.append(out.sum().item()))
    report = onebyone.analyze(model, (1, 3, 4, 4))  # .item() would fail on a meta tensor
    assert report.total_params == 3 * 4 + 4
    assert values == []


def test_torch_own_hooks_still_compute_the_forward():
    # weight_norm (the old API) computes `weight` in a forward pre-hook registered by torch.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        conv = nn.utils.weight_norm(nn.Conv2d(3, 4, 3))
    model = nn.Sequential(conv)
    meta = onebyone.analyze(model, (1, 3, 8, 8))
    cpu = onebyone.analyze(model, (1, 3, 8, 8), device="cpu")
    assert meta.total_macs == cpu.total_macs == 3 * 3 * 3 * 4 * 6 * 6
    # weight_g (4 * 1 * 1 * 1) + weight_v (4*3*3*3) + bias (4)
    assert meta.total_params == 4 + 108 + 4


@pytest.mark.parametrize("device", ["cpu"])
@pytest.mark.parametrize("measure", [False, True])
def test_analysis_does_not_move_the_users_random_stream(device, measure):
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Dropout(0.5))
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    onebyone.analyze(
        model, (2, 3, 4, 4), device=device, train=True, measure=measure, repeats=1, warmup=0
    )
    assert torch.equal(torch.rand(4), expected)


def test_lazy_modules_get_a_clear_error():
    model = nn.Sequential(nn.LazyLinear(4))
    for device in ("meta", "cpu"):
        with pytest.raises(ValueError, match=r"uninitialized \(lazy\).*'0.weight'"):
            onebyone.analyze(model, (2, 3), device=device)


def test_meta_weights_on_a_real_device_get_a_clear_error():
    model = nn.Linear(3, 4, device="meta")
    with pytest.raises(ValueError, match=r"device='cpu'.*'weight' is on the meta device"):
        onebyone.analyze(model, (2, 3), device="cpu")
    assert onebyone.analyze(model, (2, 3)).total_macs == 2 * 3 * 4


# ----------------------------------------------------------- meta agrees with a real run


def _outcome(model, inputs, device):
    """The counts of an analysis, or the type of error it raised."""
    try:
        r = onebyone.analyze(model, inputs, device=device)
    except OneByOneError:
        return "OneByOneError"
    return (r.total_macs, r.total_flops, r.rows[0].output_shape)


u8 = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
i64 = torch.zeros(2, 3, dtype=torch.int64)
b = torch.zeros(1, 3, 4, 4, dtype=torch.bool)
AGREEMENT_CASES = {
    # cases the real kernels refuse (meta used to accept them)
    "layer_norm over the wrong size": (nn.LayerNorm(5), (2, 3, 4)),
    "cat on a missing dim": (Fn(lambda x: torch.cat([x, x], 5)), (2, 3)),
    "mean over a missing dim": (Fn(lambda x: x.mean(7)), (2, 3)),
    "negative conv padding": (nn.Conv2d(3, 4, 3, padding=-1), (1, 3, 8, 8)),
    "float add_ into an int tensor": (Fn(lambda x: x.add_(0.5)), i64),
    "gelu of uint8": (Fn(F.gelu), u8),
    "softmax of int64": (Fn(lambda x: x.softmax(-1)), i64),
    "silu of uint8": (Fn(F.silu), u8),
    "relu of bool": (Fn(F.relu), b),
    # cases that work for real (meta used to reject or crash on them)
    "x / 255 on uint8": (Fn(lambda x: x / 255), u8),
    "sqrt of uint8": (Fn(torch.sqrt), u8),
    "mean of a 0-d tensor": (Fn(lambda x: x.sum().mean(0)), (2, 3)),
    "relu of uint8": (Fn(F.relu), u8),
    # ordinary float cases, for the counts
    "layer_norm": (nn.LayerNorm(4), (2, 3, 4)),
    "cat": (Fn(lambda x: torch.cat([x, x], -1)), (2, 3)),
    "mean": (Fn(lambda x: x.mean((0, -1), keepdim=True)), (2, 3, 5)),
    "conv": (nn.Conv2d(3, 4, 3, padding=1, stride=2), (1, 3, 8, 8)),
    "add_": (Fn(lambda x: x.add_(0.5)), (2, 3)),
}


@pytest.mark.parametrize("case", sorted(AGREEMENT_CASES))
def test_meta_agrees_with_a_real_cpu_run(case):
    model, inputs = AGREEMENT_CASES[case]
    assert _outcome(model, inputs, "meta") == _outcome(model, inputs, "cpu")


def test_uint8_division_has_a_float_output_on_meta_as_on_cpu():
    model = Fn(lambda x: x / 255)
    meta = onebyone.analyze(model, u8)
    cpu = onebyone.analyze(model, u8, device="cpu")
    # the output is float32 (4 bytes per element), as torch's true division gives
    assert meta.rows[0].activation_bytes == cpu.rows[0].activation_bytes == 48 * 4


# -------------------------------------------------------- layers called with keyword arguments


class CallsByKeyword(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        return self.fc(input=x)


def test_rows_record_inputs_passed_by_keyword():
    report = onebyone.analyze(CallsByKeyword(), (1, 8, 6, 6))
    row = next(r for r in report.rows if r.name == "fc")
    assert row.input_shapes == [(1, 8, 6, 6)]


def test_plan_handles_layers_called_with_keyword_arguments():
    what_if = onebyone.plan(CallsByKeyword(), (1, 8, 6, 6), channels=2)
    entry = next(e for e in what_if.entries if e.name == "fc")
    # 3x3 conv 8 -> 8: 3*3*8*8 + 8 = 584; with a 1x1 reduction to 2 channels first:
    # (8*2 + 2) + (3*3*2*8 + 8) = 18 + 152 = 170
    assert entry.input_shape == (1, 8, 6, 6)
    assert entry.params_before == 584
    assert entry.projection_params + entry.layer_params_after == 170
