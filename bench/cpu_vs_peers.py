"""crosstune (stored tuning logs) vs its CPU peers, batch 1, 2 threads each, one run, same inputs.

    TVM_NUM_THREADS=2 python bench/cpu_vs_peers.py [--models resnet50,mobilenetv2,encoder] [--repeat 30]

Engines: crosstune compiled with the stored records in logs/<preset>/ (what `make demo` gets),
crosstune untuned (TVM default schedules, timed on its own), ONNX Runtime (all graph optimisations), OpenVINO
(f32 inference precision hint, latency mode) and PyTorch eager (the zoo's torch definitions, the
same seeded weights). Every engine gets the same seeded inputs; outputs are checked against ONNX
Runtime. The engines take turns being timed (`--rounds`, 5: each gets a fifth of `--repeat` in
every round, samples pooled), so a machine whose speed drifts slows them all alike; each turn starts
once the previous engine's worker threads have stopped spinning (`compare.engine.settle`; before
2026-12-07 they did not, and the engine timed after TVM or ONNX Runtime shared the 2 cores with
their spinning threads). Prints median latencies and each peer's ratio to crosstune (>1: crosstune is faster), and
how many trials the stored records hold for each model's kernels. Writes one results document per
model, bench/results/cpu_vs_peers-<preset>.<model>.results.json (`crosstune report` turns them into
a report), and the printed table as bench/results/cpu_vs_peers-<preset>.txt. Needs
`pip install openvino` (the `bench` extra).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

THREADS = 2
os.environ.setdefault("TVM_NUM_THREADS", str(THREADS))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))


from _common import RESULTS, document, median, run_models, write_documents  # noqa: E402 - bench/ is on sys.path


def stored_trials(onnx_path: Path, target) -> dict:
    """Trials the store holds for this model's kernels (covered/total, trials per tuned kernel)."""
    from crosstune.compile import onnx_model, pipeline, relax_import
    from crosstune.tuning import logstore
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

    from crosstune.tuning.machines import records_machine

    store = logstore.store_for(target)
    index = store.load().view(records_machine(target))  # as compile reads it on this machine
    src = onnx_model.with_shapes(onnx_model.load(onnx_path), {})
    mod = relax_import.to_relax(src).mod
    layout, _ = pipeline.resolve_layout(mod, target, ["fp32"], index)  # what compile picks
    prepared = pipeline.workloads(mod, target, "fp32", layout)
    counts = []
    for task in pipeline.extract_tasks(prepared, target):
        wl, _ = ms.database.Workload(_normalize_mod(task.dispatched[0])).as_json()
        counts.append(index.trials(wl))
    tuned = [c for c in counts if c]
    return {"store": str(store.path), "layout": layout, "kernels": len(counts), "kernels_with_records": len(tuned),
            "trials": sum(counts), "min_trials_per_tuned_kernel": min(tuned) if tuned else 0}


def bench_model(name: str, work: Path, repeat: int, max_seconds: float, rounds: int) -> dict:
    """The results document of one zoo model: every engine, timed and checked against ONNX Runtime."""
    import crosstune
    from crosstune import targets, zoo
    from crosstune.compare import CrosstuneEngine, compare
    from crosstune.compare.engine import benchmark_rounds
    from crosstune.compare.onnxruntime import OnnxRuntimeEngine
    from crosstune.report import results

    onnx_path = work / f"{name}.onnx"
    zoo.export(name, onnx_path)
    target = targets.get("host")
    trials = stored_trials(onnx_path, target)["trials"]
    engines, tuning, info = [], {}, None
    for label, use_logs in (("crosstune", True), ("crosstune-untuned", False)):
        res = crosstune.compile(onnx_path, target="host", output=work / f"{name}.{label}.ctm", use_logs=use_logs)
        eng = CrosstuneEngine(crosstune.load(res.package))
        eng.name = label
        engines.append(eng)
        coverage = res.info.build.get("tuning")
        tuning[label] = results.tuning_info(coverage, trials if coverage else None, layout=res.info.build.get("layout"),
                                              conv=res.info.build.get("conv"))
        info = info or res.info
    inputs = engines[0].compiled.example_inputs(seed=0)
    engines.append(OnnxRuntimeEngine(onnx_path.read_bytes(), threads=THREADS))
    entries = []
    from crosstune.compare.peers import OpenVinoEngine, TorchEngine

    for peer, factory in (("openvino", lambda: OpenVinoEngine(onnx_path, THREADS)),
                          ("torch", lambda: TorchEngine(name, 0, list(inputs), THREADS))):
        try:
            engines.append(factory())
        except Exception as err:  # noqa: BLE001 - a missing peer is reported, not fatal
            entries.append(results.engine_entry(peer, None, "fp32", status="unavailable", threads=THREADS,
                                                error=(str(err).splitlines() or [type(err).__name__])[0]))
    reference = engines[2].run(inputs)
    agreements = {e.name: None if e.name == "onnxruntime" else compare(e.run(inputs), reference, rtol=1e-3, atol=1e-4)
                  for e in engines}
    # The untuned build (seconds a run) is timed on its own; the others take turns, `rounds` rounds,
    # so the machine's drift over minutes (2x on these VMs) meets every engine alike.
    timed = [e for e in engines if e.name != "crosstune-untuned"]
    stats = dict(zip([e.name for e in timed], benchmark_rounds(timed, inputs, rounds=rounds, warmup=3, repeat=repeat,
                                                              max_seconds=max_seconds)))
    for e in engines:
        st = stats.get(e.name) or e.benchmark(inputs, warmup=1, repeat=repeat, max_seconds=20)
        if isinstance(st, BaseException):
            raise st
        entries.append(results.engine_entry(e.name, e.version(), "fp32", st, agreement=agreements[e.name],
                                            threads=THREADS, tuning=tuning.get(e.name)))
    return document(info, inputs, entries)


NAMES = ["crosstune", "crosstune-untuned", "onnxruntime", "openvino", "torch"]


def summary(docs: list[dict]) -> str:
    """The printed table: medians, the best of ONNX Runtime and OpenVINO over crosstune, tuning."""
    from crosstune.report.analysis import tuning_text
    from crosstune.textfmt import table

    lines = []
    for doc in docs:
        cells = [doc["model"]["name"]] + [f"{m:.2f}" if (m := median(doc, n)) is not None else "n/a" for n in NAMES]
        peers = [m for n in ("onnxruntime", "openvino") if (m := median(doc, n)) is not None]
        cells.append(f"{min(peers) / median(doc, 'crosstune'):.2f}x" if peers else "n/a")
        cells.append(tuning_text(next(e["tuning"] for e in doc["engines"] if e["name"] == "crosstune")))
        lines.append(cells)
    text = table(["MODEL", *[f"{n} ms" for n in NAMES], "BEST ORT/OV vs CROSSTUNE", "STORED TUNING"], lines)
    first = docs[0]
    machine = first["machine"]
    kind = f" ({machine['cpu_id']})" if machine.get("cpu_id") else ""
    versions = {e["name"]: e["version"] for e in first["engines"]}
    disagree = [f"{d['model']['name']}/{e['name']}" for d in docs for e in d["engines"]
                if e["agreement"] is not None and not e["agreement"]["passed"]]
    rounds = next(e["latency_ms"].get("rounds", 1) for e in first["engines"] if e["name"] == "crosstune")
    return (text + f"\nmedian latency, batch 1, {THREADS} threads per engine, timed in {rounds} rounds taking turns; "
            "ratio > 1 means crosstune is faster\n"
            f"machine: {machine['cpu']}{kind}, {machine['cores']} cores ({first['target']['name']}); {first['created']}\n"
            f"versions: {versions}\n"
            f"engines whose outputs disagree with onnxruntime (rtol 1e-3, atol 1e-4): {', '.join(disagree) or 'none'}\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet50,mobilenetv2,encoder")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--max-seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=5, help="engines take turns being timed, in this many rounds")
    ap.add_argument("--tag", help="appended to the results' file names (cpu_vs_peers-<preset>-<tag>.*)")
    args = ap.parse_args()
    from crosstune.targets import host

    docs = run_models(args.models, lambda name, work: bench_model(name, work, args.repeat, args.max_seconds, args.rounds))
    stem = f"cpu_vs_peers-{host.detect().preset}" + (f"-{args.tag}" if args.tag else "")
    paths = write_documents(stem, docs)
    text = summary(docs)
    (RESULTS / f"{stem}.txt").write_text(text)
    print(text + "wrote " + ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
