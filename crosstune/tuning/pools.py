"""crosstune's MetaSchedule builder and runner: worker pools that live for the whole tuning job.

Stock `LocalBuilder` starts a new `PopenPoolExecutor` for every round (a workaround for a memory leak,
apache/tvm#11074), and each new worker imports TVM and all tensor intrinsics: about 25 s per worker
on a 2-core machine, so with its 30 s timeout nearly every build failed. Here:
- workers fork from a forkserver that imported `crosstune.tuning.worker` (TVM, torch kept out, the
  target's tensor intrinsics) once, so a worker starts in milliseconds;
- the pools persist across rounds and tasks; a pool is replaced by a fresh one between two rounds
  once it has run `RECYCLE_AFTER` calls per worker, which bounds the leak the stock builder works
  around, at the cost of a fork per worker. (Not `max_tasks_per_child`: in CPython 3.11 a worker that
  retires is replaced only if the executor's idle-worker semaphore is at zero, and every finished
  call raises it, so a round can be left with fewer workers, or none, for its queued calls. A 2-core
  tuning job stalled after about 480 builds with no build worker alive and the round's calls queued.)
- a wait for a round's calls notices Ctrl-C (`WorkerPool.stop`) within half a second: the pool is
  killed and the calls it held are reported as interrupted, and the tuner records none of them;
- a worker that crashes or hangs costs only the candidates it held: the pool is rebuilt and the
  candidates are reported as failed, as MetaSchedule expects;
- libraries are linked in the build workers (in parallel), so the runner only loads and times them;
- measurement is serial in one worker on CPU targets with `num-cores` threads, since parallel
  measurement on the same cores would corrupt the timings.

Both classes implement MetaSchedule's `PyBuilder` / `PyRunner` interfaces, so they also plug into
`ms.tune_tasks(builder=..., runner=...)`.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import multiprocessing.context
import multiprocessing.spawn
import os
import shutil
import tempfile
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

RECYCLE_AFTER = 256
_PRELOAD = ["crosstune.tuning.worker"]


_WORKER_PREFIX = "crosstune-worker"


class _WorkerProcess(multiprocessing.context.ForkServerProcess):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.name = f"{_WORKER_PREFIX}-{self.name}"


class _WorkerContext(multiprocessing.context.ForkServerContext):
    Process = _WorkerProcess


def _preparation_data(name, _original=multiprocessing.spawn.get_preparation_data):
    """Our workers need nothing from the parent's `__main__` (spawn semantics would re-run the
    parent's script, or fail for `python -` and pytest); other processes keep stdlib behaviour."""
    data = _original(name)
    if str(name).startswith(_WORKER_PREFIX):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (every pool needs it) keeping this thread's signal
    mask. Starting it blocks SIGINT around the spawn and then unblocks it, whatever the mask was
    before; crosstune's CLI keeps SIGINT blocked in every thread (see `cli._Interrupt`), and threads
    started afterwards (TVM's search threads) would inherit the hole."""
    import signal
    from multiprocessing import resource_tracker

    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _context():
    _start_resource_tracker()
    if multiprocessing.spawn.get_preparation_data is not _preparation_data:
        multiprocessing.spawn.get_preparation_data = _preparation_data
    ctx = _WorkerContext()
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


class WorkerPool:
    """A ProcessPoolExecutor over forkserver workers that rebuilds itself after a crash or hang."""

    def __init__(self, workers: int, device: str, name: str, recycle_after: int = RECYCLE_AFTER):
        self.workers = max(1, workers)
        self.device = device
        self.name = name
        self.recycle_after = recycle_after
        self._pool: cf.ProcessPoolExecutor | None = None
        self._calls = 0  # calls the current pool has run
        self.restarts = 0
        self.recycled = 0
        self.stop = lambda: False  # polled while waiting: true -> kill the pool, report "interrupted"
        self.interrupted = False

    def _ensure(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            from . import worker

            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=_context(),
                initializer=worker.warm,
                initargs=(self.device,),
            )
        return self._pool

    def start(self) -> None:
        """Start the workers now (they register tensor intrinsics) rather than on the first round."""
        from . import worker

        pool = self._ensure()
        list(pool.map(worker.warm, [self.device] * self.workers))

    def map(self, fn, arg_lists: list[tuple], timeout_each: float) -> list[tuple[bool, object]]:
        """Run `fn(*args)` for each argument tuple; returns (ok, value-or-error-text) in order.
        Calls still running `timeout_each` seconds per queued wave are killed and reported."""
        if not arg_lists:
            return []
        if self._pool is not None and self._calls >= self.recycle_after * self.workers:
            self.recycled += 1
            self.shutdown()  # between rounds: nothing is running, so a graceful shutdown is quick
        pool = self._ensure()
        self._calls += len(arg_lists)
        futures = [pool.submit(fn, *args) for args in arg_lists]
        waves = -(-len(futures) // self.workers)
        deadline = time.monotonic() + timeout_each * waves
        pending = set(futures)
        self.interrupted = False
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            _, pending = cf.wait(pending, timeout=min(0.5, left))
            if pending and self.stop():
                self.interrupted = True
                break
        results: list[tuple[bool, object]] = []
        broken = bool(pending)
        for fut in futures:
            if fut in pending:
                why = "interrupted" if self.interrupted else f"timeout, killed after {timeout_each:.0f} s"
                results.append((False, f"{self.name}: {why}"))
                continue
            err = fut.exception()
            if err is None:
                results.append((True, fut.result()))
            elif isinstance(err, BrokenProcessPool):
                broken = True
                results.append((False, f"{self.name}: worker process died (crash in TVM or the kernel)"))
            else:
                results.append((False, f"{self.name}: {type(err).__name__}: {err}"))
        if broken:
            self.restart()
        return results

    def restart(self) -> None:
        if not self.interrupted:
            self.restarts += 1
        self.shutdown(kill=True)

    def shutdown(self, kill: bool = False) -> None:
        pool, self._pool = self._pool, None
        self._calls = 0
        if pool is None:
            return
        if kill:
            for proc in list(getattr(pool, "_processes", {}).values()):
                try:
                    proc.kill()
                except Exception:  # noqa: BLE001 - already gone
                    pass
        pool.shutdown(wait=not kill, cancel_futures=True)


@dataclass
class MeasureConfig:
    """MetaSchedule's `EvaluatorConfig` defaults: 3 runs per repeat, repeats of at least 100 ms."""

    number: int = 3
    repeat: int = 1
    min_repeat_ms: int = 100
    # CPU: flush the kernel's weights and outputs from the caches before each timed run, as a
    # model runs them (each kernel's weights come from memory); `repeat` runs of one call each.
    cache_flush: bool = False
    timeout_s: float = 30.0


def _ms_classes():
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.runner import PyRunner, PyRunnerFuture, RunnerResult

    return derived_object, PyBuilder, BuilderResult, PyRunner, PyRunnerFuture, RunnerResult


def make_builder(workers: int, device: str, cc: str | None = None, timeout_s: float = 60.0):
    """A MetaSchedule Builder backed by a persistent pool of `workers` build processes."""
    derived_object, PyBuilder, BuilderResult, _, _, _ = _ms_classes()
    from . import worker

    @derived_object
    class CrosstuneBuilder(PyBuilder):
        def __init__(self):
            super().__init__()
            self.pool = WorkerPool(workers, device, "builder")
            self.out_dir = tempfile.mkdtemp(prefix="crosstune-build-")
            self.cc = cc
            self.timeout_s = timeout_s

        def build(self, build_inputs):
            import tvm

            args = [
                (tvm.ir.save_json(bi.mod), json.dumps(_target_json(bi.target)), self.out_dir, self.cc)
                for bi in build_inputs
            ]
            out = []
            for ok, value in self.pool.map(worker.build, args, self.timeout_s):
                out.append(BuilderResult(value, None) if ok else BuilderResult(None, str(value)))
            return out

        def close(self):
            self.pool.shutdown()
            shutil.rmtree(self.out_dir, ignore_errors=True)

    return CrosstuneBuilder()


def make_runner(device: str, threads: int | None, config: MeasureConfig | None = None):
    """A MetaSchedule Runner that measures serially in one persistent worker process."""
    derived_object, _, _, PyRunner, PyRunnerFuture, RunnerResult = _ms_classes()
    from . import worker

    config = config or MeasureConfig()

    @derived_object
    class DoneFuture(PyRunnerFuture):
        def __init__(self, result):
            super().__init__()
            self._result = result

        def done(self):
            return True

        def result(self):
            return self._result

    @derived_object
    class CrosstuneRunner(PyRunner):
        def __init__(self):
            super().__init__()
            self.pool = WorkerPool(1, device, "runner")
            self.config = config
            self.device = device

        def measure_one(self, runner_input) -> object:
            """Measure one built candidate now; returns a RunnerResult."""
            c = self.config
            info = [a.as_json() for a in runner_input.args_info]
            info = json.loads(json.dumps(info, default=_jsonable))
            ((ok, value),) = self.pool.map(
                worker.measure,
                [(runner_input.artifact_path, info, device, c.number, c.repeat, c.min_repeat_ms, threads,
                  c.cache_flush)],
                c.timeout_s,
            )
            if ok:
                return RunnerResult([float(v) for v in value], None)
            return RunnerResult(None, str(value))

        def run(self, runner_inputs):
            return [DoneFuture(self.measure_one(ri)) for ri in runner_inputs]

        def start(self):
            self.pool.start()

        def restart_count(self) -> int:
            return self.pool.restarts

        def measure_all(self, runner_inputs, on_result, stop) -> bool:
            """Measure in order, `on_result(i, RunnerResult)` after each; False if `stop()` cut it short."""
            for i, ri in enumerate(runner_inputs):
                if stop():
                    return False
                on_result(i, self.measure_one(ri))
            return True

        def close(self):
            self.pool.shutdown()

    return CrosstuneRunner()


def _target_json(target) -> dict:
    return json.loads(json.dumps(dict(target.export()), default=_jsonable))


def _jsonable(obj):
    """TVM containers and scalars in JSON-able form (Array -> list, IntImm -> int, String -> str,
    a nested Target such as a GPU target's host -> its dict)."""
    if hasattr(obj, "export") and hasattr(obj, "kind"):
        obj = obj.export()
    if hasattr(obj, "items") and hasattr(obj, "keys"):  # a Map (the host of a GPU target)
        return {str(k): json.loads(json.dumps(v, default=_jsonable)) for k, v in obj.items()}
    try:
        return [_jsonable(x) if not isinstance(x, (int, float, str)) else x for x in obj]
    except TypeError:
        pass
    if hasattr(obj, "value"):
        return obj.value
    return str(obj)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1
