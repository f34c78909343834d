"""Upgrade the JSON that bench/cpu_baseline.py and bench/cpu_vs_peers.py wrote before the results
format existed: one results document per model. Those runs took an hour; their figures are the
project's real CPU numbers, so they are converted rather than measured again.

    python -m crosstune.report.legacy bench/results/cpu_vs_peers-x86-avx512.json [-o DIR]

writes DIR/<stem>.<model>.results.json (DIR defaults to the input's folder). What the old files
did not record stays null: the model's sha256, the TVM target dict, per-output errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import results

# The old scripts checked agreement with these tolerances (crosstune's defaults).
RTOL, ATOL = 1e-3, 1e-4


def convert(legacy: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The results documents of one old bench file; raises ResultsError if it is not one."""
    kind = legacy.get("benchmark") if isinstance(legacy, dict) else None
    if kind not in ("cpu_baseline", "cpu_vs_peers"):
        raise results.ResultsError(where, "not a cpu_baseline or cpu_vs_peers results file")
    machine = legacy["machine"]
    # cpu_baseline stored the host target's description ("x86-avx512, 2 cores (...)") as preset.
    preset = str(machine["preset"]).split(",")[0].strip()
    target = {"name": preset, "preset": "host", "device": "cpu", "tvm": None,
              "detected": f"{preset}, {machine['cores']} cores ({machine['cpu']})"}
    host = {"cpu": machine["cpu"], "cores": machine["cores"], "arch": _arch(machine.get("platform", "")),
            "platform": machine.get("platform"), "gpu": None}
    docs = []
    for row in legacy["results"]:
        convert_row = _peers_engines if kind == "cpu_vs_peers" else _baseline_engines
        docs.append(results.new_document(
            model=_model(row["model"]), target=target, machine=host, command=legacy["command"],
            reference="onnxruntime", engines=convert_row(row, legacy), created=legacy["date"],
        ))
        docs[-1]["crosstune_version"] = _crosstune_version(row)
    for doc in docs:
        results.validate(doc, where)
    return docs


def _arch(platform_text: str) -> str | None:
    return next((a for a in ("x86_64", "aarch64", "armv7l") if a in platform_text), None)


def _crosstune_version(row: dict[str, Any]) -> str:
    """From the crosstune engine's version string, 'crosstune 0.1.0, TVM 0.27.0.post1'."""
    version = row["engines"]["crosstune"]["version"]
    return version.split(",")[0].removeprefix("crosstune ").strip()


def _model(name: str) -> dict[str, Any]:
    """The zoo model's inputs, from the zoo's own description ('input_ids 1x128 int64, ...')."""
    from ..zoo import TORCH_MODELS

    inputs = []
    for part in TORCH_MODELS[name][1].split(","):
        iname, shape, dtype = part.split()
        inputs.append({"name": iname, "shape": [int(d) for d in shape.split("x")], "dtype": dtype})
    return {"name": name, "sha256": None, "inputs": inputs, "source": "crosstune zoo, seed 0"}


def _latency(e: dict[str, Any]) -> dict[str, Any]:
    return {"median": e["median_ms"], "p90": e["p90_ms"], "min": e["min_ms"], "max": e["max_ms"],
            "mean": e["mean_ms"], "count": e["count"], "warmup": e["warmup"], "truncated": e["truncated"]}


def _agreement(passed: bool) -> dict[str, Any]:
    return {"reference": "onnxruntime", "passed": passed, "rtol": RTOL, "atol": ATOL,
            "max_abs": None, "max_rel": None}


def _entry(name: str, e: dict[str, Any], *, agreement, threads, tuning) -> dict[str, Any]:
    return {"name": name, "version": e["version"], "precision": "fp32", "status": "ok",
            "latency_ms": _latency(e), "agreement": agreement, "emulated": False, "threads": threads,
            "tuning": tuning, "error": None}


UNTUNED = {"logs": None, "tasks": None, "covered": 0, "trials": 0, "records": None}


def _peers_engines(row: dict[str, Any], legacy: dict[str, Any]) -> list[dict[str, Any]]:
    threads = legacy.get("threads_per_engine")
    stored = row["tuning"]
    coverage = stored.get("compile_coverage") or {}
    tuned = {"logs": stored["store"], "tasks": stored["kernels"], "covered": stored["kernels_with_records"],
             "trials": stored["trials"], "records": coverage.get("records_in_database")}
    out = []
    for name, e in row["engines"].items():
        if "median_ms" not in e:  # a peer that could not be set up (not installed)
            out.append(results.engine_entry(name, None, "fp32", status="unavailable", error=e["error"], threads=threads))
            continue
        tuning = tuned if name == "crosstune" else UNTUNED if name == "crosstune-untuned" else None
        # ONNX Runtime is the reference: the old file's "agrees with itself" is not a check.
        agreement = None if name == "onnxruntime" else _agreement(e["agrees_with_onnxruntime"])
        out.append(_entry(name, e, agreement=agreement, threads=threads, tuning=tuning))
    return out


def _baseline_engines(row: dict[str, Any], legacy: dict[str, Any]) -> list[dict[str, Any]]:
    """cpu_baseline timed untuned crosstune and ONNX Runtime, each with its default thread count."""
    out = []
    for name, e in row["engines"].items():
        ours = name == "crosstune"
        out.append(_entry(name, e, agreement=_agreement(row["agreement_passed"]) if ours else None,
                          threads=None, tuning=UNTUNED if ours else None))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m crosstune.report.legacy", description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="old bench/results/*.json files")
    ap.add_argument("-o", "--output-dir", help="where the results documents go (default: next to each input)")
    args = ap.parse_args(argv)
    failed = 0
    for name in args.files:
        path = Path(name)
        try:
            docs = convert(json.loads(path.read_text(encoding="utf-8")), str(path))
        except results.ResultsError as err:
            print(err, file=sys.stderr)
            failed += 1
            continue
        except (OSError, ValueError, KeyError, TypeError) as err:
            print(f"{path}: cannot convert ({type(err).__name__}: {err})", file=sys.stderr)
            failed += 1
            continue
        out_dir = Path(args.output_dir) if args.output_dir else path.parent
        for doc in docs:
            out = results.write(out_dir / f"{path.stem}.{doc['model']['name']}.results.json", doc)
            print(out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
