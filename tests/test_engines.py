"""The reference engines behind `crosstune bench`: which (engine, device, precision) can run and why
not, ONNX Runtime on a CUDA target, TensorRT's cache naming, the fp16 tolerances. Tests marked
`gpu` need an NVIDIA GPU that torch sees; `make test` leaves them out, `pytest -m gpu` runs them."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from crosstune.compare import agreement as ag
from crosstune.compare import tensorrt_engine as trt_engine
from crosstune.compare.engine import Unavailable
from crosstune.compare.peers import PEERS, make_peer

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def _cuda_visible() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.fixture(scope="module")
def conv(model_dir):
    from crosstune.compile import onnx_model

    return onnx_model.load(model_dir / "conv.onnx")


def _make(name, src, device, precision, origin=None):
    return make_peer(name, src, origin, [s.name for s in src.inputs], 1, device, precision)


# --------------------------------------------------------------------------------- availability
@pytest.mark.parametrize("name", PEERS)
def test_fp16_on_a_cpu_target_is_unavailable_for_every_engine(conv, name):
    with pytest.raises(Unavailable, match="^fp16 is measured on GPU targets; on a CPU target every engine runs fp32$"):
        _make(name, conv, "cpu", "fp16", origin=("mobilenetv2", 0))


@pytest.mark.parametrize("name, device, precision, origin, reason", [
    ("onnxruntime", "cuda", "fp16", None, "ONNX Runtime runs the fp32 ONNX model as it is: it has no fp16 path"),
    ("openvino", "cuda", "fp32", None, "openvino runs on CPUs (and Intel GPUs); it has no plugin for this cuda"),
    ("openvino", "cuda", "fp16", None, "openvino runs on CPUs"),
    ("torch", "cpu", "fp32", None, "this ONNX file is not a crosstune zoo export"),
    ("torch-compile", "cuda", "fp16", None, "this ONNX file is not a crosstune zoo export"),
    ("torch-compile-ro", "cpu", "fp32", ("mobilenetv2", 0),
     "torch.compile mode reduce-overhead replays CUDA graphs: it needs a CUDA target, not a cpu one"),
])
def test_unavailable_reasons(conv, name, device, precision, origin, reason):
    with pytest.raises(Unavailable) as err:
        _make(name, conv, device, precision, origin)
    assert reason in str(err.value) and "\n" not in str(err.value)


@pytest.mark.skipif(_cuda_visible(), reason="torch sees a CUDA GPU here")
@pytest.mark.parametrize("name", ["torch", "torch-compile", "torch-compile-ro"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_on_cuda_without_a_gpu(conv, name, precision):
    pytest.importorskip("torch")
    with pytest.raises(Unavailable, match=r"^no CUDA GPU visible to torch \(torch .*\)$"):
        _make(name, conv, "cuda", precision, origin=("mobilenetv2", 0))


@pytest.mark.skipif(HAVE_TRT, reason="tensorrt is importable here")
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_tensorrt_not_importable(conv, device):
    with pytest.raises(Unavailable) as err:
        _make("tensorrt", conv, device, "fp32")
    assert str(err.value) == trt_engine.NOT_IMPORTABLE
    assert str(err.value).startswith("tensorrt is not importable here: install TensorRT's Python package")


def test_onnxruntime_on_a_cuda_target_says_which_provider_ran_it(conv):
    """On a CUDA target ORT asks for its CUDA provider when it has one, and falls back to the CPU;
    the version string names the providers the session really got, the one that ran it first."""
    from crosstune.compare.onnxruntime import providers_for
    from crosstune.tensors import random_inputs

    assert providers_for("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    cuda = providers_for("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert cuda == [("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"]
    assert providers_for("cuda", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]

    inputs = random_inputs(conv.inputs, 0)
    on_cuda, on_cpu = _make("onnxruntime", conv, "cuda", "fp32"), _make("onnxruntime", conv, "cpu", "fp32")
    import onnxruntime as ort

    first = "CUDAExecutionProvider" if "CUDAExecutionProvider" in ort.get_available_providers() else "CPUExecutionProvider"
    assert on_cuda.version().split("(")[1].startswith(first)
    assert ag.compare_at(on_cuda.run(inputs), on_cpu.run(inputs), "fp32", actual_name="a", expected_name="b").passed
    stats = on_cuda.benchmark(inputs, warmup=1, repeat=3, max_seconds=None)
    assert stats.count == 3 and stats.min_ms > 0


def test_bad_device_or_precision_is_a_programming_error(conv):
    with pytest.raises(ValueError, match="device"):
        _make("onnxruntime", conv, "rocm", "fp32")
    with pytest.raises(ValueError, match="precision"):
        _make("onnxruntime", conv, "cpu", "int8")
    with pytest.raises(ValueError, match="unknown peer"):
        _make("tvmc", conv, "cpu", "fp32")


# ------------------------------------------------------------------------------ TensorRT's cache
KEY_ARGS = dict(model_sha256="ab" * 32, trt_version="10.9.0.34", gpu_name="NVIDIA H200", precision="fp16",
                input_shapes={"input": (1, 3, 224, 224), "mask": (1, 128)})


def test_trt_cache_key_covers_everything_that_makes_an_engine():
    key = trt_engine.cache_key(**KEY_ARGS)
    assert len(key) == 64 and int(key, 16) >= 0
    assert trt_engine.cache_key(**KEY_ARGS) == key  # deterministic
    same = dict(KEY_ARGS, gpu_name=" NVIDIA H200 ", input_shapes=dict(reversed(list(KEY_ARGS["input_shapes"].items()))))
    assert trt_engine.cache_key(**same) == key  # input order and padding of the GPU name do not matter
    changes = [dict(model_sha256="cd" * 32), dict(trt_version="10.10.0.31"), dict(gpu_name="NVIDIA H100 80GB HBM3"),
               dict(precision="fp32"), dict(input_shapes={"input": (8, 3, 224, 224), "mask": (1, 128)}),
               dict(input_shapes={"input": (1, 3, 224, 224)})]
    keys = {trt_engine.cache_key(**dict(KEY_ARGS, **c)) for c in changes}
    assert len(keys) == len(changes) and key not in keys


def test_trt_file_names():
    key = trt_engine.cache_key(**KEY_ARGS)
    name = trt_engine.engine_file_name("resnet50", "fp16", key)
    assert name == f"resnet50-fp16-{key[:24]}.engine"
    odd = trt_engine.engine_file_name("../my model:v2/" + "x" * 100, "fp32", key)
    assert "/" not in odd and " " not in odd and ":" not in odd and not odd.startswith(".")
    assert odd.endswith(f"-fp32-{key[:24]}.engine") and len(odd) < 90
    other = trt_engine.cache_key(**dict(KEY_ARGS, precision="fp32"))
    assert trt_engine.engine_file_name("resnet50", "fp16", other) != name
    timing = trt_engine.timing_cache_file_name("10.9.0.34", "NVIDIA H200")
    assert timing.startswith("timing-10.9.0.34-") and timing.endswith(".cache")
    assert timing == trt_engine.timing_cache_file_name("10.9.0.34", "NVIDIA H200 ")
    assert timing != trt_engine.timing_cache_file_name("10.9.0.34", "NVIDIA H100 80GB HBM3")
    assert timing != trt_engine.timing_cache_file_name("10.10.0.31", "NVIDIA H200")


def test_trt_cache_dir(tmp_path):
    from pathlib import Path

    assert trt_engine.cache_dir({"CROSSTUNE_TRT_CACHE": str(tmp_path)}) == tmp_path
    assert trt_engine.cache_dir({}) == Path.home() / ".cache" / "crosstune" / "tensorrt"


def test_trt_builder_flags():
    assert trt_engine.builder_flags("fp32", {"FP16", "TF32"}) == ([], ["TF32"])
    assert trt_engine.builder_flags("fp16", {"FP16", "TF32"}) == (["FP16"], [])
    assert trt_engine.builder_flags("fp32", {"FP16"}) == ([], [])
    with pytest.raises(Unavailable, match="no FP16 builder flag"):
        trt_engine.builder_flags("fp16", {"TF32"})  # TensorRT 11: strongly typed networks only


def test_trt_parser_error_line():
    line = trt_engine.parser_error_line([(3, "Celu", "No importer registered for op: Celu"),
                                         (5, "ReverseSequence", "...")])
    assert line == "TensorRT's ONNX parser rejects node 3 (Celu): No importer registered for op: Celu (+1 more)"
    assert trt_engine.parser_error_line([(-1, "", "model has\nno graph")]) == (
        "TensorRT's ONNX parser rejects the model: model has no graph")
    assert "gave no reason" in trt_engine.parser_error_line([])


# --------------------------------------------------------------------------------- tolerances
def test_fp16_tolerance_is_relative_to_the_output_scale():
    """fp16 errors are a fraction of the values' scale: an element that cancels to near zero may be
    off by far more than 1% of itself and still be right; an error of 2% of the scale is wrong."""
    rtol, atol, scale = ag.tolerance("fp16")
    assert scale > 0 and ag.tolerance("fp32")[2] == 0.0
    expected = np.array([[20.0, -15.0, 0.01, 3.0]], dtype=np.float32)
    near_zero_off = expected + np.array([[0.05, 0.0, 0.05, 0.0]], dtype=np.float32)  # 0.25% of the scale
    fp16 = ag.compare_at({"y": near_zero_off}, {"y": expected}, "fp16", actual_name="a", expected_name="b")
    assert fp16.passed and fp16.applied_atol == pytest.approx(atol + scale * 20.0)
    assert not ag.compare_at({"y": near_zero_off}, {"y": expected}, "fp32", actual_name="a", expected_name="b").passed
    wrong = expected + np.array([[0.0, 0.0, 0.45, 0.0]], dtype=np.float32)  # 2.25% of the scale
    assert not ag.compare_at({"y": wrong}, {"y": expected}, "fp16", actual_name="a", expected_name="b").passed
    # large elements are still held to rtol
    big_off = expected * np.float32(1 + 3 * rtol)
    assert not ag.compare_at({"y": big_off}, {"y": expected}, "fp16", actual_name="a", expected_name="b").passed
    # the scale is per output, and integer outputs stay exact
    two = ag.compare_at({"y": near_zero_off, "n": np.array([1, 2])}, {"y": expected, "n": np.array([1, 3])}, "fp16",
                        actual_name="a", expected_name="b")
    assert [o.passed for o in two.outputs] == [True, False]


def test_agreement_json_records_the_applied_tolerance():
    from crosstune.report import results

    expected = {"y": np.array([10.0, -4.0, 0.0], dtype=np.float32)}
    a = ag.compare_at({"y": expected["y"] + 0.01}, expected, "fp16", actual_name="torch", expected_name="onnxruntime fp32")
    d = results.agreement_json(a)
    assert d["passed"] and d["reference"] == "onnxruntime fp32" and d["scale_atol"] == ag.SCALE_ATOL["fp16"]
    assert d["atol"] == pytest.approx(ag.TOLERANCES["fp16"][1] + ag.SCALE_ATOL["fp16"] * 10.0)
    pair = results.pair_json(a, "fp16", "fp16", "fp32")
    assert pair["a"] == "torch" and pair["b_precision"] == "fp32" and "reference" not in pair
    fp32 = results.agreement_json(ag.compare_at(expected, expected, "fp32", actual_name="a", expected_name="b"))
    assert "scale_atol" not in fp32 and fp32["atol"] == ag.TOLERANCES["fp32"][1]


def test_results_documents_carry_and_check_agreement_pairs(tmp_path):
    from crosstune.report import results

    engine = results.engine_entry("onnxruntime", "onnxruntime 1.31.1", "fp32", status="unavailable", error="x")
    doc = results.new_document(model={"name": "m", "sha256": None, "inputs": []}, target={"name": "h200"},
                               command="crosstune bench m.onnx", machine={}, engines=[engine], agreement_pairs=[
                                   {"precision": "fp16", "a": "torch", "b": "onnxruntime", "passed": True,
                                    "rtol": 0.01, "atol": 0.05, "scale_atol": 0.01, "max_abs": 0.01, "max_rel": None}])
    results.write(tmp_path / "r.json", doc)
    loaded = results.load(tmp_path / "r.json")
    assert loaded["agreement_pairs"][0]["a_precision"] == "fp16"  # defaults to the pair's precision
    assert "agreement_pairs" not in results.new_document(model=doc["model"], target=doc["target"], command="c",
                                                         machine={}, engines=[engine])
    doc["agreement_pairs"][0]["passed"] = "yes"
    with pytest.raises(results.ResultsError, match=r"agreement_pairs\[0\]\.passed: expected a boolean"):
        results.validate(doc, "r.json")


# ------------------------------------------------------------------------------------ on a GPU
@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    """MobileNetV2 from the zoo (seed 3), one seeded input, and ONNX Runtime's CPU output."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.fail("tests marked gpu need an NVIDIA GPU visible to torch")
    from crosstune import zoo
    from crosstune.compare.onnxruntime import OnnxRuntimeEngine
    from crosstune.compile import onnx_model

    path = zoo.export("mobilenetv2", tmp_path_factory.mktemp("zoo") / "mobilenetv2.onnx", seed=3)
    src = onnx_model.load(path)
    inputs = {"input": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    return src, inputs, OnnxRuntimeEngine(path.read_bytes()).run(inputs)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", ["torch", "torch-compile", "torch-compile-ro"])
def test_torch_engines_on_cuda_agree_with_onnxruntime(mobilenet, name, precision):
    src, inputs, ref = mobilenet
    engine = _make(name, src, "cuda", precision, origin=("mobilenetv2", 3))
    out = engine.run(inputs)
    assert out["logits"].dtype == np.float32 and out["logits"].shape == ref["logits"].shape
    check = ag.compare_at(out, ref, precision, actual_name=name, expected_name="onnxruntime")
    assert check.passed, check
    assert "on cuda" in engine.version() and ("fp16 autocast" in engine.version()) == (precision == "fp16")
    stats = engine.benchmark(inputs, warmup=3, repeat=20, max_seconds=30)
    assert stats.count == 20 and not stats.truncated
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.max_ms < 1000
    assert ag.compare_at(engine.run(inputs), out, precision, actual_name=name, expected_name=name).passed  # replays


@pytest.mark.gpu
def test_cuda_events_time_the_gpu_work(mobilenet):
    import torch

    from crosstune.compare.gpu_timing import measure_cuda_events

    a = torch.randn(2048, 2048, device="cuda")

    def work(n):
        return lambda: [a @ a for _ in range(n)]

    one = measure_cuda_events(work(1), warmup=3, repeat=20)
    twenty = measure_cuda_events(work(20), warmup=3, repeat=20)
    assert one.count == twenty.count == 20 and one.warmup == 3
    assert twenty.median_ms > 5 * one.median_ms
    cut = measure_cuda_events(work(20), warmup=1, repeat=50, max_seconds=0.0)
    assert cut.count == 3 and cut.truncated
