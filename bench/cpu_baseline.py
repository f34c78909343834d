"""Untuned crosstune vs ONNX Runtime on this machine's CPU: the zoo models at batch 1, the same
seeded inputs for both engines, timed in one run with crosstune's timing (warm-up excluded).

    python bench/cpu_baseline.py [--models resnet50,mobilenetv2,encoder] [--repeat 20]

Writes bench/results/cpu_baseline-<preset>.json (and .txt) and prints a table with the ratio to ONNX Runtime.
Absolute times on shared machines are noisy; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import crosstune
from crosstune import targets, zoo
from crosstune.compare import CrosstuneEngine, compare
from crosstune.compare.onnxruntime import OnnxRuntimeEngine
from crosstune.targets import host
from crosstune.textfmt import ms, table

from _common import RESULTS, results_doc, run_models  # noqa: E402 - bench/ is on sys.path


def bench_model(name: str, work: Path, repeat: int, max_seconds: float) -> dict:
    onnx_path = work / f"{name}.onnx"
    zoo.export(name, onnx_path)
    t = time.perf_counter()
    result = crosstune.compile(onnx_path, target="host", output=work / f"{name}.ctm", use_logs=False)
    compile_s = time.perf_counter() - t
    compiled = crosstune.load(result.package)
    inputs = compiled.example_inputs(seed=0)
    engines = [CrosstuneEngine(compiled), OnnxRuntimeEngine(onnx_path.read_bytes())]
    outputs = {e.name: e.run(inputs) for e in engines}
    agreement = compare(outputs["crosstune"], outputs["onnxruntime"], rtol=1e-3, atol=1e-4)
    row = {"model": name, "compile_s": round(compile_s, 1), "agreement_passed": agreement.passed, "engines": {}}
    for e in engines:
        st = e.benchmark(inputs, warmup=3, repeat=repeat, max_seconds=max_seconds)
        row["engines"][e.name] = {"version": e.version(), **st.to_json()}
    row["ratio_to_onnxruntime"] = round(
        row["engines"]["crosstune"]["median_ms"] / row["engines"]["onnxruntime"]["median_ms"], 1
    )
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mobilenetv2,encoder,resnet50")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    args = ap.parse_args()
    target = targets.get("host")
    cpu = host.detect()
    rows = run_models(args.models, lambda name, work: bench_model(name, work, args.repeat, args.max_seconds))
    doc = results_doc("cpu_baseline", rows, tuning="none (TVM default schedules)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"cpu_baseline-{cpu.preset}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        [r["model"], ms(r["engines"]["crosstune"]["median_ms"]), ms(r["engines"]["onnxruntime"]["median_ms"]),
         f"{r['ratio_to_onnxruntime']}x", "yes" if r["agreement_passed"] else "NO"]
        for r in rows
    ]
    text = table(["MODEL (batch 1)", "CROSSTUNE ms", "ONNXRUNTIME ms", "CROSSTUNE/ORT", "OUTPUTS AGREE"], lines, "lrrrl")
    text += f"\nmachine: {target.detected}; untuned; {doc['date']}\ncommand: {doc['command']}\n"
    out.with_suffix(".txt").write_text(text)
    print(text + f"wrote {out} and {out.with_suffix('.txt')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
