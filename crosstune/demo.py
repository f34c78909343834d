"""The demo job (`crosstune demo`, what `make demo` runs): a zoo model exported, inspected,
compiled for this machine, verified against ONNX Runtime, and timed beside it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from .errors import VerificationFailed


def run_demo(model: str, workdir: Path, *, say: Callable[[str], None], repeat: int = 20) -> int:
    from . import targets, zoo
    from .compile import CompileOptions, compile_model
    from .compile.inspect import inspect_model
    from .compare import CrosstuneEngine
    from .compare.onnxruntime import OnnxRuntimeEngine
    from .runtime import load
    from .textfmt import ms, sci, table

    started = time.perf_counter()
    zoo.get(model)  # unknown names fail before anything is written
    workdir.mkdir(parents=True, exist_ok=True)
    onnx_path = workdir / f"{model}.onnx"
    pkg_path = workdir / f"{model}.host.ctm"
    target = targets.get("host")

    say(f"[1/5] exporting zoo model '{model}' (seeded weights) to {onnx_path}")
    zoo.export(model, onnx_path)

    rep = inspect_model(str(onnx_path), {})
    say(
        f"[2/5] inspected: {rep.node_count} nodes, {len(rep.ops)} operator types, "
        f"{len(rep.unsupported)} unsupported; inputs "
        + ", ".join(f"{s.name} {s.describe()}" for s in rep.inputs)
    )

    say(f"[3/5] compiling for 'host' = {target.detected}, with the stored tuning logs for it")
    result = compile_model(
        str(onnx_path),
        CompileOptions(target="host", output=str(pkg_path), verify=True),
        progress=lambda s: say(f"      {s} ..."),
    )
    say(f"      wrote {pkg_path} in {sum(v for k, v in result.seconds.items() if k != 'verify_s'):.1f} s")
    tuning = result.info.build.get("tuning")
    if tuning is None:
        tuned_line = "no stored tuning logs for this CPU: every kernel has TVM's default schedule"
    else:
        tuned_line = (f"{tuning['covered']} of {tuning['tasks']} kernels from stored tuning records "
                      f"({tuning['database']}), {tuning['default_schedules']} on default schedules")
    say(f"      {tuned_line}")

    agreement = result.verification
    worst = max(agreement.outputs, key=lambda o: o.max_abs)
    verdict = "PASSED" if agreement.passed else "FAILED"
    say(
        f"[4/5] verified against ONNX Runtime: max abs err {sci(worst.max_abs)}, max rel err "
        f"{sci(worst.max_rel)} (rtol {agreement.rtol:g}, atol {agreement.atol:g}): {verdict}"
    )
    if not agreement.passed:
        raise VerificationFailed("the compiled model disagrees with ONNX Runtime")

    compiled = load(pkg_path)
    inputs = compiled.example_inputs(seed=0)
    engines = [CrosstuneEngine(compiled), OnnxRuntimeEngine(onnx_path.read_bytes())]
    say(f"[5/5] timing each engine on the same inputs: 3 warm-up runs, then up to {repeat} runs or 30 s")
    rows, stats = [], {}
    for engine in engines:
        say(f"      {engine.name} ...")
        st = engine.benchmark(inputs, warmup=3, repeat=repeat, max_seconds=30)
        stats[engine.name] = st
        rows.append([engine.name, engine.version(), ms(st.median_ms), ms(st.p90_ms), ms(st.min_ms), ms(st.max_ms), st.count])
    base = stats["onnxruntime"].median_ms
    for row, engine in zip(rows, engines):
        row.append(f"{stats[engine.name].median_ms / base:.1f}x")
    say("")
    say(f"{model}, batch 1, on this machine ({target.detected}):")
    say(table(["ENGINE", "VERSION", "MEDIAN ms", "P90 ms", "MIN ms", "MAX ms", "RUNS", "vs ORT"], rows, "llrrrrrr"))
    say("")
    if tuning is None or tuning["default_schedules"]:
        say("Kernels on default schedules run as plain loops; `crosstune tune` for this target is what "
            "makes TVM fast here.")
    else:
        say("All kernels use records from logs/ (tuned on an AVX-512 Xeon for 2 threads); more tuning "
            "on this machine (`crosstune tune`) may improve them.")
    say(f"demo done in {time.perf_counter() - started:.0f} s; package: {pkg_path}")
    return 0
