"""CUDA targets: presets, compilation down to the artifact on this GPU-less machine (nvcc), the
one-line errors of a CUDA package where it cannot run, and (marked `gpu`, run with `pytest -m gpu` on
the GPU machine) running, verifying and tuning on a real GPU."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import assert_user_error, run_cli, shard_files, shard_text

from crosstune import targets
from crosstune.targets import cuda

HAS_GPU = bool(cuda.local_gpus())
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None and not HAS_GPU,
                                reason="no nvcc: CUDA kernels cannot be compiled on this machine")


def test_cuda_presets_carry_what_metaschedule_needs():
    for name, arch in (("h100", "sm_90"), ("h200", "sm_90"), ("a100", "sm_80"), ("jetson-orin", "sm_87")):
        t = targets.get(name)
        assert t.device == "cuda" and t.gpu_arch == arch
        for key in ("max_threads_per_block", "max_shared_memory_per_block", "thread_warp_size", "registers_per_block"):
            assert int(t.tvm[key]) > 0, (name, key)
        tvm_target = t.tvm_target()  # TVM accepts it, with its host
        assert str(tvm_target.kind.name) == "cuda" and tvm_target.host is not None
    # H100 and H200 are one architecture: one record folder, identical TVM targets, so records match
    assert targets.get("h100").logs == targets.get("h200").logs == "h200"
    assert targets.get("h100").tvm == targets.get("h200").tvm
    orin = targets.get("jetson-orin")
    assert orin.arch == "aarch64" and orin.cross and orin.cc == "aarch64-linux-gnu-g++"
    assert targets.get("h100").arch == "x86_64" and not targets.get("h100").cross


def test_arch_capability():
    assert cuda.arch_capability("sm_90") == (9, 0) and cuda.arch_capability("sm_87") == (8, 7)
    assert cuda.arch_capability("sm_100") == (10, 0) and cuda.arch_capability("sm_90a") == (9, 0)
    with pytest.raises(ValueError):
        cuda.arch_capability("compute")


@pytest.mark.skipif(HAS_GPU, reason="checks the message of a machine without an NVIDIA GPU")
def test_cuda_target_without_a_gpu_is_one_line():
    assert_user_error(run_cli("compile", "x.onnx", "--target", "cuda"), "no NVIDIA GPU here", "name a GPU preset")
    proc = run_cli("targets", check=0)
    assert "cuda" in proc.stdout and "not here: no NVIDIA GPU" in proc.stdout
    assert "h100" in proc.stdout and "cuda/x86_64" in proc.stdout


@pytest.mark.skipif(HAS_GPU, reason="checks the messages of a machine without an NVIDIA GPU")
def test_tune_for_a_gpu_needs_one(model_dir):
    assert_user_error(run_cli("tune", model_dir / "conv.onnx", "--target", "h100", "--trials", "2"),
                      "no NVIDIA GPU here", "sm_90")


def test_fp16_is_for_gpu_targets(model_dir, tmp_path):
    assert_user_error(run_cli("compile", model_dir / "conv.onnx", "--target", "x86-64", "--precision", "fp16",
                              "-o", tmp_path / "x.ctm"), "fp16 is built for GPU targets")


@pytest.fixture(scope="module")
def cuda_packages(model_dir, tmp_path_factory):
    """conv.onnx compiled for h100 (fp32 and fp16) and for jetson-orin, through the CLI."""
    d = tmp_path_factory.mktemp("cuda")
    out = {}
    for name, args in (("h100", ["--target", "h100"]), ("h100-fp16", ["--target", "h100", "--precision", "fp16"]),
                       ("orin", ["--target", "jetson-orin"])):
        if name == "orin" and shutil.which("aarch64-linux-gnu-g++") is None:
            continue  # the GPU machine has no cross compiler; `make test` installs it here
        out[name] = d / f"conv.{name}.ctm"
        run_cli("compile", model_dir / "conv.onnx", *args, "-o", out[name], "--no-logs", check=0)
    return out


def _meta_and_lib(path, tmp_path):
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read("metadata.json"))
        lib = tmp_path / f"{path.stem}.so"
        lib.write_bytes(z.read("lib.so"))
    return meta, lib


@needs_nvcc
def test_compile_for_cuda_without_a_gpu(cuda_packages, tmp_path):
    """The artifact holds GPU code for the preset's architecture (sm_90) beside the host's x86 code,
    launched through CUDA graphs, and fp16 packages ship fp16 weights."""
    meta, lib = _meta_and_lib(cuda_packages["h100"], tmp_path)
    assert meta["target"]["device"] == "cuda" and meta["target"]["gpu_arch"] == "sm_90"
    assert meta["build"]["precision"] == "fp32"
    elf = subprocess.run(["readelf", "-h", lib], capture_output=True, text=True, check=True).stdout
    assert "X86-64" in elf
    assert b"vm.builtin.cuda_graph.run_or_capture" in lib.read_bytes()  # launches replayed as CUDA graphs
    meta16, _ = _meta_and_lib(cuda_packages["h100-fp16"], tmp_path)
    assert meta16["build"]["precision"] == "fp16"
    assert meta16["weights"]["bytes"] < 0.6 * meta["weights"]["bytes"]  # fp16 weights: half the bytes


def test_fp16_declares_every_weight_fp16_except_normalisation_parameters(model_dir):
    """Biases must be fp16 too, or every add after a convolution runs in fp32 and activations travel
    between kernels as fp32; BatchNorm/LayerNorm parameters stay fp32, as under PyTorch's autocast."""
    from crosstune.compile import pipeline, relax_import

    _, model = relax_import.load_and_import(model_dir / "conv.onnx", {}, {})
    names = pipeline.float_weight_names(model.mod)
    assert {"c1_w", "c1_b", "c2_b", "c3_w", "fc_w", "fc_b"} <= set(names)
    assert not {"bn_s", "bn_b", "bn_m", "bn_v"} & set(names)
    prepared = pipeline.prepare(model.mod, targets.get("h100"), "fp16")
    declared = {str(p.name): str(p.ty.dtype) for p in prepared["main"].params}
    assert declared["c1_b"] == declared["fc_w"] == "float16" and declared["bn_v"] == "float32"
    assert declared["x"] == "float32"  # inputs and outputs keep the model's dtypes
    # The first convolution's kernel: fp32 accumulation cast to fp16 once, then bias and ReLU in fp16
    # (it was conv2d_cast_cast_add_relu: down to fp16 and back up to fp32 for the fp32 bias).
    names = [gv.name_hint for gv in pipeline.workloads(model.mod, targets.get("h100"), "fp16").functions]
    assert any(re.fullmatch(r"fused_conv2d\d*_cast\d*_add\d*_relu\d*", n) for n in names), names


def test_fp16_falls_back_where_mixed_precision_stops_at_a_call_tir():
    """Some of TVM's ONNX converters emit `call_tir` of TE functions, which ToMixedPrecision cannot
    follow fp16 values into (an internal error before): such a graph still builds for fp16, with the
    convolution in fp16 (ToMixedPrecision's default, weights cast inside the graph)."""
    import tvm
    from tvm import relax, topi

    from crosstune.compile import pipeline

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, 4, 8, 8], "float32"))
    w = relax.Var("w", relax.TensorType([4, 4, 3, 3], "float32"))
    b = relax.Var("b", relax.TensorType([1, 4, 1, 1], "float32"))
    with bb.function("main", [x, w, b], attrs={"num_input": 1}):
        with bb.dataflow():
            y = bb.emit(relax.op.add(relax.op.nn.conv2d(x, w, padding=1), b))
            z = bb.emit_output(bb.emit_te(topi.maximum, y, relax.const(0.0, "float32")))
        bb.emit_func_output(z)
    mod = bb.get()
    assert "call_tir" in mod.script()
    with pytest.raises(tvm.error.InternalError):  # what the full conversion does with this graph
        relax.transform.ToMixedPrecision(out_dtype="float32", fp16_input_names=["w", "b"])(
            relax.transform.ConvertToDataflow()(mod))
    prepared = pipeline.prepare(mod, targets.get("h100"), "fp16")
    declared = {str(p.name): str(p.ty.dtype) for p in prepared["main"].params}
    assert declared == {"x": "float32", "w": "float32", "b": "float32"}  # cast inside, then lifted
    conv = [f for gv, f in prepared.functions.items() if "conv2d" in gv.name_hint]
    assert conv and any('"float16"' in f.script() for f in conv)  # the convolution reads fp16


@needs_nvcc
def test_compile_for_jetson_cross_links_the_host_code(cuda_packages, tmp_path):
    meta, lib = _meta_and_lib(cuda_packages["orin"], tmp_path)
    assert meta["target"]["arch"] == "aarch64" and meta["target"]["gpu_arch"] == "sm_87"
    elf = subprocess.run(["readelf", "-h", lib], capture_output=True, text=True, check=True).stdout
    assert "AArch64" in elf


@needs_nvcc
def test_cuda_build_holds_gpu_kernels_for_the_preset(model_dir):
    """In process: the executable's module tree is VM -> host code -> a CUDA module whose kernels were
    generated for the preset (CUDA C with __global__ kernels, compiled for its architecture)."""
    import onnx

    from crosstune.compile import onnx_model, pipeline, relax_import

    t = targets.get("h100")
    t.check_compiler()
    rm = relax_import.to_relax(onnx_model.load(onnx.load(str(model_dir / "conv.onnx"))))
    built = pipeline.build(rm.mod, rm.weights, t)
    host = built.executable.mod.imports[0]
    assert host.kind == "llvm"
    (gpu,) = host.imports
    assert gpu.kind == "cuda"
    src = gpu.inspect_source("")
    assert src.count("__global__") >= 3  # conv, pooling, dense kernels at least


@needs_nvcc
@pytest.mark.skipif(HAS_GPU, reason="checks the message of a machine without an NVIDIA GPU")
def test_cuda_package_on_a_machine_without_a_gpu(cuda_packages):
    assert_user_error(run_cli("run", cuda_packages["h100"]), "built for an NVIDIA GPU", "sm_90", "no CUDA GPU")
    assert_user_error(run_cli("run", cuda_packages["orin"]), "built for aarch64", "--rpc")


# ------------------------------------------------------------------------------ on the GPU machine
@pytest.mark.gpu
def test_gpu_run_matches_onnxruntime(cuda_packages, model_dir):
    import crosstune

    ref = ort.InferenceSession(str(model_dir / "conv.onnx"), providers=["CPUExecutionProvider"])
    for name, (rtol, atol) in (("h100", (1e-3, 1e-4)), ("h100-fp16", (2e-2, 2e-2))):
        m = crosstune.load(cuda_packages[name])
        x = m.example_inputs(1)
        got = m.run(x)
        want = ref.run(None, x)
        for (k, v), w in zip(got.items(), want):
            np.testing.assert_allclose(v, w, rtol=rtol, atol=atol * max(1.0, float(np.abs(w).max())), err_msg=name)
        stats = m.benchmark(x, warmup=3, repeat=20)
        assert stats.count == 20 and 0 < stats.min_ms <= stats.median_ms <= stats.max_ms


@pytest.mark.gpu
def test_gpu_package_for_a_newer_architecture_is_refused(model_dir, tmp_path):
    gpu = cuda.require_gpu("this test")
    newer = f"sm_{gpu.capability[0] + 1}0"
    spec = (targets.PRESET_DIR / "h200.toml").read_text().replace('arch = "sm_90"', f'arch = "{newer}"')
    toml = tmp_path / "newer.toml"
    toml.write_text(spec)
    pkg = tmp_path / "newer.ctm"
    run_cli("compile", model_dir / "conv.onnx", "--target", toml, "-o", pkg, "--no-logs", check=0)
    assert_user_error(run_cli("run", pkg), f"built for {newer}", "older architecture")


@pytest.mark.gpu
def test_gpu_tuning_measures_and_compile_uses_the_records(model_dir, tmp_path):
    db = tmp_path / "db"
    proc = run_cli("tune", model_dir / "conv.onnx", "--target", "cuda", "--trials", "16", "--trials-per-round", "8",
                   "--db", db, "--min-repeat-ms", "10", "--population", "64", "--no-baseline", check=0)
    assert "16 trials" in proc.stdout
    lines = [json.loads(l) for f in shard_files(db) for l in shard_text(f).splitlines()]
    measured = [l for l in lines if l.get("run_secs") and "error" not in l]
    assert len(measured) >= 8, proc.stdout  # most candidates build and run on the GPU
    pkg = tmp_path / "tuned.ctm"
    out = run_cli("compile", model_dir / "conv.onnx", "--target", "cuda", "--db", db, "--verify", "-o", pkg, check=0)
    assert "PASSED" in out.stdout
    meta, _ = _meta_and_lib(pkg, tmp_path)
    assert meta["build"]["tuning"]["covered"] >= 1


@needs_nvcc
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_fp16_tensor_core_candidates_build(model_dir, layout):
    """An fp16 convolution accumulating in fp32: MetaSchedule's stock tensor-core rules give candidates
    that nearly all fail to build in TVM 0.27 ("tvm_access_ptr element type must match the source
    buffer (float16 vs float32)"); crosstune's design space (tuning/space.py) must give tensor-core
    candidates that build, in either layout. Built here with nvcc down to the linked library, as a
    tuning worker does."""
    import tempfile

    import tvm
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

    from crosstune.compile import pipeline, relax_import
    from crosstune.tuning import space, worker
    from crosstune.tuning.intrinsics import load_tensor_intrinsics
    from crosstune.tuning.pools import _target_json

    target = targets.get("h100")
    _, model = relax_import.load_and_import(model_dir / "conv.onnx", {}, {})
    tasks = pipeline.extract_tasks(pipeline.workloads(model.mod, target, "fp16", layout), target)
    convs = [_normalize_mod(t.dispatched[0]) for t in tasks if "conv2d" in t.task_name]
    mod = max(convs, key=lambda m: float(tvm.s_tir.analysis.estimate_tir_flops(m)))
    tvm_target = pipeline.tuning_target(target)
    load_tensor_intrinsics("cuda")
    assert space.uses_tensor_cores(tvm_target)
    assert not space.uses_tensor_cores(pipeline.tuning_target(targets.get("x86-64")))
    ctx = ms.TuneContext(mod=mod, target=tvm_target, space_generator=space.space_generator(tvm_target),
                         search_strategy=ms.search_strategy.EvolutionarySearch(population_size=16), num_threads=2)
    ctx.pre_tuning(max_trials=4, num_trials_per_iter=4, design_spaces=ctx.generate_design_space(),
                   database=ms.database.MemoryDatabase(), cost_model=ms.cost_model.RandomModel())
    cands = list(ctx.generate_measure_candidates())[:4]
    assert cands
    target_json = json.dumps(_target_json(tvm_target))
    out = tempfile.mkdtemp(prefix="crosstune-test-tc-")
    built = 0
    for c in cands:
        script = c.sch.mod.script()
        assert "tvm_mma_sync" in script or "mma_sync" in script, "not a tensor-core candidate"
        lib = worker.build(tvm.ir.save_json(c.sch.mod), target_json, out, None)  # raises if it does not build
        assert Path(lib).stat().st_size > 0
        built += 1
    shutil.rmtree(out, ignore_errors=True)
    assert built == len(cands)


@needs_nvcc
def test_default_schedules_of_cuda_workloads_build(model_dir):
    """What `tune` times as a CUDA workload's baseline: dlight's default GPU schedules (the rules
    `tvm.compile`'s CUDA pipeline applies), built with nvcc down to the linked library as a tuning
    worker builds it. Every kernel of conv.onnx, fp32 and fp16, NCHW and NHWC, gets one."""
    import tempfile

    from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

    import tvm
    from crosstune.compile import pipeline, relax_import
    from crosstune.tuning import worker
    from crosstune.tuning.intrinsics import load_tensor_intrinsics
    from crosstune.tuning.pools import _target_json

    target = targets.get("h100")
    tvm_target = pipeline.tuning_target(target)
    load_tensor_intrinsics("cuda")
    _, model = relax_import.load_and_import(model_dir / "conv.onnx", {}, {})
    target_json = json.dumps(_target_json(tvm_target))
    out = tempfile.mkdtemp(prefix="crosstune-test-default-")
    try:
        for precision, layout in [(p, x) for p in ("fp32", "fp16") for x in pipeline.LAYOUTS]:
            tasks = pipeline.extract_tasks(pipeline.workloads(model.mod, target, precision, layout), target)
            assert len(tasks) >= 3
            for t in tasks:
                mod = pipeline.default_schedule(_normalize_mod(t.dispatched[0]), tvm_target, "cuda")
                assert mod is not None, t.task_name
                assert "threadIdx.x" in mod.script(), f"{t.task_name} ({precision}, {layout}) not scheduled for the GPU"
                lib = worker.build(tvm.ir.save_json(mod), target_json, out, None)  # raises if it does not build
                assert Path(lib).stat().st_size > 0
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_search_samples_large_fp32_gpu_convolutions(tmp_path):
    """ResNet-50's batch-16 3x3 convolutions in fp32 (here 16x128x56x56, stride 2): most random
    schedules fail the GPU post-processors, and at population 64 with crosstune's former threshold
    (half the population must pass) every round gave up ("Cannot sample enough initial population"),
    so eleven such kernels stayed on default schedules on the H200. The tuner's search must sample
    candidates for it at the population `bench/gpu_session.sh` tunes with."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

    from crosstune.compile import pipeline, relax_import
    from crosstune.tuning import space
    from crosstune.tuning.intrinsics import load_tensor_intrinsics
    from crosstune.tuning.tuner import TuneOptions, search_strategy

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((128, 128, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
         helper.make_node("Relu", ["c"], ["y"])], "conv16",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 128, 56, 56])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, 128, 28, 28])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "conv16.onnx")
    target = targets.get("h200")
    _, model = relax_import.load_and_import(tmp_path / "conv16.onnx", {}, {})
    tasks = [t for t in pipeline.extract_tasks(pipeline.workloads(model.mod, target, "fp32"), target)
             if "conv2d" in t.task_name]
    assert len(tasks) == 1
    tvm_target = pipeline.tuning_target(target)
    load_tensor_intrinsics("cuda")
    ctx = ms.TuneContext(mod=_normalize_mod(tasks[0].dispatched[0]), target=tvm_target,
                         space_generator=space.space_generator(tvm_target),
                         search_strategy=search_strategy(TuneOptions(population=64, search_iters=2), ms),
                         num_threads=2, rand_state=1)
    ctx.pre_tuning(max_trials=16, num_trials_per_iter=16, design_spaces=ctx.generate_design_space(),
                   database=ms.database.MemoryDatabase(), cost_model=ms.cost_model.RandomModel())
    cands = ctx.generate_measure_candidates()
    assert cands is not None and len(cands) == 16
