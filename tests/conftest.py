"""Shared fixtures: models written to a session folder, packages compiled once, and a CLI runner
that drives `python -m crosstune` in a subprocess, as a user would."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import models

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, timeout=900, env=None, check=None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONUNBUFFERED="1")
    full_env.pop("CROSSTUNE_DEBUG", None)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "crosstune", *map(str, args)],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def start_cli(args, log: Path) -> subprocess.Popen:
    """A long-running CLI process (a tracker, a board) writing to `log`, in its own process group so
    a test can kill it whole."""
    f = open(log, "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "crosstune", *map(str, args)], stdout=f,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def wait_for(cond, timeout: float, what: str, logs=(), every: float = 1.0) -> None:
    """Poll `cond` until true; on timeout fail with `what` and the given logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    text = "\n".join(f"--- {p}\n{Path(p).read_text()}" for p in logs)
    raise AssertionError(f"timed out waiting for {what}\n{text}")


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2, no traceback, exactly one error line on stderr containing every fragment."""
    err_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(err_lines) == 1, proc.stderr
    line = err_lines[0]
    assert line.startswith("crosstune: error: "), line
    for f in fragments:
        assert f in line, f"{f!r} not in {line!r}"
    return line


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models")
    onnx.save(models.conv_net(), d / "conv.onnx")
    onnx.save(models.conv_net(batch="N"), d / "conv_dyn.onnx")
    onnx.save(models.matmul_net(), d / "matmul.onnx")
    onnx.save(models.embedding_net(), d / "embedding.onnx")
    onnx.save(models.unsupported_net(), d / "unsupported.onnx")
    onnx.save(models.winograd_net(), d / "winograd.onnx")
    return d


@pytest.fixture(scope="session")
def conv_package(model_dir, tmp_path_factory) -> Path:
    """conv.onnx compiled for host, through the CLI."""
    out = tmp_path_factory.mktemp("pkg") / "conv.ctm"
    run_cli("compile", model_dir / "conv.onnx", "--target", "host", "-o", out, check=0)
    return out


def default_sigint() -> None:
    """`preexec_fn` for children that a test interrupts: a shell starts background jobs with SIGINT
    ignored, Python then keeps it ignored, and Ctrl-C tests would pass or fail with how pytest was
    launched. Restoring the default makes the child install its KeyboardInterrupt handler."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # A blocked SIGINT is inherited too (and would stay pending): unblock it.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report carries the diagnostics of every fixture value that has them (the
    board farm's logs and the tracker's view), so a failure in CI explains itself."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when == "call":
        for name, value in getattr(item, "funcargs", {}).items():
            diagnostics = getattr(value, "diagnostics", None)
            if callable(diagnostics):
                try:
                    rep.sections.append((f"diagnostics of {name}", diagnostics()))
                except Exception as err:  # noqa: BLE001 - diagnostics must not hide the failure
                    rep.sections.append((f"diagnostics of {name}", f"unavailable: {err}"))


def shard_files(store: Path) -> list[Path]:
    """A store's shards: the tuners' plain `*.jsonl` and the compacted `*.jsonl.gz`, sorted."""
    return sorted([*Path(store).glob("*.jsonl"), *Path(store).glob("*.jsonl.gz")])


def shard_text(shard: Path) -> str:
    return gzip.decompress(shard.read_bytes()).decode() if shard.name.endswith(".gz") else shard.read_text()
