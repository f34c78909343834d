"""`crosstune bench`: crosstune and its peers on the same seeded inputs, outputs checked against ONNX
Runtime, engines that cannot run here listed with the reason, one results document."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import assert_user_error, run_cli


def test_bench_against_peers_writes_results(model_dir, tmp_path):
    out = tmp_path / "bench.json"
    proc = run_cli("bench", model_dir / "conv.onnx", "--against", "onnxruntime,torch,tensorrt,openvino",
                   "--precision", "fp32,fp16", "--repeat", "5", "--warmup", "1", "--json", out, check=0)
    doc = json.loads(out.read_text())
    assert doc["format"] == "crosstune-results" and doc["reference"] == "onnxruntime"
    by = {(e["name"], e["precision"]): e for e in doc["engines"]}
    assert [e["name"] for e in doc["engines"] if e["precision"] == "fp32"][:2] == ["crosstune", "onnxruntime"]
    ours = by["crosstune", "fp32"]
    assert ours["status"] == "ok" and ours["latency_ms"]["count"] == 5 and ours["agreement"]["passed"]
    assert by["onnxruntime", "fp32"]["status"] == "ok" and by["onnxruntime", "fp32"]["agreement"] is None
    # conv.onnx is not a zoo export: no torch definition to time
    assert by["torch", "fp32"]["status"] == "unavailable" and "not a crosstune zoo export" in by["torch", "fp32"]["error"]
    assert by["tensorrt", "fp32"]["status"] == "unavailable" and "tensorrt" in by["tensorrt", "fp32"]["error"]
    ov = by["openvino", "fp32"]
    assert ov["status"] == "ok" or "openvino is not installed" in ov["error"]
    assert by["crosstune", "fp16"]["status"] == "unavailable"
    assert re.search(r"^crosstune\s+fp32\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+1\.00x\s+PASS \(max abs", proc.stdout, re.M)
    assert re.search(r"^tensorrt\s+fp32\s+UNAVAILABLE\s+tensorrt is not importable", proc.stdout, re.M)
    assert re.search(r"^onnxruntime\s+fp32\s+[\d.]+.*reference$", proc.stdout, re.M)
    assert f"results -> {out}" in proc.stdout
    # the report reads it
    md = tmp_path / "r.md"
    run_cli("report", out, "-o", md, check=0)
    assert "unavailable: tensorrt is not importable" in md.read_text()


def test_bench_bad_options(model_dir):
    assert_user_error(run_cli("bench", model_dir / "conv.onnx", "--against", "onnxruntime,tvmc"), "unknown engine(s) tvmc")
    assert_user_error(run_cli("bench", model_dir / "conv.onnx", "--precision", "int4"), "unknown precision(s) int4")
    assert_user_error(run_cli("bench", model_dir / "conv.onnx", "--target", "rpi4"), "on a board", "--rpc")


def test_torch_engine_runs_the_zoo_definition(tmp_path):
    """A zoo export records which torch model and seed it is; the torch engine rebuilds that module,
    and its outputs match ONNX Runtime's on the exported file."""
    from crosstune import zoo
    from crosstune.compare.peers import TorchEngine

    path = zoo.export("mobilenetv2", tmp_path / "m.onnx", seed=3)
    assert zoo.zoo_origin(onnx.load(str(path))) == ("mobilenetv2", 3)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    eng = TorchEngine("mobilenetv2", 3, ["input"], threads=2)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(eng.run({"input": x})["logits"], ref, rtol=1e-3, atol=1e-4)
    assert eng.version().endswith("eager")


@pytest.mark.parametrize("name", ["torch", "torch-compile"])
def test_torch_engine_needs_a_zoo_model(name):
    from crosstune.compare.peers import TorchEngine, Unavailable

    with pytest.raises(Unavailable, match="not a crosstune zoo export"):
        TorchEngine(None, 0, ["x"], threads=1, compiled=name == "torch-compile")
