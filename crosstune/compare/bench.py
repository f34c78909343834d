"""`crosstune bench`: crosstune and its peers on one model, in one run, on the same seeded inputs.

crosstune is compiled for the target once per precision with the stored tuning records (as
`compile` would), every peer is prepared from the same ONNX file for the target's device ("cpu" or
"cuda") at each precision, every engine runs once on one dict of seeded inputs, and then:

- each engine's outputs are checked against the reference, with the tolerances of its precision
  (agreement.py): ONNX Runtime fp32 when it is among the peers, else crosstune fp32;
- every pair of engines that ran at the same precision is checked against each other, and each
  fp16 engine against the fp32 reference (the document's `agreement_pairs`);
- each is timed with the same warm-up/repeat rules (runtime/timing.py; CUDA events on GPUs).

The result is one results document (report/results.py): engines that cannot run here are in it with
the reason, not left out, and an engine that fails (an operator it rejects, say) is in it with the
one-line error while the others carry on.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from .engine import PRECISIONS, Unavailable, benchmark_rounds, check_device_precision
from .peers import PEERS


@dataclass
class BenchOptions:
    target: str = "host"
    against: tuple[str, ...] = ("onnxruntime",)
    precisions: tuple[str, ...] = ("fp32",)
    repeat: int = 30
    warmup: int = 3
    max_seconds: float | None = 20.0
    rounds: int = 5  # engines take turns being timed (`benchmark_rounds`); 1: one block each
    threads: int | None = None  # per engine (default: the target's num-cores, else this machine's cores)
    seed: int = 0
    input_shapes: dict[str, Any] = field(default_factory=dict)
    use_logs: bool = True
    db: str | None = None
    tuned_on: str | None = None  # whose tuning records (CompileOptions.tuned_on)
    layout: str | None = None  # crosstune's convolution layout (None: the target's)
    conv: str | None = None  # crosstune's 3x3 convolutions: direct, winograd, winograd-f2 (None: the store's, else direct)


@dataclass
class _Slot:
    """One engine at one precision: made (engine), run (outputs), or not (entry says why)."""

    name: str
    precision: str
    engine: Any = None
    outputs: dict | None = None
    entry: dict | None = None
    tuning: dict | None = None  # crosstune's slots: the coverage of this precision's build


def check_options(o: BenchOptions) -> None:
    unknown = [a for a in o.against if a not in PEERS]
    if unknown:
        raise UserError(f"unknown engine(s) {', '.join(unknown)} for --against; known: {', '.join(PEERS)}")
    bad = [p for p in o.precisions if p not in PRECISIONS]
    if bad:
        raise UserError(f"unknown precision(s) {', '.join(bad)}; known: {', '.join(PRECISIONS)}")
    if not o.precisions:
        raise UserError("--precision names no precision")
    if o.repeat < 1:
        raise UserError("--repeat must be >= 1")
    if o.rounds < 1:
        raise UserError("--rounds must be >= 1")


def bench(model: str | Path, o: BenchOptions, command: list[str], say: Callable[[str], None] = print) -> dict:
    """Run the comparison; returns the results document."""
    from .. import targets, zoo
    from ..compile import onnx_model
    from ..report import results
    from ..tensors import random_inputs
    from ..tuning.pools import cpu_count
    from .peers import make_peer

    check_options(o)
    o = replace(o, against=tuple(dict.fromkeys(o.against)), precisions=tuple(dict.fromkeys(o.precisions)))
    target = targets.get(o.target)
    if target.cross:
        raise UserError(f"bench times every engine on this machine; target '{target.name}' is {target.arch}: time "
                        f"it on a board with `crosstune run PACKAGE --rpc HOST:PORT --key KEY --json FILE`")
    device = target.device
    threads = o.threads or int(target.tvm.get("num-cores") or cpu_count())
    os.environ["TVM_NUM_THREADS"] = str(threads)  # read when TVM's thread pool starts
    src = onnx_model.with_shapes(onnx_model.load(model), o.input_shapes)
    origin = zoo.zoo_origin(src.proto)

    def entry(slot: _Slot, status: str, error: str) -> dict:
        version = slot.engine.version() if slot.engine is not None else None
        return results.engine_entry(slot.name, version, slot.precision, status=status, error=error, threads=threads)

    with tempfile.TemporaryDirectory(prefix="crosstune-bench-") as tmp:
        slots, info = _crosstune_slots(model, o, target, Path(tmp), say, entry)
    inputs = random_inputs(info.inputs, o.seed)

    for precision in o.precisions:
        for name in o.against:
            slot = _Slot(name, precision)
            if device != "cpu" or precision == "fp32":
                say(f"  preparing {name} ({precision}) ...")
            try:
                slot.engine = make_peer(name, src, origin, list(inputs), threads, device, precision)
            except Unavailable as err:
                slot.entry = entry(slot, "unavailable", str(err))
            except Exception as err:  # noqa: BLE001 - a peer that fails to prepare is reported, not fatal
                slot.entry = entry(slot, "failed", _line(err))
            slots.append(slot)

    for slot in slots:
        if slot.engine is not None:
            say(f"  running {slot.name} ({slot.precision}) ...")
            try:
                slot.outputs = slot.engine.run(inputs)
            except Exception as err:  # noqa: BLE001 - reported in the results
                slot.entry = entry(slot, "failed", _line(err))

    ref = _reference(slots, o, src, origin, inputs, threads, device, say)
    timed = [s for s in slots if s.outputs is not None]
    agreements = {id(s): (_agree(s, ref) if ref is not None and s is not ref else None) for s in timed}
    say(f"  timing {', '.join(f'{s.name} ({s.precision})' for s in timed)}"
        + (f" in {o.rounds} rounds, taking turns ..." if o.rounds > 1 else " ..."))
    measured = benchmark_rounds([s.engine for s in timed], inputs, rounds=o.rounds, warmup=o.warmup,
                                repeat=o.repeat, max_seconds=o.max_seconds)
    for slot, stats in zip(timed, measured):
        agreement = agreements[id(slot)]
        if isinstance(stats, BaseException):
            slot.entry = results.engine_entry(slot.name, slot.engine.version(), slot.precision, status="failed",
                                              error=_line(stats), agreement=agreement, threads=threads)
            continue
        slot.entry = results.engine_entry(slot.name, slot.engine.version(), slot.precision, stats,
                                          agreement=agreement, threads=threads,
                                          tuning=slot.tuning)

    return results.new_document(
        model=results.model_info(info, inputs), target=results.target_info(info.target), command=command,
        reference=ref.name if ref is not None else None,
        engines=_ordered([s.entry for s in slots], o.precisions, o.against),
        agreement_pairs=[results.pair_json(*p) for p in _pairs(slots, ref, o.precisions)],
    )


def _crosstune_slots(model, o: BenchOptions, target, tmp: Path, say, entry):
    """crosstune compiled and loaded once per precision; (slots, the PackageInfo of one build).
    If no precision builds, the first build error is raised: there is nothing to compare with."""
    from .. import compile as _compile
    from ..report import results
    from ..runtime import load
    from .engine import CrosstuneEngine

    slots, info, first_error = [], None, None
    for precision in o.precisions:
        slot = _Slot("crosstune", precision)
        slots.append(slot)
        try:
            check_device_precision(target.device, precision)
        except Unavailable as err:
            slot.entry = entry(slot, "unavailable", str(err))
            continue
        say(f"  compiling for {target.name} ({precision}) ...")
        try:
            res = _compile.compile_model(model, _compile.CompileOptions(
                target=o.target, output=str(tmp / f"model-{precision}.ctm"), input_shapes=o.input_shapes,
                use_logs=o.use_logs, db=o.db, tuned_on=o.tuned_on, precision=precision, layout=o.layout,
                conv=o.conv if precision == "fp32" else None))
        except Exception as err:  # noqa: BLE001 - one precision failing leaves the others
            first_error = first_error or err
            slot.entry = entry(slot, "failed", _line(err))
            continue
        info = info or res.info
        slot.tuning = results.tuning_info(res.info.build.get("tuning"), layout=res.info.build.get("layout"),
                                          conv=res.info.build.get("conv"))
        try:
            slot.engine = CrosstuneEngine(load(res.package), precision)
        except Exception as err:  # noqa: BLE001 - built but cannot run here (no GPU, say)
            slot.entry = entry(slot, "failed", _line(err))
    if info is None:
        if first_error is not None:
            raise first_error
        raise UserError(f"target '{target.name}' is a {target.device} target: it runs fp32 only, and "
                        f"--precision asks for {', '.join(o.precisions)}")
    return slots, info


def _reference(slots, o, src, origin, inputs, threads, device, say) -> _Slot | None:
    """The fp32 engine every other is checked against: ONNX Runtime when it is a peer (made for
    the purpose when fp32 itself is not timed), else crosstune fp32; None when neither ran."""
    from .peers import make_peer

    by = {(s.name, s.precision): s for s in slots}
    if "onnxruntime" in o.against and ("onnxruntime", "fp32") not in by:
        slot = _Slot("onnxruntime", "fp32")
        say("  running onnxruntime (fp32, the reference) ...")
        try:
            slot.engine = make_peer("onnxruntime", src, origin, list(inputs), threads, device, "fp32")
            slot.outputs = slot.engine.run(inputs)
            return slot
        except Exception:  # noqa: BLE001 - no reference from ONNX Runtime; crosstune's below
            pass
    for name in ("onnxruntime", "crosstune"):
        slot = by.get((name, "fp32"))
        if slot is not None and slot.outputs is not None:
            return slot
    return None


def _agree(slot: _Slot, ref: _Slot):
    from .agreement import compare_at

    label = ref.name if slot.precision == ref.precision else f"{ref.name} {ref.precision}"
    return compare_at(slot.outputs, ref.outputs, slot.precision, actual_name=slot.name, expected_name=label)


def _pairs(slots: list[_Slot], ref: _Slot | None, precisions):
    """(Agreement, precision, a's precision, b's precision) for every pair of engines that ran at one
    precision, and for each engine at a lower precision against the fp32 reference. In a pair, b
    is the more trusted engine (the reference, then crosstune, then the peers in --against order),
    so relative errors are relative to it."""
    from .agreement import compare_at

    def trust(s):
        return (s is not ref and not (ref is not None and s.name == ref.name), s.name != "crosstune")

    out = []
    for precision in precisions:
        ran = sorted((s for s in slots if s.precision == precision and s.outputs is not None), key=trust)
        for i, b in enumerate(ran):
            for a in ran[i + 1:]:
                out.append((compare_at(a.outputs, b.outputs, precision, actual_name=a.name, expected_name=b.name),
                            precision, precision, precision))
        if ref is not None and precision != ref.precision:
            for a in ran:
                out.append((compare_at(a.outputs, ref.outputs, precision, actual_name=a.name, expected_name=ref.name),
                            precision, precision, ref.precision))
    return out


def _ordered(entries: list[dict], precisions: tuple[str, ...], against: tuple[str, ...]) -> list[dict]:
    """Precisions in the order asked; within one, crosstune first, then the peers in the order asked."""
    order = {p: i for i, p in enumerate(precisions)}
    rank = {name: i + 1 for i, name in enumerate(against)}
    return sorted(entries, key=lambda e: (order.get(e["precision"], 0), rank.get(e["name"], 0)))


def _line(err: BaseException) -> str:
    """One line for an engine's error: a UserError's own message, else the type and its first line."""
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    first = lines[0].strip() if lines else ""
    if isinstance(err, UserError) and first:
        return first
    return f"{type(err).__name__}: {first}".rstrip(": ")
