"""The real model-zoo graphs the onnx package ships (onnx/backend/test/data/light/*.onnx), with
seeded random weights.

Their weights are `ConstantOfShape` nodes filled with one constant, so every output is degenerate
(a constant image in, a constant out): useless for checking numbers. `with_random_weights` turns each
such node into an initializer of seeded values scaled like a trained network's (He-normal for
weights, positive values for BatchNormalization variances, small scales where a residual
branch ends); `calibrate_logits` then scales the last layer so the final softmax is not one-hot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import UserError


def light_dir() -> Path:
    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def names() -> list[str]:
    return sorted(p.stem.removeprefix("light_") for p in light_dir().glob("light_*.onnx"))


def with_random_weights(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    bn_var = {n.input[4] for n in g.node if n.op_type == "BatchNormalization" and len(n.input) > 4}
    bn_scale = {n.input[1] for n in g.node if n.op_type == "BatchNormalization"}
    # BatchNorms that end a residual branch (their output is summed with the shortcut) get small
    # scales, as in trained residual nets: otherwise variance doubles at every block and the final
    # softmax saturates to one-hot, which hides numerical differences.
    summed = {i for n in g.node if n.op_type in ("Sum", "Add") for i in n.input}
    bn_residual = {n.input[1] for n in g.node if n.op_type == "BatchNormalization" and n.output[0] in summed}
    nodes, new_inits = [], []
    for n in g.node:
        if n.op_type == "ConstantOfShape" and n.input and n.input[0] in inits:
            shape = [int(d) for d in numpy_helper.to_array(inits[n.input[0]])]
            value = next((a.t for a in n.attribute if a.name == "value"), None)
            dtype = helper.tensor_dtype_to_np_dtype(value.data_type) if value is not None else np.float32
            name = n.output[0]
            if name in bn_var:
                arr = rng.uniform(0.5, 1.5, shape)
            elif name in bn_residual:
                arr = rng.uniform(0.1, 0.3, shape)
            elif name in bn_scale:
                arr = rng.uniform(0.8, 1.2, shape)
            elif len(shape) > 1:
                arr = rng.normal(0.0, np.sqrt(2.0 / max(1, int(np.prod(shape[1:])))), shape)
            else:
                arr = rng.normal(0.0, 0.1, shape)
            new_inits.append(numpy_helper.from_array(arr.astype(dtype), name))
        else:
            nodes.append(n)
    used = {i for n in nodes for i in n.input} | {o.name for o in g.output}
    kept = [t for t in g.initializer if t.name in used]
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept + new_inits)
    names_kept = {t.name for t in out.graph.initializer}
    all_init = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in all_init or i.name in names_kept]
    if model.ir_version < 4:  # IR < 4: every initializer must also be a graph input
        have = {i.name for i in inputs}
        inputs += [
            helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
            for t in new_inits
            if t.name not in have
        ]
    del out.graph.input[:]
    out.graph.input.extend(inputs)
    return out


# Ops through which scaling the layer before by c > 0 scales the value after by c.
_HOMOGENEOUS = {"Relu", "Reshape", "Flatten", "Transpose", "Identity", "Dropout", "MaxPool",
                "AveragePool", "GlobalAveragePool", "Squeeze", "Unsqueeze"}


def calibrate_logits(model: onnx.ModelProto, seed: int = 0, target_std: float = 2.0) -> onnx.ModelProto:
    """Rescale the linear layer feeding each final Softmax so its logits have std `target_std` on a
    seeded input: random deep nets give logits so large that the softmax is one-hot."""
    import onnxruntime as ort

    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    inits = {t.name: t for t in g.initializer}
    init_names = set(inits)
    plans = []
    for sm in (n for n in g.node if n.op_type == "Softmax"):
        value, node = sm.input[0], producer.get(sm.input[0])
        while node is not None and node.op_type in _HOMOGENEOUS:
            node = producer.get(node.input[0])
        if node is not None and node.op_type in ("Gemm", "Conv", "MatMul") and node.input[1] in inits:
            plans.append((value, node))
    if not plans:
        return model
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for value, _ in plans:
        probe.graph.output.append(helper.make_empty_tensor_value_info(value))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in sess.get_inputs():
        if i.name in init_names:
            continue
        feeds[i.name] = rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
    logits = sess.run([v for v, _ in plans], feeds)
    for (_, node), x in zip(plans, logits):
        std = float(np.std(x))
        if not np.isfinite(std) or std == 0:
            continue
        scale = target_std / std
        for name in node.input[1:3]:
            if name in inits:
                t = inits[name]
                t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * np.float32(scale), name))
    return model


def export(name: str, output: Path, seed: int = 0) -> None:
    path = light_dir() / f"light_{name}.onnx"
    if not path.is_file():
        raise UserError(f"the onnx package here has no test model light_{name}.onnx")
    model = calibrate_logits(with_random_weights(onnx.load(str(path)), seed), seed)
    onnx.checker.check_model(model)
    onnx.save(model, str(output))
