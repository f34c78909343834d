"""The real model-zoo graphs the onnx package ships, with seeded random weights: imported, built
by TVM and compared with ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import crosstune
from crosstune.zoo import onnx_light

NAMES = onnx_light.names()


def test_all_nine_are_shipped():
    assert len(NAMES) == 9, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_light_model_compiles_and_matches_onnxruntime(name, tmp_path):
    """Export with seeded weights, check that the outputs are informative (the shipped weights are
    constants; a one-hot softmax would make every engine agree trivially), then build with TVM
    and compare with ONNX Runtime."""
    path = tmp_path / f"{name}.onnx"
    onnx_light.export(name, path)
    model = onnx.load(path, load_external_data=False)
    assert not any(n.op_type == "ConstantOfShape" for n in model.graph.node)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.isfinite(y).all() and y.std() > 0
    if model.graph.node[-1].op_type == "Softmax":
        assert y.max() < 0.9
    del sess, model

    result = crosstune.compile(path, target="host", output=tmp_path / f"{name}.ctm", verify=True)
    agreement = result.verification
    assert agreement.passed, agreement.to_json()
    assert agreement.outputs[0].total == 1000
