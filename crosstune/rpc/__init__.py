"""The board farm: TVM's RPC tracker and servers, with crosstune's checks around them.

A farm is one tracker (`crosstune rpc tracker`) and any number of boards, each running an RPC server
registered under a key (`crosstune rpc server --key rpi4`). Clients ask the tracker for a free board of
a key and get a session on it: `run --rpc` uploads and times a package there, `tune --rpc` measures
candidates on every free board in parallel.

This module is the client side. It turns the ways a farm fails (no tracker at the address, no board
with the key, a board with another TVM, a board that vanishes) into one-line errors, because TVM's
own client retries for a minute and then raises a generic RuntimeError, or waits forever for a key
that no board serves.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field

from ..errors import CrosstuneError, UserError

INFO_FUNC = "crosstune.board.info"  # registered by `crosstune rpc server` (see serve.py)


class BoardError(CrosstuneError):
    """A tracker, board or RPC connection failed (exit code 3, one line)."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_address(text: str, what: str = "--rpc") -> Address:
    host, sep, port = (text or "").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{what} expects HOST:PORT (for example 127.0.0.1:9190), got {text!r}")
    return Address(host, int(port))


@dataclass
class KeyStatus:
    key: str
    boards: list[str] = field(default_factory=list)  # addresses of the servers registered with the key
    free: int = 0
    queued: int = 0  # clients waiting for a board

    @property
    def busy(self) -> int:
        return max(0, len(self.boards) - self.free)


def _reachable(addr: Address, timeout: float = 3.0) -> None:
    try:
        with socket.create_connection((addr.host, addr.port), timeout=timeout):
            pass
    except OSError as err:
        raise BoardError(f"no RPC tracker reachable at {addr} ({err.strerror or err}); start one with "
                         "`crosstune rpc tracker`") from None


def connect_tracker(addr: Address):
    """A TVM TrackerSession, or one line saying why there is none."""
    from tvm import rpc

    _reachable(addr)
    try:
        return rpc.connect_tracker(addr.host, addr.port)
    except (RuntimeError, OSError) as err:
        raise BoardError(f"{addr} does not answer as a TVM RPC tracker ({err})") from None


def status(addr: Address) -> dict[str, KeyStatus]:
    """What the tracker has, per key: registered boards, free ones, queued requests."""
    tracker = connect_tracker(addr)
    try:
        summary = tracker.summary()
    finally:
        tracker.close()
    keys: dict[str, KeyStatus] = {}
    for item in summary.get("server_info", []):
        key = str(item.get("key", "")).split(":", 1)[-1]
        host, port = (list(item.get("addr") or ["?", "?"]) + ["?", "?"])[:2]
        keys.setdefault(key, KeyStatus(key)).boards.append(f"{host}:{port}")
    for key, q in summary.get("queue_info", {}).items():
        ks = keys.setdefault(key, KeyStatus(key))
        ks.free, ks.queued = int(q.get("free", 0)), int(q.get("pending", 0))
    return keys


def boards_for(addr: Address, key: str) -> KeyStatus:
    """The key's status; a one-line error when the tracker has no board registered with it."""
    keys = status(addr)
    ks = keys.get(key)
    if ks is None or not ks.boards:
        known = ", ".join(f"{k} ({len(s.boards)})" for k, s in sorted(keys.items()) if s.boards) or "none"
        raise BoardError(f"the tracker at {addr} has no board with key '{key}' (boards by key: {known})")
    return ks


OPEN_TIMEOUT_S = 60.0  # a board the tracker handed out must open its session within this


def _in_thread(fn, timeout: float, check=None, every: float = 2.0):
    """fn() in a daemon thread: ("ok", value), ("error", exception) or ("timeout", None). TVM's
    client calls block in C++ with no timeout of their own. `check()`, if given, is called every
    `every` seconds while fn runs; an exception it raises ends the wait (fn's thread is left)."""
    import time

    got: dict = {}

    def call():
        try:
            got["ok"] = fn()
        except Exception as err:  # noqa: BLE001 - handed to the caller
            got["error"] = err

    t = threading.Thread(target=call, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while t.is_alive():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        t.join(min(left, every) if check else left)
        if t.is_alive() and check is not None:
            check()
    if t.is_alive():
        return "timeout", None
    return ("ok", got["ok"]) if "ok" in got else ("error", got["error"])


def request(addr: Address, key: str, wait_s: float = 300.0, session_timeout_s: float = 0,
            open_timeout_s: float = OPEN_TIMEOUT_S):
    """A session on a free board of `key`. Waits up to `wait_s` in all for one.

    Two steps, each bounded: the tracker hands out a free board, then the board opens a session. TVM's
    `TrackerSession.request` does both with no bound on the second, so one board that hangs would
    hang the client. Here a board that does not open its session in `open_timeout_s` is left out and
    another one is asked for; the error names the boards that did not answer."""
    import time

    from tvm import rpc
    from tvm.rpc import base

    boards_for(addr, key)
    deadline = time.monotonic() + wait_s
    hung: list[str] = []
    while True:
        tracker = connect_tracker(addr)

        def ask():
            base.sendjson(tracker._sock, [base.TrackerCode.REQUEST, key, "", 1])
            value = base.recvjson(tracker._sock)
            if value[0] != base.TrackerCode.SUCCESS:
                raise RuntimeError(f"the tracker answered {value!r}")
            return value[1]

        # While the request waits in the tracker's queue, the key's last board may go away: the
        # tracker keeps queueing for a key without boards, so look, and say so rather than wait.
        try:
            state, value = _in_thread(ask, max(0.0, deadline - time.monotonic()), check=lambda: boards_for(addr, key))
        finally:
            tracker.close()
        if state != "ok":
            if state == "error":
                raise BoardError(f"could not get a '{key}' board from the tracker at {addr}: {_one_line(value)}")
            note = f" ({', '.join(hung)} did not open a session within {open_timeout_s:g} s)" if hung else ""
            raise BoardError(f"no board with key '{key}' on {addr} became free within {wait_s:g} s{note}")
        host, port, matchkey = value
        state, session = _in_thread(lambda: rpc.connect(host, port, matchkey, session_timeout_s), open_timeout_s)
        if state == "ok":
            return session
        if state == "error":
            raise BoardError(f"could not open a session on the '{key}' board at {host}:{port} via {addr}: "
                             f"{_one_line(session)}")
        hung.append(f"{host}:{port}")
        if time.monotonic() >= deadline:
            raise BoardError(f"the '{key}' board(s) at {', '.join(hung)} via {addr} did not open a session within "
                             f"{open_timeout_s:g} s: restart them")


@dataclass(frozen=True)
class BoardInfo:
    """What a board says about itself (`crosstune rpc server` boards; plain TVM servers say nothing)."""

    key: str
    tracker: str
    tvm_version: str | None = None
    ffi_version: str | None = None
    machine: str | None = None
    emulated: bool = False
    qemu_cpu: str | None = None
    preset: str | None = None
    cpu_id: str | None = None  # its CPU kind (`targets.host.Machine`): what records tuned on it are tagged with
    cpu: str | None = None

    def to_json(self) -> dict:
        return {
            "key": self.key, "tracker": self.tracker, "emulated": self.emulated, "qemu_cpu": self.qemu_cpu,
            "preset": self.preset, "machine": self.machine, "tvm_version": self.tvm_version,
            "ffi_version": self.ffi_version, "cpu_id": self.cpu_id, "cpu": self.cpu,
        }

    def describe(self) -> str:
        what = f"board '{self.key}' via {self.tracker}"
        if self.emulated:
            return f"{what} (EMULATED: qemu-user, CPU model {self.qemu_cpu}; timings are not a board's)"
        if self.tvm_version is None:
            return f"{what} (plain TVM RPC server: its TVM version is not checked)"
        return f"{what} ({self.machine}, TVM {self.tvm_version})"


def board_info(session, addr: Address, key: str) -> BoardInfo:
    """Ask the board what it is, and refuse one whose TVM differs from this one's: a library built by
    one TVM is not guaranteed to load in another's runtime."""
    import tvm

    try:
        f = session.get_function(INFO_FUNC)
    except Exception:  # noqa: BLE001 - not a crosstune server
        return BoardInfo(key, str(addr))
    d = json.loads(f())
    info = BoardInfo(
        key, str(addr), d.get("tvm_version"), d.get("ffi_version"), d.get("machine"),
        bool(d.get("emulated")), d.get("qemu_cpu"), d.get("preset"), d.get("cpu_id"), d.get("cpu"),
    )
    if info.tvm_version != tvm.__version__:
        raise BoardError(
            f"the '{key}' board at {addr} runs TVM {info.tvm_version}, this machine TVM {tvm.__version__}: "
            "install the same apache-tvm version on both"
        )
    return info


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__
