"""Small ONNX models built in code for the tests, each with seeded weights."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _w(rng, name, *shape, scale=None):
    scale = scale if scale is not None else np.sqrt(2.0 / max(1, int(np.prod(shape[1:])) if len(shape) > 1 else 1))
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _model(nodes, inputs, outputs, inits, name, opset=OPSET):
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="crosstune-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def conv_net(batch: int | str = 1, seed: int = 0) -> onnx.ModelProto:
    """A few convolutions with BatchNorm, a residual add, pooling and a classifier head."""
    rng = np.random.default_rng(seed)
    inits = [
        _w(rng, "c1_w", 8, 3, 3, 3), _w(rng, "c1_b", 8, scale=0.1),
        _w(rng, "c2_w", 8, 8, 3, 3), _w(rng, "c2_b", 8, scale=0.1),
        numpy_helper.from_array(rng.uniform(0.8, 1.2, 8).astype(np.float32), "bn_s"),
        numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "bn_b"),
        numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "bn_m"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "bn_v"),
        _w(rng, "c3_w", 16, 8, 3, 3), _w(rng, "fc_w", 10, 16), _w(rng, "fc_b", 10, scale=0.1),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "c1_w", "c1_b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "c2_w", "c2_b"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c2", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"]),
        helper.make_node("Add", ["bn", "r1"], ["res"]),
        helper.make_node("Relu", ["res"], ["r2"]),
        helper.make_node("Conv", ["r2", "c3_w"], ["c3"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("GlobalAveragePool", ["r3"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 32, 32])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])
    return _model(nodes, [x], [y], inits, "conv_net")


def winograd_net(seed: int = 0, size: int = 26, batch: int = 1) -> onnx.ModelProto:
    """3x3 stride-1 convolutions that Winograd F(4x4, 3x3) takes (16 and 24 channels, on a 26x26 map:
    not a multiple of the 4x4 tile, as in ResNet-50's last two stages, and 7x7 = 49 tiles, the least
    Winograd takes), one with a bias, a residual add and ReLUs after them, and a strided 3x3 and an
    8-channel one that stay direct."""
    rng = np.random.default_rng(seed)
    inits = [
        _w(rng, "a_w", 24, 16, 3, 3), _w(rng, "a_b", 24, scale=0.1),
        _w(rng, "b_w", 16, 24, 3, 3),
        _w(rng, "s_w", 8, 16, 3, 3), _w(rng, "t_w", 8, 8, 3, 3),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "a_w", "a_b"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["ra"]),
        helper.make_node("Conv", ["ra", "b_w"], ["b"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["b", "x"], ["res"]),
        helper.make_node("Relu", ["res"], ["rb"]),
        helper.make_node("Conv", ["rb", "s_w"], ["s"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["s", "t_w"], ["y"], pads=[1, 1, 1, 1]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16, size, size])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8, (size + 1) // 2, (size + 1) // 2])
    return _model(nodes, [x], [y], inits, "winograd_net")


def matmul_net(k: int = 512, seed: int = 0) -> onnx.ModelProto:
    """MatMul + bias + GELU-free MLP + Softmax, with two outputs (one of them integer)."""
    rng = np.random.default_rng(seed)
    inits = [_w(rng, "w1", k, 256, scale=1 / np.sqrt(k)), _w(rng, "b1", 256, scale=0.1),
             _w(rng, "w2", 256, 64, scale=1 / 16)]
    nodes = [
        helper.make_node("MatMul", ["a", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["h"]),
        helper.make_node("Tanh", ["h"], ["t"]),
        helper.make_node("MatMul", ["t", "w2"], ["m2"]),
        helper.make_node("Softmax", ["m2"], ["probs"], axis=-1),
        helper.make_node("ArgMax", ["m2"], ["best"], axis=-1, keepdims=0),
    ]
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [4, k])
    outs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [4, 64]),
            helper.make_tensor_value_info("best", TensorProto.INT64, [4])]
    return _model(nodes, [a], outs, inits, "matmul_net")


def embedding_net(vocab: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """Token ids index an embedding table (Gather): random ids must stay below `vocab`."""
    rng = np.random.default_rng(seed)
    inits = [_w(rng, "table", vocab, 32, scale=1.0)]
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
        helper.make_node("ReduceMean", ["emb"], ["pooled"], axes=[1], keepdims=0),
    ]
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 16])
    out = helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [2, 32])
    return _model(nodes, [ids], [out], inits, "embedding_net", opset=13)


def unsupported_net() -> onnx.ModelProto:
    """Uses ONNX Runtime's contrib operators com.microsoft.Gelu and BiasGelu, which ONNX Runtime
    runs and neither TVM's Relax frontend nor crosstune's layer converts."""
    nodes = [
        helper.make_node("Gelu", ["x"], ["c"], domain="com.microsoft"),
        helper.make_node("BiasGelu", ["c", "bias"], ["y"], domain="com.microsoft"),
        helper.make_node("Relu", ["y"], ["z"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 2, 3])
    bias = helper.make_tensor_value_info("bias", TensorProto.FLOAT, [3])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [4, 2, 3])
    graph = helper.make_graph(nodes, "unsupported_net", [x, bias], [z])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)],
                              producer_name="crosstune-tests")
    model.ir_version = 8
    return model
