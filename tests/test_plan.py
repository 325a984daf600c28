"""onebyone.plan: the tutorial's 1x1 what-if, checked against hand arithmetic."""

from __future__ import annotations

import json

import pytest
from torch import nn

import onebyone
from onebyone import plan


def seven_by_seven() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 512, 3, padding=1), nn.ReLU(), nn.Conv2d(512, 64, 7, padding=3), nn.ReLU()
    )


def test_tutorial_seven_by_seven_numbers():
    p = plan(seven_by_seven(), (1, 3, 256, 256), channels=64)
    assert len(p.entries) == 1
    e = p.entries[0]
    assert e.name == "2" and e.kernel_size == (7, 7)
    assert e.params_before == 7 * 7 * 512 * 64 + 64 == 1_605_696
    assert e.projection_params == 512 * 64 + 64 == 32_832
    assert e.layer_params_after == 7 * 7 * 64 * 64 + 64 == 200_768
    assert e.params_after == 233_600
    assert e.formula == "1,605,696 -> 32,832 + 200,768 = 233,600 params"
    hw = 256 * 256
    assert e.macs_before == 7 * 7 * 512 * 64 * hw
    assert e.projection_macs == 512 * 64 * hw
    assert e.layer_macs_after == 7 * 7 * 64 * 64 * hw
    # the first conv (3 input maps) cannot be reduced to 64
    assert [name for name, _ in p.skipped] == ["0"]
    # totals after equal the tutorial's reduced model, analyzed independently
    reduced = nn.Sequential(
        nn.Conv2d(3, 512, 3, padding=1), nn.Conv2d(512, 64, 1), nn.Conv2d(64, 64, 7, padding=3)
    )
    r = onebyone.analyze(reduced, (1, 3, 256, 256))
    assert p.total_params_after == r.total_params == 14_336 + 233_600
    assert p.total_macs_after == r.total_macs


def test_zoo_tutorial_model_plan_matches_reduced_model():
    p = plan(onebyone.create_model("tutorial_7x7"), (1, 3, 32, 32), channels=64)
    r = onebyone.analyze(onebyone.create_model("tutorial_7x7_reduced"), (1, 3, 32, 32))
    assert (p.total_params_after, p.total_macs_after) == (r.total_params, r.total_macs)


def test_ratio_and_sorting():
    m = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 64, 5, padding=2))
    p = plan(m, (2, 16, 8, 8), ratio=0.25)
    assert [e.mid_channels for e in p.entries] == [4, 4]
    assert [e.name for e in p.entries] == ["1", "0"]  # the 5x5 saves more
    savings = [e.macs_saved for e in p.entries]
    assert savings == sorted(savings, reverse=True)
    e = p.entries[1]
    assert e.macs_before == 2 * 64 * 16 * 16 * 9
    assert e.projection_macs == 2 * 64 * 16 * 4
    assert e.layer_macs_after == 2 * 64 * 4 * 16 * 9


def test_linear_over_a_flattened_map():
    m = nn.Sequential(nn.Conv2d(3, 32, 1), nn.Flatten(), nn.Linear(32 * 4 * 4, 10))
    p = plan(m, (1, 3, 4, 4), channels=8, sort="params")
    (e,) = p.entries
    assert e.type == "Linear" and (e.in_channels, e.kernel_size) == (32, (4, 4))
    assert e.params_before == 32 * 16 * 10 + 10
    assert e.projection_params == 32 * 8 + 8
    assert e.layer_params_after == 8 * 16 * 10 + 10
    assert e.projection_macs == 32 * 8 * 16
    assert e.layer_macs_after == 8 * 16 * 10


def test_grouped_and_1x1_are_not_candidates():
    m = nn.Sequential(nn.Conv2d(8, 8, 3, groups=2), nn.Conv2d(8, 8, 1), nn.Linear(6, 3))
    p = plan(m, (1, 8, 8, 8), ratio=0.5)
    assert p.entries == []
    assert p.skipped == [("0", "grouped convolution (groups=2)")]


@pytest.mark.parametrize(
    "kwargs", [{"ratio": 0}, {"ratio": 1.5}, {"channels": 0}, {"sort": "speed"}]
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        plan(seven_by_seven(), (1, 3, 8, 8), **kwargs)


def test_json_and_render():
    p = plan(seven_by_seven(), (1, 3, 16, 16), channels=64)
    d = json.loads(p.to_json())
    assert d["entries"][0]["params_after"] == 233_600
    assert d["total_params_after"] == p.total_params_after
    text = p.render()
    assert "32,832 + 200,768 = 233,600" in text and "1,605,696" in text
