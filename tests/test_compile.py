"""`crosstune compile`: real TVM builds of small models, verified against ONNX Runtime, the package
format, and every way a compile can be refused."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import onnx
import models
import onnxruntime as ort
import pytest
from conftest import assert_user_error, default_sigint, run_cli

import crosstune
from crosstune.compile import package


def _ort(path, inputs):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, inputs)))


def test_compile_verify_cli(model_dir, tmp_path):
    out = tmp_path / "conv.ctm"
    proc = run_cli("compile", model_dir / "conv.onnx", "--target", "host", "-o", out, "--verify", check=0)
    assert f"wrote {out}" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("logits"))
    max_abs = float(row.split()[1])
    assert 0 <= max_abs < 1e-4
    assert "0/10  ok" in row
    assert "PASSED: outputs agree with onnxruntime" in proc.stdout


def test_package_holds_library_weights_metadata(model_dir, conv_package):
    with zipfile.ZipFile(conv_package) as z:
        assert set(z.namelist()) == {"metadata.json", "lib.so", "weights.params"}
        meta = json.loads(z.read("metadata.json"))
        lib = z.read("lib.so")
    assert lib[:4] == b"\x7fELF"
    assert meta["format"] == "crosstune-package" and meta["format_version"] == package.FORMAT_VERSION
    assert meta["model"]["sha256"] == hashlib.sha256((model_dir / "conv.onnx").read_bytes()).hexdigest()
    assert meta["model"]["opset"] == 17
    assert meta["inputs"] == [{"name": "x", "shape": [1, 3, 32, 32], "dtype": "float32"}]
    assert meta["outputs"] == [{"name": "logits", "shape": [1, 10], "dtype": "float32"}]
    import tvm

    assert meta["tvm_version"] == tvm.__version__
    assert meta["target"]["preset"] == "host" and meta["target"]["tvm"]["kind"] == "llvm"
    assert meta["weights"]["count"] == 11 and meta["weights"]["bytes"] > 0
    assert meta["created"].endswith("+00:00")


def test_python_api_matches_onnxruntime(model_dir, tmp_path):
    result = crosstune.compile(model_dir / "matmul.onnx", target="x86-avx2", output=tmp_path / "m.ctm")
    assert result.package == str(tmp_path / "m.ctm") and result.verification is None
    model = crosstune.load(result.package)
    a = np.random.default_rng(7).standard_normal((4, 512)).astype(np.float32)
    ours = model.run({"a": a})
    ref = _ort(model_dir / "matmul.onnx", {"a": a})
    np.testing.assert_allclose(ours["probs"], ref["probs"], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(ours["best"], ref["best"])
    assert ours["best"].dtype == np.int64
    stats = model.benchmark({"a": a}, warmup=1, repeat=5)
    assert stats.count == 5 and stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.max_ms


def test_compile_module_is_also_a_package():
    from crosstune.compile import CompileOptions, driver  # noqa: F401 - importing must not shadow the API

    assert callable(crosstune.compile)
    assert crosstune.compile.CompileOptions is CompileOptions


def test_integer_inputs_that_index_tables_stay_in_range(model_dir, tmp_path):
    proc = run_cli("compile", model_dir / "embedding.onnx", "-o", tmp_path / "e.ctm", "--verify", check=0)
    assert "PASSED" in proc.stdout
    meta = package.read_info(tmp_path / "e.ctm")
    assert meta.inputs[0].high == 1000  # random ids are drawn below the table size


def test_dynamic_input_needs_shape(model_dir, tmp_path):
    out = tmp_path / "d.ctm"
    proc = run_cli("compile", model_dir / "conv_dyn.onnx", "-o", out)
    assert_user_error(proc, "input 'x' has dynamic shape Nx3x32x32", "--input-shape x=1x3x32x32")
    assert not out.exists()


def test_dynamic_input_with_shape_compiles(model_dir, tmp_path):
    out = tmp_path / "d.ctm"
    proc = run_cli(
        "compile", model_dir / "conv_dyn.onnx", "-o", out, "--input-shape", "x=3x3x32x32", "--verify", check=0
    )
    assert "0/30  ok" in proc.stdout
    meta = package.read_info(out)
    assert meta.inputs[0].shape == (3, 3, 32, 32) and meta.outputs[0].shape == (3, 10)
    assert meta.model["input_shapes_given"] == {"x": [3, 3, 32, 32]}


@pytest.mark.parametrize(
    "spec,fragment",
    [
        ("x=2x3x31x32", "dimension 2 is fixed at 32"),
        ("x=2x3x32", "has rank 3"),
        ("y=2x3x32x32", "names 'y'"),
        ("x=2xAx32x32", "bad shape '2xAx32x32'"),
        ("x2x3x32x32", "expects NAME=VALUE"),
    ],
)
def test_bad_input_shapes(model_dir, spec, fragment):
    assert_user_error(run_cli("compile", model_dir / "conv_dyn.onnx", "--input-shape", spec), fragment)


def test_unsupported_operator_is_named(model_dir, tmp_path):
    proc = run_cli("compile", model_dir / "unsupported.onnx", "-o", tmp_path / "u.ctm")
    assert_user_error(proc, "no converter for", "com.microsoft.Gelu (1 node, opset 1)", "com.microsoft.BiasGelu (1 node, opset 1)",
                      "neither TVM's Relax ONNX frontend nor crosstune's layer covers it")
    assert not (tmp_path / "u.ctm").exists()


def _topk_model(path):
    """TopK whose k is a runtime input: ONNX Runtime runs it, TVM's converter needs k constant."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("TopK", ["x", "k"], ["values", "indices"], name="pick_best")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 10]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, [5, "K"]),
         helper.make_tensor_value_info("indices", TensorProto.INT64, [5, "K"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_missing_binding_names_the_input(tmp_path):
    p = _topk_model(tmp_path / "topk.onnx")
    ref = _ort(p, {"x": np.ones((5, 10), np.float32), "k": np.array([3])})
    assert ref["values"].shape == (5, 3)
    proc = run_cli("compile", p, "-o", tmp_path / "t.ctm")
    assert_user_error(proc, "node 'pick_best' (TopK) needs model input 'k' as a constant", "--bind k=FILE.npy")
    assert "Error converting operator" not in proc.stdout  # TVM's own dump stays off the terminal
    assert not (tmp_path / "t.ctm").exists()


def test_bind_folds_the_value_in(tmp_path):
    """--bind k=k.npy: the package takes only x, and matches ONNX Runtime given k=3 (verify)."""
    p = _topk_model(tmp_path / "topk.onnx")
    np.save(tmp_path / "k.npy", np.array([3], dtype=np.int64))
    out = run_cli("compile", p, "-o", tmp_path / "t.ctm", "--bind", f"k={tmp_path / 'k.npy'}", "--verify", check=0).stdout
    assert "PASSED" in out
    import crosstune

    pkg = crosstune.load(tmp_path / "t.ctm")
    assert [s.name for s in pkg.inputs] == ["x"]
    x = np.random.default_rng(1).standard_normal((5, 10)).astype(np.float32)
    got = pkg.run({"x": x})
    ref = _ort(p, {"x": x, "k": np.array([3])})
    np.testing.assert_array_equal(got["indices"], ref["indices"])
    np.testing.assert_allclose(got["values"], ref["values"], rtol=1e-6)
    assert pkg.info.model["bound"]["k"]["shape"] == [1]


@pytest.mark.parametrize(
    "make,fragment",
    [
        (lambda d: f"q={d / 'k.npy'}", "--bind q: the model has no input 'q' (inputs: x, k)"),
        (lambda d: f"k={d / 'nope.npy'}", "--bind k: no such file"),
        (lambda d: f"k={d / 'kf.npy'}", "--bind k: the model wants int64, the file holds float32"),
        (lambda d: f"k={d / 'k2.npy'}", "--bind k: the model wants shape 1, the file holds (2,)"),
        (lambda d: "k", "--bind wants NAME=FILE.npy"),
        (lambda d: f"k={d / 'junk.npy'}", "is not a .npy array"),
    ],
)
def test_bad_bindings(tmp_path, make, fragment):
    p = _topk_model(tmp_path / "topk.onnx")
    np.save(tmp_path / "k.npy", np.array([3], dtype=np.int64))
    np.save(tmp_path / "kf.npy", np.array([3.0], dtype=np.float32))
    np.save(tmp_path / "k2.npy", np.array([3, 4], dtype=np.int64))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    assert_user_error(run_cli("compile", p, "-o", tmp_path / "t.ctm", "--bind", make(tmp_path)), fragment)


def test_checker_rejection_that_onnxruntime_accepts_is_a_warning(tmp_path):
    """Graph outputs declared without a shape fail the ONNX checker, yet ONNX Runtime runs such
    models: crosstune warns and compiles."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    p = tmp_path / "shapeless.onnx"
    onnx.save(model, p)
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)
    proc = run_cli("compile", p, "-o", tmp_path / "s.ctm", "--verify", check=0)
    assert "warning: the ONNX checker rejects this model" in proc.stdout
    assert "PASSED" in proc.stdout
    assert package.read_info(tmp_path / "s.ctm").outputs[0].shape == (2, 8)  # inferred


def test_missing_linker_names_the_package(model_dir, tmp_path):
    preset = tmp_path / "board.toml"
    preset.write_text(
        'description = "a board"\ndevice = "cpu"\n[target]\nkind = "llvm"\n'
        '[compiler]\ncc = "no-such-cross-g++"\npackage = "g++-no-such-cross"\n'
    )
    proc = run_cli("compile", model_dir / "conv.onnx", "--target", preset, "-o", tmp_path / "b.ctm")
    assert_user_error(proc, "'no-such-cross-g++', which is not installed", "g++-no-such-cross")


def test_failing_linker_is_a_tool_error(model_dir, tmp_path):
    """A linker that runs and fails: the error keeps its command, exit code and output."""
    fake_cc = tmp_path / "failing-cc"
    fake_cc.write_text("#!/bin/sh\necho 'ld: cannot find -lmagic' >&2\nexit 7\n")
    fake_cc.chmod(0o755)
    preset = tmp_path / "badlink.toml"
    preset.write_text(f'device = "cpu"\n[target]\nkind = "llvm"\n[compiler]\ncc = "{fake_cc}"\n')
    out = tmp_path / "bl.ctm"
    proc = run_cli("compile", model_dir / "conv.onnx", "--target", preset, "-o", out)
    assert proc.returncode == 3, proc.stderr
    assert f"{fake_cc} failed with exit code 7" in proc.stderr
    assert "command: " in proc.stderr and "-shared" in proc.stderr
    assert "ld: cannot find -lmagic" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_verification_failure_exits_nonzero(model_dir, tmp_path):
    """With zero tolerance, the last-bit differences of a 512-long dot product must fail."""
    proc = run_cli("compile", model_dir / "matmul.onnx", "-o", tmp_path / "m.ctm", "--verify", "--rtol", "0", "--atol", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("probs"))
    assert row.endswith("FAIL") and float(row.split()[1]) > 0
    assert "best" in proc.stdout  # integer output: exact, still passes
    assert proc.stderr.strip() == "FAILED: outputs disagree with onnxruntime beyond rtol 0, atol 0: probs"


def test_default_output_name(model_dir, tmp_path):
    run_cli("compile", model_dir / "conv.onnx", "--target", "x86-64", cwd=tmp_path, check=0)
    assert (tmp_path / "conv.x86-64.ctm").is_file()


@pytest.mark.parametrize("stage", ["building", "linking"])
def test_ctrl_c_is_one_line_and_keeps_existing_package(tmp_path, stage):
    """Interrupt a long compile (inception_v2: ~16 s building, ~9 s linking) mid-stage: exit 130,
    one line, no traceback, and the package already at the output path is left as it was, with no
    temporary files."""
    from crosstune.zoo import onnx_light

    model = tmp_path / "inception.onnx"
    onnx_light.export("inception_v2", model)
    out = tmp_path / "keep.ctm"
    out.write_bytes(b"the previous package")
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "crosstune", "compile", str(model), "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
    )
    for line in proc.stdout:
        if stage in line:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip() == "crosstune: interrupted"
    assert out.read_bytes() == b"the previous package"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inception.onnx", "keep.ctm"]


def test_checker_fallback_finds_external_weights(tmp_path):
    """The same checker-vs-ONNX-Runtime decision for a model whose weights live in a separate file:
    ONNX Runtime must be given the model's path to find them (run from another directory)."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(2, 8), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (tmp_path / "m").mkdir()
    p = tmp_path / "m" / "ext.onnx"
    onnx.save(model, p, save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin", size_threshold=0)
    assert (tmp_path / "m" / "w.bin").is_file()
    (tmp_path / "elsewhere").mkdir()
    proc = run_cli("compile", p, "-o", tmp_path / "e.ctm", "--verify", cwd=tmp_path / "elsewhere", check=0)
    assert "warning: the ONNX checker rejects this model" in proc.stdout
    assert "PASSED" in proc.stdout


def test_a_model_tvm_cannot_convert_to_nhwc_stays_nchw(tmp_path):
    """TVM 0.27's ConvertLayout fails on an inference-time Dropout after a convolution (it cannot
    follow Dropout's tuple result): without --layout the model is built NCHW and compile says why;
    --layout NHWC is a one-line error."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Dropout", ["c"], ["y"])],
        "conv_dropout", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w])
    model = tmp_path / "cd.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), model)
    proc = run_cli("compile", model, "--target", "host", "-o", tmp_path / "cd.ctm", "--verify", "--no-logs", check=0)
    assert "  convolutions: NCHW (TVM's ConvertLayout cannot convert it to NHWC: " in proc.stdout
    assert "PASSED" in proc.stdout
    assert json.loads(zipfile.ZipFile(tmp_path / "cd.ctm").read("metadata.json"))["build"]["layout"] == "NCHW"
    assert_user_error(run_cli("compile", model, "--target", "host", "-o", tmp_path / "x.ctm", "--layout", "NHWC"),
                      "--layout NHWC: TVM's ConvertLayout cannot convert this model", "--layout NCHW")
    assert not (tmp_path / "x.ctm").exists()


def test_layout_choice_counts_kernels_left_without_records():
    """The layouts of one model have different kernel counts (NHWC adds a transpose, NCHW a reshape):
    ResNet-50 batch 16 on the H200 has 28 kernels in NCHW and 29 in NHWC. Both fully tuned, the
    faster sum must win, not the layout with more kernels (the bug of the seventh GPU session, whose
    bench built NHWC at 8.69 ms of stored time when NCHW's added up to 8.14 ms)."""
    from crosstune.compile.pipeline import prefer_layout

    full = {"NHWC": (29, 29, 8.69e-3), "NCHW": (28, 28, 8.14e-3)}
    assert prefer_layout(full, "NHWC")[0] == "NCHW"
    assert "8.14 ms against 8.69 ms" in prefer_layout(full, "NHWC")[1]
    assert prefer_layout({**full, "NCHW": (28, 28, 9.0e-3)}, "NHWC")[0] == "NHWC"
    # fewer kernels without records beats a smaller sum over fewer kernels
    assert prefer_layout({"NHWC": (20, 29, 3e-3), "NCHW": (28, 28, 8e-3)}, "NHWC")[0] == "NCHW"
    assert prefer_layout({"NHWC": (29, 29, 9e-3), "NCHW": (20, 28, 3e-3)}, "NHWC")[0] == "NHWC"
    # no records in the other layout: the target's
    assert prefer_layout({"NHWC": (0, 29, 0.0), "NCHW": (0, 28, 0.0)}, "NHWC")[0] == "NHWC"
    assert prefer_layout({"NCHW": (0, 28, 0.0), "NHWC": (3, 29, 1e-3)}, "NCHW")[0] == "NHWC"


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_winograd_convolutions_agree_with_onnxruntime(model_dir, tmp_path, layout):
    """--conv winograd builds the 3x3 stride-1 convolutions with 16+ channels as Winograd F(4x4, 3x3)
    on a 26x26 map (not whole 4x4 tiles: TVM's own NCHW form reads past its input there), with the
    bias, residual add and ReLU fused into their kernels, and the kernel transform run once at
    compile time: no kernel of the package transforms weights, and the package holds transformed
    weights (6x6 per filter instead of 3x3)."""
    from crosstune import targets
    from crosstune.compile import pipeline, relax_import

    out = tmp_path / "w.ctm"
    proc = run_cli("compile", model_dir / "winograd.onnx", "--target", "host", "--conv", "winograd", "--layout", layout,
                   "-o", out, "--verify", check=0)
    assert f"  convolutions: {layout}, 3x3 as Winograd F(4x4, 3x3)\n" in proc.stdout, proc.stdout
    assert "PASSED" in proc.stdout
    meta = json.loads(zipfile.ZipFile(out).read("metadata.json"))
    assert meta["build"]["conv"] == "winograd" and meta["build"]["layout"] == layout
    assert meta["weights"]["transformed"]
    # two Winograd kernels (a: 16->24 with bias and ReLU; b: 24->16 with the residual add and ReLU)
    _, rm = relax_import.load_and_import(model_dir / "winograd.onnx", {}, {})
    names = [gv.name_hint for gv in pipeline.workloads(rm.mod, targets.get("host"), "fp32", f"{layout}+winograd").functions]
    wino = sorted(n for n in names if "winograd" in n)
    assert len(wino) == 2 and any("relu" in n and "add" in n for n in wino), names
    assert not any("weight_transform" in n for n in names), names
    direct = [gv.name_hint for gv in pipeline.workloads(rm.mod, targets.get("host"), "fp32", layout).functions]
    assert not any("winograd" in n for n in direct)


def test_winograd_weights_are_transformed_once_and_outputs_match_direct(model_dir):
    """The Winograd build and the direct build of the same model give the same outputs within fp32
    rounding, and the Winograd kernels take 6x6 transformed filters."""
    import tvm
    from tvm import relax

    from crosstune import targets
    from crosstune.compile import pipeline, relax_import

    _, rm = relax_import.load_and_import(model_dir / "winograd.onnx", {}, {})
    target = targets.get("x86-avx2")
    x = np.random.default_rng(3).standard_normal((1, 16, 26, 26)).astype(np.float32)
    outs, shapes = {}, {}
    for form in ("NCHW", "NCHW+winograd"):
        built = pipeline.build(rm.mod, rm.weights, target, layout=form)
        vm = relax.VirtualMachine(built.executable, tvm.cpu())
        outs[form] = vm["main"](tvm.runtime.tensor(x), *built.weights).numpy()
        shapes[form] = sorted(tuple(int(d) for d in w.shape) for w in built.weights)
    assert (6, 6, 16, 24) in shapes["NCHW+winograd"] and (6, 6, 24, 16) in shapes["NCHW+winograd"]
    assert not any(len(s) == 4 and s[:2] == (6, 6) for s in shapes["NCHW"])
    ref = _ort(model_dir / "winograd.onnx", {"x": x})["y"]
    for form, y in outs.items():
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4, err_msg=form)


def test_winograd_needs_a_convolution_it_can_take(model_dir, tmp_path):
    """conv.onnx's convolutions have 3 and 8 channels, or stride 2: --conv winograd says so."""
    assert_user_error(run_cli("compile", model_dir / "conv.onnx", "--target", "host", "--conv", "winograd",
                              "-o", tmp_path / "x.ctm"), "--conv winograd", "3x3 stride-1")
    assert not (tmp_path / "x.ctm").exists()


def test_winograd_leaves_convolutions_with_few_tiles_direct(tmp_path):
    """A convolution with fewer than 49 output tiles (batch x 4x4 tiles) stays direct: its batched
    GEMM reads each transformed weight (4x the 3x3 bytes) that few times, so in a model, where the
    weights stream from memory, it is slower than the direct one (ResNet-50's 7x7 and 14x14 stages
    at batch 1). The same map at a larger batch has the tiles, and is taken."""
    import onnx

    from crosstune.compile import relax_import, winograd

    small = tmp_path / "small.onnx"
    onnx.save(models.winograd_net(size=14), small)  # 4x4 = 16 tiles
    _, rm = relax_import.load_and_import(small, {}, {})
    assert winograd.count_eligible(rm.mod) == 0
    assert_user_error(run_cli("compile", small, "--target", "host", "--conv", "winograd", "-o", tmp_path / "s.ctm"),
                      "--conv winograd", "49 output tiles")
    batched = tmp_path / "batched.onnx"
    onnx.save(models.winograd_net(size=14, batch=4), batched)  # batch 4: 64 tiles
    _, rm = relax_import.load_and_import(batched, {}, {})
    assert winograd.count_eligible(rm.mod) == 2


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_winograd_f2_takes_maps_too_small_for_4x4_tiles(tmp_path, layout):
    """--conv winograd-f2 runs a convolution whose map has fewer than 49 4x4 tiles but 49+ 2x2 tiles
    (14x14, ResNet-50's third stage at batch 1) as Winograd F(2x2, 3x3): 4x4 transformed filters, the
    outputs of ONNX Runtime. Where 4x4 tiles are enough it takes F(4x4, 3x3), as --conv winograd
    does; a 7x7 map (16 2x2 tiles) stays direct."""
    import onnx
    import tvm
    from tvm import relax

    from crosstune import targets
    from crosstune.compile import pipeline, relax_import, winograd

    small = tmp_path / "small.onnx"
    onnx.save(models.winograd_net(size=14), small)
    _, rm = relax_import.load_and_import(small, {}, {})
    assert winograd.tile_counts(rm.mod, winograd.TILES["winograd"]) == {}
    assert winograd.tile_counts(rm.mod, winograd.TILES["winograd-f2"]) == {2: 2}
    target = targets.get("x86-avx2")
    built = pipeline.build(rm.mod, rm.weights, target, layout=f"{layout}+winograd-f2")
    shapes = sorted(tuple(int(d) for d in w.shape) for w in built.weights)
    assert sum(1 for sh in shapes if len(sh) == 4 and sh[:2] == (4, 4)) == 2, shapes
    x = np.random.default_rng(5).standard_normal((1, 16, 14, 14)).astype(np.float32)
    y = relax.VirtualMachine(built.executable, tvm.cpu())["main"](tvm.runtime.tensor(x), *built.weights).numpy()
    np.testing.assert_allclose(y, _ort(small, {"x": x})["y"], rtol=1e-4, atol=1e-4)

    out = tmp_path / "s.ctm"
    proc = run_cli("compile", small, "--target", "host", "--conv", "winograd-f2", "--layout", layout, "-o", out)
    assert f"  convolutions: {layout}, 3x3 as Winograd F(4x4, 3x3), on smaller maps F(2x2, 3x3)\n" in proc.stdout
    assert json.loads(zipfile.ZipFile(out).read("metadata.json"))["build"]["conv"] == "winograd-f2"

    _, big = relax_import.load_and_import(models_path(tmp_path, models.winograd_net(size=26)), {}, {})
    assert winograd.tile_counts(big.mod, winograd.TILES["winograd-f2"]) == {4: 2}  # 4x4 tiles first
    # a build not told an algorithm weighs winograd-f2 only where it differs from winograd
    assert pipeline.candidate_convs(pipeline._winograd_convs(rm.mod, ["fp32"])) == ["direct", "winograd-f2"]
    assert pipeline.candidate_convs(pipeline._winograd_convs(big.mod, ["fp32"])) == ["direct", "winograd"]
    assert pipeline.candidate_convs(pipeline._winograd_convs(big.mod, ["fp16"])) == ["direct"]
    assert pipeline.candidate_convs({"winograd": 2, "winograd-f2": 5}) == ["direct", "winograd", "winograd-f2"]
    _, tiny = relax_import.load_and_import(models_path(tmp_path, models.winograd_net(size=7)), {}, {})
    assert winograd.count_eligible(tiny.mod, winograd.TILES["winograd-f2"]) == 0
    assert_user_error(run_cli("compile", models_path(tmp_path, models.winograd_net(size=7)), "--target", "host",
                              "--conv", "winograd-f2", "-o", tmp_path / "t.ctm"), "--conv winograd-f2", "4x4 or 2x2 tiles")


def models_path(tmp_path, proto):
    import onnx

    path = tmp_path / f"{proto.graph.name}-{proto.graph.input[0].type.tensor_type.shape.dim[2].dim_value}.onnx"
    onnx.save(proto, path)
    return path


def test_form_choice_weighs_winograd_against_direct_convolutions():
    """The store decides among the layouts and algorithms it has records for: fewer kernels without
    records first, then the smaller sum of stored times."""
    from crosstune.compile.pipeline import prefer_layout

    seen = {"NHWC": (29, 29, 58e-3), "NCHW": (0, 28, 0.0), "NHWC+winograd": (29, 29, 41e-3),
            "NCHW+winograd": (0, 28, 0.0)}
    form, why = prefer_layout(seen, "NHWC")
    assert form == "NHWC+winograd" and "41 ms against 58 ms" in why and "Winograd" in why
    # a Winograd form with kernels left untuned loses to a fully tuned direct one
    assert prefer_layout({**seen, "NHWC+winograd": (25, 29, 20e-3)}, "NHWC")[0] == "NHWC"
    # nothing but NCHW records: NCHW, direct
    assert prefer_layout({"NHWC": (0, 29, 0.0), "NCHW": (28, 28, 9e-3), "NHWC+winograd": (1, 29, 1e-3),
                          "NCHW+winograd": (1, 28, 1e-3)}, "NHWC")[0] == "NCHW"
