"""`crosstune bench`: crosstune and its peers on the same seeded inputs, outputs checked against ONNX
Runtime, engines that cannot run here listed with the reason, one results document."""

from __future__ import annotations

import json
import re
import shutil

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
    assert ours["latency_ms"]["rounds"] == 5 == by["onnxruntime", "fp32"]["latency_ms"]["rounds"]  # took turns
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
    # every pair of engines that ran at one precision, checked against each other with that
    # precision's tolerance; the more trusted engine is b (the reference, then crosstune)
    ran = [e["name"] for e in doc["engines"] if e["status"] == "ok"]
    pairs = {(p["a"], p["b"]): p for p in doc["agreement_pairs"]}
    assert len(pairs) == len(ran) * (len(ran) - 1) // 2
    assert pairs["crosstune", "onnxruntime"]["passed"] and pairs["crosstune", "onnxruntime"]["rtol"] == 1e-3
    if "openvino" in ran:
        assert ("openvino", "onnxruntime") in pairs and ("openvino", "crosstune") in pairs
    assert all(p["precision"] == p["a_precision"] == p["b_precision"] == "fp32" for p in pairs.values())
    assert re.search(rf"^engines checked against each other: {len(pairs)} pairs?, all agree", proc.stdout, re.M)
    # the report reads it
    md = tmp_path / "r.md"
    run_cli("report", out, "-o", md, check=0)
    assert "unavailable: tensorrt is not importable" in md.read_text()
    assert "Engines checked against each other" in md.read_text()


def test_bench_engine_that_rejects_an_operator_fails_alone(tmp_path):
    """ONNX Runtime has no float64 Atan: its entry fails with ORT's one line naming the operator,
    crosstune (and OpenVINO, where installed) still run, and crosstune becomes the reference."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["x"], ["x64"], to=TensorProto.DOUBLE),
             helper.make_node("Atan", ["x64"], ["a"], name="atan_f64"),
             helper.make_node("Cast", ["a"], ["y"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "atan_f64", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, tmp_path / "atan.onnx")
    out = tmp_path / "r.json"
    proc = run_cli("bench", tmp_path / "atan.onnx", "--against", "onnxruntime,openvino", "--repeat", "3",
                   "--warmup", "1", "--json", out, check=0)
    doc = json.loads(out.read_text())
    by = {e["name"]: e for e in doc["engines"]}
    ort_entry = by["onnxruntime"]
    assert ort_entry["status"] == "failed" and "\n" not in ort_entry["error"]
    assert ort_entry["error"].startswith("ONNX Runtime cannot load the model") and "Atan" in ort_entry["error"]
    assert by["crosstune"]["status"] == "ok" and doc["reference"] == "crosstune"
    assert re.search(r"^onnxruntime\s+fp32\s+FAILED\s+ONNX Runtime cannot load the model: .*Atan", proc.stdout, re.M)
    if by["openvino"]["status"] == "ok":
        assert by["openvino"]["agreement"]["passed"] and by["openvino"]["agreement"]["reference"] == "crosstune"
        assert [(p["a"], p["b"], p["passed"]) for p in doc["agreement_pairs"]] == [("openvino", "crosstune", True)]


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="an NVIDIA GPU may be visible here")
def test_bench_on_a_gpu_target_without_a_gpu(model_dir, tmp_path):
    """A GPU target on a machine with no GPU: crosstune builds but cannot run (one line), ONNX Runtime
    runs on the CPU provider and is the reference, and every GPU-only engine or precision is listed
    with its reason."""
    from crosstune import targets

    if "h200" not in targets.names():
        pytest.skip("no h200 preset")
    out = tmp_path / "gpu.json"
    proc = run_cli("bench", model_dir / "conv.onnx", "--target", "h200", "--against",
                   "onnxruntime,openvino,torch-compile-ro,tensorrt", "--precision", "fp32,fp16", "--repeat", "3",
                   "--warmup", "1", "--json", out, check=0)
    doc = json.loads(out.read_text())
    by = {(e["name"], e["precision"]): e for e in doc["engines"]}
    assert doc["target"]["device"] == "cuda" and doc["reference"] == "onnxruntime"
    assert by["crosstune", "fp32"]["status"] == "failed" and "no CUDA GPU is visible" in by["crosstune", "fp32"]["error"]
    assert by["crosstune", "fp16"]["status"] == "failed"
    ort_fp32 = by["onnxruntime", "fp32"]
    assert ort_fp32["status"] == "ok" and "(CPUExecutionProvider)" in ort_fp32["version"]
    reasons = {("onnxruntime", "fp16"): "no fp16 path", ("openvino", "fp32"): "no plugin for this cuda target",
               ("torch-compile-ro", "fp16"): "not a crosstune zoo export",
               ("tensorrt", "fp32"): "tensorrt is not importable"}
    for key, reason in reasons.items():
        assert by[key]["status"] == "unavailable" and reason in by[key]["error"], by[key]
    assert doc["agreement_pairs"] == []  # one engine ran: nothing to pair
    assert re.search(r"^openvino\s+fp16\s+UNAVAILABLE\s+openvino runs on CPUs", proc.stdout, re.M)


def test_bench_bad_options(model_dir):
    assert_user_error(run_cli("bench", model_dir / "conv.onnx", "--against", "onnxruntime,tvmc"), "unknown engine(s) tvmc")
    assert_user_error(run_cli("bench", model_dir / "conv.onnx", "--precision", "int4"), "unknown precision(s) int4")
    assert_user_error(run_cli("bench", model_dir / "conv.onnx", "--target", "rpi4"), "on a board", "--rpc")
    assert_user_error(run_cli("bench", model_dir / "conv.onnx", "--rounds", "0"), "--rounds must be >= 1")


def test_engines_take_turns_being_timed(model_dir, monkeypatch):
    """`benchmark_rounds`: every engine is timed in each round before any is timed again, `repeat`
    runs split over the rounds and pooled, each turn after the process has settled; an engine that
    fails is reported and not timed again."""
    from crosstune.compare import engine
    from crosstune.compare.engine import benchmark_rounds
    from crosstune.compare.onnxruntime import OnnxRuntimeEngine

    calls = []
    settled = []
    real_settle = engine.settle
    monkeypatch.setattr(engine, "settle", lambda: settled.append(len(calls)) or real_settle())

    class Logged(OnnxRuntimeEngine):  # ONNX Runtime itself, with its calls written down
        def __init__(self, tag, fail_at=None):
            super().__init__((model_dir / "conv.onnx").read_bytes(), threads=1)
            self.tag, self.fail_at = tag, fail_at

        def benchmark(self, inputs, **kw):
            calls.append((self.tag, kw["repeat"], kw["warmup"]))
            if sum(1 for c in calls if c[0] == self.tag) == self.fail_at:
                raise RuntimeError("board went away")
            return super().benchmark(inputs, **kw)

    a, b, c = Logged("a"), Logged("b"), Logged("c", fail_at=2)
    i = a.session.get_inputs()[0]
    x = {i.name: np.random.default_rng(0).standard_normal(i.shape).astype(np.float32)}
    sa, sb, sc = benchmark_rounds([a, b, c], x, rounds=3, warmup=2, repeat=7, max_seconds=None)
    assert calls == [("a", 3, 2), ("b", 3, 2), ("c", 3, 2), ("a", 2, 1), ("b", 2, 1), ("c", 2, 1), ("a", 2, 1), ("b", 2, 1)]
    assert settled == list(range(8))  # before every turn, the failed engine's included
    assert (sa.count, sa.rounds, sa.warmup) == (7, 3, 4) and sb.count == 7 and len(sa.samples_ms) == 7
    assert sa.min_ms <= sa.median_ms <= sa.max_ms and "samples_ms" not in sa.to_json()
    assert isinstance(sc, RuntimeError) and str(sc) == "board went away"
    calls.clear()
    (one,) = benchmark_rounds([a], x, rounds=5, warmup=1, repeat=2, max_seconds=None)  # fewer runs than rounds
    assert one.count == 2 and one.rounds == 2 and calls == [("a", 1, 1), ("a", 1, 1)]


def test_settle_waits_until_other_threads_stop_spinning():
    """`settle` returns once the process's other threads are idle (a thread spinning like an engine's
    worker pool after a run holds it until it stops), and gives up after `max_seconds`."""
    import threading
    import time

    from crosstune.compare.engine import SETTLE_MAX_S, settle

    def spin(seconds, done):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
        done.set()

    done = threading.Event()
    threading.Thread(target=spin, args=(0.3, done), daemon=True).start()
    waited = settle()
    assert done.is_set(), "settle returned while another thread was still busy"
    assert waited < SETTLE_MAX_S
    assert settle() < SETTLE_MAX_S  # idle: it does not wait for the cap

    forever = threading.Event()
    threading.Thread(target=spin, args=(3.0, forever), daemon=True).start()
    settle(max_seconds=0.2)
    assert not forever.is_set(), "settle waited past its max_seconds for a thread that stays busy"
    forever.wait()


def test_torch_engine_runs_the_zoo_definition(tmp_path):
    """A zoo export records which torch model and seed it is; the torch engine rebuilds that module,
    and its outputs match ONNX Runtime's on the exported file."""
    from crosstune import zoo
    from crosstune.compare.torch_engines import TorchEngine

    path = zoo.export("mobilenetv2", tmp_path / "m.onnx", seed=3)
    assert zoo.zoo_origin(onnx.load(str(path))) == ("mobilenetv2", 3)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    eng = TorchEngine("mobilenetv2", 3, ["input"], threads=2)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(eng.run({"input": x})["logits"], ref, rtol=1e-3, atol=1e-4)
    assert eng.version().endswith("eager on cpu")


@pytest.mark.parametrize("mode", ["eager", "default"])
def test_torch_engine_needs_a_zoo_model(mode):
    from crosstune.compare.peers import Unavailable
    from crosstune.compare.torch_engines import TorchEngine

    with pytest.raises(Unavailable, match="not a crosstune zoo export"):
        TorchEngine(None, 0, ["x"], threads=1, mode=mode)
