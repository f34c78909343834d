"""`crosstune calibrate`: choose each kernel's schedule by its time inside the model.

The tuner times a kernel on its own, run after run, so its weights and inputs stay in the caches.
Inside a model each kernel reads weights that the layers before it pushed out, and its input comes
from the layer before. The two clocks disagree, most where a layer's weights are large: on the 2-core
Xeon VM `intel-6-167`, ResNet-50's records add up to 26.1 ms and the model runs in 38.9 ms; the 3x3
convolution of its 7x7 stage takes 1.14 ms tuned and 2.11 ms in the model, where ONNX Runtime's
takes 1.14. And records that time alike on their own differ inside the model.

So calibrate times the store's best records of each kernel where they will run:
1. candidates: for every kernel of the model, the record compile would apply, the next fastest
   records measured on this machine (`candidates` in all), and the fastest `from_k` records of each
   `--from` store measured here (for example a store that `tune --cache-flush` wrote, whose times
   were taken with the weights flushed from the caches, as a model runs them);
2. builds variants of the model, variant i with every kernel's i-th candidate (variant 0 is the build
   compile makes);
3. times every kernel inside every variant (`run --profile`'s per-call timing), in rounds that take
   turns between the variants, and picks for each kernel the candidate with the lowest median time in
   the model when it beats the usual record by more than `margin`;
4. builds the model with the picks and times it against the usual build, taking turns. Only when it
   ran faster are the picks written to the store, as `in_model` lines (with any picked record that
   came from a `--from` store); every later compile for this machine applies them (`logstore`).

Nothing is written before step 4 ends: Ctrl-C or a failure leaves the store as it was. Calibration
runs the model here, so it is for CPU targets this machine runs (a board's calibration would need the
same over RPC; not done).
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UserError
from . import logstore


@dataclass
class CalibrateOptions:
    target: str = "host"
    db: str | None = None
    sources: list[str] = field(default_factory=list)  # --from: other stores whose records are candidates too
    candidates: int = 4  # records of the store per kernel, the usual one included
    from_k: int = 2  # records of each --from store per kernel
    rounds: int = 3
    runs: int = 20  # profiled model runs per variant and round
    margin: float = 0.03  # a candidate must beat the usual record by this much in the model
    check: bool = True  # time the picks against the usual build before writing them
    threads: int | None = None
    input_shapes: dict = field(default_factory=dict)
    bindings: dict = field(default_factory=dict)


@dataclass
class Candidate:
    record: logstore.Record
    source: str  # "store #k" (its rank among this machine's records) or "<from store> #k"


@dataclass
class Kernel:
    task: str  # the kernel's name as `run --profile` lists it, without TVM's `_prepacked`
    workload: str
    candidates: list[Candidate]
    in_model_us: list[float] = field(default_factory=list)  # per candidate: median time a model run
    calls: int = 0
    pick: int = 0  # index into candidates; 0: the usual record

    @property
    def picked(self) -> Candidate:
        return self.candidates[self.pick]


@dataclass
class CalibrateResult:
    model: str
    store: str
    machine: str
    form: str
    variants: int
    kernels: list[Kernel]
    untuned: int  # kernels left on default schedules (no record, or the default measured faster)
    usual_ms: float | None = None  # the model with compile's records, median over the check's runs
    picked_ms: float | None = None  # the model with the picks
    written: int = 0  # in_model lines written
    shard: str | None = None
    seconds: float = 0.0

    @property
    def changed(self) -> list[Kernel]:
        return [k for k in self.kernels if k.pick != 0]


def calibrate(model, options: CalibrateOptions, say: Callable[[str], None] = lambda s: None,
              should_stop: Callable[[], bool] = lambda: False) -> CalibrateResult:
    """`should_stop()` is polled between builds and between timed runs: when it turns true, calibrate
    raises KeyboardInterrupt (nothing has been written by then). A Ctrl-C that arrives while TVM's
    C++ runs the model or the profile hook does not always surface as an exception; the poll does."""
    from .. import targets
    from ..compile import pipeline, relax_import
    from ..targets.host import this_machine

    started = time.perf_counter()
    target = targets.get(options.target)
    if target.device != "cpu" or target.cross:
        raise UserError(f"calibrate runs the model on this machine; target '{target.name}' is "
                        f"{target.device if target.device != 'cpu' else target.arch} (calibrate CPU targets of this machine)")
    for name, value in (("--candidates", options.candidates), ("--rounds", options.rounds), ("--runs", options.runs)):
        if value < 1:
            raise UserError(f"{name} must be at least 1")
    target.check_compiler()
    machine = this_machine()
    store = logstore.store_for(target, options.db)
    if not store.exists():
        raise UserError(f"no tuning logs in {store.path}: tune the model first (`crosstune tune`)")
    index = store.load().view(machine.id)
    for p in index.problems:  # corrupt or truncated lines: skipped, said before minutes of building
        say(f"tuning log: {p}")
    if not any(r.machine == machine.id for r in index.records):
        raise UserError(f"{store.path} holds no record measured on this machine ({machine.id}): tune the model here "
                        "first (`crosstune tune`); calibration picks among this machine's records")
    froms = []
    for src_path in options.sources:
        other = logstore.Store(Path(src_path))
        if not other.exists():
            raise UserError(f"--from {src_path}: no tuning logs there")
        froms.append((src_path, other.load()))

    say("importing to Relax ...")
    src, relax_model = relax_import.load_and_import(model, options.input_shapes, dict(options.bindings))
    form, _ = pipeline.resolve_layout(relax_model.mod, target, ["fp32"], index, None, None)
    layout, conv = pipeline.split_form(form)
    tasks = pipeline.extract_tasks(pipeline.workloads(relax_model.mod, target, "fp32", form), target)

    wins = index.default_wins()
    pins = index.pinned()
    by_wl = index.by_workload()
    kernels: list[Kernel] = []
    untuned = 0
    workloads = dict(index.workloads)
    for task in tasks:
        wl = pipeline.workload_hash(task)
        ok = sorted(logstore.dedupe(r for r in by_wl.get(wl, []) if r.ok), key=lambda r: r.seconds)
        if wl in wins or not ok:
            untuned += 1
            continue
        usual = pins.get(wl) or ok[0]  # what compile applies
        mine = [r for r in ok if r.machine == machine.id]
        cands = [Candidate(usual, "pinned" if wl in pins else "store #1")]
        seen = {usual.data.get("trace_sha")}
        for rank, r in enumerate(mine, 1):
            if len(cands) >= options.candidates:
                break
            if r.data.get("trace_sha") not in seen:
                seen.add(r.data.get("trace_sha"))
                cands.append(Candidate(r, f"store #{rank}"))
        for path, other in froms:
            theirs = sorted(logstore.dedupe(r for r in other.records if r.workload == wl and r.ok
                                            and r.machine == machine.id), key=lambda r: r.seconds)
            taken = 0
            for rank, r in enumerate(theirs, 1):
                if taken >= options.from_k:
                    break
                if r.data.get("trace_sha") not in seen:
                    seen.add(r.data.get("trace_sha"))
                    cands.append(Candidate(r, f"{path} #{rank}"))
                    workloads.setdefault(wl, other.workloads.get(wl) or r.mod or "")
                    taken += 1
        kernels.append(Kernel(task.task_name, wl, cands))
    if not kernels:
        raise UserError(f"{store.path} has no record for any kernel of {src.name} in {pipeline.describe_form(form) or 'its layout'}: "
                        "tune it first (`crosstune tune`)")
    variants = max(len(k.candidates) for k in kernels)
    result = CalibrateResult(src.name, str(store.path), machine.id, form or "", variants, kernels, untuned)
    say(f"{len(kernels)} tuned kernels, up to {max(len(k.candidates) for k in kernels)} candidate records each; "
        f"{untuned} on default schedules" + (f"; convolutions {pipeline.describe_form(form)}" if form else ""))

    def check() -> None:
        if should_stop():
            raise KeyboardInterrupt

    with tempfile.TemporaryDirectory(prefix="crosstune-calibrate-") as tmp:
        build = _builder(model, target, options, layout, conv, workloads, Path(tmp), check)
        say(f"building {variants} variants of the model ...")
        models = [build(f"v{i}", {k.workload: k.candidates[i if i < len(k.candidates) else 0].record for k in kernels})
                  for i in range(variants)]
        say(f"timing every kernel in every variant: {options.rounds} rounds of {options.runs} runs, taking turns ...")
        _time_kernels(models, kernels, options, check)
        for k in kernels:
            best = min(range(len(k.candidates)), key=lambda i: k.in_model_us[i])
            if k.in_model_us[best] < k.in_model_us[0] * (1 - options.margin):
                k.pick = best
        changed = result.changed
        if not changed:
            say("no candidate beat its kernel's usual record inside the model: nothing to write")
            result.seconds = time.perf_counter() - started
            return result
        if options.check:
            say(f"checking: the model with {len(changed)} kernels changed against the usual build ...")
            picked = build("picked", {k.workload: k.picked.record for k in kernels})
            result.usual_ms, result.picked_ms = _time_models([models[0], picked], options, check)
            if result.picked_ms >= result.usual_ms:
                say(f"the picks ran {result.picked_ms:.3f} ms against {result.usual_ms:.3f} with the usual records: "
                    "nothing written")
                result.seconds = time.perf_counter() - started
                return result
    check()
    result.shard, result.written = _write(store, result, machine, workloads)
    result.seconds = time.perf_counter() - started
    return result


def _builder(model, target, options: CalibrateOptions, layout, conv, workloads: dict, tmp: Path,
             check: Callable[[], None]):
    """build(name, {workload: record}) -> a loaded model compiled with exactly those records."""
    from ..compile.driver import compile_model
    from ..compile.options import CompileOptions
    from ..runtime import load

    def build(name: str, chosen: dict):
        check()
        db = tmp / f"{name}-db"
        logstore.Store(db).write_shard(chosen.values(), workloads, "calibrate")
        out = tmp / f"{name}.ctm"
        compile_model(model, CompileOptions(target=options.target, output=str(out), db=str(db),
                                            input_shapes=dict(options.input_shapes), bindings=dict(options.bindings),
                                            layout=layout, conv=conv if layout else None), lambda stage: None)
        check()
        return load(out, threads=options.threads)

    return build


def _time_kernels(models: list, kernels: list[Kernel], options: CalibrateOptions, check: Callable[[], None]) -> None:
    """Each kernel's median time a model run in each variant (rounds take turns between variants)."""
    inputs = models[0].example_inputs(0)
    samples: list[dict[str, list[float]]] = [dict() for _ in models]
    calls: dict[str, int] = {}
    for r in range(options.rounds):
        order = list(range(len(models)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            check()
            prof = models[i].profile(inputs, runs=options.runs)
            for c in prof.calls:
                name = c.name.removesuffix("_prepacked")
                samples[i].setdefault(name, []).append(c.us_per_run)
                calls[name] = c.calls_per_run
    for k in kernels:
        k.calls = calls.get(k.task, 0)
        k.in_model_us = [statistics.median(samples[i][k.task]) if k.task in samples[i] else float("inf")
                         for i in range(len(k.candidates))]


def _time_models(models: list, options: CalibrateOptions, check: Callable[[], None]) -> tuple[float, ...]:
    """Median latency (ms) of each model, timed taking turns (`compare.engine.benchmark_rounds`)."""
    from ..compare.engine import CrosstuneEngine, benchmark_rounds

    rounds = max(3, options.rounds)
    stats = benchmark_rounds([CrosstuneEngine(m) for m in models], models[0].example_inputs(0), rounds=rounds,
                             warmup=3, repeat=rounds * max(10, options.runs), max_seconds=None)
    check()
    for s in stats:
        if isinstance(s, BaseException):
            raise s
    return tuple(s.median_ms for s in stats)


def _write(store: logstore.Store, result: CalibrateResult, machine, workloads: dict) -> tuple[str | None, int]:
    """The picks as `in_model` lines, and the picked records the store does not hold yet."""
    now = time.time()
    have = {r.key for r in store.load().records}
    records, pins = [], []
    for k in result.changed:
        rec = k.picked.record
        if rec.key not in have:
            records.append(dataclasses.replace(rec, data=dict(rec.data)))
        pins.append({"kind": "in_model", "workload": k.workload, "trace_sha": rec.data["trace_sha"],
                     "machine": machine.id, "task": k.task, "model": result.model, "calls": k.calls,
                     "secs": k.in_model_us[k.pick] * 1e-6, "usual_secs": k.in_model_us[0] * 1e-6,
                     "candidates": len(k.candidates), "from": k.picked.source, "time": now})
    with store.lock(exclusive=False):
        shard = store.write_shard(records, workloads, "calibrate", pins=pins, machines={machine.id: machine.name})
    return (str(shard) if shard else None), len(pins)
