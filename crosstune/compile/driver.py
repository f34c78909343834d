"""The whole compile: load and check the ONNX model, import to Relax, build, link, package,
and optionally verify the package against ONNX Runtime."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import tempfile
import time
from pathlib import Path

from .. import __version__, targets
from ..errors import UserError
from .._native import native_stderr_captured
from . import onnx_model, package, pipeline, relax_import
from .link import fcompile_for
from .options import CompileOptions, CompileResult


def default_output(model: onnx_model.OnnxModel, target: str) -> str:
    return f"{model.name}.{Path(target).stem}.ctm"


def _nbytes(tensor) -> int:
    """Size of a TVM tensor from its shape and dtype, without copying it to the host."""
    from ..tensors import numpy_dtype

    count = 1
    for d in tensor.shape:
        count *= int(d)
    return count * numpy_dtype(str(tensor.dtype)).itemsize


def compile_model(model, options: CompileOptions, progress) -> CompileResult:
    """`progress(stage)` is called as each stage starts (import, build, link, verify)."""
    timings: dict[str, float] = {}
    target = targets.get(options.target)
    target.check_compiler()  # before minutes of building, not after
    pipeline.check_precision(target, options.precision)
    if options.layout is not None:
        pipeline.check_layout(options.layout)
    if options.conv is not None:
        pipeline.check_conv(options.conv)
    board = None
    if options.verify and (options.rpc or options.key):
        from ..rpc import parse_address

        if not (options.rpc and options.key):
            raise UserError("--rpc and --key go together: the tracker's HOST:PORT and the board key")
        board = (parse_address(options.rpc), options.key)
    elif options.verify and target.cross:
        raise UserError(
            f"target '{target.name}' is {target.arch}: --verify runs the package on a board, add "
            f"--rpc TRACKER_HOST:PORT --key {target.board_key or 'KEY'}"
        )

    progress("import")
    t = time.perf_counter()
    bindings = dict(options.bindings)
    src, relax_model = relax_import.load_and_import(model, options.input_shapes, bindings)
    if bindings:
        src = dataclasses.replace(src, inputs=[s for s in src.inputs if s.name not in bindings])
    timings["import_s"] = time.perf_counter() - t

    import tvm

    progress("build")
    t = time.perf_counter()
    database, db_label, db_problems, default_faster, machine_of, pinned = None, "", [], frozenset(), None, frozenset()
    if options.use_logs:
        from ..tuning import logstore
        from ..tuning.machines import records_machine

        store = logstore.store_for(target, options.db)
        if store.exists():
            # each workload's records measured on the machine the build is for, where it has any
            raw = store.load()
            machine = records_machine(target, options.tuned_on)
            index = raw.view(machine)
            database = store.tvm_database(index, best_only=True)
            db_label, db_problems = str(store.path), index.problems
            if options.tuned_on and machine and machine not in raw.machine_counts():
                known = ", ".join(sorted(m for m in raw.machine_counts() if m)) or "none"
                db_problems = [*db_problems, f"--tuned-on {machine}: no record of {store.path} was measured on it "
                                             f"(machines with records: {known}); every machine's records are used"]
            default_faster = frozenset(index.default_wins())
            # the machine of each workload's fastest record: the one MetaSchedule applies
            machine_of = {r.workload: r.machine for r in sorted(logstore.best_k(index, 1, pinned=False),
                                                                 key=lambda r: -r.seconds)}
            pinned = frozenset(index.pinned()) - default_faster
    with native_stderr_captured([]):
        form, layout_why = pipeline.resolve_layout(relax_model.mod, target, [options.precision],
                                                   index if database is not None else None, options.layout,
                                                   options.conv)
    layout, conv = pipeline.split_form(form)
    native_log: list[str] = []
    with native_stderr_captured(native_log):
        built = pipeline.build(relax_model.mod, relax_model.weights, target, database, db_label,
                               precision=options.precision, default_faster=default_faster, layout=form,
                               machine_of=machine_of, pinned=pinned)
    executable, weights_out = built.executable, built.weights
    tuning = None
    if built.coverage is not None:
        built.coverage.records = len(index.records)  # the store's size, not just the best records loaded
        built.coverage.machine = index.machine
        tuning = built.coverage.to_json()
    timings["build_s"] = time.perf_counter() - t

    progress("link")
    t = time.perf_counter()
    out = Path(options.output or default_output(src, options.target))
    with tempfile.TemporaryDirectory(prefix="crosstune-") as tmp:
        lib = Path(tmp) / package.LIBRARY
        executable.export_library(str(lib), fcompile=fcompile_for(target))
        weights = bytes(tvm.runtime.save_param_dict({str(i): w for i, w in enumerate(weights_out)}))
        info = package.PackageInfo(
            crosstune_version=__version__,
            tvm_version=tvm.__version__,
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            model={
                "name": src.name,
                "sha256": src.sha256,
                "source": src.path,
                "opset": src.opset,
                "input_shapes_given": {k: list(v) for k, v in src.shapes_given.items()},
                # --bind: model inputs folded in as constants (the package does not take them)
                "bound": {n: {"shape": list(v.shape), "dtype": str(v.dtype),
                              "sha256": hashlib.sha256(v.tobytes()).hexdigest()} for n, v in bindings.items()},
            },
            inputs=src.inputs,
            outputs=src.outputs,
            target={**target.to_json(), "cpu_flags": target.cpu_flags()},
            weights={
                "count": len(weights_out),
                "bytes": sum(_nbytes(w) for w in weights_out),
                # The ONNX initializers; the package holds them after the ahead-of-time transform
                # (layout rewrites, folded weight-only ops), so count and order may differ.
                "names": relax_model.weight_names,
                "transformed": len(weights_out) != len(relax_model.weights)
                or any(a is not b for a, b in zip(weights_out, relax_model.weights)),
            },
            build={"seconds": {k: round(v, 3) for k, v in timings.items()}, "tuning": tuning,
                   "precision": options.precision, "layout": layout,
                   "conv": conv if layout and options.precision == "fp32" else None, "layout_reason": layout_why},
        )
        package.write(out, info, lib, weights)
    timings["link_s"] = time.perf_counter() - t

    verification = None
    if options.verify:
        from ..compare.verify import verify_package

        progress("verify")
        t = time.perf_counter()
        verification = verify_package(out, src, seed=options.seed, rtol=options.rtol, atol=options.atol, board=board,
                                      bound=bindings)
        timings["verify_s"] = time.perf_counter() - t
    warnings_ = list(src.warnings) + [f"tuning log: {p}" for p in db_problems]
    return CompileResult(str(out), info, timings, verification, warnings_)
