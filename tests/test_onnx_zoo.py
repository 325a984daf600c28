"""Every zoo model exported to ONNX (checked in onnxruntime) and analysed: the same params and
MACs as the PyTorch analyzer gives for the model itself.

The PyTorch analyzer counts aten operators on the meta device; the ONNX analyzer reads
initializers and ONNX nodes with shapes from ONNX shape inference: two independent paths.
Exports of the deeper models take 10-60 s each on the shared 2-core test machine, so by default
the models listed in FAST run and the others are skipped, saying so; ``ONEBYONE_ONNX_ZOO=all``
runs the whole registry.
"""

from __future__ import annotations

import os

import pytest

import onebyone

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from onebyone.onnx import analyze_onnx, export_onnx

pytestmark = pytest.mark.usefixtures("one_thread")

# Each exports and checks in under 10 s here (measured with 8 test runs sharing 2 cores).
FAST = {
    "nin_cifar10",
    "nin_cifar10_bn",
    "resnet18",
    "resnet20",
    "tutorial_7x7",
    "tutorial_7x7_reduced",
    "tutorial_base",
    "tutorial_increase",
    "tutorial_project",
    "tutorial_reduce",
}
ALL = os.environ.get("ONEBYONE_ONNX_ZOO") == "all"


def small_size(model) -> tuple[int, ...]:
    """The model's own input, with the side cut to 32 (CIFAR models) or 64 (the others)."""
    _, channels, side, _ = model.default_input_size
    side = min(side, 32 if side <= 32 else 64)
    return (1, channels, side, side)


@pytest.mark.parametrize("name", onebyone.list_models())
def test_zoo_model_round_trip_and_counts(tmp_path, name):
    if name not in FAST and not ALL:
        pytest.skip(f"{name}: export takes over 10 s here; ONEBYONE_ONNX_ZOO=all runs it")
    kwargs = {} if name.startswith("tutorial") else {"num_classes": 7}
    model = onebyone.create_model(name, **kwargs).eval()
    size = small_size(model)
    path = tmp_path / f"{name}.onnx"
    result = export_onnx(model, size, path, dynamic_batch=False)
    assert result.custom_ops == () and result.max_rel_error <= 1e-4
    ours = analyze_onnx(path, size)
    reference = onebyone.analyze(model, size)
    assert ours.total_params == reference.total_params
    assert ours.total_macs == reference.total_macs
    # the per-layer rows agree too: the convolutions' MACs in graph order
    conv_macs = [r.macs for r in ours.rows if r.type == "Conv"]
    torch_macs = [r.macs for r in reference.rows if r.type in ("Conv2d", "ChannelProjection") and r.macs]
    assert sum(conv_macs) == sum(torch_macs)
