"""`crosstune bench`: crosstune and its peers on one model, in one run, on the same seeded inputs.

crosstune is compiled for the target with the stored tuning records (as `compile` would), every
peer is prepared from the same ONNX file, each engine's outputs are checked against the reference
(ONNX Runtime when it is among the peers), and each is timed with the same warm-up/repeat rules
(runtime/timing.py). The result is one results document (report/results.py): engines that cannot
run here are in it with the reason, not left out.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from .peers import PEERS, Unavailable

PRECISIONS = ("fp32", "fp16")


@dataclass
class BenchOptions:
    target: str = "host"
    against: tuple[str, ...] = ("onnxruntime",)
    precisions: tuple[str, ...] = ("fp32",)
    repeat: int = 30
    warmup: int = 3
    max_seconds: float | None = 20.0
    threads: int | None = None  # per engine (default: the target's num-cores, else this machine's cores)
    seed: int = 0
    input_shapes: dict[str, Any] = field(default_factory=dict)
    use_logs: bool = True
    db: str | None = None
    rtol: float = 1e-3
    atol: float = 1e-4


def check_options(o: BenchOptions) -> None:
    unknown = [a for a in o.against if a not in PEERS]
    if unknown:
        raise UserError(f"unknown engine(s) {', '.join(unknown)} for --against; known: {', '.join(PEERS)}")
    bad = [p for p in o.precisions if p not in PRECISIONS]
    if bad:
        raise UserError(f"unknown precision(s) {', '.join(bad)}; known: {', '.join(PRECISIONS)}")
    if o.repeat < 1:
        raise UserError("--repeat must be >= 1")


def bench(model: str | Path, o: BenchOptions, command: list[str], say: Callable[[str], None] = print) -> dict:
    """Run the comparison; returns the results document."""
    from .. import compile as _compile
    from .. import targets, zoo
    from ..compile import onnx_model
    from ..report import results
    from ..runtime import load
    from ..tuning.pools import cpu_count
    from . import CrosstuneEngine, compare

    check_options(o)
    target = targets.get(o.target)
    if target.cross:
        raise UserError(f"bench times every engine on this machine; target '{target.name}' is {target.arch}: time "
                        f"it on a board with `crosstune run PACKAGE --rpc HOST:PORT --key KEY --json FILE`")
    threads = o.threads or int(target.tvm.get("num-cores") or cpu_count())
    os.environ["TVM_NUM_THREADS"] = str(threads)  # read when TVM's thread pool starts
    src = onnx_model.with_shapes(onnx_model.load(model), o.input_shapes)
    origin = zoo.zoo_origin(src.proto)

    with tempfile.TemporaryDirectory(prefix="crosstune-bench-") as tmp:
        say(f"  compiling for {target.name} ...")
        res = _compile.compile_model(model, _compile.CompileOptions(
            target=o.target, output=str(Path(tmp) / "model.ctm"), input_shapes=o.input_shapes,
            use_logs=o.use_logs, db=o.db))
        ours = CrosstuneEngine(load(res.package))
        inputs = ours.compiled.example_inputs(o.seed)
        info = ours.compiled.info

    engines, entries = [ours], []
    for name in o.against:
        say(f"  preparing {name} ...")
        try:
            engines.append(_make_peer(name, src, origin, list(inputs), threads, target.device))
        except Unavailable as err:
            entries.append(results.engine_entry(name, None, "fp32", status="unavailable", error=str(err), threads=threads))
        except Exception as err:  # noqa: BLE001 - a peer that fails to prepare is reported, not fatal
            entries.append(results.engine_entry(name, None, "fp32", status="failed", error=_line(err), threads=threads))

    reference = next((e for e in engines if e.name == "onnxruntime"), None)
    ref_out = reference.run(inputs) if reference is not None else None
    tuning = results.tuning_info(info.build.get("tuning"))
    for precision in o.precisions:
        for e in engines:
            if precision != "fp32":
                entries.append(results.engine_entry(
                    e.name, e.version(), precision, status="unavailable", threads=threads,
                    error=f"{precision} is measured on GPU targets; CPU engines here run fp32"))
                continue
            say(f"  timing {e.name} ({precision}) ...")
            try:
                agreement = None
                if ref_out is not None and e is not reference:
                    agreement = compare(e.run(inputs), ref_out, rtol=o.rtol, atol=o.atol)
                stats = e.benchmark(inputs, warmup=o.warmup, repeat=o.repeat, max_seconds=o.max_seconds)
            except Exception as err:  # noqa: BLE001 - reported in the results
                entries.append(results.engine_entry(e.name, e.version(), precision, status="failed",
                                                    error=_line(err), threads=threads))
                continue
            entries.append(results.engine_entry(e.name, e.version(), precision, stats, agreement=agreement,
                                                threads=threads, tuning=tuning if e is ours else None))
    return results.new_document(
        model=results.model_info(info, inputs), target=results.target_info(info.target), command=command,
        reference="onnxruntime" if reference is not None else None, engines=_ordered(entries, o.precisions, o.against),
    )


def _make_peer(name: str, src, origin, input_names: list[str], threads: int, device: str):
    from .onnxruntime import OnnxRuntimeEngine
    from .peers import OpenVinoEngine, TorchEngine, tensorrt_engine

    zoo_name, seed = origin if origin else (None, 0)
    if name == "onnxruntime":
        return OnnxRuntimeEngine(src.proto.SerializeToString(), threads=threads)
    if name == "openvino":
        if src.path is None:
            raise Unavailable("openvino reads the model from a file")
        return OpenVinoEngine(src.path, threads)
    if name in ("torch", "torch-compile"):
        return TorchEngine(zoo_name, seed, input_names, threads, compiled=name == "torch-compile")
    return tensorrt_engine(device)


def _ordered(entries: list[dict], precisions: tuple[str, ...], against: tuple[str, ...]) -> list[dict]:
    """Precisions in the order asked; within one, crosstune first, then the peers in the order asked."""
    order = {p: i for i, p in enumerate(precisions)}
    rank = {name: i + 1 for i, name in enumerate(against)}
    return sorted(entries, key=lambda e: (order.get(e["precision"], 0), rank.get(e["name"], 0)))


def _line(err: BaseException) -> str:
    lines = [l for l in str(err).strip().splitlines() if l.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
