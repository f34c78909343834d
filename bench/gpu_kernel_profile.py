"""Where a CUDA build's time goes, kernel by kernel (run on the GPU machine).

    python3 bench/gpu_kernel_profile.py MODEL.onnx [--target cuda] [--precision fp32|fp16]
        [--runs 20] [--json out.json]

Builds the model as `crosstune compile` does, with the stored records (logs/<preset>/, or
CROSSTUNE_LOGS), but with CUDA graphs off so that every kernel is launched from the host, runs it
`--runs` times under PyTorch's profiler (CUPTI sees every kernel of the process, TVM's included) and
prints each kernel's share of the GPU time, its launches per run, and whether a tuning record
scheduled it or TVM's default schedules (dlight) did. That tells which kernels the next tuning
minutes should go to. GPU time here is the sum of kernel durations: with CUDA graphs on, the
deployed module's latency is about that plus gaps between kernels."""

from __future__ import annotations

import argparse
import json
import re
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--target", default="cuda")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--layout", default=None, help="NCHW or NHWC (default: what compile picks)")
    ap.add_argument("--conv", default=None, help="direct or winograd (default: what compile picks)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    import tvm
    from tvm import relax

    from crosstune import targets
    from crosstune.compile import pipeline, relax_import
    from crosstune.tensors import random_inputs
    from crosstune.tuning import logstore

    target = targets.get(args.target)
    src, model = relax_import.load_and_import(args.model, {}, {})
    store = logstore.store_for(target, None)
    index = store.load()
    database = store.tvm_database(index, best_only=True)
    form, why = pipeline.resolve_layout(model.mod, target, [args.precision], index, args.layout, args.conv)
    print(f"convolutions: {pipeline.describe_form(form)} ({why})")
    built = pipeline.build(model.mod, model.weights, target, database, str(store.path),
                           precision=args.precision, cuda_graph=False,
                           layout=form)
    dev = tvm.cuda(0)
    vm = relax.VirtualMachine(built.executable, dev)
    feed = random_inputs(src.inputs, seed=0)
    inputs = [tvm.runtime.tensor(feed[s.name], dev) for s in src.inputs]
    weights = [w.copyto(dev) for w in built.weights]
    fn = vm["main"]
    for _ in range(5):
        fn(*inputs, *weights)
    dev.sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(args.runs):
            fn(*inputs, *weights)
        dev.sync()
        torch.cuda.synchronize()

    covered = set(built.coverage.covered) if built.coverage else set()
    kernels: dict[str, dict] = {}
    for ev in prof.key_averages():
        t = ev.device_time_total
        if not t or ev.count == 0 or ev.key.startswith(("Memcpy", "Memset", "cudaMemcpy")):
            continue
        func = re.sub(r"_kernel\d*$", "", ev.key)
        k = kernels.setdefault(func, {"kernel": func, "us_per_run": 0.0, "launches_per_run": 0})
        k["us_per_run"] += t / args.runs
        k["launches_per_run"] += ev.count // args.runs
    total = sum(k["us_per_run"] for k in kernels.values()) or 1.0
    rows = sorted(kernels.values(), key=lambda k: -k["us_per_run"])
    for k in rows:
        k["share"] = k["us_per_run"] / total
        k["tuned"] = k["kernel"] in covered
    tuned_us = sum(k["us_per_run"] for k in rows if k["tuned"])
    print(f"{src.name} {args.precision} on {torch.cuda.get_device_name()}: GPU time {total / 1e3:.3f} ms per run "
          f"in {sum(k['launches_per_run'] for k in rows)} launches; tuned kernels {tuned_us / total:.0%} of it, "
          f"default schedules {1 - tuned_us / total:.0%}  (records for {len(covered)} of "
          f"{built.coverage.tasks if built.coverage else '?'} workloads)")
    print(f"{'US/RUN':>8} {'SHARE':>6} {'CUM':>5} {'N':>3}  SCHEDULE  KERNEL")
    cum = 0.0
    for k in rows:
        cum += k["share"]
        print(f"{k['us_per_run']:8.1f} {k['share']:6.1%} {cum:5.0%} {k['launches_per_run']:3d}  "
              f"{'record' if k['tuned'] else 'default':8}  {k['kernel']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": src.name, "precision": args.precision, "gpu": torch.cuda.get_device_name(),
                       "gpu_ms_per_run": total / 1e3, "kernels": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
