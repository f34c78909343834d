"""`crosstune run`: load a package without its ONNX file, run, time, save outputs; bad packages and
bad inputs."""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile

import numpy as np
import onnxruntime as ort
import pytest
from conftest import assert_user_error, run_cli


def _rewrite_metadata(src, dst, edit):
    """Copy a package, passing metadata.json's text through `edit`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "metadata.json":
                data = edit(data.decode()).encode()
            zout.writestr(item, data)


def test_run_with_input_file_and_saved_outputs(model_dir, conv_package, tmp_path):
    """Runs from the package alone (the ONNX file moved away) and matches ONNX Runtime."""
    x = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    pkg = tmp_path / "alone.ctm"
    shutil.copy(conv_package, pkg)
    proc = run_cli(
        "run", pkg, "--input", f"x={tmp_path / 'x.npy'}", "--repeat", "7", "--warmup", "2",
        "--save-outputs", tmp_path / "out", cwd=tmp_path, check=0,
    )
    assert "input x 1x3x32x32 float32: from file" in proc.stdout
    line = next(l for l in proc.stdout.splitlines() if l.startswith("latency"))
    assert re.match(r"latency on \d+ threads? over 7 runs, 2 warm-up: median ", line), line
    for key in ("median", "p90", "min", "max"):
        assert f" {key} " in line
    saved = np.load(tmp_path / "out" / "logits.npy")
    sess = ort.InferenceSession(str(model_dir / "conv.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(saved, sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_run_without_inputs_uses_seeded_random(conv_package, tmp_path):
    a = run_cli("run", conv_package, "--repeat", "3", "--save-outputs", tmp_path / "a", check=0)
    run_cli("run", conv_package, "--repeat", "3", "--save-outputs", tmp_path / "b", check=0)
    run_cli("run", conv_package, "--repeat", "3", "--seed", "1", "--save-outputs", tmp_path / "c", check=0)
    assert "seeded random (seed 0)" in a.stdout
    same = np.load(tmp_path / "a" / "logits.npy"), np.load(tmp_path / "b" / "logits.npy")
    np.testing.assert_array_equal(*same)
    assert not np.array_equal(same[0], np.load(tmp_path / "c" / "logits.npy"))


def test_run_stops_at_max_seconds(conv_package):
    proc = run_cli("run", conv_package, "--repeat", "100000", "--max-seconds", "0.2", "--warmup", "0", check=0)
    assert "(stopped at --max-seconds 0.2)" in proc.stdout


def test_wrong_input_name(conv_package, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 32, 32), np.float32))
    proc = run_cli("run", conv_package, "--input", f"image={tmp_path / 'x.npy'}")
    assert_user_error(proc, "model has no input 'image'", "its inputs are: x")


@pytest.mark.parametrize(
    "array,expect",
    [
        (np.zeros((1, 3, 30, 32), np.float32), "got 1x3x30x32 float32"),
        (np.zeros((1, 3, 32, 32), np.float64), "got 1x3x32x32 float64"),
    ],
    ids=["shape", "dtype"],
)
def test_wrong_input_shape_or_dtype(conv_package, tmp_path, array, expect):
    np.save(tmp_path / "x.npy", array)
    proc = run_cli("run", conv_package, "--input", f"x={tmp_path / 'x.npy'}")
    assert_user_error(proc, "input 'x' expects 1x3x32x32 float32", expect)


def test_input_file_problems(conv_package, tmp_path):
    assert_user_error(run_cli("run", conv_package, "--input", f"x={tmp_path / 'none.npy'}"), "no such file")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    assert_user_error(run_cli("run", conv_package, "--input", f"x={tmp_path / 'junk.npy'}"), "not a readable .npy")


def test_package_from_another_tvm_version(conv_package, tmp_path):
    old = tmp_path / "old.ctm"
    _rewrite_metadata(conv_package, old, lambda t: t.replace('"tvm_version": "', '"tvm_version": "0.19.0-was-'))
    proc = run_cli("run", old)
    assert_user_error(proc, "was built with TVM 0.19.0-was-", "recompile it with `crosstune compile`")


@pytest.mark.parametrize(
    "edit,fragment",
    [
        (lambda t: t[: len(t) // 2], "corrupt metadata"),
        (lambda t: "[1, 2, 3]", "corrupt metadata"),
        (lambda t: t.replace('"inputs"', '"inputz"'), "corrupt metadata (bad or missing field 'inputs')"),
        (lambda t: t.replace('"format_version": 2', '"format_version": 99'), "package format version 99"),
    ],
    ids=["truncated-json", "not-an-object", "missing-field", "newer-format"],
)
def test_corrupt_metadata(conv_package, tmp_path, edit, fragment):
    bad = tmp_path / "bad.ctm"
    _rewrite_metadata(conv_package, bad, edit)
    assert_user_error(run_cli("run", bad), fragment)
    assert_user_error(run_cli("inspect", bad), fragment)


def test_not_a_package(tmp_path, conv_package):
    p = tmp_path / "x.ctm"
    p.write_bytes(b"hello")
    assert_user_error(run_cli("run", p), "is not a crosstune package")
    assert_user_error(run_cli("run", tmp_path / "missing.ctm"), "no such file")
    data = conv_package.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    assert_user_error(run_cli("run", p), "x.ctm")
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("metadata.json", "{}")
    assert_user_error(run_cli("run", p), "missing lib.so, weights.params")


def test_damaged_library_member(conv_package, tmp_path):
    """A package whose lib.so bytes are damaged after packing: the zip CRC catches it."""
    data = bytearray(conv_package.read_bytes())
    with zipfile.ZipFile(conv_package) as z:
        info = z.getinfo("lib.so")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 100
    data[start : start + 64] = bytes(64)
    p = tmp_path / "damaged.ctm"
    p.write_bytes(bytes(data))
    assert_user_error(run_cli("run", p), "damaged.ctm")


def _swap_member(src, dst, name, data):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, data if item.filename == name else zin.read(item.filename))


def test_swapped_library_or_weights_refused(conv_package, tmp_path):
    """A package whose lib.so or weights were replaced by other valid files (CRCs intact) is refused
    before the library is loaded: its digests no longer match the metadata."""
    import hashlib

    lib = zipfile.ZipFile(conv_package).read("lib.so")
    swapped = tmp_path / "swapped.ctm"
    _swap_member(conv_package, swapped, "lib.so", lib + b"\0")  # any other bytes, still a valid zip
    assert_user_error(run_cli("run", swapped), "lib.so does not match the sha256 in its metadata")
    _swap_member(conv_package, swapped, "weights.params", b"x" * 64)
    assert_user_error(run_cli("run", swapped), "weights.params does not match the sha256")
    meta = json.loads(zipfile.ZipFile(conv_package).read("metadata.json"))
    assert meta["sha256"]["lib.so"] == hashlib.sha256(lib).hexdigest()


def test_inspect_package(conv_package):
    out = run_cli("inspect", conv_package, check=0).stdout
    meta = json.loads(zipfile.ZipFile(conv_package).read("metadata.json"))
    assert f"sha256 {meta['model']['sha256']}" in out
    assert "input      x 1x3x32x32 float32" in out and "output     logits 1x10 float32" in out


def test_package_for_a_cpu_this_one_is_not(conv_package, tmp_path):
    """A package whose target needs an instruction-set extension this CPU lacks (as one built for
    a newer Xeon would) is refused with one line instead of dying on SIGILL."""
    from crosstune.targets import host

    # Flags of other or newer x86 CPUs (Knights Mill, Granite Rapids, Arrow Lake): one is missing here.
    flags = host.detect().flags
    extra = next(f for f in ("avx512_4fmaps", "amx_fp16", "sha512", "avx_ne_convert", "avx10_2") if f not in flags)
    newer = tmp_path / "newer.ctm"
    _rewrite_metadata(conv_package, newer, lambda t: t.replace('"cpu_flags": [', f'"cpu_flags": ["{extra}", ', 1))
    assert_user_error(run_cli("run", newer), "needs CPU features this CPU lacks", extra, "--target host")


def test_package_records_its_cpu_flags(conv_package):
    import json

    meta = json.loads(zipfile.ZipFile(conv_package).read("metadata.json"))
    from crosstune import targets

    assert meta["target"]["cpu_flags"] == targets.get("host").cpu_flags()


def test_cpu_packages_run_on_every_physical_core_unless_told(conv_package, tmp_path):
    """TVM's own default is half of hardware_concurrency on x86 (one thread on a 2-core VM), which ran
    tuned modules at half speed; crosstune sizes the pool to the physical cores this process may use,
    unless TVM_NUM_THREADS/OMP_NUM_THREADS or --threads say otherwise."""
    import subprocess
    import sys

    from crosstune.targets import host

    env = {k: v for k, v in os.environ.items() if k not in ("TVM_NUM_THREADS", "OMP_NUM_THREADS")}
    probe = ("import crosstune, tvm; m = crosstune.load(%r); m.run(m.example_inputs(0)); "
             "print(tvm.get_global_func('runtime.NumThreads')())" % str(conv_package))
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[-1]) == host.physical_cores()
    out = subprocess.run([sys.executable, "-c", probe], env={**env, "TVM_NUM_THREADS": "1"},
                         capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[-1]) == 1

    proc = run_cli("run", conv_package, "--repeat", "3", "--threads", "1", "--json", tmp_path / "r.json", check=0)
    assert "latency on 1 thread over 3 runs" in proc.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["engines"][0]["threads"] == 1
    assert_user_error(run_cli("run", conv_package, "--threads", "0"), "--threads must be at least 1")
