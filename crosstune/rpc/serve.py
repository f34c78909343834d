"""`crosstune rpc tracker` and `crosstune rpc server`: TVM's tracker and server, run in the foreground.

Thin over `tvm.rpc.Tracker` / `tvm.rpc.Server` (what `python -m tvm.exec.rpc_tracker|rpc_server` run),
with three differences:
- they bind 127.0.0.1 unless given `--host`, and say at start, when bound elsewhere, that anyone who
  can reach the port can run code (a TVM RPC server executes whatever library it is sent; neither it
  nor the tracker authenticates anyone);
- the server registers `crosstune.board.info` (TVM version, machine, emulated or not), which clients
  use to refuse a board with another TVM and to label emulated timings;
- a session whose process crashes (illegal instruction, segfault) does not take the board down;
- they print the port they bound, so scripts can start them on a free port.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import time

from ..errors import UserError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
EXPOSED = (
    "WARNING: listening on {host}:{port}: anyone who can reach this port can {what}. Keep the farm on a "
    "private network or reach it through an SSH tunnel (see the README's board-farm section)."
)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _warn_if_exposed(host: str, port: int, what: str, say) -> None:
    if host not in LOOPBACK:
        say(EXPOSED.format(host=host, port=port, what=what))


def _wait_forever(proc_owner, say) -> int:
    """Block until Ctrl-C or SIGTERM, then stop the TVM process."""
    stop = {"sig": None}

    def handler(signum, _frame):
        stop["sig"] = signum

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    try:
        while stop["sig"] is None:
            proc = getattr(proc_owner, "proc", None)
            alive = proc is not None and getattr(proc, "_proc", None) is not None and proc._proc.poll() is None
            if not alive:
                say("the TVM process stopped")
                return 3
            time.sleep(0.5)
    finally:
        proc_owner.terminate()
    say("stopped")
    return 0


def run_tracker(host: str, port: int, say=print) -> int:
    from tvm.rpc.tracker import Tracker

    port = port or free_port(host)
    try:
        tracker = Tracker(host, port=port, port_end=port + 1, silent=True)
    except (ValueError, OSError) as err:
        raise UserError(f"cannot listen on {host}:{port} ({err})") from None
    say(f"RPC tracker listening on {host}:{tracker.port}")
    _warn_if_exposed(host, tracker.port, "register boards and use every board of this farm", say)
    return _wait_forever(tracker, say)


def board_identity() -> dict:
    """What `crosstune.board.info` answers (runs on the board)."""
    import tvm
    import tvm_ffi

    emulated = os.environ.get("CROSSTUNE_BOARD_EMULATED")
    d = {
        "tvm_version": tvm.__version__,
        "ffi_version": tvm_ffi.__version__,
        "machine": platform.machine(),
        "emulated": bool(emulated),
    }
    if emulated:
        d.update(json.loads(emulated))
    return d


def _register_info() -> None:
    """server_init_callback: runs in the server process before it listens; sessions fork from it."""
    import tvm_ffi

    ident = json.dumps(board_identity())
    tvm_ffi.register_global_func("crosstune.board.info", lambda: ident, override=True)
    _survive_crashed_sessions()


def _survive_crashed_sessions() -> None:
    """Keep serving after a session's process dies (a module with an illegal instruction, a tuning
    candidate that segfaults). TVM's server raises when a session's process exits abnormally, which
    ends its listening thread: the board drops off the tracker for good. Here the session's client
    gets its error, and the board goes back to the tracker for the next one."""
    import tvm.rpc.server as srv

    original = srv._serving

    def serving(sock, addr, opts, load_library):
        cwd = os.getcwd()
        try:
            original(sock, addr, opts, load_library)
        except RuntimeError as err:
            srv.logger.warning("session from %s ended abnormally (%s); serving the next one", addr, err)
            os.chdir(cwd)
            sock.close()

    srv._serving = serving


def run_server(tracker: str, key: str, host: str, port: int, load_library: str | None, say=print) -> int:
    from tvm import rpc

    from . import connect_tracker, parse_address

    addr = parse_address(tracker, "--tracker")
    connect_tracker(addr).close()  # one clear line now rather than retries for a minute
    port = port or free_port(host)
    try:
        server = rpc.Server(
            host, port=port, port_end=port + 1, key=key, tracker_addr=(addr.host, addr.port),
            load_library=load_library, silent=True, server_init_callback=_register_info,
        )
    except (ValueError, OSError, RuntimeError) as err:
        raise UserError(f"cannot start an RPC server on {host}:{port} ({err})") from None
    ident = board_identity()
    kind = f"emulated {ident.get('preset')} (qemu {ident.get('qemu_cpu')})" if ident["emulated"] else ident["machine"]
    say(f"RPC server for key '{key}' listening on {host}:{server.port}, registered with {addr} "
        f"[{kind}, TVM {ident['tvm_version']}]")
    _warn_if_exposed(host, server.port, "run arbitrary code on this machine", say)
    return _wait_forever(server, say)
