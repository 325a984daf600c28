"""Every surgery keeps each module's own train/eval flag, in its input and in its result."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from onebyone import surgery

pytestmark = pytest.mark.usefixtures("one_thread")


def mixed_modes() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.Dropout(0.5), nn.Flatten(), nn.Linear(16 * 6 * 6, 5),
    )
    net.train()
    net[1].eval()  # a frozen BatchNorm inside a model being fine-tuned
    net[4].eval()  # and a dropout switched off
    return net


def flags(model: nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in model.named_modules()}


X = torch.randn(1, 8, 6, 6)
SURGERIES = {
    "decompose": lambda n: surgery.decompose(n, rank=0.5, example_input=X, only_if_cheaper=False),
    "convolutionalize": lambda n: surgery.convolutionalize(n, (8, 6, 6)),
    "fuse": lambda n: surgery.fuse(n, example_input=X),
}


@pytest.mark.parametrize("name", sorted(SURGERIES))
def test_input_modes_are_unchanged(name):
    net = mixed_modes()
    before = flags(net)
    SURGERIES[name](net)
    assert flags(net) == before


@pytest.mark.parametrize("name", sorted(SURGERIES))
def test_result_keeps_each_module_mode(name):
    net = mixed_modes()
    before = flags(net)
    new, _ = SURGERIES[name](net)
    after = flags(new)
    shared = [k for k in after if k in before]
    assert "" in shared and "4" in shared  # the root and the dropout survive every surgery
    assert {k: after[k] for k in shared} == {k: before[k] for k in shared}
    # Layers the surgery created take the flag of the layer they replace.
    for k, flag in after.items():
        if k not in before:
            assert flag == before[k.split(".")[0]], k


def test_eval_mode_restores_each_flag_after_an_error():
    from onebyone._modes import eval_mode

    net = mixed_modes()
    before = flags(net)
    with pytest.raises(RuntimeError), eval_mode(net):
        assert not any(flags(net).values())
        raise RuntimeError("boom")
    assert flags(net) == before
