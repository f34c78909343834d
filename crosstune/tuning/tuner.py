"""crosstune's tuning loop over MetaSchedule's search.

MetaSchedule supplies the parts that decide *what* to measure: per-task design spaces, the
evolutionary search and the XGBoost cost model. crosstune drives them itself instead of through
`TaskScheduler.tune`, because its loop must:
- resume: a task's trials already in the store count against its budget, so a task at its budget is
  skipped and a task stopped half-way continues (the search is seeded with its stored best records,
  and the cost model is trained on its stored measurements before the first round);
- reuse across models: workloads are keyed by MetaSchedule's structural hash, so a second model's
  kernels that another model already tuned are covered without a trial;
- store every measured record the moment it is measured (fsync), so Ctrl-C, a crash or a lost
  machine loses nothing measured;
- never spend a round on an exhausted task (stock's scheduler kept picking them);
- obey a time budget and a global trial budget, and report progress (tasks done, trials, best
  latency, ETA) after every round.
Scheduling: one round for every task first, so each kernel gets a tuned schedule early, then rounds go
to the task whose estimated share of its build's latency (uses x best time, over that build's total) is
largest. A build is one model at one precision; a job of several (ResNet-50 at batch 1 and 16, fp32 and
fp16) takes its builds' kernels in turn, each build's largest (uses x FLOPs) first, so the small
model's kernels are not all queued behind the big one's: it is each build's latency that a user runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ..errors import UserError
from ..targets import Target
from . import logstore, machines
from .board_runner import BoardsGone
from .pools import MeasureConfig, WorkerPool, cpu_count, make_builder, make_runner


@dataclass
class TuneOptions:
    target: str = "host"
    trials: int | None = None  # this run's global budget (None: per-task budget x tasks)
    trials_per_task: int = 64  # a task's total budget, stored trials included
    time_budget_s: float | None = None
    trials_per_round: int = 32
    population: int = 256  # evolutionary search population (stock: 512)
    search_iters: int = 4  # evolutionary search generations per round (stock: 4)
    db: str | None = None
    input_shapes: dict = field(default_factory=dict)
    bindings: dict = field(default_factory=dict)  # --bind: model inputs made constants (as compile's)
    seed: int = 0
    builders: int | None = None  # build workers (default: all cores)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    model_label: str = ""
    rpc: object = None  # rpc.Address of the tracker: measure on its boards of `key`
    key: str | None = None
    board_timeout_s: float = 120.0  # one candidate's session on a board, queueing excluded
    board: dict | None = None  # what the boards said about themselves (key, emulated, ...): kept on each record
    machine: object = None  # the measuring machine (targets.host.Machine); found once, from `board` or this host
    baseline: bool = True  # time each tuned workload's default schedule once (a `default` line)
    precision: str = "fp32"  # tune the kernels of this precision's build ("fp16": GPU targets; "fp32,fp16": both)
    layout: str | None = None  # of the builds' 2-D convolutions (NCHW, NHWC); None: the store's, else the target's
    conv: str | None = None  # 3x3 stride-1 convolutions: direct, winograd, winograd-f2; None: the store's, else direct
    tasks: list[str] = field(default_factory=list)  # --tasks: shell patterns of the task names to tune (empty: all)


@dataclass
class TaskState:
    index: int
    name: str
    weight: int
    flop: float
    hash: str
    mod_json: str
    mod: object
    stored: int  # trials in the store when the run started
    stored_best_s: float | None
    budget: int  # trials this run may spend on it
    trials: int = 0  # trials measured this run
    errors: int = 0
    best_s: float | None = None  # best of stored and new
    ctx: object = None
    status: str = "pending"  # pending | tuning | done | covered | exhausted
    widened: bool = False  # its search was restarted wider after a round drew no valid candidate
    models: set = field(default_factory=set)  # the models of this job whose kernel it is
    uses: dict = field(default_factory=dict)  # build ("model" or "model:precision") -> launches per run
    default_s: float | None = None  # its time on the default schedule (stored, or measured this run)
    default_due: bool = False  # measure the default schedule with its next round
    history: list = field(default_factory=list)  # best time after each of this run's rounds (stored best first)

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.trials)


@dataclass
class Progress:
    tasks: list[TaskState]
    trials: int
    trials_planned: int
    elapsed_s: float
    eta_s: float | None
    last: TaskState | None = None
    event: str = "round"  # start | round | done
    phase_s: dict = field(default_factory=dict)  # seconds spent in search, build, measure, ...


@dataclass
class TuneResult:
    store: str
    tasks: list[TaskState]
    trials: int
    seconds: float
    records_written: int
    shard: str | None
    problems: list[str]
    stopped: str  # "budget" | "time" | "interrupted" | "complete" | "boards" (none left)
    builder_restarts: int = 0
    message: str = ""  # why it stopped, when that needs saying
    runner_restarts: int = 0
    phase_s: dict = field(default_factory=lambda: {"search": 0.0, "build": 0.0, "measure": 0.0, "cost_model": 0.0})
    errors: dict = field(default_factory=dict)  # first line of a failed candidate's error -> count
    layouts: dict = field(default_factory=dict)  # model -> layout of its convolutions (models with any)

    @property
    def trials_per_minute(self) -> float:
        return self.trials / (self.seconds / 60) if self.seconds > 0 else 0.0


def measurer(target: Target, options: TuneOptions):
    """The machine whose times this job records (`machines.measuring_machine`), found once per job."""
    if options.machine is None:
        options.machine = machines.measuring_machine(target, options.board)
    return options.machine


def tune_model(model, options: TuneOptions, progress: Callable[[Progress], None] | None = None,
               stage: Callable[[str], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> TuneResult:
    """Tune `model` (ONNX path or ModelProto, or a list of them: one job, one budget, kernels that
    several models share tuned once) for `options.target`; records go to the store."""
    from .. import targets
    from ..compile import pipeline, relax_import

    stage = stage or (lambda s: None)
    target = targets.get(options.target)
    target.check_compiler()
    precisions = [p.strip() for p in options.precision.split(",") if p.strip()]
    for precision in precisions:
        pipeline.check_precision(target, precision)
    if options.layout is not None:
        pipeline.check_layout(options.layout)
    if options.conv is not None:
        pipeline.check_conv(options.conv)
    _check_measurable(target, options)
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    store = logstore.store_for(target, options.db)
    index = store.load()
    # the form of the convolutions: the store's as compile reads it for the machine that measures
    layout_index = index.view(measurer(target, options).id)
    tasks, names, origins, layouts = [], [], [], {}
    for m in models:
        stage("import")
        src, relax_model = relax_import.load_and_import(m, options.input_shapes, options.bindings)
        stage("extract")
        # a model tuned before in the other layout goes on in it (what compile then picks too)
        layout, why = pipeline.resolve_layout(relax_model.mod, target, precisions, layout_index, options.layout,
                                              options.conv)
        if layout:
            layouts[src.name] = layout
            stage(f"convolutions of {src.name} in {pipeline.describe_form(layout)}" + (f" ({why})" if why.startswith("TVM") else ""))
        for precision in precisions:
            prepared = pipeline.workloads(relax_model.mod, target, precision, layout)
            found = pipeline.extract_tasks(prepared, target)
            tasks += found
            origins += [src.name if len(precisions) == 1 else f"{src.name}:{precision}"] * len(found)
        names.append(src.name)
    if not tasks:
        raise UserError("the model has no kernels to tune")
    if options.tasks:
        tasks, origins = select_tasks(tasks, origins, options.tasks)
    result = tune_tasks(tasks, target, options, progress, stage, model_label=options.model_label or "+".join(names),
                        should_stop=should_stop, origins=None if options.model_label else origins, index=index)
    result.layouts = layouts
    return result


def select_tasks(tasks: list, origins: list[str], patterns: list[str]) -> tuple[list, list[str]]:
    """The tasks whose names match one of the shell `patterns` (`--tasks`), with their origins;
    a pattern that matches nothing is a user error that lists the names there are."""
    import fnmatch

    names = [t.task_name for t in tasks]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if unmatched:
        shown = ", ".join(sorted(set(names))[:12]) + (", ..." if len(set(names)) > 12 else "")
        raise UserError(f"--tasks {','.join(unmatched)}: no kernel of the model is named so (its kernels: {shown})")
    keep = [i for i, n in enumerate(names) if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    return [tasks[i] for i in keep], [origins[i] for i in keep]


def tune_tasks(extracted, target: Target, options: TuneOptions, progress=None, stage=None,
               model_label: str = "", should_stop: Callable[[], bool] | None = None,
               origins: list[str] | None = None, index=None) -> TuneResult:
    """`should_stop()` is polled between candidates: when it turns true the run stops there and
    returns normally (stopped="interrupted"); a KeyboardInterrupt raised in Python code does too."""
    import tvm
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

    from ..compile.pipeline import default_schedule, tuning_target
    from .intrinsics import load_tensor_intrinsics

    stage = stage or (lambda s: None)
    stop = should_stop or (lambda: False)
    started = time.perf_counter()
    store = logstore.store_for(target, options.db)
    # Trials count, and searches resume, per measuring machine: other machines' records (times of
    # other hardware) neither fill a task's budget nor seed its search.
    machine = measurer(target, options)
    index = (index if index is not None else store.load()).view(machine.id, strict=True)
    database = store.tvm_database(index)
    tvm_target = tuning_target(target)
    load_tensor_intrinsics(target.device)

    states: list[TaskState] = []
    by_hash: dict[str, TaskState] = {}
    for n, task in enumerate(extracted):
        mod = _normalize_mod(task.dispatched[0])
        wl_hash, mod_json = ms.database.Workload(mod).as_json()
        origin = origins[n] if origins else model_label
        if wl_hash in by_hash:  # the same kernel in another model of this job: one task, uses added up
            st = by_hash[wl_hash]
            st.weight += int(task.weight)
            st.models.add(origin.split(":")[0])
            st.uses[origin] = st.uses.get(origin, 0) + int(task.weight)
            continue
        i = len(states)
        stored = index.trials(wl_hash)
        best = index.best(wl_hash)
        st = TaskState(
            index=i, name=task.task_name, weight=int(task.weight),
            flop=max(1.0, float(tvm.s_tir.analysis.estimate_tir_flops(mod))),
            hash=wl_hash, mod_json=mod_json, mod=mod, stored=stored,
            stored_best_s=best.seconds if best else None,
            budget=max(0, options.trials_per_task - stored),
        )
        st.best_s = st.stored_best_s
        st.default_s = index.default_seconds(wl_hash)
        st.default_due = options.baseline and st.default_s is None
        st.models.add(origin.split(":")[0])
        st.uses[origin] = int(task.weight)
        if st.budget == 0:
            st.status = "covered"
        states.append(st)
        by_hash[wl_hash] = st

    planned = sum(s.budget for s in states)
    if options.trials is not None:
        planned = min(planned, options.trials)
    result = TuneResult(str(store.path), states, 0, 0.0, 0, None, list(index.problems), "complete")
    emit = progress or (lambda p: None)

    def report(event: str, last: TaskState | None = None) -> None:
        elapsed = time.perf_counter() - started
        done = result.trials
        eta = None
        if done and planned > done:
            eta = (elapsed - setup_s) / done * (planned - done)
        emit(Progress(states, done, planned, elapsed, eta, last, event, dict(result.phase_s)))

    setup_s = 0.0
    report("start")
    # Kernels at their budget whose default schedule was never timed (a store from before crosstune
    # timed them, or tuned with --no-baseline) get it timed now: one build and measurement each.
    untimed = [s for s in states if s.default_due and s.status == "covered"]
    if planned == 0 and not untimed:
        result.seconds = time.perf_counter() - started
        return result

    cores = cpu_count()
    threads = int(tvm_target.attrs.get("num-cores", cores)) if target.device == "cpu" else None
    builder = make_builder(options.builders or cores, target.device,
                           cc=None if target.cc == "cc" else target.cc)
    if options.rpc is not None:
        from ..rpc import boards_for
        from .board_runner import BoardRunner

        boards = len(boards_for(options.rpc, options.key).boards)
        runner = BoardRunner(options.rpc, options.key, boards, options.measure, options.board_timeout_s,
                             device=target.device)
    else:
        _check_measurable(target, options)
        runner = make_runner(target.device, threads, options.measure)
    cost_model = ms.cost_model.XGBModel(
        extractor=ms.feature_extractor.PerStoreFeature(), adaptive_training=True, num_tuning_cores=cores
    )
    stage("workers")
    for pool in (builder.pool, getattr(runner, "pool", None)):
        if isinstance(pool, WorkerPool):
            pool.stop = stop  # a wait for builds or a measurement notices Ctrl-C
    builder.pool.start()
    runner.start()
    setup_s = time.perf_counter() - started

    deadline = started + options.time_budget_s if options.time_budget_s else None
    writer = store.writer(label=f"tune-{model_label or 'model'}", machine=machine.to_json())
    if untimed:
        stage("defaults")
    # The first pass goes to the kernels with the most work first (uses x FLOPs), so a short budget
    # tunes the convolutions and matrix products and leaves reshapes and norms to default schedules;
    # the builds of a job take turns.
    first_pass = first_pass_order(states)
    try:
        with writer:
            if untimed and not stop():
                _time_defaults(untimed, tvm_target, target.device, builder, runner, writer, model_label, ms,
                               result, stop, options.board, options.measure.cache_flush)
            while True:
                if result.trials >= planned:
                    result.stopped = "budget" if any(s.remaining for s in states if s.status == "tuning") else "complete"
                    break
                if stop():
                    result.stopped = "interrupted"
                    break
                if deadline is not None and time.perf_counter() >= deadline:
                    result.stopped = "time"
                    break
                task = _next_task(states, first_pass, options.trials_per_round)
                if task is None:
                    break
                if task.ctx is None:
                    t_init = time.perf_counter()
                    _start_task(task, tvm_target, options, database, cost_model, ms)
                    result.phase_s["task_init"] = result.phase_s.get("task_init", 0.0) + time.perf_counter() - t_init
                n = min(options.trials_per_round, task.remaining, planned - result.trials)
                t_search = time.perf_counter()
                candidates = task.ctx.generate_measure_candidates()
                result.phase_s["search"] += time.perf_counter() - t_search
                if not candidates and not task.widened:
                    # Random sampling found too few schedules that pass the GPU checks (large fp32
                    # convolutions at a small population): search again with a wider net before
                    # calling the task exhausted.
                    t_init = time.perf_counter()
                    _restart_wide(task, tvm_target, options, database, cost_model, ms)
                    result.phase_s["task_init"] = result.phase_s.get("task_init", 0.0) + time.perf_counter() - t_init
                    t_search = time.perf_counter()
                    candidates = task.ctx.generate_measure_candidates()
                    result.phase_s["search"] += time.perf_counter() - t_search
                if not candidates:
                    task.status = "exhausted"
                    continue
                candidates = list(candidates)[:n] if len(candidates) > n else list(candidates)
                if stop():
                    result.stopped = "interrupted"
                    break
                default_mod = None
                if task.default_due:
                    task.default_due = False
                    default_mod = default_schedule(task.mod, tvm_target, target.device)
                _measure_round(task, candidates, builder, runner, database, writer, cost_model, tvm_target,
                               model_label, ms, result, stop, options.board, options.measure.cache_flush,
                               default_mod)
                if not task.history:
                    task.history.append(task.stored_best_s)
                task.history.append(task.best_s)
                if task.remaining == 0:
                    task.status = "done"
                report("round", task)
    except KeyboardInterrupt:
        # Every record measured so far is already on disk; report what was done and stop.
        result.stopped = "interrupted"
    except BoardsGone as err:
        result.stopped, result.message = "boards", str(err)
    finally:
        result.records_written = writer.count
        result.shard = str(writer.path) if writer.path else None
        result.seconds = time.perf_counter() - started
        result.builder_restarts = builder.pool.restarts
        result.runner_restarts = runner.restart_count()
        for s in states:
            if s.ctx is not None:
                try:
                    s.ctx.post_tuning()
                except Exception:  # noqa: BLE001 - cleanup only
                    pass
        builder.close()
        runner.close()
    report("done")
    return result


def _check_measurable(target: Target, options: TuneOptions) -> None:
    """Code for another architecture can only be measured on its boards; x86 code on a CPU with the
    features it was built for (else every candidate dies with SIGILL); GPU code on a GPU of its
    architecture or a newer one."""
    if target.cross and options.rpc is None:
        raise UserError(
            f"target '{target.name}' is {target.arch}: candidates are measured on its boards, pass "
            f"--rpc TRACKER_HOST:PORT --key {target.board_key or 'KEY'}"
        )
    if target.device == "cpu" and options.rpc is None:
        from ..targets import host

        lacking = host.missing(target.cpu_flags())
        if lacking:
            raise UserError(
                f"tuning for '{target.name}' measures candidates on this CPU, which lacks features its "
                f"code needs ({', '.join(lacking)}): tune for --target host here, or on a machine of that "
                f"class (--rpc/--key for boards)"
            )
    if target.device == "cuda" and options.rpc is None:
        from ..targets.cuda import arch_capability, require_gpu

        gpu = require_gpu(f"tuning for '{target.name}' measures candidates on a {target.gpu_arch} GPU; run "
                          "`crosstune tune` on a machine with one, or --rpc/--key for boards that have one")
        if gpu.capability < arch_capability(target.gpu_arch):
            raise UserError(f"tuning for '{target.name}' ({target.gpu_arch}) measures candidates on this GPU, "
                            f"{gpu.name} ({gpu.arch}), which cannot run {target.gpu_arch} code")


def first_pass_order(states: list[TaskState]) -> list[TaskState]:
    """Tasks with no measured trial yet, the builds taking turns, each build's largest (uses x FLOPs)
    first. A resumed task already has a stored best schedule: later rounds give it more trials by its
    share, after every kernel has one."""
    queues = {}
    for s in states:
        if s.status == "pending" and not s.stored:
            for build, uses in s.uses.items():
                queues.setdefault(build, []).append((uses * s.flop, s))
    for q in queues.values():
        q.sort(key=lambda us: -us[0])
    order, seen = [], set()
    while any(queues.values()):
        for build in sorted(queues):
            while queues[build]:
                _, s = queues[build].pop(0)
                if s.index not in seen:
                    seen.add(s.index)
                    order.append(s)
                    break
    return order


def build_shares(states: list[TaskState]) -> dict[int, float]:
    """Each task's largest share of a build's estimated latency (uses x best time over the build's sum).
    A task not measured yet is estimated from its FLOPs at its build's median time per FLOP."""
    per_flop: dict[str, list[float]] = {}
    for s in states:
        if s.best_s is not None:
            for build in s.uses:
                per_flop.setdefault(build, []).append(s.best_s / s.flop)

    def est(s: TaskState, build: str) -> float:
        if s.best_s is not None:
            return s.best_s
        known = sorted(per_flop.get(build, []))
        return s.flop * (known[len(known) // 2] if known else 1e-12)

    totals: dict[str, float] = {}
    for s in states:
        for build, uses in s.uses.items():
            totals[build] = totals.get(build, 0.0) + uses * est(s, build)
    return {s.index: max((uses * est(s, b) / totals[b] if totals[b] else 0.0) for b, uses in s.uses.items())
            for s in states}


# Weight of a task's recent improvement against the 1/t prior in `expected_gain` (Ansor's alpha).
RECENT_WEIGHT = 0.2
RECENT_ROUNDS = 3


def expected_gain(s: TaskState, round_size: int) -> float:
    """The fraction of a task's time its next round is expected to save, Ansor-style: mostly a prior
    that returns diminish as 1/t (a round of r candidates after n trials: r / (n + r)), partly what its
    last rounds actually saved per round. A kernel that has had its 100 trials is worth less than one
    with 16 at the same time: the share alone sent every round to the largest kernel until its budget
    ran out, and left the rest at their first round."""
    done = s.stored + s.trials
    prior = round_size / (done + round_size)
    h = [x for x in s.history if x is not None]
    if len(h) < 2 or h[-1] <= 0:
        return prior
    w = min(RECENT_ROUNDS, len(h) - 1)
    recent = max(0.0, (h[-1 - w] - h[-1]) / w / h[-1])
    return RECENT_WEIGHT * recent + (1 - RECENT_WEIGHT) * prior


def _next_task(states: list[TaskState], first_pass: list[TaskState], round_size: int = 32) -> TaskState | None:
    """The first pass in its order; then the task whose next round is expected to save the largest
    share of its build's latency (its share x `expected_gain`)."""
    while first_pass:
        t = first_pass.pop(0)
        if t.status in ("pending", "tuning") and t.remaining:
            return t
    live = [s for s in states if s.status in ("pending", "tuning") and s.remaining]
    if not live:
        return None
    shares = build_shares(states)
    return max(live, key=lambda s: shares[s.index] * expected_gain(s, round_size))


def _restart_wide(task: TaskState, tvm_target, options: TuneOptions, database, cost_model, ms) -> None:
    """Restart a task's search at a population of at least 256 that asks for a single valid random
    sample per round: what a task gets, once, when a round of its search draws no candidate."""
    try:
        task.ctx.post_tuning()
    except Exception:  # noqa: BLE001 - cleanup only
        pass
    task.widened = True
    _start_task(task, tvm_target, options, database, cost_model, ms, wide=True)


def _start_task(task: TaskState, tvm_target, options: TuneOptions, database, cost_model, ms,
                wide: bool = False) -> None:
    from .space import space_generator

    ctx = ms.TuneContext(
        mod=task.mod,
        target=tvm_target,
        space_generator=space_generator(tvm_target),
        search_strategy=search_strategy(options, ms, wide=wide),
        task_name=task.name,
        logger=_quiet_logger(),
        rand_state=options.seed + task.index,
        num_threads=cpu_count(),
    )
    ctx.pre_tuning(
        max_trials=task.budget,
        num_trials_per_iter=options.trials_per_round,
        design_spaces=ctx.generate_design_space(),
        database=database,
        cost_model=cost_model,
    )
    task.ctx = ctx
    task.status = "tuning"
    if task.stored:
        _warm_cost_model(task, ctx, database, cost_model, ms)


def search_strategy(options: TuneOptions, ms, wide: bool = False):
    """MetaSchedule's evolutionary search at the job's population and generations. Replaying and
    post-processing candidates is most of a round's search time (tensor-core traces on a GPU target:
    about 10 s a round on 16 cores at population 64), and it grows with population x generations.

    A round draws random schedules, keeps those that pass the post-processors and gives up ("Cannot
    sample enough initial population") when fewer than `init_min_unmeasured` pass after a few draws of
    a population's worth. Stock's threshold is 50 at population 512; crosstune's is an eighth of the
    population (8 at 64). Half the population, crosstune's threshold before, failed every round of
    eleven ResNet-50 fp32 kernels on the H200 at population 64 (most random schedules of a batch-16
    3x3 convolution do not pass), so they stayed on default schedules. Where most samples pass, the
    threshold changes nothing. `wide` (a task's one retry): population at least 256, one valid sample
    enough.
    """
    population = max(256, options.population) if wide else options.population
    return ms.search_strategy.EvolutionarySearch(
        population_size=population,
        init_min_unmeasured=1 if wide else max(1, min(50, population // 8)),
        genetic_num_iters=options.search_iters,
    )


def _quiet_logger():
    """MetaSchedule logs every search step at INFO; crosstune reports progress itself."""
    import logging

    log = logging.getLogger("crosstune.tuning.metaschedule")
    log.setLevel(logging.WARNING)
    return log


def _warm_cost_model(task: TaskState, ctx, database, cost_model, ms) -> None:
    """Train the cost model on this workload's stored measurements (a resumed or reused task)."""
    wl = database.commit_workload(task.mod)
    records = database.get_top_k(wl, 256)
    if not records:
        return
    cands = [r.as_measure_candidate() for r in records]
    results = [ms.runner.RunnerResult([float(s) for s in r.run_secs], None) for r in records]
    cost_model.update(ctx, cands, results)


def _time_defaults(tasks: list[TaskState], tvm_target, device: str, builder, runner, writer, model_label: str,
                   ms, result: TuneResult, stop, board: dict | None = None, cache_flush: bool = False) -> None:
    """Build the default schedules of `tasks` in one batch, time them, store each as a `default` line."""
    from ..compile.pipeline import default_schedule

    mods = []
    for t in tasks:
        t.default_due = False
        mods.append(default_schedule(t.mod, tvm_target, device))
    todo = [(t, m) for t, m in zip(tasks, mods) if m is not None]
    t0 = time.perf_counter()
    built = builder.build([ms.builder.BuilderInput(m, tvm_target) for _, m in todo])
    result.phase_s["build"] += time.perf_counter() - t0
    if stop():
        return

    def store(t: TaskState, rr) -> None:
        _store_default(t, rr, writer, model_label, board, cache_flush)

    to_run = []
    for (t, m), br in zip(todo, built):
        if br.error_msg is not None:
            store(t, ms.runner.RunnerResult(None, br.error_msg))
        else:
            to_run.append((t, m, br))
    inputs = [ms.runner.RunnerInput(br.artifact_path, runner.device, ms.arg_info.ArgInfo.from_entry_func(m, remove_preproc=True))
              for _, m, br in to_run]
    t1 = time.perf_counter()
    runner.measure_all(inputs, lambda j, rr: store(to_run[j][0], rr), stop)
    result.phase_s["measure"] += time.perf_counter() - t1


def _store_default(task: TaskState, rr, writer, model_label: str, board: dict | None, cache_flush: bool) -> None:
    """The default schedule's timing as the workload's `default` line. A failure is stored too, so
    the next run does not try again; records win over it."""
    ok = rr.error_msg is None and rr.run_secs is not None
    secs = [float(s) for s in rr.run_secs] if ok else [logstore.FAILED_SECS]
    task.default_s = logstore.median(secs)
    line = {"run_secs": secs, "task": task.name, "model": "+".join(sorted(task.models)) or model_label,
            "time": round(time.time(), 3)}
    if not ok:
        line["error"] = _first_lines(rr.error_msg or "no timing returned", 3)
    if board is not None:
        line["board"] = board
    if cache_flush:
        line["cache_flush"] = True
    writer.add(task.hash, task.mod_json, line, kind="default")


def _measure_round(task: TaskState, candidates, builder, runner, database, writer, cost_model, tvm_target,
                   model_label: str, ms, result: TuneResult, stop, board: dict | None = None,
                   cache_flush: bool = False, default_mod=None) -> None:
    """Build and time one round's candidates; with `default_mod`, the workload's default schedule
    too, as one more build and measurement of the round (not a trial: it is stored as the
    workload's `default` line, which compile weighs its records against)."""
    t0 = time.perf_counter()
    inputs = [ms.builder.BuilderInput(c.sch.mod, tvm_target) for c in candidates]
    if default_mod is not None:
        inputs.append(ms.builder.BuilderInput(default_mod, tvm_target))
    built = builder.build(inputs)
    t1 = time.perf_counter()
    result.phase_s["build"] += t1 - t0
    if stop():  # Ctrl-C during the builds: nothing of this round was measured, nothing is recorded
        result.stopped = "interrupted"
        return
    workload = database.commit_workload(task.mod)
    run_results: list = [None] * len(built)

    def record(i: int, rr) -> None:
        if i == len(candidates):  # the default schedule
            _store_default(task, rr, writer, model_label, board, cache_flush)
            return
        cand = candidates[i]
        run_results[i] = rr
        ok = rr.error_msg is None and rr.run_secs is not None
        secs = [float(s) for s in rr.run_secs] if ok else [logstore.FAILED_SECS]
        rec = ms.database.TuningRecord(cand.sch.trace, workload, secs, tvm_target, cand.args_info)
        database.commit_tuning_record(rec)
        line = logstore.record_line(rec, secs, task.name, "+".join(sorted(task.models)) or model_label)
        if not ok:  # why it failed, kept in the shard and counted for the summary
            line["error"] = _first_lines(rr.error_msg or "no timing returned", 3)
            first = line["error"].split("\n", 1)[0][:160]
            result.errors[first] = result.errors.get(first, 0) + 1
        if board is not None:
            line["board"] = board
        if cache_flush:
            line["cache_flush"] = True  # timed with cold caches: not comparable with other records
        writer.add(task.hash, task.mod_json, line)
        task.trials += 1
        result.trials += 1
        if ok:
            median = sorted(secs)[len(secs) // 2]
            if task.best_s is None or median < task.best_s:
                task.best_s = median
        else:
            task.errors += 1

    to_run = []
    for i, br in enumerate(built):
        if br.error_msg is not None:
            record(i, ms.runner.RunnerResult(None, br.error_msg))
        else:
            to_run.append(i)
    args = [c.args_info for c in candidates]
    if default_mod is not None:
        args.append(ms.arg_info.ArgInfo.from_entry_func(default_mod, remove_preproc=True))
    inputs = [ms.runner.RunnerInput(built[i].artifact_path, runner.device, args[i]) for i in to_run]
    finished = runner.measure_all(inputs, lambda j, rr: record(to_run[j], rr), stop)
    if not finished:  # keep what is measured; the search is not told about a partial round
        result.stopped = "interrupted"
        return
    t2 = time.perf_counter()
    result.phase_s["measure"] += t2 - t1
    run_results = run_results[:len(candidates)]
    task.ctx.notify_runner_results(candidates, run_results)
    keep = [(c, r) for c, b, r in zip(candidates, built, run_results)
            if b.error_msg is None and (r.error_msg is not None or (r.run_secs and sum(float(s) for s in r.run_secs) > 0))]
    if keep:
        cost_model.update(task.ctx, [c for c, _ in keep], [r for _, r in keep])
    result.phase_s["cost_model"] += time.perf_counter() - t2


def _first_lines(text: str, n: int) -> str:
    """The first `n` non-empty lines of an error message, each cut to 300 characters."""
    lines = [l.strip()[:300] for l in str(text).splitlines() if l.strip()]
    return "\n".join(lines[:n])
