"""Untuned crosstune vs ONNX Runtime on this machine's CPU: the zoo models at batch 1, the same
seeded inputs for both engines, timed in one run with crosstune's timing (warm-up excluded).

    python bench/cpu_baseline.py [--models resnet50,mobilenetv2,encoder] [--repeat 20]

Writes one results document per model, bench/results/cpu_baseline-<preset>.<model>.results.json
(`crosstune report` reads them), and prints a table with the ratio to ONNX Runtime, also written
to bench/results/cpu_baseline-<preset>.txt.
Absolute times on shared machines are noisy; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import crosstune
from crosstune import targets, zoo
from crosstune.compare import CrosstuneEngine, compare
from crosstune.compare.onnxruntime import OnnxRuntimeEngine
from crosstune.report import results
from crosstune.targets import host
from crosstune.textfmt import ms, table

from _common import RESULTS, document, median, run_models, write_documents  # noqa: E402 - bench/ is on sys.path


def bench_model(name: str, work: Path, repeat: int, max_seconds: float) -> dict:
    """The results document of one zoo model: untuned crosstune and ONNX Runtime, default threads."""
    onnx_path = work / f"{name}.onnx"
    zoo.export(name, onnx_path)
    result = crosstune.compile(onnx_path, target="host", output=work / f"{name}.ctm", use_logs=False)
    compiled = crosstune.load(result.package)
    inputs = compiled.example_inputs(seed=0)
    ours, ort = CrosstuneEngine(compiled), OnnxRuntimeEngine(onnx_path.read_bytes())
    agreement = compare(ours.run(inputs), ort.run(inputs), rtol=1e-3, atol=1e-4)
    entries = [
        results.engine_entry(e.name, e.version(), "fp32", e.benchmark(inputs, warmup=3, repeat=repeat, max_seconds=max_seconds),
                             agreement=agreement if e is ours else None,
                             tuning=results.tuning_info(None) if e is ours else None)
        for e in (ours, ort)
    ]
    return document(result.info, inputs, entries)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mobilenetv2,encoder,resnet50")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    args = ap.parse_args()
    target = targets.get("host")
    docs = run_models(args.models, lambda name, work: bench_model(name, work, args.repeat, args.max_seconds))
    stem = f"cpu_baseline-{host.detect().preset}"
    paths = write_documents(stem, docs)
    lines = []
    for doc in docs:
        ours, ort = median(doc, "crosstune"), median(doc, "onnxruntime")
        agrees = doc["engines"][0]["agreement"]["passed"]
        lines.append([doc["model"]["name"], ms(ours), ms(ort), f"{ours / ort:.1f}x", "yes" if agrees else "NO"])
    text = table(["MODEL (batch 1)", "CROSSTUNE ms", "ONNXRUNTIME ms", "CROSSTUNE/ORT", "OUTPUTS AGREE"], lines, "lrrrl")
    text += f"\nmachine: {target.detected}; untuned; {docs[0]['created']}\ncommand: {docs[0]['command']}\n"
    (RESULTS / f"{stem}.txt").write_text(text)
    print(text + "wrote " + ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
