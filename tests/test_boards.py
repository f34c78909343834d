"""ARM boards: aarch64 presets, cross-compiled packages, and a board farm on 127.0.0.1: a real TVM RPC
tracker and two emulated Raspberry Pi 4 boards (TVM's RPC server under qemu-user on an arm64 Debian
userland), started through the CLI as a user would, on free ports.

Emulation cannot time a board: these tests check everything short of real timings (the artifact, the
protocol, the tracker, the tuning loop, faults) and that emulated timings are labelled as such.
The tests run in file order: the last two kill the boards one after the other.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import (
    assert_user_error,
    default_sigint,
    kill_group,
    run_cli,
    shard_files,
    shard_text,
    start_cli,
    wait_for,
)

from crosstune import targets
from crosstune.rpc.serve import free_port

ARM_PRESETS = ["rpi4", "rpi5", "jetson-orin-cpu", "graviton3"]
EM_AARCH64 = 183  # ELF e_machine of aarch64


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "crosstune", *map(str, args)]


_start, _kill = start_cli, kill_group


def _status(tracker: str) -> dict[str, int]:
    out = run_cli("rpc", "status", "--tracker", tracker, check=0).stdout
    return {m[0]: int(m[1]) for m in re.findall(r"^(\S+)\s+(\d+)\s+\d+\s+\d+\s+\d+\s", out, re.MULTILINE)}


_wait_for = wait_for


class Farm:
    def __init__(self, tracker: str, tracker_proc, boards: list, logs: list[Path]):
        self.tracker, self.tracker_proc, self.boards, self.logs = tracker, tracker_proc, boards, logs

    def kill_board(self, i: int) -> None:
        _kill(self.boards[i])

    def diagnostics(self) -> str:
        """The tracker's view and the end of every farm log (each board logs one line per session)."""
        proc = run_cli("rpc", "status", "--tracker", self.tracker, timeout=60)
        parts = [f"$ crosstune rpc status --tracker {self.tracker}\n{proc.stdout}{proc.stderr}"]
        for p in self.logs:
            lines = Path(p).read_text(errors="replace").splitlines()
            parts.append(f"--- {p} (last 60 of {len(lines)} lines)\n" + "\n".join(lines[-60:]))
        return "\n".join(parts)


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    d = tmp_path_factory.mktemp("farm")
    setup = run_cli("board", "setup", timeout=900)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "emulated aarch64 userland ready" in setup.stdout
    port = free_port()
    tracker = f"127.0.0.1:{port}"
    tproc = _start(["rpc", "tracker", "--port", port], d / "tracker.log")
    _wait_for(lambda: "listening" in (d / "tracker.log").read_text(), 60, "the tracker", [d / "tracker.log"])
    boards, logs = [], [d / "tracker.log"]
    for i in range(2):
        log = d / f"board{i}.log"
        boards.append(_start(["board", "emulate", "--target", "rpi4", "--tracker", tracker], log))
        logs.append(log)
    f = Farm(tracker, tproc, boards, logs)
    _wait_for(lambda: _status(tracker).get("rpi4") == 2, 240, "two rpi4 boards at the tracker", logs)
    yield f
    for p in boards + [tproc]:
        _kill(p)


@pytest.fixture(scope="module")
def rpi4_package(model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("arm") / "conv.rpi4.ctm"
    run_cli("compile", model_dir / "conv.onnx", "--target", "rpi4", "-o", out, check=0)
    return out


# ------------------------------------------------------------------------------------ presets, cross
def test_arm_presets():
    out = run_cli("targets", check=0).stdout
    for name in ARM_PRESETS:
        t = targets.get(name)
        assert t.arch == "aarch64" and t.cross and t.device == "cpu"
        assert t.tvm["mtriple"] == "aarch64-linux-gnu" and "+neon" in t.tvm["mattr"]
        assert t.cc == "aarch64-linux-gnu-g++" and t.cc_package == "g++-aarch64-linux-gnu"
        assert t.qemu_cpu and t.board_key == name
        assert re.search(rf"^{re.escape(name)}\s+cpu/aarch64\s", out, re.MULTILINE)
    assert targets.get("graviton3").tvm["mcpu"] == "neoverse-v1" and "+sve" in targets.get("graviton3").tvm["mattr"]
    # every qemu CPU model named by a preset exists in the installed qemu
    models = subprocess.run(["qemu-aarch64-static", "-cpu", "help"], capture_output=True, text=True).stdout.split()
    for name in ARM_PRESETS:
        assert targets.get(name).qemu_cpu.split(",")[0] in models, name


@pytest.mark.parametrize("preset", ARM_PRESETS)
def test_cross_compile_is_an_aarch64_library_with_neon(preset, model_dir, tmp_path, rpi4_package):
    pkg = rpi4_package if preset == "rpi4" else tmp_path / f"conv.{preset}.ctm"
    if preset != "rpi4":
        run_cli("compile", model_dir / "conv.onnx", "--target", preset, "-o", pkg, check=0)
    lib = tmp_path / "lib.so"
    lib.write_bytes(zipfile.ZipFile(pkg).read("lib.so"))
    header = lib.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == EM_AARCH64
    dis = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
    neon = re.findall(r"\bf(?:mla|mul|add)\s+v\d+\.4s", dis)
    assert len(neon) > 10, "no Neon vector arithmetic in the library"
    meta = json.loads(zipfile.ZipFile(pkg).read("metadata.json"))
    assert meta["target"]["arch"] == "aarch64" and meta["target"]["preset"] == preset


def test_missing_cross_compiler_names_the_package(model_dir, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = run_cli("compile", model_dir / "conv.onnx", "--target", "rpi4", "-o", tmp_path / "x.ctm",
                   env={"PATH": str(empty)})
    assert_user_error(proc, "aarch64-linux-gnu-g++", "g++-aarch64-linux-gnu")
    assert not (tmp_path / "x.ctm").exists()


def test_cross_package_run_here_says_use_a_board(rpi4_package):
    assert_user_error(run_cli("run", rpi4_package), "built for aarch64", "--rpc", "--key rpi4")


def test_verify_cross_target_needs_a_board(model_dir, tmp_path):
    proc = run_cli("compile", model_dir / "conv.onnx", "--target", "rpi4", "--verify", "-o", tmp_path / "x.ctm")
    assert_user_error(proc, "target 'rpi4' is aarch64", "--rpc TRACKER_HOST:PORT --key rpi4")


def test_tune_cross_target_needs_a_board(model_dir):
    assert_user_error(run_cli("tune", model_dir / "conv.onnx", "--target", "rpi4"), "--rpc TRACKER_HOST:PORT --key rpi4")


# ----------------------------------------------------------------------------------- farm: tracker
def test_tracker_and_server_bind_loopback_unless_told(tmp_path):
    """Bound elsewhere than 127.0.0.1, the tracker says at start that anyone can reach it."""
    port = free_port()
    p = _start(["rpc", "tracker", "--host", "0.0.0.0", "--port", port], tmp_path / "t.log")
    try:
        _wait_for(lambda: "listening" in (tmp_path / "t.log").read_text(), 60, "the tracker", [tmp_path / "t.log"])
        time.sleep(0.5)
        text = (tmp_path / "t.log").read_text()
        assert f"listening on 0.0.0.0:{port}" in text
        assert "WARNING" in text and "anyone who can reach this port" in text and "SSH tunnel" in text
    finally:
        _kill(p)


def test_status_lists_boards(farm):
    out = run_cli("rpc", "status", "--tracker", farm.tracker, check=0).stdout
    assert re.search(r"^rpi4\s+2\s+2\s+0\s+0\s+127\.0\.0\.1:\d+ 127\.0\.0\.1:\d+$", out, re.MULTILINE), out


def test_unreachable_tracker_and_unknown_key(farm, rpi4_package):
    dead = f"127.0.0.1:{free_port()}"
    for proc in (run_cli("run", rpi4_package, "--rpc", dead, "--key", "rpi4"),
                 run_cli("rpc", "status", "--tracker", dead)):
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
        assert f"no RPC tracker reachable at {dead}" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("run", rpi4_package, "--rpc", farm.tracker, "--key", "rpi9")
    assert proc.returncode == 3 and "has no board with key 'rpi9' (boards by key: rpi4 (2))" in proc.stderr
    assert_user_error(run_cli("run", rpi4_package, "--rpc", "nowhere", "--key", "rpi4"), "HOST:PORT")


def test_run_on_board_matches_onnxruntime(farm, rpi4_package, model_dir, tmp_path):
    x = np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = run_cli("run", rpi4_package, "--rpc", farm.tracker, "--key", "rpi4", "--input", f"x={tmp_path / 'x.npy'}",
                   "--repeat", "5", "--warmup", "1", "--save-outputs", tmp_path / "out", "--json", tmp_path / "r.json",
                   check=0)
    assert "EMULATED: qemu-user, CPU model cortex-a72" in proc.stdout
    assert "EMULATED latency (qemu-user, not the board's speed) over 5 runs" in proc.stdout
    sess = ort.InferenceSession(str(model_dir / "conv.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(np.load(tmp_path / "out" / "logits.npy"), sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["board"]["key"] == "rpi4" and doc["board"]["emulated"] is True
    assert doc["board"]["tracker"] == farm.tracker and doc["target"]["preset"] == "rpi4"
    assert all(e["emulated"] for e in doc["engines"])


def test_verify_on_board(farm, model_dir, tmp_path):
    proc = run_cli("compile", model_dir / "conv.onnx", "--target", "rpi4", "-o", tmp_path / "v.ctm", "--verify",
                   "--rpc", farm.tracker, "--key", "rpi4", check=0)
    assert "PASSED: outputs agree with onnxruntime" in proc.stdout


def test_altered_package_is_not_uploaded(farm, rpi4_package, tmp_path):
    bad = tmp_path / "bad.ctm"
    with zipfile.ZipFile(rpi4_package) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item, data + b"\0" if item.filename == "lib.so" else data)
    proc = run_cli("run", bad, "--rpc", farm.tracker, "--key", "rpi4")
    assert_user_error(proc, "lib.so does not match the sha256 in its metadata")
    assert "requesting" not in proc.stdout


def test_package_for_another_cpu_fails_without_taking_the_board_down(farm, model_dir, tmp_path):
    """Graviton3 code (SVE) on an emulated Cortex-A72 board dies of an illegal instruction, as on a
    real Pi 4: one line, exit 3, and the board stays in the farm for the next client."""
    pkg = tmp_path / "conv.graviton3.ctm"
    run_cli("compile", model_dir / "conv.onnx", "--target", "graviton3", "-o", pkg, check=0)
    proc = run_cli("run", pkg, "--rpc", farm.tracker, "--key", "rpi4", "--repeat", "2")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "the session on the board ended abruptly" in proc.stderr
    _wait_for(lambda: _status(farm.tracker).get("rpi4") == 2, 30, "the board to re-register", farm.logs)


def test_board_with_another_tvm_is_refused(farm, conv_package, tmp_path):
    """A real second board: an x86 RPC server running apache-tvm 0.26.0 (installed into a folder for
    this test). crosstune asks the board for its TVM version and refuses it with one line."""
    site = tmp_path / "tvm026"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                          "--target", str(site), "apache-tvm==0.26.0"], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    src = Path(__file__).resolve().parents[1]
    log = tmp_path / "old.log"
    f = open(log, "w")  # noqa: SIM115
    board = subprocess.Popen(_cli("rpc", "server", "--tracker", farm.tracker, "--key", "x86-tvm026"), stdout=f,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             env=dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{src}", PYTHONUNBUFFERED="1"))
    try:
        _wait_for(lambda: _status(farm.tracker).get("x86-tvm026") == 1, 120, "the TVM 0.26 board", [log])
        assert "TVM 0.26.0" in log.read_text()
        proc = run_cli("run", conv_package, "--rpc", farm.tracker, "--key", "x86-tvm026")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert proc.stderr.strip() == (
            f"crosstune: error: the 'x86-tvm026' board at {farm.tracker} runs TVM 0.26.0, this machine TVM "
            "0.27.0.post1: install the same apache-tvm version on both"
        )
    finally:
        _kill(board)


def test_board_that_disappears_mid_run(farm, conv_package, tmp_path):
    """A native x86 board (this machine's CPU behind the same tracker) is killed while `run` is timing
    on it: one line naming the board, exit 3."""
    log = tmp_path / "x86.log"
    board = _start(["rpc", "server", "--tracker", farm.tracker, "--key", "x86-box"], log)
    try:
        _wait_for(lambda: _status(farm.tracker).get("x86-box") == 1, 120, "the x86 board", [log])
        out = tmp_path / "run.log"
        f = open(out, "w")  # noqa: SIM115
        run = subprocess.Popen(_cli("run", conv_package, "--rpc", farm.tracker, "--key", "x86-box", "--repeat",
                                    "1000000", "--max-seconds", "120"), stdout=f, stderr=subprocess.PIPE, text=True)
        _wait_for(lambda: "running on board 'x86-box'" in out.read_text(), 120, "the run to start", [out, log])
        time.sleep(2)
        _kill(board)
        _, err = run.communicate(timeout=120)
        assert run.returncode == 3, out.read_text() + err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("crosstune: error: board 'x86-box' via "), err
        assert "failed or disconnected during the run" in lines[0]
    finally:
        _kill(board)


# ------------------------------------------------------------------------------------ farm: tuning
def _records(store: Path) -> int:
    n = 0
    for shard in shard_files(store):
        n += sum(1 for line in shard_text(shard).splitlines() if '"record"' in line)
    return n


def _tune(farm, model, logs: Path, trials: int, out: Path) -> subprocess.Popen:
    f = open(out, "w")  # noqa: SIM115
    return subprocess.Popen(
        _cli("tune", model, "--target", "rpi4", "--rpc", farm.tracker, "--key", "rpi4", "--trials", trials,
             "--trials-per-round", "4", "--population", "64", "--no-baseline"),
        stdout=f, stderr=subprocess.STDOUT, env=dict(os.environ, CROSSTUNE_LOGS=str(logs), PYTHONUNBUFFERED="1"),
        preexec_fn=default_sigint,
    )


def test_tune_on_two_boards_survives_losing_one(farm, model_dir, tmp_path):
    """Tuning through the tracker measures on both boards; one board is killed after the first round
    and the run finishes on the other. Records go to the emulated store, and compile applies them."""
    logs = tmp_path / "logs"
    out = tmp_path / "tune.log"
    proc = _tune(farm, model_dir / "conv.onnx", logs, 12, out)
    _wait_for(lambda: "trials 4/12" in out.read_text() or proc.poll() is not None, 300, "the first round", [out])
    farm.kill_board(1)
    assert proc.wait(timeout=600) == 0, out.read_text()
    text = out.read_text()
    assert "measuring on 2 'rpi4' board(s)" in text and "EMULATED" in text
    store = logs / "rpi4-emulated"
    assert f"records go to {store}" in text
    assert _records(store) == 12 and "12 records written" in text
    lines = [json.loads(l) for shard in shard_files(store) for l in shard_text(shard).splitlines()]
    boards = [l["board"] for l in lines if l.get("kind") == "record"]
    assert len(boards) == 12 and all(b["key"] == "rpi4" and b["emulated"] is True for b in boards)
    assert _status(farm.tracker).get("rpi4") == 1
    shown = run_cli("logs", "show", "rpi4-emulated", env={"CROSSTUNE_LOGS": str(logs)}, check=0).stdout
    assert shown.startswith(f"{store}: 1 shards") and "12 records" in shown.splitlines()[0]
    proc = run_cli("compile", model_dir / "conv.onnx", "--target", "rpi4", "--db", store, "-o", tmp_path / "t.ctm", check=0)
    m = re.search(r"tuning logs: \S+ \(12 records\): (\d+) of (\d+) kernels tuned", proc.stdout)
    assert m and int(m[1]) >= 1, proc.stdout


def test_tune_stops_when_no_board_is_left(farm, model_dir, tmp_path):
    """The last board dies mid-run: the tuner stops with one line, keeps every measured record, and
    the same command resumes from the store."""
    logs = tmp_path / "logs"
    out = tmp_path / "tune.log"
    proc = _tune(farm, model_dir / "conv.onnx", logs, 200, out)
    _wait_for(lambda: "trials 4/" in out.read_text() or proc.poll() is not None, 300, "the first round", [out])
    farm.kill_board(0)
    assert proc.wait(timeout=300) == 3, out.read_text()
    text = out.read_text()
    errors = [line for line in text.splitlines() if line.startswith("crosstune: error:")]
    assert len(errors) == 1 and "has no board with key 'rpi4'" in errors[0], text
    assert "every measured record is saved" in errors[0] and "Traceback" not in text
    written = int(re.search(r"(\d+) records written", text)[1])
    assert written >= 4 and _records(logs / "rpi4-emulated") == written
