"""Layer by layer: crosstune's kernels inside the model against OpenVINO's, for the zoo's CNNs.

    TVM_NUM_THREADS=2 python bench/cpu_layers.py [--models resnet50,mobilenetv2] [--rounds 3] [--tag T]

For each model, in one process and in rounds taking turns (each turn after the other engine's
threads settle), times every kernel of crosstune's package built with the stored records
(`CompiledModel.profile`: the VM's per-call hook) and every layer of OpenVINO (f32 precision hint,
latency mode, its own per-layer counters, `PERF_COUNT`), 2 threads each. Layers are matched by what
they compute, not by name: a convolution or matrix product by its filter's size (a Winograd filter
counted as its 3x3 one), output channels and output pixels, so fused kernels, layouts and Winograd
forms line up with OpenVINO's fused layers. Prints, per matched layer shape, both sums (us a model
run) and their ratio, largest loss first, and what the rest of each engine's time went to. Writes
the table to bench/results/cpu_layers-<preset>[-<tag>].txt. Needs `pip install openvino`.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import sys
import time
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--models", default="resnet50,mobilenetv2")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--runs", type=int, default=12, help="profiled runs per engine and round")
ap.add_argument("--tag", default="")
args = ap.parse_args()
os.environ.setdefault("TVM_NUM_THREADS", str(args.threads))

from _common import RESULTS, graph_shapes  # noqa: E402 - bench/ is on sys.path


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text.replace("int64", "")))


def kernel_keys(package_path: Path, onnx_path: Path, form: str | None) -> dict[str, tuple]:
    """crosstune kernel name -> (filter elements as 3x3, output channels, output pixels) for its
    convolutions and matrix products, from the tuning workloads of the package's build form."""
    import tvm

    from crosstune import targets
    from crosstune.compile import pipeline, relax_import

    _, rm = relax_import.load_and_import(onnx_path, {})
    mod = pipeline.workloads(rm.mod, targets.get("host"), "fp32", form)
    keys = {}
    for gv, func in mod.functions.items():
        name = gv.name_hint
        if not isinstance(func, tvm.tirx.PrimFunc) or not ("conv2d" in name or "matmul" in name):
            continue
        head = func.script().split("T.func_attr")[0]
        bufs = [_shape(b) for b in re.findall(r"T\.Buffer\(\(((?:T\.int64\(\d+\)(?:, )?)+)\)", head)]
        if len(bufs) < 3:
            continue
        weight, out = bufs[1], bufs[-1]
        elems = 1
        for d in weight:
            elems *= d
        if "winograd" in name:  # (alpha, alpha, CO, CI) -> CO x CI x 3 x 3
            elems = elems // (weight[0] * weight[1]) * 9
        pixels = 1
        for d in out[:-1]:
            pixels *= d
        keys[name] = (elems, out[-1], pixels)
    return keys


def layer_keys(onnx_path: Path) -> dict[str, tuple]:
    """ONNX node name -> the same key, for Conv, Gemm and MatMul nodes (NCHW outputs)."""
    g, shapes = graph_shapes(onnx_path)
    keys = {}
    for node in g.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        w, out = shapes.get(node.input[1]), shapes.get(node.output[0])
        if not w or not out:
            continue
        elems = 1
        for d in w:
            elems *= d
        key = (elems, out[1], out[0] * out[2] * out[3]) if node.op_type == "Conv" else (elems, out[-1], out[0])
        keys[node.name] = key
        keys.setdefault(node.output[0], key)  # OpenVINO names some layers after their output (a model's last)
    return keys


def describe(key: tuple, names: dict[tuple, str]) -> str:
    return names.get(key, f"{key[0]} weights -> {key[1]} ch x {key[2]} px")


def bench_model(name: str, work: Path) -> str:
    import numpy as np
    import openvino as ov

    import crosstune
    from crosstune import zoo
    from crosstune.compare.engine import settle
    from crosstune.compile.pipeline import form_of

    onnx_path = work / f"{name}.onnx"
    zoo.export(name, onnx_path)
    res = crosstune.compile(onnx_path, target="host", output=work / f"{name}.ctm")
    ct = crosstune.load(res.package, threads=args.threads)
    build = ct.info.build
    form = form_of(build["layout"], build.get("conv")) if build.get("layout") else None
    ours_key = kernel_keys(res.package, onnx_path, form)
    theirs_key = layer_keys(onnx_path)
    names = {}
    for node, key in theirs_key.items():
        names.setdefault(key, node if node.startswith("/") or not names.get(key) else names[key])

    core = ov.Core()
    compiled = core.compile_model(str(onnx_path), "CPU", {
        "INFERENCE_NUM_THREADS": args.threads, "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True})
    request = compiled.create_infer_request()
    inputs = ct.example_inputs(seed=0)
    x = next(iter(inputs.values()))

    ours: dict[tuple, list] = collections.defaultdict(list)
    theirs: dict[tuple, list] = collections.defaultdict(list)
    ours_rest, theirs_rest, lat_ours, lat_theirs = [], [], [], []
    for _ in range(args.rounds):
        settle()
        for _ in range(3):
            request.infer({0: x})
        for _ in range(args.runs):
            t0 = time.perf_counter()
            request.infer({0: x})
            lat_theirs.append((time.perf_counter() - t0) * 1e3)
            per, rest = collections.defaultdict(float), 0.0
            for p in request.get_profiling_info():
                if p.status != p.Status.EXECUTED:
                    continue
                us = p.real_time.total_seconds() * 1e6
                key = theirs_key.get(re.sub(r"/WithoutBiases$", "", p.node_name))
                if key is None:
                    rest += us
                else:
                    per[key] += us
            for k, v in per.items():
                theirs[k].append(v)
            theirs_rest.append(rest)
        settle()
        lat_ours.append(ct.benchmark(inputs, warmup=3, repeat=args.runs).median_ms)
        prof = ct.profile(inputs, runs=args.runs)
        per, rest = collections.defaultdict(float), 0.0
        for call in prof.calls:
            key = ours_key.get(re.sub(r"_prepacked$", "", call.name))
            if key is None:
                rest += call.us_per_run
            else:
                per[key] += call.us_per_run
        for k, v in per.items():
            ours[k].append(v)
        ours_rest.append(rest)

    from crosstune.textfmt import table

    rows, tot_o, tot_t = [], 0.0, 0.0
    for key in sorted(set(ours) | set(theirs)):
        o = statistics.median(ours[key]) if key in ours else 0.0
        t = statistics.median(theirs[key]) if key in theirs else 0.0
        tot_o, tot_t = tot_o + o, tot_t + t
        rows.append((o - t, [describe(key, names)[:48], f"{o:.0f}", f"{t:.0f}", f"{o / t:.2f}" if t else "-", f"{o - t:+.0f}"]))
    rows.sort(key=lambda r: -r[0])
    body = [r[1] for r in rows]
    body.append(["all matched layers", f"{tot_o:.0f}", f"{tot_t:.0f}", f"{tot_o / tot_t:.2f}", f"{tot_o - tot_t:+.0f}"])
    body.append(["everything else", f"{statistics.median(ours_rest):.0f}", f"{statistics.median(theirs_rest):.0f}", "", ""])
    text = f"{name}: crosstune {statistics.median(lat_ours):.2f} ms, OpenVINO {statistics.median(lat_theirs):.2f} ms a run " \
           f"(medians, profiling on; crosstune's build: {form})\n"
    text += table(["LAYER (FIRST OF ITS SHAPE)", "CROSSTUNE US", "OPENVINO US", "RATIO", "DIFF US"], body)
    return text


def main() -> int:
    import tempfile

    from crosstune.targets import host

    preset = host.detect().preset
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            print(f"{name} ...", flush=True)
            parts.append(bench_model(name, Path(tmp)))
    text = "\n\n".join(parts) + "\n"
    text += ("each row: the layers of one shape (filter elements as 3x3, output channels and pixels), summed over a "
             "model run, medians over the rounds; ratio > 1: crosstune slower\n"
             f"both engines on {args.threads} threads, {args.rounds} rounds of {args.runs} profiled runs taking turns; "
             f"crosstune: the stored records of logs/{preset}/; machine: {host.detect().model}, {os.cpu_count()} cores "
             f"({preset}); {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
    out = RESULTS / f"cpu_layers-{preset}{'-' + args.tag if args.tag else ''}.txt"
    out.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
