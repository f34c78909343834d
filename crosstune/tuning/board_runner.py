"""Measuring tuning candidates on boards behind an RPC tracker, several boards at once.

Built on MetaSchedule's RPC runner: its worker function (`rpc_runner._worker_func`: request a board
from the tracker, upload the host-linked `.so`, allocate arguments, `time_evaluator`, clean up) runs
in a persistent `PopenPoolExecutor` with one worker per board, so N boards measure N candidates at a
time. What crosstune adds around it:
- results come back as each candidate finishes, so every measured record is written at once;
- a board that dies or disconnects fails only the candidates it held (recorded as errors), and the
  tracker hands the rest to the boards that are left; when no board of the key is left the round
  stops and `BoardsGone` says so, instead of every request waiting on the tracker forever;
- integer arguments are zeros, not random: they are often indices (`take`), and random ones read out
  of bounds and crash the board's server (the stock `default_alloc_argument` fills them randomly).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import CrosstuneError
from ..rpc import Address, boards_for
from .pools import MeasureConfig

CHECK_EVERY_S = 2.0  # how often a waiting round asks the tracker whether boards are left


class BoardsGone(CrosstuneError):
    """No board of the key is registered with the tracker any more."""


def alloc_argument(session, device, args_info, alloc_repeat):
    """MetaSchedule's `f_alloc_argument`, with zeros for integer tensors (runs in the pool worker)."""
    import numpy as np
    import tvm
    from tvm.s_tir.meta_schedule.utils import get_global_func_on_rpc_session

    fill = get_global_func_on_rpc_session(
        session, "tvm.contrib.random.random_fill_for_measure",
        "the board's TVM lacks it: a runtime-only board must load libtvm_runtime_extra.so (--load-library)",
    )
    out = []
    for _ in range(alloc_repeat):
        args = []
        for info in args_info:
            kind, dtype, shape = info[0], str(info[1]), [int(s) for s in info[2]]
            if kind != "TENSOR":
                raise NotImplementedError(f"argument kind {kind}")
            t = tvm.runtime.empty(shape, dtype=dtype, device=device)
            if dtype.startswith(("int", "uint", "bool")):
                t.copyfrom(np.zeros(shape, dtype="bool" if dtype == "bool" else dtype))
            else:
                fill(t)
            args.append(t)
        out.append(args)
    return out


def _init_worker() -> None:
    """Pool-worker initializer: keep Ctrl-C for the tuner (it stops the pool itself)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class _Pending:
    index: int
    future: object
    started: float


class BoardRunner:
    """`measure_all` as the local runner has it, on the boards of `key`."""

    def __init__(self, addr: Address, key: str, boards: int, config: MeasureConfig | None = None,
                 timeout_s: float = 120.0, device: str = "cpu"):
        from tvm.s_tir.meta_schedule.runner import EvaluatorConfig, RPCConfig
        from tvm.support.popen_pool import PopenPoolExecutor

        c = config or MeasureConfig()
        self.addr, self.key, self.boards = addr, key, boards
        self.device = device  # "cuda" for boards with a GPU (Jetson): candidates run on the board's GPU
        self.timeout_s = timeout_s
        self.rpc_config = RPCConfig(addr.host, addr.port, key, session_priority=1, session_timeout_sec=int(timeout_s))
        self.evaluator = EvaluatorConfig(number=c.number, repeat=c.repeat, min_repeat_ms=c.min_repeat_ms,
                                         enable_cpu_cache_flush=False)
        self.pool = PopenPoolExecutor(max_workers=boards, timeout=timeout_s, initializer=_init_worker)
        self.restarts = 0

    def start(self) -> None:
        """Nothing to warm: workers start on first use (each imports TVM once)."""

    def restart_count(self) -> int:
        return self.restarts

    def measure_all(self, runner_inputs, on_result, stop) -> bool:
        """Measure every input; `on_result(i, RunnerResult)` as each finishes (any order). Returns
        False when `stop()` turned true first. Raises BoardsGone when no board of the key is left."""
        from tvm.s_tir.meta_schedule.runner import RunnerResult
        from tvm.s_tir.meta_schedule.runner.rpc_runner import _worker_func

        pending = []
        for i, ri in enumerate(runner_inputs):
            fut = self.pool.submit(
                _worker_func, None, None, alloc_argument, None, None, self.rpc_config, self.evaluator, 1,
                str(ri.artifact_path), str(ri.device_type), tuple(a.as_json() for a in ri.args_info),
            )
            pending.append(_Pending(i, fut, time.perf_counter()))
        last_check = time.perf_counter()
        while pending:
            if stop():
                self._cancel(pending)
                return False
            still = []
            for p in pending:
                if not p.future.done():
                    still.append(p)
                    continue
                err = p.future.exception()
                if err is None:
                    on_result(p.index, RunnerResult([float(s) for s in p.future.result()], None))
                else:
                    on_result(p.index, RunnerResult(None, f"board: {type(err).__name__}: {_last_line(err)}"))
            pending = still
            if pending and time.perf_counter() - last_check >= CHECK_EVERY_S:
                last_check = time.perf_counter()
                try:
                    boards_for(self.addr, self.key)
                except CrosstuneError as err:
                    self._cancel(pending)
                    raise BoardsGone(str(err)) from None
            time.sleep(0.02)
        return True

    def _cancel(self, pending) -> None:
        """Drop the round's unfinished candidates: kill the workers (one waiting on the tracker for a
        board would wait forever) and start a fresh pool for the next round."""
        from tvm.support.popen_pool import PopenPoolExecutor

        for p in pending:
            p.future.cancel()
        _kill_pool(self.pool)
        self.pool = PopenPoolExecutor(max_workers=self.boards, timeout=self.timeout_s, initializer=_init_worker)
        self.restarts += 1

    def close(self) -> None:
        _kill_pool(self.pool)


def _kill_pool(pool) -> None:
    """Kill a PopenPoolExecutor's worker processes and let its threads end.

    `PopenPoolExecutor.shutdown` cannot do this while a worker is busy: it closes the pipe that the
    pool's thread is blocked reading, and closing a buffered reader waits for that read, forever when
    the worker waits on the tracker for a board that will never come. Killing the processes first
    ends the read (EOF), so the threads finish on their own. (Uses the pool's internals, as pinned
    in apache-tvm 0.27.)"""
    from tvm.support.popen_pool import kill_child_processes

    for worker in list(getattr(pool, "_worker_map", {}).values()):
        proc = getattr(worker, "_proc", None)
        if proc is None:
            continue
        try:
            kill_child_processes(proc.pid)
            proc.kill()
        except (OSError, TypeError):
            pass
    pool._threadpool.shutdown(wait=True, cancel_futures=True)
    pool.shutdown(wait=True)


def _last_line(err: BaseException) -> str:
    lines = [l for l in str(err).strip().splitlines() if l.strip()]
    return lines[-1] if lines else ""
