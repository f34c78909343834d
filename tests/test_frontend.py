"""crosstune's converter layer around TVM's importer: sequences, constant folding, shape values
fed to ordinary operators, what needs binding. Each model is built, run and compared with ONNX
Runtime (the registered converters' own checks are ONNX's node cases, in test_onnx_ops.py)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from conftest import assert_user_error, run_cli
from onnx import TensorProto, helper

import crosstune
from crosstune.frontend import constants


def _save(nodes, inputs, outputs, path, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _ort(path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def test_sequence_input_and_output(tmp_path):
    """A sequence input (--input-shape seq=2x3+4x3), an element of it, and a sequence output."""
    seq_t = helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, None)
    p = _save(
        [helper.make_node("ConcatFromSequence", ["seq"], ["cat"], axis=0),
         helper.make_node("SequenceAt", ["seq", "one"], ["second"]),
         helper.make_node("SequenceInsert", ["seq", "second"], ["longer"])],
        [seq_t], [helper.make_tensor_value_info("cat", TensorProto.FLOAT, None),
                  helper.make_tensor_value_info("second", TensorProto.FLOAT, None),
                  helper.make_tensor_sequence_value_info("longer", TensorProto.FLOAT, None)],
        tmp_path / "seq.onnx", inits=[onnx.numpy_helper.from_array(np.array(1, np.int64), "one")])
    assert_user_error(run_cli("compile", p, "-o", tmp_path / "s.ctm"),
                      "input 'seq' is a sequence of float32 tensors", "--input-shape seq=2x3+2x3")
    run_cli("compile", p, "-o", tmp_path / "s.ctm", "--input-shape", "seq=2x3+4x3", check=0)
    pkg = crosstune.load(tmp_path / "s.ctm")
    assert pkg.inputs[0].describe() == "sequence [2x3, 4x3] float32"
    rng = np.random.default_rng(0)
    seq = [rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal((4, 3)).astype(np.float32)]
    got, ref = pkg.run({"seq": seq}), _ort(p, {"seq": seq})
    np.testing.assert_array_equal(got["cat"], ref["cat"])
    np.testing.assert_array_equal(got["second"], ref["second"])
    assert isinstance(got["longer"], list) and len(got["longer"]) == 3
    for a, b in zip(got["longer"], ref["longer"]):
        np.testing.assert_array_equal(a, b)
    proc = run_cli("run", tmp_path / "s.ctm")  # seeded random inputs work for sequences too
    assert proc.returncode == 0, proc.stderr


def test_shape_arithmetic_folds(tmp_path):
    """Shape -> Mul -> ReduceProd -> Div -> Concat -> Reshape, the way exporters compute shapes:
    with static shapes all of it folds, and TVM's Reshape gets the constant it needs. A folded value
    that is a graph output (s2) becomes a Constant node, which the module returns."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
    p = _save(
        [helper.make_node("Shape", ["x"], ["s"], start=1),
         helper.make_node("Mul", ["s", "two"], ["s2"]),
         helper.make_node("ReduceProd", ["s2"], ["n"], keepdims=1),
         helper.make_node("Div", ["n", "four"], ["m"]),
         helper.make_node("Concat", ["m", "minus1"], ["shape"], axis=0),
         helper.make_node("Reshape", ["x", "shape"], ["y"])],
        [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
              helper.make_tensor_value_info("s2", TensorProto.INT64, None)],
        tmp_path / "sh.onnx", opset=17,
        inits=[onnx.numpy_helper.from_array(np.array([2], np.int64), "two"),
               onnx.numpy_helper.from_array(np.array([4], np.int64), "four"),
               onnx.numpy_helper.from_array(np.array([-1], np.int64), "minus1")])
    src = onnx.shape_inference.infer_shapes(onnx.load(p))
    folded = constants.fold_constants(src)
    assert [n.op_type for n in folded.graph.node] == ["Constant", "Reshape"]
    assert [n.output[0] for n in folded.graph.node] == ["s2", "y"]
    run_cli("compile", p, "-o", tmp_path / "sh.ctm", "--verify", check=0)
    x_ = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    got, ref = crosstune.load(tmp_path / "sh.ctm").run({"x": x_}), _ort(p, {"x": x_})
    np.testing.assert_array_equal(got["y"], ref["y"])
    np.testing.assert_array_equal(got["s2"], ref["s2"])


def test_shape_values_reach_ordinary_operators():
    """Without folding (as inside a Loop body), TVM's Shape yields a shape value, which its
    importer refuses to feed to Mul ('cannot handle ShapeExpr inputs'); crosstune's importer hands
    it over as an int64 tensor, and a shape-valued graph output leaves as a tensor."""
    import tvm
    from tvm import relax

    from crosstune import targets
    from crosstune.compile import pipeline
    from crosstune.frontend.importer import make_importer

    g = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Mul", ["s", "two"], ["s2"]),
         helper.make_node("Shape", ["x"], ["s_out"], start=1)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("s2", TensorProto.INT64, [2]), helper.make_tensor_value_info("s_out", TensorProto.INT64, [1])],
        [onnx.numpy_helper.from_array(np.array([2], np.int64), "two")])
    mod = make_importer({"x": [2, 3]}, {"x": "float32"}, {"": 17}).from_onnx(g, 17)
    mod, params = relax.frontend.detach_params(mod)
    built = pipeline.build(mod, list(params.get("main", [])), targets.get("x86-64"))
    dev = tvm.cpu()
    out = relax.VirtualMachine(built.executable, dev)["main"](tvm.runtime.tensor(np.zeros((2, 3), np.float32), dev), *built.weights)
    assert out[0].numpy().tolist() == [4, 6] and out[0].numpy().dtype == np.int64
    assert out[1].numpy().tolist() == [3]


def test_constant_subgraphs_fold(tmp_path):
    """Constant(value_floats) and Constant(value_ints) -> arithmetic -> Unsqueeze axes: folded to
    initializers before import, so TVM sees constants where it needs them."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    nodes = [helper.make_node("Constant", [], ["c"], value_floats=[1.0, 2.0, 3.0]),
             helper.make_node("Constant", [], ["a"], value_ints=[-1]),
             helper.make_node("Abs", ["a"], ["axes"]),
             helper.make_node("Add", ["x", "c"], ["xc"]),
             helper.make_node("Unsqueeze", ["xc", "axes"], ["y"])]
    p = _save(nodes, [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 1])], tmp_path / "f.onnx")
    folded = constants.fold_constants(onnx.load(p))
    assert [n.op_type for n in folded.graph.node] == ["Add", "Unsqueeze"]
    assert {t.name for t in folded.graph.initializer} == {"c", "axes"}
    run_cli("compile", p, "-o", tmp_path / "f.ctm", "--verify", check=0)


def test_needs_binding_follows_values_not_shapes():
    """An input whose value reaches Reshape's shape needs binding; one whose shape does not."""
    g = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Reshape", ["x", "s"], ["y"]),
         helper.make_node("Add", ["n", "n"], ["n2"]), helper.make_node("Reshape", ["x", "n2"], ["z"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
              helper.make_tensor_value_info("n", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None), helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    assert constants.needs_binding(g) == {"n": ["node 'z' (Reshape) input 'n2'"]}


def test_needs_binding_looks_inside_subgraphs():
    """A value that an If body reads from outside and feeds to Reshape's shape is named (the If
    carries it), as is a Loop's carried value; a Loop body's iteration number is not a model input."""
    then = helper.make_graph([helper.make_node("Reshape", ["x", "n"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Reshape", ["v_in", "i"], ["v_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
    g = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then, else_branch=other),
         helper.make_node("Loop", ["m", "", "x"], ["z"], name="loop", body=body)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
              helper.make_tensor_value_info("n", TensorProto.INT64, [2]),
              helper.make_tensor_value_info("c", TensorProto.BOOL, []),
              helper.make_tensor_value_info("m", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None), helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    needs = constants.needs_binding(g)
    assert sorted(needs) == ["c", "m", "n"], needs
    assert needs["n"] == ["node 't' (Reshape) input 'n'"]
    assert constants.unbound_constant_inputs(g, g.node[0]) == ["c", "n"]
    assert constants.unbound_constant_inputs(g, g.node[1]) == ["m"]


def test_if_with_constant_condition_is_inlined(tmp_path):
    """An If whose condition folds to a constant is replaced by the branch it takes, and what that
    branch computes from constants folds in turn (AffineGrid's function body does this with shapes)."""
    then = helper.make_graph([helper.make_node("Add", ["x", "one"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, [3])])
    other = helper.make_graph([helper.make_node("Sub", ["x", "one"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [3])])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    p = _save([helper.make_node("Size", ["x"], ["n"]),
               helper.make_node("Equal", ["n", "three"], ["c"]),
               helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
              [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])], tmp_path / "if.onnx",
              inits=[onnx.numpy_helper.from_array(np.array(3, np.int64), "three"),
                     onnx.numpy_helper.from_array(np.ones(3, np.float32), "one")])
    folded = constants.fold_constants(onnx.shape_inference.infer_shapes(onnx.load(p)))
    assert [n.op_type for n in folded.graph.node] == ["Add", "Identity"]
    run_cli("compile", p, "-o", tmp_path / "if.ctm", "--verify", check=0)
    x_ = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(crosstune.load(tmp_path / "if.ctm").run({"x": x_})["y"], x_ + 1)


def test_ops_lists_the_layer():
    from crosstune.frontend import registry

    out = run_cli("ops", check=0).stdout
    rows = {line.split()[0]: line.split()[1:4] for line in out.splitlines()[2:] if line.strip() and not line.startswith(" ")}
    assert rows["LSTM"][:3] == ["1+", "rnn", "new"]
    assert rows["LayerNormalization"][:3] == ["17+", "normalization", "fixes"]  # "fixes TVM's"
    assert len(registry.entries()) == sum(1 for line in out.splitlines()[2:] if line and line[0] != " " and "converters" not in line)


def test_output_computed_from_weights_alone(tmp_path):
    """A graph output that depends on initializers only (a window function whose size is bound)
    folds to a constant the module returns; as a weight-fed node it hit TVM's LiftTransformParams
    leaving `main` returning an undefined var ("Var gv is not defined")."""
    n = helper.make_tensor_value_info("n", TensorProto.INT64, [])
    p = _save([helper.make_node("HannWindow", ["n"], ["w"]),
               helper.make_node("Cast", ["w"], ["y"], to=TensorProto.FLOAT)],
              [n], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], tmp_path / "win.onnx", opset=17)
    np.save(tmp_path / "n.npy", np.array(10, np.int64))
    run_cli("compile", p, "--bind", f"n={tmp_path / 'n.npy'}", "-o", tmp_path / "win.ctm", check=0)
    got = crosstune.load(tmp_path / "win.ctm").run({})
    np.testing.assert_allclose(got["y"], np.hanning(11)[:10].astype(np.float32), rtol=1e-5, atol=1e-6)


def test_weights_get_names_that_generated_code_can_use(tmp_path):
    """A weight named after a PyTorch node path (`/pos/Gather_output_0`, as constant folding makes
    them) reaches kernel parameters under its name; NVRTC refused the zoo encoder's fp16 build on the
    H100 so. Weights are renamed to C identifiers (unique, dots kept); the model computes the same."""
    from crosstune.compile import relax_import

    rng = np.random.default_rng(0)
    inits = [onnx.numpy_helper.from_array(rng.standard_normal((1, 4, 8)).astype(np.float32), "/pos/Gather_output_0"),
             onnx.numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "pos_Gather_output_0"),
             onnx.numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "layer.w")]
    nodes = [helper.make_node("Add", ["x", "/pos/Gather_output_0"], ["h"]),
             helper.make_node("MatMul", ["h", "pos_Gather_output_0"], ["h2"]),
             helper.make_node("MatMul", ["h2", "layer.w"], ["/out/y"])]
    p = _save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
              [helper.make_tensor_value_info("/out/y", TensorProto.FLOAT, [1, 4, 8])], tmp_path / "n.onnx", inits)
    _, model = relax_import.load_and_import(p, {}, {})
    assert sorted(model.weight_names) == ["layer.w", "pos_Gather_output_0", "pos_Gather_output_0_1"]
    x = rng.standard_normal((1, 4, 8)).astype(np.float32)
    out = run_cli("compile", p, "-o", tmp_path / "n.ctm", "--verify", check=0)
    assert "PASS" in out.stdout
    got = crosstune.load(tmp_path / "n.ctm").run({"x": x})
    assert list(got) == ["/out/y"]  # outputs keep their names
    np.testing.assert_allclose(got["/out/y"], _ort(p, {"x": x})["/out/y"], rtol=1e-5, atol=1e-5)
