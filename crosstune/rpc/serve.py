"""`crosstune rpc tracker` and `crosstune rpc server`: TVM's tracker and server, run in the foreground.

Thin over `tvm.rpc.Tracker` and TVM's server loop (what `python -m tvm.exec.rpc_tracker|rpc_server`
run), with these differences:
- they bind 127.0.0.1 unless given `--host`, and say at start, when bound elsewhere, that anyone who
  can reach the port can run code (a TVM RPC server executes whatever library it is sent; neither it
  nor the tracker authenticates anyone);
- the server registers `crosstune.board.info` (TVM version, machine, emulated or not), which clients
  use to refuse a board with another TVM and to label emulated timings;
- a session whose process crashes (illegal instruction, segfault) does not take the board down;
- the server's listening loop runs on the main thread of one process, and logs one line per session;
- they print the port they bound, so scripts can start them on a free port.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import signal
import socket
import time

from ..errors import UserError
from . import INFO_FUNC

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

    from ..targets.host import this_machine

    emulated = os.environ.get("CROSSTUNE_BOARD_EMULATED")
    d = {
        "tvm_version": tvm.__version__,
        "ffi_version": tvm_ffi.__version__,
        "machine": platform.machine(),
        "emulated": bool(emulated),
    }
    cpu = this_machine()  # the kind of CPU: what the records tuned on this board are tagged with
    d["cpu_id"], d["cpu"] = cpu.id, cpu.name
    if emulated:
        d.update(json.loads(emulated))
    return d


class _Stop(BaseException):
    """SIGTERM on a board: leave the listening loop like Ctrl-C does."""


def _on_sigterm(_signum, _frame):
    raise _Stop()


def _default_signals_in_child() -> None:
    """A session's process is forked from the board's: it must die of SIGTERM (TVM's session timeout
    terminates it) and of Ctrl-C, not inherit the board's handler, which only runs between Python
    bytecodes and never while the session sits in TVM's C++ serving loop."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _install_session_hooks(say) -> None:
    """Register `crosstune.board.info` (sessions fork from this process, so they have it), and wrap
    TVM's per-session function so a session whose process dies (illegal instruction, a tuning
    candidate that segfaults) does not take the board down, and so each session leaves a line in the
    board's log. TVM's server raises when a session's process exits abnormally, which ends its
    listening loop: the board would drop off the tracker for good. Here the session's client gets its
    error, and the board goes back to the tracker for the next one."""
    import tvm.rpc.server as srv
    import tvm_ffi

    ident = json.dumps(board_identity())
    tvm_ffi.register_global_func(INFO_FUNC, lambda: ident, override=True)
    original = getattr(srv._serving, "__wrapped__", srv._serving)

    def serving(sock, addr, opts, load_library):
        cwd = os.getcwd()
        who = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else str(addr)
        started = time.perf_counter()
        say(f"{time.strftime('%H:%M:%S')} session from {who}")
        try:
            original(sock, addr, opts, load_library)
        except RuntimeError as err:
            say(f"{time.strftime('%H:%M:%S')} session from {who} ended abnormally after "
                f"{time.perf_counter() - started:.1f} s ({err}); serving the next one")
            os.chdir(cwd)
            sock.close()
            return
        say(f"{time.strftime('%H:%M:%S')} session from {who} ended after {time.perf_counter() - started:.1f} s")

    serving.__wrapped__ = original
    srv._serving = serving


def run_server(tracker: str, key: str, host: str, port: int, load_library: str | None, say=print) -> int:
    """Serve sessions until Ctrl-C or SIGTERM. TVM's listening loop runs on this process's main
    thread, and each session is forked from it. (`tvm.rpc.Server` would run the loop in a thread of a
    second process: a second TVM import, slow under emulation, and sessions forked from a process with
    two threads, which fork does not make safe.)"""
    import multiprocessing

    import tvm.rpc.server as srv
    from tvm.rpc import base

    from . import connect_tracker, parse_address

    addr = parse_address(tracker, "--tracker")
    connect_tracker(addr).close()  # one clear line now rather than retries for a minute
    port = port or free_port(host)
    sock = socket.socket(base.get_addr_family((host, port)), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1)
    except OSError as err:
        sock.close()
        raise UserError(f"cannot start an RPC server on {host}:{port} ({err.strerror or err})") from None
    srv.logger.setLevel(logging.WARNING)  # our line per session instead of TVM's four
    _install_session_hooks(say)
    os.register_at_fork(after_in_child=_default_signals_in_child)
    ident = board_identity()
    kind = f"emulated {ident.get('preset')} (qemu {ident.get('qemu_cpu')})" if ident["emulated"] else ident["machine"]
    say(f"RPC server for key '{key}' listening on {host}:{port}, registered with {addr} "
        f"[{kind}, TVM {ident['tvm_version']}]")
    _warn_if_exposed(host, port, "run arbitrary code on this machine", say)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        srv._listen_loop(sock, port, key, (addr.host, addr.port), load_library, None)
    except (KeyboardInterrupt, _Stop):
        pass
    except RuntimeError as err:  # TVM gave up reconnecting to the tracker, or a session failed oddly
        from . import BoardError

        text = (str(err).strip().splitlines() or [type(err).__name__])[-1]
        raise BoardError(f"the RPC server for key '{key}' stopped: {text}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        for child in multiprocessing.active_children():  # a session in progress
            child.kill()
        sock.close()
    say("stopped")
    return 0
