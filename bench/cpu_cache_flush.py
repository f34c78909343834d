"""Hot-cache against cold-cache kernel timing on a CPU, and what each says about the model.

    TVM_NUM_THREADS=2 python bench/cpu_cache_flush.py times MODEL.onnx [--db STORE] [--match matmul]
    python bench/cpu_cache_flush.py combine --base STORE --flushed STORE -o OUT [--match matmul]

`times`: for each kernel of MODEL whose name contains --match, the best record of the store (the
project's logs/<preset>/ by default) built and timed three ways: as the tuner times it (hot caches:
3 runs a repeat, repeats of at least 100 ms), with every argument but the first flushed from the
caches before each of 50 one-call runs (`tune --cache-flush`), and inside the compiled model
(`crosstune run --profile`'s per-call time). Prints one row per kernel.

`combine`: a store holding `--base`'s records, except that the workloads matching --match that
`--flushed` (a store written by `tune --cache-flush`) has 64 or more trials for come from there:
compile a model with `--db OUT` to run it with the cold-cache schedules of those kernels.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TVM_NUM_THREADS", "2")


def times(args) -> int:
    import numpy as np
    import tvm
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    from crosstune import targets
    from crosstune.compile import pipeline, relax_import
    from crosstune.runtime import load
    from crosstune.tuning import logstore

    target = targets.get(args.target)
    tvm_target = pipeline.tuning_target(target)
    store = logstore.store_for(target, args.db)
    index = store.load()
    _, model = relax_import.load_and_import(args.model, {}, {})
    names = {t.task_name for t in pipeline.extract_tasks(pipeline.prepare(model.mod, target), target)}
    best = {r.data.get("task"): r for r in logstore.best_k(index, 1)
            if r.data.get("task") in names and args.match in r.data.get("task", "")}

    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / "m.ctm"
        subprocess.run([sys.executable, "-m", "crosstune", "compile", args.model, "--target", args.target, "-o", str(pkg),
                        *(["--db", args.db] if args.db else [])], check=True, stdout=subprocess.DEVNULL)
        m = load(pkg)
        prof = m.profile(m.example_inputs(0), runs=20)
    in_model = {c.name.removesuffix("_prepacked"): c.us_per_run / max(1, c.calls_per_run) for c in prof.calls}

    print(f"{'KERNEL':48} {'STORED us':>9} {'HOT us':>8} {'FLUSHED us':>10} {'IN MODEL us':>11}")
    dev = tvm.cpu(0)
    for task, r in sorted(best.items()):
        wl = ms.database.Workload.from_json([r.workload, r.mod or index.workloads[r.workload]])
        rec = ms.database.TuningRecord.from_json(r.data["record"], wl)
        sch = tvm.s_tir.Schedule(wl.mod)
        rec.trace.apply_to_schedule(sch, remove_postproc=False)
        mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(sch.mod)
        lib = tvm.driver.build(mod, target=tvm_target)
        rng = np.random.default_rng(0)
        call_args = [tvm.runtime.tensor(rng.standard_normal([int(x) for x in a.shape]).astype(str(a.dtype)), dev)
                     for a in ms.arg_info.ArgInfo.from_prim_func(mod["main"])]
        hot = lib.time_evaluator(lib.entry_name, dev, number=3, repeat=1, min_repeat_ms=100)(*call_args).mean
        cold = lib.time_evaluator(lib.entry_name, dev, number=1, repeat=50,
                                  f_preproc="cache_flush_cpu_non_first_arg")(*call_args).results
        inside = in_model.get(task)
        print(f"{task[:48]:48} {r.seconds * 1e6:9.1f} {hot * 1e6:8.1f} {float(np.median(cold)) * 1e6:10.1f} "
              f"{inside if inside is not None else float('nan'):11.1f}")
    return 0


def combine(args) -> int:
    from crosstune.tuning import logstore

    base = logstore.Store(Path(args.base)).load()
    flushed = logstore.Store(Path(args.flushed)).load()
    trials = collections.Counter(r.workload for r in flushed.records)
    task = {r.workload: r.data.get("task") or "" for r in flushed.records}
    pick = {w for w, n in trials.items() if n >= 64 and args.match in task[w]}
    print("from the flushed store:", ", ".join(sorted(task[w] for w in pick)))
    records = [r for r in base.records if r.workload not in pick] + [r for r in flushed.records if r.workload in pick]
    workloads = {**flushed.workloads, **base.workloads}
    out = Path(args.output)
    shutil.rmtree(out, ignore_errors=True)
    print("wrote", logstore.Store(out).write_shard(records, workloads, "combined"))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("times")
    t.add_argument("model")
    t.add_argument("--target", default="x86-avx512")
    t.add_argument("--db")
    t.add_argument("--match", default="matmul")
    t.set_defaults(func=times)
    c = sub.add_parser("combine")
    c.add_argument("--base", required=True)
    c.add_argument("--flushed", required=True)
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--match", default="matmul")
    c.set_defaults(func=combine)
    args = ap.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
