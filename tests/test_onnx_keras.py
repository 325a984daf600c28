"""The tutorial's four Keras models, built in Keras 3 (torch backend), exported by Keras to
ONNX and analysed: the tutorial's parameters per layer and its output shapes.

Skipped when keras is not installed (it is in the dev extra only), or runs another backend.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("keras runs another backend than torch here", allow_module_level=True)

import onebyone  # noqa: E402

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:keras"),
]

# The tutorial: a 3x3 convolution with 512 filters on 256x256x3, then a 1x1 convolution that
# projects, reduces or increases the 512 maps. Its Keras summaries: params per Conv2D layer and
# the last output shape.
TUTORIAL = {
    "base": ((), [14_336], (1, 256, 256, 512)),
    "project": ((512,), [14_336, 262_656], (1, 256, 256, 512)),
    "reduce": ((64,), [14_336, 32_832], (1, 256, 256, 64)),
    "increase": ((1024,), [14_336, 525_312], (1, 256, 256, 1024)),
}


def build(filters: tuple[int, ...]):
    inputs = keras.Input((256, 256, 3))
    x = keras.layers.Conv2D(512, 3, padding="same", activation="relu")(inputs)
    for f in filters:
        x = keras.layers.Conv2D(f, 1, activation="relu")(x)
    model = keras.Model(inputs, x)
    # Weights as after training: Keras initialises biases to zero, and the exporter then keeps
    # one tensor for equal zero biases of the same shape (the file would hold one bias).
    rng = np.random.default_rng(0)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.05 for w in model.get_weights()])
    model(np.zeros((1, 256, 256, 3), "float32"))
    return model


@pytest.mark.parametrize("name", sorted(TUTORIAL))
def test_tutorial_keras_model(tmp_path, name):
    filters, params, output = TUTORIAL[name]
    model = build(filters)
    assert [layer.count_params() for layer in model.layers[1:]] == params  # Keras's own count
    path = tmp_path / f"{name}.onnx"
    model.export(str(path), format="onnx", verbose=False)
    report = onebyone.analyze(path, (1, 256, 256, 3))
    convs = [r for r in report.rows if r.type == "Conv"]
    assert [r.params for r in convs] == params
    assert report.total_params == sum(params)
    relus = [r for r in report.rows if r.type == "Relu"]
    assert [r.output_shape for r in relus] == [(1, 256, 256, 512)] * (len(params) - 1) + [output]
    # 3*3*3*512 MACs per pixel of the first layer, then 512*filters per pixel for a 1x1 layer
    assert convs[0].macs == 3 * 3 * 3 * 512 * 256 * 256
    if filters:
        assert convs[1].macs == 512 * filters[0] * 256 * 256
