"""Where a CUDA tuning candidate's build time goes, NVRTC against nvcc (run on the GPU machine).

    TVM_CUDA_COMPILE_MODE=nvrtc|nvcc python3 bench/gpu_build_profile.py MODEL.onnx [--target cuda]
        [--candidates 32] [--workers 16] [--json out.json]

Takes the model's largest kernel, asks MetaSchedule for candidates (random cost model), then builds
them with crosstune's builder function (`tuning/worker.build`: TVM lowering, CUDA compile, host link),
a few serially in this process and all through the tuner's worker pool. One compile mode per run (the
pool's forkserver keeps the environment it started with): run it once per mode."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--target", default="cuda")
    ap.add_argument("--candidates", type=int, default=32)
    ap.add_argument("--serial", type=int, default=6, help="candidates built serially per mode")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json")
    args = ap.parse_args()

    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

    import tvm
    from crosstune import targets
    from crosstune.compile import pipeline, relax_import
    from crosstune.compile.pipeline import tuning_target
    from crosstune.tuning import worker
    from crosstune.tuning.intrinsics import load_tensor_intrinsics
    from crosstune.tuning.pools import _target_json, make_builder

    target = targets.get(args.target)
    target.check_compiler()
    _, model = relax_import.load_and_import(args.model, {}, {})
    tasks = pipeline.extract_tasks(pipeline.workloads(model.mod, target, "fp32"), target)
    mods = [_normalize_mod(t.dispatched[0]) for t in tasks]
    mod = max(mods, key=lambda m: float(tvm.s_tir.analysis.estimate_tir_flops(m)))
    tvm_target = tuning_target(target)
    load_tensor_intrinsics("cuda")
    from crosstune.tuning.space import space_generator

    ctx = ms.TuneContext(mod=mod, target=tvm_target, space_generator=space_generator(tvm_target),
                         search_strategy=ms.search_strategy.EvolutionarySearch(population_size=64),
                         num_threads=args.workers)
    ctx.pre_tuning(max_trials=args.candidates, num_trials_per_iter=args.candidates,
                   design_spaces=ctx.generate_design_space(), database=ms.database.MemoryDatabase(),
                   cost_model=ms.cost_model.RandomModel())
    cands = list(ctx.generate_measure_candidates())[: args.candidates]
    mod_jsons = [tvm.ir.save_json(c.sch.mod) for c in cands]
    target_json = json.dumps(_target_json(tvm_target))
    out = tempfile.mkdtemp(prefix="crosstune-profile-")
    result = {"mode": os.environ.get("TVM_CUDA_COMPILE_MODE"), "candidates": len(cands), "workers": args.workers}
    mode = os.environ.get("TVM_CUDA_COMPILE_MODE")
    times = []
    for mj in mod_jsons[: args.serial]:
        t0 = time.perf_counter()
        try:
            worker.build(mj, target_json, out, None)
        except Exception as err:  # noqa: BLE001
            print(f"{mode}: build failed: {str(err).splitlines()[0][:200]}")
            continue
        times.append(time.perf_counter() - t0)
    result["serial_s"] = times
    print(f"{mode}: serial, one process: median {statistics.median(times):.2f} s per candidate "
          f"(min {min(times):.2f}, max {max(times):.2f})" if times else f"{mode}: no build succeeded")
    builder = make_builder(args.workers, "cuda")
    builder.pool.start()
    t0 = time.perf_counter()
    built = builder.build([ms.builder.BuilderInput(c.sch.mod, tvm_target) for c in cands])
    wall = time.perf_counter() - t0
    builder.close()
    failed = sum(1 for b in built if b.error_msg)
    result["pool_s_per_candidate"] = wall / len(cands)
    print(f"{mode}: pool of {args.workers}: {len(cands)} candidates in {wall:.1f} s "
          f"({wall / len(cands):.2f} s each, {failed} failed)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
