"""Stock MetaSchedule vs crosstune's tuner: same model, target, trial budget and machine, one run.

    python bench/tuning_throughput.py [--model mobilenetv2] [--trials 64] [--trials-per-task 16]

"Stock" is what TVM 0.27 offers: `static_shape_tuning`'s tuning step (`ms.relax_integration.tune_relax`
on the module prepared by the same passes, `cpu_weight_prepack` layout marks included), with
`LocalBuilder` given an initializer that preloads `tvm.s_tir.tensor_intrin` (without one, every
build times out on a 2-core machine: each fresh worker spends ~25 s importing it), and the
default `LocalRunner`. Both use the same trials per round, the same per-task and global budgets,
the same measurement settings (3 runs, repeats of at least 100 ms) and XGBoost cost model.

Prints trials per minute for each, their ratio, and the best latency each reached: the model
compiled with each one's records and timed on the same inputs, plus the sum over tasks of
weight x best kernel time. Writes bench/results/tuning_throughput-<preset>.json and .txt.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _stock_initializer():
    import tvm.s_tir.tensor_intrin  # noqa: F401 - registers every tensor intrinsic in the worker


def run_stock(prepared, target, work: Path, trials: int, per_task: int, per_round: int) -> dict:
    from tvm.s_tir import meta_schedule as ms

    from crosstune.compile.pipeline import tuning_target

    tvm_target = tuning_target(target)
    t = time.perf_counter()
    db = ms.relax_integration.tune_relax(
        mod=prepared,
        params={},
        target=tvm_target,
        work_dir=str(work),
        max_trials_global=trials,
        max_trials_per_task=per_task,
        num_trials_per_iter=per_round,
        builder=ms.builder.LocalBuilder(initializer=_stock_initializer),
    )
    seconds = time.perf_counter() - t
    records = db.get_all_tuning_records()
    ok = [r for r in records if r.run_secs and float(r.run_secs[0]) < 1e9]
    return {"seconds": round(seconds, 1), "trials": len(records), "failed": len(records) - len(ok), "database": db}


def run_crosstune(model_path: Path, target_name: str, db_dir: Path, trials: int, per_task: int, per_round: int) -> dict:
    from crosstune.tuning import TuneOptions, tune_model

    t = time.perf_counter()
    res = tune_model(model_path, TuneOptions(target=target_name, trials=trials, trials_per_task=per_task,
                                             trials_per_round=per_round, db=str(db_dir)))
    seconds = time.perf_counter() - t
    failed = sum(s.errors for s in res.tasks)
    return {"seconds": round(seconds, 1), "trials": res.trials, "failed": failed, "phase_s": {k: round(v, 1) for k, v in res.phase_s.items()}}


def kernel_sum(prepared, target, database) -> float:
    """Sum over tasks of weight x best measured kernel time (ms); untuned tasks count 0."""
    from crosstune.compile import pipeline

    total = 0.0
    tvm_target = pipeline.tuning_target(target)
    for task in pipeline.extract_tasks(prepared, target):
        rec = database.query_tuning_record(task.dispatched[0], tvm_target, task.task_name)
        if rec is not None and rec.run_secs:
            secs = sorted(float(s) for s in rec.run_secs)
            total += task.weight * secs[len(secs) // 2] * 1e3
    return total


def model_latency(relax_model, src, target, database, work: Path, label: str) -> float:
    """Compile with `database`'s records and time the whole model (median ms)."""
    import tvm

    from crosstune.compile import pipeline
    from crosstune.compile.link import fcompile_for
    from crosstune.runtime.timing import measure

    built = pipeline.build(relax_model.mod, relax_model.weights, target, database)
    lib = work / f"{label}.so"
    built.executable.export_library(str(lib), fcompile=fcompile_for(target))
    from tvm import relax

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(lib)), tvm.cpu())
    import numpy as np

    rng = np.random.default_rng(0)
    args = [tvm.runtime.tensor(rng.standard_normal([int(d) for d in spec.shape]).astype(spec.dtype))
            for spec in src.inputs] + list(built.weights)
    vm.set_input("main", *args)
    stats = measure(lambda: vm.invoke_stateful("main"), lambda: None, warmup=3, repeat=30, max_seconds=30)
    return stats.median_ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mobilenetv2")
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--trials-per-task", type=int, default=16)
    ap.add_argument("--trials-per-round", type=int, default=16)
    ap.add_argument("--target", default="host")
    args = ap.parse_args()

    from crosstune import targets, zoo
    from crosstune.compile import onnx_model, pipeline, relax_import
    from crosstune.targets import host
    from crosstune.textfmt import table

    target = targets.get(args.target)
    work = Path(tempfile.mkdtemp(prefix="crosstune-bench-"))
    model_path = work / f"{args.model}.onnx"
    zoo.export(args.model, model_path)
    src = onnx_model.with_shapes(onnx_model.load(model_path), {})
    relax_model = relax_import.to_relax(src)
    prepared = pipeline.prepare(relax_model.mod, target)
    n_tasks = len(pipeline.extract_tasks(prepared, target))
    print(f"{args.model}: {n_tasks} tasks; budget {args.trials} trials, {args.trials_per_task} per task, "
          f"{args.trials_per_round} per round", flush=True)

    print("stock MetaSchedule ...", flush=True)
    stock = run_stock(prepared, target, work / "stock", args.trials, args.trials_per_task, args.trials_per_round)
    print(f"  {stock['trials']} trials in {stock['seconds']} s", flush=True)
    print("crosstune ...", flush=True)
    ours = run_crosstune(model_path, args.target, work / "crosstune", args.trials, args.trials_per_task,
                         args.trials_per_round)
    print(f"  {ours['trials']} trials in {ours['seconds']} s", flush=True)

    from crosstune.tuning import logstore

    our_db = logstore.Store(work / "crosstune").tvm_database()
    rows = {}
    for label, run, db in (("stock", stock, stock.pop("database")), ("crosstune", ours, our_db)):
        run["trials_per_minute"] = round(run["trials"] / (run["seconds"] / 60), 2)
        run["kernel_sum_ms"] = round(kernel_sum(prepared, target, db), 3)
        run["model_median_ms"] = round(model_latency(relax_model, src, target, db, work, label), 2)
        rows[label] = run
    untuned = model_latency(relax_model, src, target, None, work, "untuned")
    cpu = host.detect()
    out = {
        "bench": "tuning_throughput",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu.model, "cores": cpu.cores, "preset": cpu.preset, "python": platform.python_version()},
        "model": args.model, "tasks": n_tasks, "target": args.target,
        "budget": {"trials": args.trials, "per_task": args.trials_per_task, "per_round": args.trials_per_round},
        "untuned_model_median_ms": round(untuned, 2),
        "runs": rows,
        "throughput_ratio": round(rows["crosstune"]["trials_per_minute"] / rows["stock"]["trials_per_minute"], 2),
    }
    lines = [
        f"tuning throughput, {args.model} ({n_tasks} tasks), target {args.target}, {cpu.model}, {cpu.cores} cores",
        f"budget: {args.trials} trials, {args.trials_per_task} per task, {args.trials_per_round} per round; "
        f"untuned model {untuned:.2f} ms",
        table(["TUNER", "TRIALS", "FAILED", "SECONDS", "TRIALS/MIN", "SUM BEST KERNELS ms", "MODEL ms"],
              [[k, str(r["trials"]), str(r["failed"]), str(r["seconds"]), str(r["trials_per_minute"]),
                str(r["kernel_sum_ms"]), str(r["model_median_ms"])] for k, r in rows.items()]),
        f"crosstune / stock trials per minute: {out['throughput_ratio']}x",
        f"crosstune time split (s): {rows['crosstune'].get('phase_s')}",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"tuning_throughput-{cpu.preset or 'cpu'}"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    stem.with_suffix(".txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
