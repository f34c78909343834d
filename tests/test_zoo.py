"""The zoo: torch-defined models exported with seeded weights, built by TVM and verified against
ONNX Runtime."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import assert_user_error, run_cli
from onnx import numpy_helper

from crosstune.compile import package


def test_zoo_list():
    out = run_cli("zoo", "list", check=0).stdout
    names = [line.split()[0] for line in out.splitlines()[2:]]
    assert names[:3] == ["resnet50", "mobilenetv2", "encoder"]
    assert {"light-squeezenet", "light-resnet50", "light-densenet121"} <= set(names)


def test_unknown_zoo_model():
    assert_user_error(run_cli("zoo", "export", "alexnet9"), "unknown zoo model 'alexnet9'", "resnet50")


def test_encoder_exports_compiles_and_verifies(tmp_path):
    onnx_path = tmp_path / "enc.onnx"
    run_cli("zoo", "export", "encoder", "-o", onnx_path, check=0)
    model = onnx.load(onnx_path)
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    ops = {n.op_type for n in model.graph.node}
    assert {"Gather", "LayerNormalization", "MatMul", "Softmax", "Erf"} <= ops
    layers = sum(1 for n in model.graph.node if n.op_type == "Softmax")
    assert layers == 4
    proc = run_cli("compile", onnx_path, "-o", tmp_path / "enc.ctm", "--verify", check=0)
    assert "PASSED" in proc.stdout
    info = package.read_info(tmp_path / "enc.ctm")
    ids = next(s for s in info.inputs if s.name == "input_ids")
    assert ids.shape == (1, 128) and ids.dtype == "int64" and ids.high == 30522


def test_same_seed_same_weights(tmp_path):
    run_cli("zoo", "export", "encoder", "-o", tmp_path / "a.onnx", check=0)
    run_cli("zoo", "export", "encoder", "-o", tmp_path / "b.onnx", check=0)
    run_cli("zoo", "export", "encoder", "--seed", "1", "-o", tmp_path / "c.onnx", check=0)

    def weights(p):
        return {t.name: numpy_helper.to_array(t) for t in onnx.load(p).graph.initializer}

    a, b, c = weights(tmp_path / "a.onnx"), weights(tmp_path / "b.onnx"), weights(tmp_path / "c.onnx")
    biggest = max(a, key=lambda k: a[k].size)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a[biggest], c[biggest])


def test_mobilenetv2_dynamic_batch(tmp_path):
    onnx_path = tmp_path / "mnv2.onnx"
    run_cli("zoo", "export", "mobilenetv2", "--dynamic-batch", "-o", onnx_path, check=0)
    out = run_cli("inspect", onnx_path, check=0).stdout
    row = next(line.split() for line in out.splitlines() if line.startswith("input "))
    assert row == ["input", "batchx3x224x224", "float32"]
    assert "--input-shape input=1x3x224x224" in out
    proc = run_cli(
        "compile", onnx_path, "--input-shape", "input=2x3x224x224", "-o", tmp_path / "m.ctm", "--verify", check=0
    )
    assert "0/2000  ok" in proc.stdout


@pytest.mark.slow
def test_resnet50_verifies(tmp_path):
    onnx_path = tmp_path / "r50.onnx"
    run_cli("zoo", "export", "resnet50", "-o", onnx_path, check=0)
    ops = {n.op_type for n in onnx.load(onnx_path).graph.node}
    assert {"Conv", "Relu", "Add", "MaxPool", "GlobalAveragePool", "Gemm"} <= ops
    proc = run_cli("compile", onnx_path, "-o", tmp_path / "r50.ctm", "--verify", check=0)
    assert "0/1000  ok" in proc.stdout


def test_torch_missing_is_one_line(tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None; from crosstune.cli import main;"
        f"sys.exit(main(['zoo', 'export', 'resnet50', '-o', {str(tmp_path / 'r.onnx')!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert_user_error(proc, "defined in PyTorch, which is not installed", "crosstune[torch]")
