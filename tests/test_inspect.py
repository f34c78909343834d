"""`crosstune inspect` and the ONNX loading checks behind every command."""

from __future__ import annotations

import onnx
import pytest
from conftest import assert_user_error, run_cli

from crosstune.compile import onnx_model
from crosstune.errors import UserError


def test_inspect_describes_model(model_dir):
    out = run_cli("inspect", model_dir / "matmul.onnx", check=0).stdout
    assert "opsets: ai.onnx 17" in out
    assert "weights    3 tensors" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert rows["a"] == ["4x512", "float32"]
    assert rows["probs"] == ["4x64", "float32"] and rows["best"] == ["4", "int64"]
    assert rows["MatMul"] == ["17", "2", "crosstune"] and rows["ArgMax"] == ["17", "1", "TVM"]
    assert "all 5 operator types (6 nodes) are covered: 3 by TVM's Relax ONNX frontend, 2 by crosstune's layer" in out


def test_inspect_names_unsupported_operators(model_dir):
    out = run_cli("inspect", model_dir / "unsupported.onnx", check=0).stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert rows["com.microsoft.Gelu"] == ["1", "1", "NOTHING"] and rows["Relu"] == ["17", "1", "TVM"]
    assert rows["com.microsoft.BiasGelu"] == ["1", "1", "NOTHING"]
    assert "nothing converts 2 of 3 operator types: com.microsoft.BiasGelu (1), com.microsoft.Gelu (1)" in out


def test_inspect_says_who_converts_and_what_to_bind(tmp_path):
    """Who converts what (an operator TVM lacks that crosstune's layer converts: LSTM), and an
    input TVM needs as a constant."""
    from onnx import TensorProto, helper

    from crosstune.frontend import registry

    graph = helper.make_graph(
        [helper.make_node("Squeeze", ["x", "axes"], ["y"], name="squeeze_it")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3]),
         helper.make_tensor_value_info("axes", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "sq.onnx")
    out = run_cli("inspect", tmp_path / "sq.onnx", check=0).stdout
    assert "input 'axes' feeds node 'squeeze_it' (Squeeze) input 'axes', which TVM needs as a constant" in out
    assert "--bind axes=FILE.npy" in out
    assert "LSTM" not in registry.tvm_ops() and registry.coverage("LSTM", 14) == "crosstune"
    assert registry.coverage("Squeeze", 17) == "crosstune" and registry.coverage("Gelu", 1, "com.microsoft") == "none"
    assert registry.coverage("Squeeze", 11) == "tvm"  # crosstune's Squeeze starts at opset 13


def test_inspect_dynamic_input_and_given_shape(model_dir):
    out = run_cli("inspect", model_dir / "conv_dyn.onnx", check=0).stdout
    assert "x      Nx3x32x32" in out and "logits  Nx10" in out
    assert "compile needs a shape, e.g. --input-shape x=1x3x32x32" in out
    out = run_cli("inspect", model_dir / "conv_dyn.onnx", "--input-shape", "x=6x3x32x32", check=0).stdout
    assert "logits  6x10" in out  # shape inference ran with the given shape
    assert "dynamic" not in out


def test_inspect_unknown_input_in_shape(model_dir):
    proc = run_cli("inspect", model_dir / "conv_dyn.onnx", "--input-shape", "N=2x3x32x32")
    assert_user_error(proc, "--input-shape names 'N'", "inputs are: x")


def test_non_standard_domain_is_unsupported(tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("FusedGelu", ["x"], ["y"], domain="com.microsoft")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    onnx.save(model, tmp_path / "ms.onnx")
    out = run_cli("inspect", tmp_path / "ms.onnx", check=0).stdout
    assert "com.microsoft.FusedGelu      1      1  NOTHING" in out


@pytest.mark.parametrize("command", ["inspect", "compile"])
def test_missing_file(command, tmp_path):
    assert_user_error(run_cli(command, tmp_path / "nope.onnx"), "no such file", "nope.onnx")


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, this is text\n", bytes(range(256)) * 20],
    ids=["empty", "text", "binary"],
)
def test_not_onnx(tmp_path, content):
    p = tmp_path / "bad.onnx"
    p.write_bytes(content)
    line = assert_user_error(run_cli("compile", p, "-o", tmp_path / "bad.ctm"), "bad.onnx")
    assert "ONNX" in line
    assert not (tmp_path / "bad.ctm").exists()


def test_truncated_onnx_via_cli(model_dir, tmp_path):
    data = (model_dir / "conv.onnx").read_bytes()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    assert_user_error(run_cli("inspect", p), "cut.onnx", "truncated")


def test_every_truncation_point_is_a_user_error(model_dir, tmp_path):
    """Cut the model at many points: each must be a UserError, never a crash or a silent load."""
    data = (model_dir / "conv.onnx").read_bytes()
    p = tmp_path / "cut.onnx"
    step = max(1, len(data) // 300)
    for n in range(0, len(data) - 1, step):
        p.write_bytes(data[:n])
        with pytest.raises(UserError):
            onnx_model.load(p)


def test_checker_failure_is_one_line(tmp_path):
    from onnx import TensorProto, helper

    # A node that reads a value nothing produces: parses, but is not a valid graph.
    node = helper.make_node("Relu", ["nowhere"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    p = tmp_path / "invalid.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), p)
    assert_user_error(run_cli("inspect", p), "fails the ONNX checker")
