"""The board farm's client and server on this machine's CPU: a real TVM RPC tracker and
`crosstune rpc server` boards on 127.0.0.1 (no emulation, so these run in seconds).

A hung board cannot be made on demand, so one test stands one in: a peer that registers with the real
tracker through TVM's tracker protocol, as a board does, and then never answers the session it is
handed (what a board whose session process deadlocked looks like from outside).
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import kill_group, start_cli, wait_for

from crosstune.rpc import Address, BoardError, board_info, request, status
from crosstune.rpc.serve import free_port

_start, _kill = start_cli, kill_group


def _wait_for(cond, timeout: float, what: str, logs=()) -> None:
    wait_for(cond, timeout, what, logs, every=0.3)


def _free(addr: Address, key: str) -> int:
    ks = status(addr).get(key)
    return ks.free if ks else 0


def _registered(addr: Address, key: str) -> int:
    ks = status(addr).get(key)
    return len(ks.boards) if ks else 0


class HungBoard:
    """Registers `key` with the tracker like TVM's server does (UPDATE_INFO, then PUT of its port and
    a match key) and listens, but never accepts: a client handed this board connects and then waits."""

    def __init__(self, addr: Address, key: str):
        from tvm.rpc import base

        self.listen = socket.socket()
        self.listen.bind(("127.0.0.1", 0))
        self.listen.listen(4)
        self.port = self.listen.getsockname()[1]
        self.conn = socket.create_connection((addr.host, addr.port))
        self.conn.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
        assert struct.unpack("<i", base.recvall(self.conn, 4))[0] == base.RPC_TRACKER_MAGIC
        base.sendjson(self.conn, [base.TrackerCode.UPDATE_INFO, {"key": "server:" + key, "addr": [None, self.port]}])
        assert base.recvjson(self.conn) == base.TrackerCode.SUCCESS
        base.sendjson(self.conn, [base.TrackerCode.PUT, key, [self.port, base.random_key(key)], None])
        assert base.recvjson(self.conn) == base.TrackerCode.SUCCESS

    def close(self) -> None:
        self.conn.close()
        self.listen.close()


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    d = tmp_path_factory.mktemp("rpc")
    port = free_port()
    log = d / "tracker.log"
    proc = _start(["rpc", "tracker", "--port", port], log)
    _wait_for(lambda: "listening" in log.read_text(), 60, "the tracker", [log])
    yield Address("127.0.0.1", port), d
    _kill(proc)


@pytest.fixture()
def server(tracker):
    """A `crosstune rpc server` board for key x86-<n>, started after whatever a test registered first."""
    procs = []

    def start(key: str) -> tuple[subprocess.Popen, Path]:
        addr, d = tracker
        log = d / f"{key}-{len(procs)}.log"
        proc = _start(["rpc", "server", "--tracker", addr, "--key", key], log)
        procs.append(proc)
        _wait_for(lambda: "listening" in log.read_text() or proc.poll() is not None, 60, "the board", [log])
        assert proc.poll() is None, log.read_text()
        return proc, log

    yield start
    for p in procs:
        _kill(p)


def test_a_hung_board_is_left_out_and_another_one_used(tracker, server):
    addr, _ = tracker
    hung = HungBoard(addr, "x86-a")
    try:
        _wait_for(lambda: _free(addr, "x86-a") == 1, 10, "the hung board at the tracker")
        _, log = server("x86-a")
        _wait_for(lambda: _free(addr, "x86-a") == 2, 30, "the real board at the tracker", [log])
        started = time.monotonic()
        session = request(addr, "x86-a", wait_s=60, open_timeout_s=3)
        took = time.monotonic() - started
        info = board_info(session, addr, "x86-a")
        assert info.machine == "x86_64" and info.emulated is False
        assert 3 <= took < 30, took  # the hung board was asked first (the tracker hands boards out in order)
        dev = session.cpu(0)
        import tvm

        assert tvm.runtime.tensor(np.arange(4, dtype="float32"), dev).numpy().tolist() == [0, 1, 2, 3]
        del dev, session  # a device of a session keeps the session open
        _wait_for(lambda: "ended after" in log.read_text(), 30, "the session's end in the board's log", [log])
        assert "session from 127.0.0.1:" in log.read_text()
    finally:
        hung.close()


def test_only_hung_boards_is_one_line_naming_them(tracker):
    addr, _ = tracker
    hung = HungBoard(addr, "x86-hung")
    try:
        _wait_for(lambda: _free(addr, "x86-hung") == 1, 10, "the hung board at the tracker")
        started = time.monotonic()
        with pytest.raises(BoardError) as err:
            request(addr, "x86-hung", wait_s=8, open_timeout_s=3)
        assert 8 <= time.monotonic() - started < 20
        text = str(err.value)
        assert "\n" not in text
        assert text == (f"no board with key 'x86-hung' on {addr} became free within 8 s "
                        f"(127.0.0.1:{hung.port} did not open a session within 3 s)")
    finally:
        hung.close()


def test_session_timeout_frees_the_board(tracker, server):
    """TVM's server ends a session past its timeout by SIGTERM to the session's process, which is
    forked from the board's: it dies of the signal, not of the board's own SIGTERM handling (which
    would print a traceback into the board's log)."""
    addr, _ = tracker
    _, log = server("x86-b")
    _wait_for(lambda: _free(addr, "x86-b") == 1, 30, "the board at the tracker", [log])
    session = request(addr, "x86-b", wait_s=30, session_timeout_s=2)
    assert board_info(session, addr, "x86-b").machine == "x86_64"
    _wait_for(lambda: _free(addr, "x86-b") == 0, 10, "the board to be busy", [log])
    _wait_for(lambda: _free(addr, "x86-b") == 1, 30, "the board to be free after the session's timeout", [log])
    assert _registered(addr, "x86-b") == 1
    assert "Traceback" not in log.read_text(), log.read_text()  # it died of the signal, quietly
    del session


def test_server_stops_on_sigterm_with_its_session(tracker, server):
    addr, _ = tracker
    proc, log = server("x86-c")
    _wait_for(lambda: _free(addr, "x86-c") == 1, 30, "the board at the tracker", [log])
    session = request(addr, "x86-c", wait_s=30)
    board_info(session, addr, "x86-c")
    _wait_for(lambda: "session from" in log.read_text(), 10, "the session in the log", [log])
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()
    assert log.read_text().rstrip().endswith("stopped")
    # the session's process went with it: nothing is left in the board's process group
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
    _wait_for(lambda: _registered(addr, "x86-c") == 0, 30, "the board to leave the tracker", [log])
    del session
