"""`crosstune demo` end to end, and the shape of the Python API."""

from __future__ import annotations

import subprocess
import sys

from conftest import run_cli

import crosstune


def test_demo_runs_and_compares(tmp_path):
    proc = run_cli("demo", "--model", "encoder", "--workdir", tmp_path, "--repeat", "3", check=0)
    out = proc.stdout
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in out
    assert "PASSED" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("crosstune ", "onnxruntime "))}
    assert set(rows) == {"crosstune", "onnxruntime"}
    assert rows["onnxruntime"].rstrip().endswith("1.0x")
    assert (tmp_path / "encoder.onnx").is_file() and (tmp_path / "encoder.host.ctm").is_file()


def test_import_is_cheap():
    code = (
        "import sys, crosstune, crosstune.compile, crosstune.runtime;"
        "print(sorted(m for m in ('tvm', 'onnx', 'torch', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_api_inspect_compile_load(model_dir, tmp_path):
    report = crosstune.inspect(model_dir / "conv_dyn.onnx", {"x": (2, 3, 32, 32)})
    assert report.outputs[0].shape == (2, 10) and not report.unsupported
    result = crosstune.compile(
        str(model_dir / "conv_dyn.onnx"), output=str(tmp_path / "c.ctm"), input_shapes={"x": "2x3x32x32"}, verify=True
    )
    assert result.verification.passed
    model = crosstune.load(result.package)
    outs = model.run(model.example_inputs(seed=5))
    assert outs["logits"].shape == (2, 10)
