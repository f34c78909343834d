"""crosstune's command line: a thin adapter over the Python API.

Each command parses its arguments, calls the API, and renders the result. Errors map to exit codes:
  0 success - 1 verification failed - 2 user error (one line) - 3 external tool failed (its
  command, exit code and output) - 4 internal error (traceback) - 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from . import __version__
from .errors import ToolError, UserError, VerificationFailed

# Commands that use PyTorch. For every other command torch is kept out of the process: `import tvm`
# imports torch through tvm_ffi when it is installed, which costs ~2.5 s per command and is unused.
TORCH_COMMANDS = {"zoo", "demo", "bench"}
# Commands that serve until stopped (a tracker, a board) and fork sessions that must die of Ctrl-C:
# SIGINT stays an ordinary signal there (see `_Interrupt`). They run no compiler, so no Z3.
SERVICE_COMMANDS = {"rpc", "board"}

EXIT_OK, EXIT_FAILED, EXIT_USER, EXIT_TOOL, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


def say(msg: str = "") -> None:
    print(msg, flush=True)


class _Interrupt:
    """Ctrl-C, remembered. A KeyboardInterrupt raised inside a Python callback that TVM's C++ calls
    (a legalization function, a pass) comes back out of tvm_ffi as a plain RuntimeError; the record
    lets `main` still report it as an interruption, and `stage` stop at the next stage boundary
    if TVM swallowed it altogether.

    When routed (every command that can run TVM's compiler), SIGINT is never delivered to a signal
    handler in crosstune's process. TVM's arithmetic analyzer calls Z3 (linked into libtvm_compiler),
    and Z3 swaps in its own SIGINT handler around every solver check (`scoped_ctrl_c`, via
    `signal()`): a Ctrl-C that lands inside a check only cancels that check, and Python never hears
    of it. MetaSchedule's search and the compile passes run thousands of checks, so the first Ctrl-C
    was lost now and then (the tune that ran to its end in CI of stops 17 and 27; a loop of
    `Analyzer.can_prove` loses 3 Ctrl-Cs in 5). So `install` blocks SIGINT in the main thread before
    any other thread exists (every thread inherits the block); one thread takes it with `sigwait`,
    whatever handler Z3 has installed at that moment, hands it to the main thread as Python's own
    signal (`_thread.interrupt_main`: the handler below runs there), and wakes a system call blocked
    in the main thread with a no-op signal."""

    seen = False
    # While a tuning loop runs, Ctrl-C only asks it to stop: the loop checks between candidates and
    # returns what it did. Raising inside MetaSchedule's search (C++ calling back into Python)
    # would end in std::terminate. A second Ctrl-C raises as usual.
    soft = False

    handled = 0  # SIGINTs the Python-level handler has run for

    # A signal nothing else uses, sent to the main thread after each Ctrl-C: its no-op handler makes
    # a system call blocked there (a wait on a child, on a board's socket) return EINTR, and Python
    # then runs the SIGINT handler, as a SIGINT delivered there would have.
    WAKE = signal.SIGRTMIN + 3

    @classmethod
    def handler(cls, signum, frame):
        cls.handled += 1
        if cls.soft and cls.handled == 1:
            cls._soft_stop()
            return
        cls.seen = True
        raise KeyboardInterrupt

    @classmethod
    def _soft_stop(cls) -> None:
        cls.seen = True
        print("\ncrosstune: stopping after the current step (Ctrl-C again to quit now) ...",
              file=sys.stderr, flush=True)

    @classmethod
    def install(cls, route: bool = True) -> None:
        """Install the handler; with `route` (every command but the board and tracker services,
        whose forked sessions must die of Ctrl-C, and which run no compiler), also block SIGINT and
        start the watching thread. Call it before any other thread starts: a thread that exists
        already keeps SIGINT unblocked and could take it."""
        signal.signal(signal.SIGINT, cls.handler)
        if not route:
            return
        signal.signal(cls.WAKE, lambda signum, frame: None)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        threading.Thread(target=cls._watch, name=cls.THREAD_NAME, daemon=True).start()

    THREAD_NAME = "crosstune-ctrlc"  # the watching thread's name in /proc (top -H, tests)

    @classmethod
    def _watch(cls) -> None:
        """Takes each SIGINT (sigwait lifts the block for this thread while it waits)."""
        import _thread

        try:
            import ctypes

            ctypes.CDLL(None).prctl(15, cls.THREAD_NAME.encode())  # PR_SET_NAME: this thread only
        except (OSError, AttributeError):
            pass
        main = threading.main_thread().ident
        while True:
            signal.sigwait({signal.SIGINT})
            _thread.interrupt_main(signal.SIGINT)
            try:
                signal.pthread_kill(main, cls.WAKE)
            except (OSError, ValueError):  # the main thread has finished
                return

    @classmethod
    def stop_requested(cls) -> bool:
        """Polled by the tuning loop between candidates and while it waits for workers, in the main
        thread: a Ctrl-C's handler has run there by the time this is called."""
        return cls.seen

    @classmethod
    def check(cls) -> None:
        if cls.seen:
            raise KeyboardInterrupt


def stage(msg: str) -> None:
    """Report a stage as it starts; the place where a swallowed Ctrl-C is noticed."""
    _Interrupt.check()
    say(msg)


# ---------------------------------------------------------------------------------------- targets
def cmd_targets(args) -> int:
    from . import targets
    from .textfmt import table

    from .errors import UserError

    limits = ("mtriple", "max_threads_per_block", "max_shared_memory_per_block", "thread_warp_size",
              "registers_per_block")
    rows = []
    for name in targets.names():
        try:
            t = targets.get(name)
        except UserError as err:  # a detecting preset with nothing to detect here (`cuda` on a CPU box)
            rows.append([name, "?", "", "", "", f"[not here: {err}]"])
            continue
        tvm = ", ".join(f"{k}={v}" for k, v in t.tvm.items() if k not in limits)
        desc = t.description + (f" [now: {t.detected}]" if t.detected else "")
        rows.append([t.name, f"{t.device}/{t.arch}", tvm, t.cc, t.logs, desc])
    say(table(["NAME", "DEVICE", "TVM TARGET", "LINKER", "LOGS", "DESCRIPTION"], rows))
    return EXIT_OK


def cmd_ops(args) -> int:
    """crosstune's converter layer: each operator it converts, the opsets, and what it adds to TVM."""
    from .frontend import registry
    from .textfmt import table

    tvm_has = registry.tvm_ops()
    rows = []
    for e in registry.entries():
        op = e.op if not e.domain else f"{e.domain}.{e.op}"
        what = "fixes TVM's" if not e.domain and e.op in tvm_has else "new"
        rows.append([op, e.versions, e.family, what, e.note])
    say(table(["OPERATOR", "OPSETS", "MODULE", "", "NOTE"], rows))
    say("")
    say(f"{len(rows)} converters in crosstune.frontend.ops ({sum(r[3] == 'new' for r in rows)} new, "
        f"{sum(r[3] != 'new' for r in rows)} replacing TVM's for those opsets); everything else goes to TVM's "
        f"Relax ONNX frontend ({len(tvm_has)} operators). `crosstune inspect MODEL` says who converts each of a model's.")
    return EXIT_OK


# ---------------------------------------------------------------------------------------- inspect
def cmd_inspect(args) -> int:
    if args.model.endswith(".ctm"):
        return _inspect_package(args.model)
    from .compile.inspect import inspect_model
    from .textfmt import size, table

    rep = inspect_model(args.model, _shapes(args.input_shape))
    say(f"model      {rep.path}")
    say(f"sha256     {rep.sha256}")
    say(f"ir         {rep.ir_version}   opsets: " + ", ".join(f"{d} {v}" for d, v in rep.opsets.items()))
    if rep.producer:
        say(f"producer   {rep.producer}")
    say(f"weights    {rep.weight_count} tensors, {size(rep.weight_bytes)}")
    for w in rep.warnings:
        say(f"warning    {w}")
    say("")
    say(table(["INPUT", "SHAPE", "DTYPE"], [[s.name, _shape(s.shape), s.dtype] for s in rep.inputs]))
    say("")
    say(table(["OUTPUT", "SHAPE", "DTYPE"], [[s.name, _shape(s.shape), s.dtype] for s in rep.outputs]))
    say("")
    who = {"tvm": "TVM", "crosstune": "crosstune", "none": "NOTHING"}
    rows = [[o.op, o.opset, o.count, who[o.by]] for o in rep.ops]
    say(table(["OPERATOR", "OPSET", "NODES", "CONVERTED BY"], rows, "lrrl"))
    say("")
    kinds = len(rep.ops)
    if rep.unsupported:
        say(
            f"nothing converts {len(rep.unsupported)} of {kinds} operator types: "
            + ", ".join(f"{o.op} ({o.count})" for o in rep.unsupported)
            + " (neither TVM's Relax ONNX frontend nor crosstune's layer)"
        )
    else:
        n_ours = sum(o.by == "crosstune" for o in rep.ops)
        say(f"all {kinds} operator type{'s' if kinds != 1 else ''} ({rep.node_count} node{'s' if rep.node_count != 1 else ''}) are covered: "
            f"{kinds - n_ours} by TVM's Relax ONNX frontend, {n_ours} by crosstune's layer")
    for name, places in rep.bindable.items():
        more = f" and {len(places) - 1} more" if len(places) > 1 else ""
        say(f"input '{name}' feeds {places[0]}{more}, which TVM needs as a constant: "
            f"if compile says so, give its value with --bind {name}=FILE.npy")
    from .compile.onnx_model import suggested_shape

    for s in rep.dynamic_inputs:
        say(f"input '{s.name}' is dynamic ({_shape(s.shape)}): compile needs a shape, e.g. --input-shape {s.name}={suggested_shape(s)}")
    return EXIT_OK


def _inspect_package(path: str) -> int:
    from .compile import package
    from .textfmt import size

    info = package.read_info(path)
    tgt = info.target
    say(f"package    {path} (format {info.format_version})")
    say(f"model      {info.model.get('name')}  sha256 {info.model.get('sha256')}")
    say(f"target     {tgt.get('preset')} ({tgt.get('device')}): {tgt.get('tvm')}")
    say(f"built      {info.created} with crosstune {info.crosstune_version}, TVM {info.tvm_version}")
    say(f"weights    {info.weights.get('count')} tensors, {size(int(info.weights.get('bytes', 0)))}")
    for s in info.inputs:
        say(f"input      {s.name} {s.describe()}")
    for s in info.outputs:
        say(f"output     {s.name} {s.describe()}")
    return EXIT_OK


def _shape(shape) -> str:
    from .tensors import format_shape

    return format_shape(shape)


def _shapes(items) -> dict:
    from .tensors import parse_assignments, parse_input_shape

    return {k: parse_input_shape(v) for k, v in parse_assignments(items, "--input-shape").items()}


# ---------------------------------------------------------------------------------------- compile
def cmd_compile(args) -> int:
    from . import targets
    from .compile import CompileOptions, compile_model

    from .compare.agreement import TOLERANCES
    from .frontend.constants import parse_bindings

    rtol, atol = TOLERANCES.get(args.precision, TOLERANCES["fp32"])
    opts = CompileOptions(
        target=args.target,
        output=args.output,
        input_shapes=_shapes(args.input_shape),
        verify=args.verify,
        seed=args.seed,
        rtol=rtol if args.rtol is None else args.rtol,
        atol=atol if args.atol is None else args.atol,
        use_logs=not args.no_logs,
        db=args.db,
        tuned_on=args.tuned_on,
        rpc=args.rpc,
        key=args.key,
        precision=args.precision,
        bindings=parse_bindings(args.bind),
        layout=args.layout,
        conv=args.conv,
    )
    target = targets.get(args.target)
    detected = f" (detected {target.detected})" if target.detected else ""
    say(f"compiling {args.model} for {target.name}{detected}")
    started = time.perf_counter()
    stages = {"import": "importing to Relax", "build": "building", "link": f"linking with {target.cc}",
              "verify": "verifying against ONNX Runtime" + (f" (package run on a '{args.key}' board)" if args.rpc else "")}
    result = compile_model(args.model, opts, progress=lambda s: stage(f"  {stages.get(s, s)} ..."))
    secs = result.seconds
    for w in result.warnings:
        say(f"warning: {w}")
    _report_tuning(result.info.build.get("tuning"), args, result.info.build)
    say(
        f"wrote {result.package} ({_size(result.package)}) in {time.perf_counter() - started:.1f} s "
        f"(import {secs['import_s']:.1f} s, build {secs['build_s']:.1f} s, link {secs['link_s']:.1f} s)"
    )
    if result.verification is not None:
        return _report_agreement(result.verification, args)
    return EXIT_OK


def _records_from(tuning: dict) -> str:
    """Which machines measured the applied records: "intel-6-143 (this machine) 25, amd-25-17 2"."""
    counts = tuning.get("records_from") or {}
    mine = tuning.get("preferred_machine")
    if not counts or (len(counts) == 1 and "" in counts and not mine):
        return ""
    parts = []
    for m, n in sorted(counts.items(), key=lambda kv: (kv[0] != mine, -kv[1], kv[0])):
        label = m or "an unrecorded machine"
        if m and m == mine:
            from .targets.host import this_machine

            label += " (this machine)" if m == this_machine().id else " (the machine asked for)"
        parts.append(f"{label}: {n} kernel{'s' if n != 1 else ''}")
    return "; ".join(parts)


def _report_tuning(tuning, args, build: dict | None = None) -> None:
    layout = (build or {}).get("layout")
    if args.no_logs:
        say("  tuning logs: not used (--no-logs); every kernel has TVM's default schedule")
    elif tuning is None:
        say("  tuning logs: none stored for this target; every kernel has TVM's default schedule "
            "(run `crosstune tune` to tune)")
    else:
        say(f"  tuning logs: {tuning['database']} ({tuning['records_in_database']} records): "
            f"{tuning['covered']} of {tuning['tasks']} kernels tuned, "
            f"{tuning['default_schedules']} on default schedules"
            + (f" ({tuning['default_faster']} of them measured faster than their records)"
               if tuning.get("default_faster") else ""))
        origin = _records_from(tuning)
        if origin:
            say(f"  records measured on: {origin}")
        if tuning.get("in_model"):
            n = tuning["in_model"]
            say(f"  {n} kernel{'s' if n != 1 else ''} with the record that ran fastest inside the model "
                "(pinned by `crosstune calibrate`)")
    if layout:
        why = (build or {}).get("layout_reason")
        conv = (build or {}).get("conv")
        from .compile.pipeline import describe_form, form_of

        form = form_of(layout, conv)

        say(f"  convolutions: {describe_form(form)}" + (f" ({why})" if why and why != "given" else ""))



# ------------------------------------------------------------------------------------------- tune
def _duration(text: str | None) -> float | None:
    """'90s', '20m', '1.5h', '3600' -> seconds."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m:
        raise UserError(f"bad --time-budget '{text}': use seconds or a unit, e.g. 90s, 20m, 1.5h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _fmt_s(secs: float | None) -> str:
    if secs is None:
        return "?"
    secs = int(secs)
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m" if secs >= 3600 else f"{secs // 60}m{secs % 60:02d}s"


def _fmt_latency(secs: float | None) -> str:
    if secs is None:
        return "-"
    return f"{secs * 1e6:.1f} us" if secs < 1e-3 else f"{secs * 1e3:.2f} ms"


class _TuneDisplay:
    """Progress of a tuning run: one line per round (rewritten in place on a terminal)."""

    def __init__(self):
        self.tty = sys.stdout.isatty()

    def __call__(self, p) -> None:
        tasks = p.tasks
        finished = sum(1 for t in tasks if t.status in ("done", "covered", "exhausted"))
        est = sum(t.weight * t.best_s for t in tasks if t.best_s is not None)
        untimed = sum(1 for t in tasks if t.best_s is None)
        if p.event == "start":
            covered = [t for t in tasks if t.status == "covered"]
            partial = [t for t in tasks if t.status == "pending" and t.stored]
            say(f"  {len(tasks)} tuning tasks; {len(covered)} already at their budget in the store "
                f"(reused, not re-tuned), {len(partial)} resumed from stored trials, "
                f"{len(tasks) - len(covered) - len(partial)} new")
            for t in covered:
                say(f"    reused  {t.name}: {t.stored} stored trials, best {_fmt_latency(t.stored_best_s)}")
            say(f"  plan: {p.trials_planned} trials")
            return
        last = p.last
        line = (f"  [{_fmt_s(p.elapsed_s)}] tasks {finished}/{len(tasks)}  trials {p.trials}/{p.trials_planned}  "
                f"sum of best kernel times {_fmt_latency(est)}{f' (+{untimed} untimed)' if untimed else ''}  "
                f"ETA {_fmt_s(p.eta_s) if p.event != 'done' else '-'}")
        if last is not None and p.event == "round":
            line += f"  | {last.name[:40]}: {last.trials} trials, best {_fmt_latency(last.best_s)}"
        if self.tty and p.event == "round":
            print("\r\033[K" + line[: os.get_terminal_size().columns - 1], end="", flush=True)
        else:
            if self.tty:
                print()
            say(line)


def cmd_tune(args) -> int:
    from . import targets
    from .tuning import TuneOptions, tune_model
    from .tuning.pools import MeasureConfig
    from .frontend.constants import parse_bindings

    target = targets.get(args.target)
    if args.cache_flush and (target.device != "cpu" or args.rpc or args.key):
        raise UserError("--cache-flush times CPU kernels measured on this machine; "
                        f"target '{target.name}' is {'a board' if args.rpc or args.key else target.device}")
    if args.cache_flush and not args.db:
        raise UserError("--cache-flush needs its own --db: its times are not comparable with the stored records' "
                        "(cold caches against hot), and compile picks each workload's fastest record")
    for name, value in (("--trials", args.trials), ("--trials-per-task", args.trials_per_task),
                        ("--trials-per-round", args.trials_per_round), ("--population", args.population),
                        ("--search-iters", args.search_iters)):
        if value is not None and value < 1:
            raise UserError(f"{name} must be at least 1")
    opts = TuneOptions(
        target=args.target,
        trials=args.trials,
        trials_per_task=args.trials_per_task,
        time_budget_s=_duration(args.time_budget),
        trials_per_round=args.trials_per_round,
        db=args.db,
        input_shapes=_shapes(args.input_shape),
        seed=args.seed,
        builders=args.build_workers,
        measure=MeasureConfig(min_repeat_ms=args.min_repeat_ms, cache_flush=args.cache_flush),
        precision=args.precision,
        population=args.population,
        search_iters=args.search_iters,
        bindings=parse_bindings(args.bind),
        baseline=not args.no_baseline,
        layout=args.layout,
        conv=args.conv,
        tasks=[p.strip() for p in (args.tasks or "").split(",") if p.strip()],
    )
    from .tuning import logstore

    if args.rpc or args.key:
        if not (args.rpc and args.key):
            raise UserError("--rpc and --key go together: the tracker's HOST:PORT and the board key")
        opts.rpc, opts.key = _check_board(args.rpc, args.key, target, opts)
    store = logstore.store_for(target, opts.db)
    detected = f" (detected {target.detected})" if target.detected else ""
    say(f"tuning {', '.join(args.model)} for {target.name}{detected}; records go to {store.path}")
    from .tuning.tuner import measurer

    m = measurer(target, opts)
    say(f"  measuring machine: {m.name} ({m.id}); its own trials count toward each task's budget")
    stages = {"import": "importing to Relax", "extract": "extracting tuning tasks",
              "workers": "starting build and measure workers",
              "defaults": "timing the default schedules of kernels at their budget"}
    def tune_stage(name: str) -> None:
        stage(f"  {stages.get(name, name)} ...")
        if name == "workers":  # from here on the tuning loop handles Ctrl-C itself
            _Interrupt.soft = True

    try:
        result = tune_model(args.model if len(args.model) > 1 else args.model[0], opts, progress=_TuneDisplay(), stage=tune_stage,
                            should_stop=_Interrupt.stop_requested)
    finally:
        _Interrupt.soft = False
    for problem in result.problems:
        say(f"warning: tuning log: {problem}")
    say(f"  {result.trials} trials in {_fmt_s(result.seconds)} ({result.trials_per_minute:.1f} per minute); "
        f"{result.records_written} records written"
        + (f" to {result.shard}" if result.shard else ""))
    phases = ", ".join(f"{k.replace('_', ' ')} {_fmt_s(v)}" for k, v in result.phase_s.items() if v >= 0.5)
    if phases:
        say(f"  time went to: {phases}")
    if result.errors:
        say(f"  {sum(result.errors.values())} candidates failed (each record keeps its error); most often:")
        for line, n in sorted(result.errors.items(), key=lambda kv: -kv[1])[:3]:
            say(f"    {n} x {line}")
    rows = []
    for t in sorted(result.tasks, key=lambda t: -(t.weight * (t.best_s or 0))):
        rows.append([t.name[:48], str(t.weight), str(t.stored + t.trials), str(t.trials), str(t.errors),
                     _fmt_latency(t.best_s), t.status])
    from .textfmt import table

    say(table(["TASK", "USES", "TRIALS", "NEW", "FAILED", "BEST", "STATUS"], rows))
    if result.stopped == "interrupted" or _Interrupt.seen:
        say("interrupted: every measured record is saved; run the same command to resume")
        return EXIT_INTERRUPTED
    if result.stopped == "boards":
        print(f"crosstune: error: stopped: {result.message}; every measured record is saved, run the same "
              "command to resume when boards are back", file=sys.stderr)
        return EXIT_TOOL
    if result.stopped == "time":
        say("stopped at the time budget; run the same command to continue")
    return EXIT_OK


def _check_board(rpc: str, key: str, target, opts):
    """Before tuning on boards: the tracker answers, boards of the key exist and run this TVM. Records
    measured on emulated boards go to their own store (`<preset>-emulated`), never among real ones."""
    from .rpc import board_info, boards_for, parse_address, request
    from .tuning import logstore

    addr = parse_address(rpc)
    ks = boards_for(addr, key)
    session = request(addr, key, wait_s=opts.board_timeout_s)
    info = board_info(session, addr, key)
    del session
    say(f"measuring on {len(ks.boards)} '{key}' board(s) via {addr}: first one is {info.describe()}")
    opts.board = {k: v for k, v in info.to_json().items() if v is not None}
    if info.emulated and not opts.db:
        opts.db = str(logstore.project_logs_root() / f"{target.logs or target.name}-emulated")
        say(f"  emulated board: its records go to {opts.db}, apart from real boards' records")
    return addr, key


# ------------------------------------------------------------------------------------------- logs
def cmd_calibrate(args) -> int:
    from .frontend.constants import parse_bindings
    from .textfmt import table
    from .tuning.calibrate import CalibrateOptions, calibrate

    opts = CalibrateOptions(target=args.target, db=args.db, sources=list(args.sources or []),
                            candidates=args.candidates, rounds=args.rounds, runs=args.runs,
                            margin=args.margin / 100.0, check=not args.no_check, threads=args.threads,
                            input_shapes=_shapes(args.input_shape), bindings=parse_bindings(args.bind))
    say(f"calibrating {args.model} for {args.target}: each kernel's best records timed inside the model")
    res = calibrate(args.model, opts, lambda line: say("  " + line), should_stop=_Interrupt.stop_requested)

    def us(x: float) -> str:
        return "-" if x == float("inf") else f"{x:.1f}"

    rows = []
    for k in sorted(res.kernels, key=lambda k: -k.in_model_us[0]):
        best = min(range(len(k.candidates)), key=lambda i: k.in_model_us[i])
        rows.append([k.task, str(k.calls), f"{k.candidates[0].record.seconds * 1e6 * max(1, k.calls):.1f}",
                     us(k.in_model_us[0]), us(k.in_model_us[best]), k.candidates[best].source,
                     f"{k.in_model_us[0] / k.in_model_us[best]:.2f}x" if k.pick else "keep"])
    say(table(["KERNEL", "CALLS", "TUNED US", "IN MODEL US", "BEST IN MODEL", "BEST IS", "PICK"], rows, "lrrrrll"))
    say("  TUNED US: the usual record's tuning time x calls; IN MODEL: its time a model run (all calls), "
        f"median of {args.rounds} rounds; BEST: the fastest of its {res.variants} candidates in the model")
    if res.usual_ms is not None:
        say(f"  model: {res.usual_ms:.3f} ms with the usual records, {res.picked_ms:.3f} ms with the picks "
            f"({res.usual_ms / res.picked_ms:.3f}x; medians, taking turns)")
    if res.written:
        say(f"pinned {res.written} kernel{'s' if res.written != 1 else ''} of {res.model} for {res.machine} in "
            f"{res.store} ({Path(res.shard).name}); compile applies them on this kind of machine "
            f"({res.seconds:.0f} s)")
    else:
        say(f"nothing pinned; {res.store} unchanged ({res.seconds:.0f} s)")
    return EXIT_OK


def cmd_logs(args) -> int:
    from .tuning import logs_cli

    return logs_cli.run(args, say)


def _size(path) -> str:
    from .textfmt import size

    return size(Path(path).stat().st_size)


def _report_agreement(agreement, args) -> int:
    from .textfmt import sci, table

    rows = [
        [o.name, sci(o.max_abs), sci(o.max_rel), f"{o.mismatches}/{o.total}", "ok" if o.passed else (o.note or "FAIL")]
        for o in agreement.outputs
    ]
    say(table(["OUTPUT", "MAX ABS ERR", "MAX REL ERR", "OUTSIDE TOL", ""], rows, "lrrrl"))
    tol = f"rtol {agreement.rtol:g}, atol {agreement.atol:g}"
    if agreement.passed:
        say(f"PASSED: outputs agree with {agreement.expected} ({tol}, seed {args.seed})")
        return EXIT_OK
    bad = ", ".join(o.name for o in agreement.outputs if not o.passed)
    raise VerificationFailed(f"outputs disagree with {agreement.expected} beyond {tol}: {bad}")


# -------------------------------------------------------------------------------------------- run
def cmd_run(args) -> int:
    import numpy as np

    from .runtime import load
    from .tensors import check_inputs, load_inputs, parse_assignments, random_inputs
    from .textfmt import ms

    if args.repeat < 1:
        raise UserError("--repeat must be >= 1")
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be at least 1")
    board = None
    if args.profile < 0:
        raise UserError("--profile takes a number of runs >= 1")
    if args.rpc or args.key:
        if args.profile:
            raise UserError("--profile times kernels in this process; it does not run on boards")
        if args.threads is not None:
            raise UserError("--threads sizes this machine's thread pool; a board's server sets its own")
        from .compile import package
        from .rpc import parse_address
        from .runtime.remote import RemoteModel

        if not (args.rpc and args.key):
            raise UserError("--rpc and --key go together: the tracker's HOST:PORT and the board key")
        addr = parse_address(args.rpc)
        package.read(args.package)  # refuse a damaged or altered package before asking for a board
        say(f"requesting a '{args.key}' board from the tracker at {addr} ...")
        compiled = RemoteModel(args.package, addr, args.key, wait_s=args.wait)
        board = compiled.board
        say(f"  running on {board.describe()}")
    else:
        compiled = load(args.package, threads=args.threads)
    info = compiled.info
    say(
        f"{args.package}: {info.model.get('name')} for {info.target.get('preset')}, "
        f"TVM {info.tvm_version}, built {info.created}"
    )
    given = load_inputs(parse_assignments(args.input, "--input"))
    check_inputs(compiled.inputs, given)
    missing = [s for s in compiled.inputs if s.name not in given]
    inputs = {**random_inputs(missing, args.seed), **given}
    for s in compiled.inputs:
        where = "from file" if s.name in given else f"seeded random (seed {args.seed})"
        say(f"  input {s.name} {s.describe()}: {where}")
    outputs = compiled.run(inputs)
    stats = compiled.benchmark(inputs, warmup=args.warmup, repeat=args.repeat, max_seconds=args.max_seconds)
    runs = f"{stats.count} runs" + (f" (stopped at --max-seconds {args.max_seconds:g})" if stats.truncated else "")
    label = "EMULATED latency (qemu-user, not the board's speed)" if board is not None and board.emulated else "latency"
    if board is None and info.target.get("device", "cpu") == "cpu":
        label += f" on {compiled.threads} thread{'s' if compiled.threads != 1 else ''}"
    say(
        f"{label} over {runs}, {stats.warmup} warm-up: median {ms(stats.median_ms)} ms, "
        f"p90 {ms(stats.p90_ms)} ms, min {ms(stats.min_ms)} ms, max {ms(stats.max_ms)} ms"
    )
    if args.save_outputs:
        out_dir = Path(args.save_outputs)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, arr in outputs.items():
            path = out_dir / (re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".npy")
            np.save(path, arr)
            say(f"  output {name} {'x'.join(map(str, arr.shape))} {arr.dtype} -> {path}")
    if args.profile:
        _print_profile(compiled.profile(inputs, runs=args.profile), stats.median_ms)
    if args.json:
        from .report import results

        doc = results.run_document(compiled.info, stats, inputs=inputs,
                                   board=board.to_json() if board is not None else None, command=sys.argv)
        results.write(args.json, doc)
        say(f"results -> {args.json}")
    return EXIT_OK


def _print_profile(prof, latency_ms: float, rows: int = 25) -> None:
    """Each call of the VM (kernels and builtins) by its share of the profiled time."""
    from .textfmt import table

    total = sum(c.us_per_run for c in prof.calls) or 1.0
    kernels = [c for c in prof.calls if c.kind != "builtin"]
    default = sum(c.us_per_run for c in kernels if c.kind == "default")
    builtin = sum(c.us_per_run for c in prof.calls if c.kind == "builtin")
    say(f"profile over {prof.runs} runs: calls add up to {total / 1e3:.3f} ms a run (latency {latency_ms:.3f} ms; "
        f"the timing hook adds a few us a call): {len(kernels)} kernels, default schedules {default / total:.0%}, "
        f"VM builtins {builtin / total:.0%}")
    shown, cum = [], 0.0
    for c in prof.calls[:rows]:
        cum += c.us_per_run
        shown.append([f"{c.us_per_run:.1f}", f"{c.us_per_run / total:.1%}", f"{cum / total:.0%}", str(c.calls_per_run),
                      c.kind, c.name])
    say(table(["US/RUN", "SHARE", "CUM", "CALLS", "SCHEDULE", "CALL"], shown))
    if len(prof.calls) > rows:
        say(f"  ... {len(prof.calls) - rows} more calls, {(total - cum) / total:.0%} of the time")


# ------------------------------------------------------------------------------------------ bench
def cmd_bench(args) -> int:
    from .compare.bench import BenchOptions, bench
    from .textfmt import ms, table

    against = args.against
    if against is None:
        from . import targets

        gpu = targets.get(args.target).device == "cuda"
        against = "torch,torch-compile,torch-compile-ro,onnxruntime,tensorrt" if gpu else "onnxruntime,openvino,torch"
    opts = BenchOptions(
        target=args.target, against=tuple(a for a in against.split(",") if a),
        precisions=tuple(p for p in args.precision.split(",") if p), repeat=args.repeat, warmup=args.warmup,
        max_seconds=args.max_seconds, threads=args.threads, seed=args.seed, input_shapes=_shapes(args.input_shape),
        use_logs=not args.no_logs, db=args.db, tuned_on=args.tuned_on, layout=args.layout, conv=args.conv,
        rounds=args.rounds,
    )
    say(f"benchmarking {args.model}: crosstune ({args.target}) against {', '.join(opts.against) or 'nothing'}")
    doc = bench(args.model, opts, sys.argv, say=stage)
    ours = {e["precision"]: e for e in doc["engines"] if e["name"] == "crosstune" and e["status"] == "ok"}
    rows = []
    for e in doc["engines"]:
        lat, agr = e["latency_ms"], e["agreement"]
        if lat is None:
            rows.append([e["name"], e["precision"], e["status"].upper(), "", "", "", "", e["error"] or ""])
            continue
        base = ours.get(e["precision"])
        ratio = f"{lat['median'] / base['latency_ms']['median']:.2f}x" if base else "-"
        if agr is None:
            check = "reference" if e["name"] == doc["reference"] else "-"
        else:
            vs = f" vs {agr['reference']}" if " " in agr["reference"] else ""
            check = ("PASS" if agr["passed"] else "FAIL") + f" (max abs {_sci(agr['max_abs'])}{vs})"
        rows.append([e["name"], e["precision"], ms(lat["median"]), ms(lat["p90"]), ms(lat["min"]), ms(lat["max"]),
                     ratio, check])
    say(table(["ENGINE", "PRECISION", "MEDIAN ms", "P90", "MIN", "MAX", "VS CROSSTUNE", "AGREEMENT"], rows, "llrrrrrl"))
    pairs = doc.get("agreement_pairs") or []
    if pairs:
        bad = [p for p in pairs if not p["passed"]]
        say(f"engines checked against each other: {len(pairs)} pair{'s' if len(pairs) != 1 else ''}, "
            + (f"{len(bad)} disagree:" if bad else "all agree within their precision's tolerance"))
        for p in bad:
            say(f"  {p['a']} {p['a_precision']} vs {p['b']} {p['b_precision']}: max abs {_sci(p['max_abs'])}, "
                f"max rel {_sci(p['max_rel'])} (rtol {p['rtol']:g}, atol {p['atol']:.2g})")
    machine, gpu = doc["machine"], doc["machine"].get("gpu")
    on = f"{gpu['name']}; " if gpu and doc["target"].get("device") == "cuda" else ""
    say(f"{on}{machine['cpu']}, {machine['cores']} cores; {doc['engines'][0].get('threads')} threads per engine; "
        "VS CROSSTUNE > 1 means crosstune is faster")
    if args.json:
        from .report import results

        results.write(args.json, doc)
        say(f"results -> {args.json}")
    failed = [e for e in doc["engines"] if e["agreement"] is not None and not e["agreement"]["passed"]]
    if failed:
        raise VerificationFailed("outputs disagree with the reference: "
                                 + ", ".join(f"{e['name']} {e['precision']}" for e in failed))
    return EXIT_OK


def _sci(value) -> str:
    return "n/a" if value is None else f"{value:.1e}"


# -------------------------------------------------------------------------------------- rpc, board
def cmd_rpc_tracker(args) -> int:
    from .rpc.serve import run_tracker

    return run_tracker(args.host, args.port, say=say)


def cmd_rpc_server(args) -> int:
    from .rpc.serve import run_server

    return run_server(args.tracker, args.key, args.host, args.port, args.load_library, say=say)


def cmd_rpc_status(args) -> int:
    from .rpc import parse_address, status
    from .textfmt import table

    addr = parse_address(args.tracker, "--tracker")
    keys = status(addr)
    if not keys:
        say(f"tracker {addr}: no boards registered")
        return EXIT_OK
    rows = [[k.key, len(k.boards), k.free, k.busy, k.queued, " ".join(sorted(k.boards))] for k in sorted(keys.values(), key=lambda k: k.key)]
    say(f"tracker {addr}")
    say(table(["KEY", "BOARDS", "FREE", "BUSY", "QUEUED", "ADDRESSES"], rows, "lrrrrl"))
    return EXIT_OK


def cmd_board_setup(args) -> int:
    from .board import emulate

    t = time.perf_counter()
    land = emulate.setup(Path(args.dir) if args.dir else None, say=stage)
    say(f"emulated aarch64 userland ready: {land.root} ({time.perf_counter() - t:.0f} s)")
    return EXIT_OK


def cmd_board_emulate(args) -> int:
    from . import targets
    from .board import emulate
    from .rpc import parse_address

    target = targets.get(args.target)
    parse_address(args.tracker, "--tracker")
    land = emulate.setup(Path(args.dir) if args.dir else None, say=stage)
    env = emulate.environment(land, target)
    key = args.key or target.board_key or target.name
    cmd = [str(land.launcher), "-m", "crosstune", "rpc", "server", "--tracker", args.tracker, "--key", key,
           "--host", args.host]
    if args.port:
        cmd += ["--port", str(args.port)]
    say(f"starting an emulated {target.name} board (qemu-aarch64 -cpu {target.qemu_cpu}); importing TVM under "
        "emulation takes a while ...")
    os.execve(cmd[0], cmd, env)  # the board is this process from now on: Ctrl-C or kill stops it


# -------------------------------------------------------------------------------------------- zoo
def cmd_zoo_list(args) -> int:
    from . import zoo
    from .textfmt import table

    say(table(["NAME", "SOURCE", "INPUTS", "DESCRIPTION"], [[e.name, e.source, e.inputs, e.description] for e in zoo.entries()]))
    return EXIT_OK


def cmd_zoo_export(args) -> int:
    from . import zoo

    out = args.output or f"{args.name}.onnx"
    path = zoo.export(args.name, out, batch=args.batch, seed=args.seed, dynamic_batch=args.dynamic_batch)
    say(f"wrote {path} ({_size(path)})")
    return EXIT_OK


# ------------------------------------------------------------------------------------------- demo
def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(args.model, Path(args.workdir), say=stage, repeat=args.repeat)


# ------------------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="crosstune",
        description="Compile, run and compare ONNX models on CPUs, GPUs and boards, over Apache TVM.",
    )
    p.add_argument("--version", action="version", version=f"crosstune {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks and TVM's native log lines")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("targets", help="list target presets")
    s.set_defaults(func=cmd_targets)

    s = sub.add_parser("ops", help="list the ONNX operators crosstune's converter layer adds to or fixes in TVM's")
    s.set_defaults(func=cmd_ops)

    shape_help = "static shape for an input with dynamic dimensions, NAME=1x3x224x224 (repeatable)"
    s = sub.add_parser("inspect", help="check an ONNX model and say who converts each operator (or describe a .ctm)")
    s.add_argument("model", help="an .onnx model, or a .ctm package")
    s.add_argument("--input-shape", action="append", metavar="NAME=SHAPE", help=shape_help)
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("compile", help="compile an ONNX model for a target into a .ctm package")
    s.add_argument("model")
    s.add_argument("--target", "-t", default="host", help="target preset (see `crosstune targets`) or a preset .toml file")
    s.add_argument("-o", "--output", help="package path (default: <model>.<target>.ctm)")
    s.add_argument("--input-shape", action="append", metavar="NAME=SHAPE", help=shape_help)
    s.add_argument("--verify", action="store_true", help="check outputs against ONNX Runtime on seeded random inputs")
    s.add_argument("--seed", type=int, default=0, help="seed of the verification inputs (default 0)")
    s.add_argument("--rtol", type=float, help="relative tolerance (default 1e-3 for fp32, 1e-2 for fp16)")
    s.add_argument("--atol", type=float, help="absolute tolerance (default 1e-4; fp16 adds 1e-2 x the output's largest magnitude)")
    s.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                   help="arithmetic of the kernels: fp16 on GPU targets (fp32 accumulation; inputs and outputs keep their dtypes)")
    s.add_argument("--layout", choices=["NCHW", "NHWC"], default=None,
                   help="data layout of the 2-D convolutions (default: the one the stored records cover the model better in, else the target's, NHWC for the presets)")
    s.add_argument("--conv", choices=["direct", "winograd", "winograd-f2"], default=None,
                   help="3x3 stride-1 convolutions (fp32): direct; winograd: F(4x4, 3x3), 4x fewer multiply-adds, on maps of 49+ 4x4 tiles; winograd-f2: that, and F(2x2, 3x3), 2.25x fewer, on maps of 49+ 2x2 tiles only (default: the one the stored records make faster, else direct)")
    s.add_argument("--db", metavar="DIR", help="tuning-log folder (default: logs/<target preset>/, or under $CROSSTUNE_LOGS)")
    s.add_argument("--no-logs", action="store_true", help="ignore stored tuning records (TVM's default schedules)")
    s.add_argument("--tuned-on", metavar="MACHINE", help="prefer the tuning records measured on this machine kind (an id `crosstune logs show` lists, e.g. intel-6-143), or 'any' (the fastest stored time wins); default: this machine's when the code runs here")
    s.add_argument("--rpc", metavar="HOST:PORT", help="with --verify: verify on a board behind this RPC tracker")
    s.add_argument("--key", help="with --verify --rpc: the board key, e.g. rpi4")
    s.add_argument("--bind", action="append", metavar="NAME=FILE.npy",
                   help="make model input NAME a constant of this value (inputs TVM needs as constants: "
                        "axes, k, sizes, shapes; `inspect` names them); repeatable")
    s.set_defaults(func=cmd_compile)

    s = sub.add_parser("tune", help="auto-tune a model's kernels for a target; records go to the tuning-log store")
    s.add_argument("model", nargs="+", help="ONNX model(s): several are tuned as one job, shared kernels once")
    s.add_argument("--target", "-t", default="host", help="target preset or .toml file (default host)")
    s.add_argument("--trials", type=int, help="trial budget of this run (default: what the tasks still need)")
    s.add_argument("--trials-per-task", type=int, default=64, help="budget per kernel, stored trials included (default 64)")
    s.add_argument("--time-budget", metavar="DURATION", help="stop after this long, e.g. 20m, 1.5h")
    s.add_argument("--db", metavar="DIR", help="tuning-log folder (default: logs/<target preset>/, or under $CROSSTUNE_LOGS)")
    s.add_argument("--input-shape", action="append", metavar="NAME=SHAPE", help=shape_help)
    s.add_argument("--bind", action="append", metavar="NAME=FILE.npy",
                   help="make model input NAME a constant of this value, as compile --bind does (repeatable)")
    s.add_argument("--trials-per-round", type=int, default=32, help="candidates built and measured per round (default 32)")
    s.add_argument("--build-workers", type=int, help="parallel build processes (default: all cores)")
    s.add_argument("--min-repeat-ms", type=int, default=100, help="shortest timed repeat per candidate (default 100)")
    s.add_argument("--cache-flush", action="store_true",
                   help="CPU: time each candidate with its weights flushed from the caches, as a model runs it "
                        "(records say so; keep them in their own --db: their times are not comparable with others')")
    s.add_argument("--tasks", metavar="PATTERNS",
                   help="tune only the kernels whose task names match one of these comma-separated shell "
                        "patterns (names as `tune` and `run --profile` list them, e.g. 'fused_conv2d1[0-9]_*')")
    s.add_argument("--no-baseline", action="store_true",
                   help="do not time each tuned workload's default schedule (by default it is timed once, "
                        "and compile keeps a workload on its default schedule when that beat every record)")
    s.add_argument("--seed", type=int, default=0, help="search seed (default 0)")
    s.add_argument("--rpc", metavar="HOST:PORT", help="measure on boards behind this RPC tracker (with --key)")
    s.add_argument("--key", help="board key at the tracker, e.g. rpi4 (with --rpc)")
    s.add_argument("--population", type=int, default=256,
                   help="evolutionary search population per round (default 256; smaller: faster rounds, coarser search)")
    s.add_argument("--search-iters", type=int, default=4,
                   help="evolutionary search generations per round (default 4, as stock MetaSchedule)")
    s.add_argument("--precision", default="fp32", metavar="fp32|fp16|fp32,fp16",
                   help="tune the kernels of these precisions' builds (fp16: GPU targets)")
    s.add_argument("--layout", choices=["NCHW", "NHWC"], default=None,
                   help="data layout of the 2-D convolutions (default: the one the stored records cover the model better in, else the target's, NHWC for the presets)")
    s.add_argument("--conv", choices=["direct", "winograd", "winograd-f2"], default=None,
                   help="3x3 stride-1 convolutions (fp32): direct; winograd: F(4x4, 3x3), 4x fewer multiply-adds, on maps of 49+ 4x4 tiles; winograd-f2: that, and F(2x2, 3x3), 2.25x fewer, on maps of 49+ 2x2 tiles only (default: the one the stored records make faster, else direct)")
    s.set_defaults(func=cmd_tune)

    s = sub.add_parser("calibrate", help="time each kernel's best stored records inside the model on this machine "
                                          "and pin the fastest there for compile")
    s.add_argument("model", help="ONNX model, tuned for the target on this machine")
    s.add_argument("--target", "-t", default="host", help="CPU target preset this machine runs (default host)")
    s.add_argument("--db", metavar="DIR", help="tuning-log folder (default: logs/<target preset>/, or under $CROSSTUNE_LOGS)")
    s.add_argument("--from", dest="sources", action="append", metavar="DIR",
                   help="another store whose best records of each kernel are candidates too, e.g. one `tune "
                        "--cache-flush` wrote (repeatable); picked ones are copied into the store")
    s.add_argument("--candidates", type=int, default=4, help="records of the store per kernel, the usual one included (default 4)")
    s.add_argument("--rounds", type=int, default=3, help="timing rounds, taking turns between the variants (default 3)")
    s.add_argument("--runs", type=int, default=20, help="profiled model runs per variant and round (default 20)")
    s.add_argument("--margin", type=float, default=3.0, metavar="PERCENT",
                   help="a candidate must beat the usual record by this much inside the model (default 3)")
    s.add_argument("--no-check", action="store_true",
                   help="write the picks without first timing the whole model with them against the usual build")
    s.add_argument("--threads", type=int, help="CPU threads (default: TVM_NUM_THREADS when set, else every physical core)")
    s.add_argument("--input-shape", action="append", metavar="NAME=SHAPE", help=shape_help)
    s.add_argument("--bind", action="append", metavar="NAME=FILE.npy", help="as compile --bind (repeatable)")
    s.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("logs", help="stored tuning logs: list, show, merge, prune, export, tag")
    lsub = s.add_subparsers(dest="logs_command", metavar="LOGS_COMMAND", required=True)
    lg = lsub.add_parser("list", help="stores per target: workloads, records, models")
    lg.add_argument("--root", help="logs root (default: the project's logs/ or $CROSSTUNE_LOGS)")
    lg.set_defaults(func=cmd_logs)
    lg = lsub.add_parser("show", help="workloads of one store with their best records")
    lg.add_argument("store", help="target preset name or store folder")
    lg.add_argument("--model", help="only workloads tuned for this model")
    lg.add_argument("--machine", help="read the store as compile does for this machine id: its records where a "
                                      "workload has any (default: any, every record)")
    lg.add_argument("--root", help="logs root")
    lg.set_defaults(func=cmd_logs)
    lg = lsub.add_parser("merge", help="merge stores (from other machines or boards) into one")
    lg.add_argument("sources", nargs="+", help="store folders or shard files to merge from")
    lg.add_argument("--into", required=True, help="destination: target preset name or store folder")
    lg.add_argument("--root", help="logs root")
    lg.set_defaults(func=cmd_logs)
    lg = lsub.add_parser("tag", help="name the machine that measured records that name none (older stores)")
    lg.add_argument("store", help="target preset name or store folder")
    lg.add_argument("--machine", required=True, help="machine id, as `crosstune tune` prints it (intel-6-143, amd-25-17)")
    lg.add_argument("--name", help="a name for people (the CPU's model name)")
    lg.add_argument("--since", help="only records measured at or after this UTC date-time (ISO: 2026-12-04T21:30)")
    lg.add_argument("--until", help="only records measured before this UTC date-time")
    lg.add_argument("--model", help="only records tuned for this model")
    lg.add_argument("--root", help="logs root")
    lg.set_defaults(func=cmd_logs)
    lg = lsub.add_parser("prune", help="keep the best K records per workload and machine (drops failures)")
    lg.add_argument("store", help="target preset name or store folder")
    lg.add_argument("--keep", type=int, default=8, help="records kept per workload (default 8)")
    lg.add_argument("--root", help="logs root")
    lg.set_defaults(func=cmd_logs)
    lg = lsub.add_parser("export", help="a compact best-records database for shipping")
    lg.add_argument("store", help="target preset name or store folder")
    lg.add_argument("-o", "--output", required=True, help="output folder (crosstune format) or, with --format tvm, TVM JSONDatabase folder")
    lg.add_argument("--keep", type=int, default=1, help="records per workload (default 1)")
    lg.add_argument("--format", choices=["crosstune", "tvm"], default="crosstune", help="crosstune shard, or TVM's database_workload.json + database_tuning_record.json")
    lg.add_argument("--root", help="logs root")
    lg.add_argument("--machine", help="only what a compile for this machine id reads (its records where a workload "
                                      "has any, else the others'); default: every machine's best")
    lg.set_defaults(func=cmd_logs)

    s = sub.add_parser("run", help="run a .ctm package and time it")
    s.add_argument("package")
    s.add_argument("--input", action="append", metavar="NAME=FILE.npy", help="input from a .npy file (repeatable); others are seeded random")
    s.add_argument("--repeat", type=int, default=50, help="timed runs (default 50)")
    s.add_argument("--warmup", type=int, default=5, help="untimed warm-up runs (default 5)")
    s.add_argument("--max-seconds", type=float, default=60.0, help="stop timing after this long, keeping >= 3 runs (default 60)")
    s.add_argument("--seed", type=int, default=0, help="seed of generated inputs (default 0)")
    s.add_argument("--save-outputs", metavar="DIR", help="save outputs as DIR/<name>.npy")
    s.add_argument("--threads", type=int,
                   help="CPU threads (default: TVM_NUM_THREADS when set, else every physical core this process may use)")
    s.add_argument("--json", metavar="FILE", help="write the results (crosstune results format) to FILE")
    s.add_argument("--profile", type=int, nargs="?", const=20, default=0, metavar="RUNS",
                   help="after timing, time each kernel over RUNS more runs (default 20) and list them by "
                        "share, with whether a tuning record or a default schedule drove each")
    s.add_argument("--rpc", metavar="HOST:PORT", help="run on a board: the RPC tracker's address (with --key)")
    s.add_argument("--key", help="board key at the tracker, e.g. rpi4 (with --rpc)")
    s.add_argument("--wait", type=float, default=300.0, help="seconds to wait for a free board (default 300)")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("bench", help="crosstune against other engines on one model: latency and agreement")
    s.add_argument("model")
    s.add_argument("--target", "-t", default="host", help="target preset (default host)")
    s.add_argument("--against", default=None,
                   help="comma-separated peers: onnxruntime (the reference; CUDA provider on GPU targets when "
                        "present), openvino (CPU), torch, torch-compile, torch-compile-ro (reduce-overhead, "
                        "CUDA graphs; GPU), tensorrt (GPU); torch engines need a `crosstune zoo export` model; "
                        "engines that cannot run here are listed with the reason (default: onnxruntime,openvino,torch on CPU "
                        "targets; torch,torch-compile,torch-compile-ro,onnxruntime,tensorrt on GPU targets)")
    s.add_argument("--precision", default="fp32",
                   help="comma-separated: fp32, fp16 (fp16 on GPU targets; default fp32)")
    s.add_argument("--layout", choices=["NCHW", "NHWC"], default=None,
                   help="data layout of the 2-D convolutions (default: the one the stored records cover the model better in, else the target's, NHWC for the presets)")
    s.add_argument("--conv", choices=["direct", "winograd", "winograd-f2"], default=None,
                   help="3x3 stride-1 convolutions (fp32): direct; winograd: F(4x4, 3x3), 4x fewer multiply-adds, on maps of 49+ 4x4 tiles; winograd-f2: that, and F(2x2, 3x3), 2.25x fewer, on maps of 49+ 2x2 tiles only (default: the one the stored records make faster, else direct)")
    s.add_argument("--repeat", type=int, default=30, help="timed runs per engine (default 30)")
    s.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs (default 3)")
    s.add_argument("--max-seconds", type=float, default=20.0, help="timing time limit per engine (default 20)")
    s.add_argument("--rounds", type=int, default=5,
                   help="engines take turns being timed, in this many rounds, so a machine whose speed drifts "
                        "slows them all alike (default 5; 1: one block per engine)")
    s.add_argument("--threads", type=int, help="threads per engine (default: the target's num-cores, else all cores)")
    s.add_argument("--seed", type=int, default=0, help="seed of the shared inputs (default 0)")
    s.add_argument("--input-shape", action="append", metavar="NAME=SHAPE", help=shape_help)
    s.add_argument("--db", metavar="DIR", help="tuning-log folder (default: logs/<target preset>/)")
    s.add_argument("--no-logs", action="store_true", help="crosstune untuned (TVM's default schedules)")
    s.add_argument("--tuned-on", metavar="MACHINE", help="prefer the tuning records measured on this machine kind (an id `crosstune logs show` lists, e.g. intel-6-143), or 'any' (the fastest stored time wins); default: this machine's when the code runs here")
    s.add_argument("--json", metavar="FILE", help="write the results (crosstune results format) to FILE")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("rpc", help="the board farm: TVM RPC tracker, servers on boards, status")
    rsub = s.add_subparsers(dest="rpc_command", metavar="SUBCOMMAND", required=True)
    r = rsub.add_parser("tracker", help="run an RPC tracker (the farm's front door) in the foreground")
    r.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    r.add_argument("--port", type=int, default=9190, help="port (default 9190; 0 picks a free one)")
    r.set_defaults(func=cmd_rpc_tracker)
    r = rsub.add_parser("server", help="serve this board over RPC, registered with a tracker under a key")
    r.add_argument("--tracker", required=True, metavar="HOST:PORT")
    r.add_argument("--key", required=True, help="board kind clients ask for, e.g. rpi4")
    r.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    r.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    r.add_argument("--load-library", help="extra libraries to load (':'-separated), e.g. libtvm_runtime_extra.so "
                   "on a runtime-only board")
    r.set_defaults(func=cmd_rpc_server)
    r = rsub.add_parser("status", help="which keys the tracker has, boards free and busy")
    r.add_argument("--tracker", required=True, metavar="HOST:PORT")
    r.set_defaults(func=cmd_rpc_status)

    s = sub.add_parser("board", help="emulated aarch64 boards (qemu-user) for people with no board at hand")
    bsub = s.add_subparsers(dest="board_command", metavar="SUBCOMMAND", required=True)
    b = bsub.add_parser("setup", help="prepare the emulated userland (arm64 Debian + TVM wheels; once, ~1 min)")
    b.add_argument("--dir", help="where (default ~/.cache/crosstune/boards/..., or $CROSSTUNE_BOARDS)")
    b.set_defaults(func=cmd_board_setup)
    b = bsub.add_parser("emulate", help="run an emulated board of a preset as an RPC server under a tracker")
    b.add_argument("--target", "-t", required=True, help="aarch64 preset (rpi4, rpi5, jetson-orin-cpu, graviton3)")
    b.add_argument("--tracker", required=True, metavar="HOST:PORT")
    b.add_argument("--key", help="RPC key (default: the preset's board key)")
    b.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    b.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    b.add_argument("--dir", help="userland folder (default as for `board setup`)")
    b.set_defaults(func=cmd_board_emulate)

    from .report.cli import add_parser as add_report_parser

    add_report_parser(sub)

    s = sub.add_parser("zoo", help="models to try: list, export to ONNX")
    zsub = s.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND", required=True)
    z = zsub.add_parser("list", help="list zoo models")
    z.set_defaults(func=cmd_zoo_list)
    z = zsub.add_parser("export", help="export a zoo model to ONNX")
    z.add_argument("name")
    z.add_argument("-o", "--output", help="output .onnx path (default: <name>.onnx)")
    z.add_argument("--batch", type=int, default=1)
    z.add_argument("--dynamic-batch", action="store_true", help="leave the batch dimension symbolic")
    z.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    z.set_defaults(func=cmd_zoo_export)

    s = sub.add_parser("demo", help="export a zoo model, compile, verify and time it against ONNX Runtime")
    s.add_argument("--model", default="mobilenetv2", help="zoo model (default mobilenetv2)")
    s.add_argument("--workdir", default="build/demo", help="where the model and package go (default build/demo)")
    s.add_argument("--repeat", type=int, default=20, help="timed runs per engine (default 20)")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.debug:
        os.environ["CROSSTUNE_DEBUG"] = "1"
    if args.command not in TORCH_COMMANDS:
        from ._torchblock import block_torch

        block_torch()  # makes `import torch` fail fast
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        _Interrupt.install(route=args.command not in SERVICE_COMMANDS)
    try:
        return args.func(args)
    except BrokenPipeError:  # `crosstune ops | head`: the reader left; nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's exit flush would fail again
        return EXIT_OK
    except (KeyboardInterrupt, Exception) as err:
        return _exit_code(err, args.debug)


def _exit_code(err: BaseException, debug: bool) -> int:
    """Map an error to its exit code, printing what the user should see."""
    if isinstance(err, KeyboardInterrupt) or _Interrupt.seen:
        print("crosstune: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if isinstance(err, VerificationFailed):
        print(f"FAILED: {err}", file=sys.stderr)
        return EXIT_FAILED
    from .rpc import BoardError

    if isinstance(err, BoardError):  # a tracker or board failed: one line, like a tool
        if debug:
            traceback.print_exception(err)
        print(f"crosstune: error: {err}", file=sys.stderr)
        return EXIT_TOOL
    if isinstance(err, (UserError, ToolError)):
        if debug:
            traceback.print_exception(err)
        detail = err.details() if isinstance(err, ToolError) else str(err)
        print(f"crosstune: error: {detail}", file=sys.stderr)
        return EXIT_USER if isinstance(err, UserError) else EXIT_TOOL
    traceback.print_exception(err)  # a bug: show everything
    print(
        f"crosstune: internal error (crosstune {__version__}); please report it with the traceback above",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
