"""The device paths, on the CPU here and on CUDA where a GPU is present (skipped otherwise).

Every test runs the public API on ``device`` and checks it against a reference computed on the
CPU in float64 by plain torch (``F.conv2d``, ``amax``, an argmax loop), or against the same
model's output before the rewrite. CI has no GPU: the ``cuda`` cases run on a lent GPU machine
(see the closing notes of issue 20 for the run).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import onebyone
from onebyone import surgery
from onebyone.functional import channel_project, cross_channel_pool

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")),
]


@pytest.fixture(autouse=True)
def _no_tf32(monkeypatch):
    # cuDNN convolutions default to TF32 on Ampere and later (10 mantissa bits): 3e-4 apart on
    # the H200. The checks here are about our code, so they run in full float32 (matmuls
    # already do: torch leaves TF32 off for them by default).
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


def _small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 16, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )


def _data(n: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, 12, 12, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long() + 2 * (x[:, 1].mean((1, 2)) > 0).long()  # 4 learnable classes
    ds = TensorDataset(x, y)
    ds.num_classes, ds.input_size = 4, (3, 12, 12)
    return ds


@pytest.mark.parametrize("device", DEVICES)
def test_channel_project_and_its_gradient_match_conv2d(device):
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)
    w = torch.randn(6, 8, 1, 1, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    xd, wd = x.float().to(device).requires_grad_(), w.float().to(device).requires_grad_()
    out = channel_project(xd, wd, b.float().to(device), stride=2)
    ref = F.conv2d(x, w, b, stride=2)
    assert out.device.type == device
    torch.testing.assert_close(out.double().cpu(), ref, rtol=1e-4, atol=1e-4)
    out.sum().backward()
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    F.conv2d(xr, wr, b, stride=2).sum().backward()
    torch.testing.assert_close(xd.grad.double().cpu(), xr.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(wd.grad.double().cpu(), wr.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_maxout_of_50_maps_into_5_matches_amax(device):
    x = torch.randn(3, 50, 4, 4, dtype=torch.float64)
    out = cross_channel_pool(x.float().to(device), 10)
    ref = x.view(3, 5, 10, 4, 4).amax(2)  # the essay's 50 maps -> 5, max over groups of 10
    assert out.shape == (3, 5, 4, 4) and out.device.type == device
    torch.testing.assert_close(out.double().cpu(), ref, rtol=1e-6, atol=1e-6)
    layer = onebyone.CrossChannelPool(10).to(device)
    torch.testing.assert_close(layer(x.float().to(device)).double().cpu(), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_analyze_on_the_device_counts_what_meta_counts_and_measures(device):
    net = _small_net().eval()
    meta = onebyone.analyze(net, (2, 3, 12, 12))
    real = onebyone.analyze(net.to(device), (2, 3, 12, 12), device=device, measure=True, repeats=3, warmup=1)
    assert (real.total_macs, real.total_params) == (meta.total_macs, meta.total_params)
    # by hand: 3x3 3->16 and 16->32 at 12x12, the 1x1 32->16, the Linear, per example
    hand = 144 * (27 * 16 + 144 * 32 + 32 * 16) + 16 * 4
    assert meta.total_macs == 2 * hand
    assert all(p.device.type == device for p in net.parameters())  # the user's model stays where it is


@pytest.mark.parametrize("device", DEVICES)
def test_fit_and_evaluate_on_the_device(device):
    data = _data()
    net = _small_net()
    history = onebyone.fit(net, data, data, epochs=2, batch_size=16, lr=0.05, device=device, quiet=True,
                           channels_last=False)
    assert len(history.records) == 2 and all(math.isfinite(r["train_loss"]) for r in history.records)
    result = onebyone.evaluate(net, data, device=device)
    # reference: the same weights on the CPU, predictions by argmax
    cpu = net.to("cpu").eval()
    with torch.no_grad():
        x = torch.stack([data[i][0] for i in range(len(data))])
        y = torch.stack([data[i][1] for i in range(len(data))])
        expected = (cpu(x).argmax(1) == y).double().mean().item()
    assert result["accuracy"] == pytest.approx(expected, abs=1.5 / len(data))  # one tie may flip


@pytest.mark.parametrize("device", DEVICES)
def test_fuse_decompose_at_full_rank_save_and_load_keep_the_output(device, tmp_path):
    torch.manual_seed(0)
    kwargs = {"num_classes": 4}
    net = onebyone.create_model("resnet20", **kwargs).eval().to(device)
    x = torch.randn(2, 3, 16, 16, device=device)
    with torch.no_grad():
        ref = net(x)
        fused, _ = surgery.fuse(net, example_input=x)
        torch.testing.assert_close(fused(x), ref, rtol=1e-4, atol=1e-4)
        full, report = surgery.decompose(fused, rank=1.0, round_to=1, only_if_cheaper=False, pointwise=True,
                                         example_input=x)
        assert report.changes and all(p.device.type == device for p in full.parameters())
        torch.testing.assert_close(full(x), ref, rtol=1e-3, atol=1e-3)
    surgery.save(full, tmp_path / "plan", base="resnet20", base_kwargs=kwargs)
    loaded = surgery.load(tmp_path / "plan.json", map_location=device).eval()
    assert all(p.device.type == device for p in loaded.parameters())
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ref, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_decompose_by_measured_time_on_the_device(device, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1)).eval()
    net = net.to(device)
    x = torch.randn(4, 64, 32, 32, device=device)
    small, report = surgery.decompose(net, method="reduce", speedup=1.2, measure=True, example_input=x,
                                      max_error=math.inf)
    assert report.predicted_speedup is not None and report.predicted_speedup > 0
    for change in report.changes:  # only rewrites measured faster are taken
        assert change.time_after_ms < change.time_before_ms
    assert all(p.device.type == device for p in small.parameters())
    with torch.no_grad():
        assert small(x).shape == net(x).shape


@pytest.mark.parametrize("device", DEVICES)
def test_finetune_on_the_device_lowers_the_kl_to_the_teacher(device):
    data = _data(96)
    teacher = _small_net()
    onebyone.fit(teacher, data, epochs=3, batch_size=16, lr=0.05, device="cpu", quiet=True, channels_last=False)
    teacher.eval()
    student, _ = surgery.decompose(teacher, rank=2, round_to=1, example_input=torch.randn(1, 3, 12, 12))
    _, result = surgery.finetune(student, teacher, data, data, epochs=3, lr=3e-3, batch_size=16, device=device,
                                 quiet=True, channels_last=False)
    assert result.kl_after < result.kl_before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_calibrate_on_cuda_gives_positive_finite_rates():
    profile = onebyone.calibrate("cuda", quick=True, save=False)
    values = [v for v in vars(profile).values() if isinstance(v, float)]
    assert values and all(math.isfinite(v) and v >= 0 for v in values)


@pytest.mark.parametrize("device", DEVICES)
def test_calibrated_decompose_on_the_device_matches_the_cpu(device):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1)).eval()
    images = torch.randn(16, 16, 10, 10)
    x = images[:2]
    ref, _ = surgery.decompose(net, method="reduce", rank=8, round_to=1, example_input=x, calibration=images)
    moved, report = surgery.decompose(copy.deepcopy(net).to(device), method="reduce", rank=8, round_to=1,
                                      example_input=x.to(device), calibration=images.to(device))
    assert report.notes == ["factors fitted to the layer inputs of 16 calibration samples"]
    assert all(p.device.type == device for p in moved.parameters())
    with torch.no_grad():  # the outputs, not the factors: an SVD's signs may differ between devices
        torch.testing.assert_close(moved(x.to(device)).cpu(), ref(x), rtol=1e-3, atol=1e-3)
