"""ONNX's per-operator conformance tests (the `node` suite) through crosstune and ONNX Runtime.

    python bench/onnx_conformance.py [--only REGEX] [--limit N] [--jobs N] [--timeout 60]
        [--engines onnxruntime,crosstune] [--cases DIR] [--rerun] [--out bench/results/onnx_conformance]

The cases come from the installed onnx package (`onnx.backend.test.case.node.collect_testcases()`),
written once, the way onnx's `backend-test-tools generate-data` writes its other cases, to
`<cases>/node/<case>/{model.onnx, test_data_set_0/input_*.pb, output_*.pb}`; `--cases` defaults to
~/.cache/crosstune/onnx-node-cases/<onnx version>/ and existing files are reused.

Every (engine, case) runs in a child process of its own, forked from this script after it has
imported TVM, crosstune and ONNX Runtime once (`--one ENGINE CASE_DIR` runs one case in a fresh
process instead), with a timeout, so a crash or a hang costs one case, not the run.
- onnxruntime: CPUExecutionProvider, all graph optimisations. Session creation is "import".
- crosstune: what `crosstune compile --target x86-64` + `crosstune run` do, untuned, in memory:
  onnx_model.load and with_shapes (dynamic inputs pinned to the case's input shapes) and to_relax
  ("import"), pipeline.build ("build"), the Relax VM called with inputs then weights ("run").
  Where the import stops with "needs model input X as a constant", the case is imported again with
  X bound to the case's value, as `crosstune compile --bind X=x.npy` would; such results carry
  "bound": [X] and the report counts them.
Statuses: pass, import error, build error, run error (a child killed by a signal is a run error
named "crash: SIGNAL"), wrong numbers (floats: np.isclose with rtol 1e-3, atol 1e-5, NaN equals
NaN; everything else exact; shapes, dtypes and output counts must match), timeout.

Writes PREFIX.json (per case and engine: status, first error line, seconds; versions, machine)
and PREFIX.md (counts per engine; the cases ONNX Runtime passes and crosstune fails, grouped by
cause and listed by operator). Resumable: results already in PREFIX.json are kept unless --rerun.

Duration: with forked children, 0.3-0.8 s a case for crosstune (more cases build now that fewer
fail at import) and 0.05 s for ONNX Runtime; the whole suite (1,884 cases, both engines) took about
25 min with --jobs 2 on a 2-core VM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import sys
import time
import warnings
from collections import Counter
from importlib import metadata
from pathlib import Path

import numpy as np

ENGINES = ("onnxruntime", "crosstune")
STATUSES = {"pass": "pass", "import_error": "import error", "build_error": "build error",
            "run_error": "run error", "wrong": "wrong numbers", "timeout": "timeout"}
STAGE_STATUS = {"import": "import_error", "build": "build_error", "run": "run_error"}
RTOL, ATOL = 1e-3, 1e-5
TARGET = "x86-64"
MARK = "@@conformance "  # prefix of the child's protocol lines on stdout
# Why crosstune cannot pass some cases at all, by operator (the report's "why" column).
STRINGS = "string tensors: TVM has no string dtype"
LIMITS = {op: STRINGS for op in ("StringSplit", "StringConcat", "RegexFullMatch", "StringNormalizer")}
LIMITS.update({op: "training-only operator, not inference" for op in ("Gradient", "Adam", "Adagrad", "Momentum")})
# Why single cases fail where their operator otherwise converts (the report's "why" column).
CASE_NOTES = {
    **{f"test_equal_string{s}": STRINGS for s in ("", "_broadcast")},
}
RAW_TYPES = {16, 17, 18, 19, 20, 24}  # TensorProto BFLOAT16 and the FLOAT8 types: one or two bytes each


# ----------------------------------------------------------------------------------- the cases
def default_cases_dir() -> Path:
    return Path.home() / ".cache" / "crosstune" / "onnx-node-cases" / metadata.version("onnx")


def materialise(root: Path) -> dict[str, str]:
    """Case name -> operator, writing the cases under root/node/ unless root/index.json says they are."""
    index = root / "index.json"
    if index.exists():
        return json.loads(index.read_text())
    from onnx.backend.test.case.node import collect_testcases

    print(f"writing the node cases to {root} (once) ...", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the case generators' numpy overflow warnings
        cases = collect_testcases()
    ops: dict[str, str] = {}
    for case in cases:
        node = case.model.graph.node
        base = case.name.split("_expanded")[0]  # an expanded function test is its operator's
        ops[case.name] = ops.get(base) or (node[0].op_type if len(node) == 1 else base)
        out = root / "node" / case.name
        if not (out / "model.onnx").exists():
            write_case(case, out)
    root.mkdir(parents=True, exist_ok=True)
    index.write_text(json.dumps(ops, indent=1, sort_keys=True))
    return ops


def write_case(case, out: Path) -> None:
    """What onnx's generate_data writes for a case (onnx/backend/test/cmd_tools.py); model.onnx last,
    so an interrupted write is redone."""
    from onnx import TensorProto, numpy_helper

    def proto(value, vi):
        kind = vi.type.WhichOneof("value")
        if kind == "sequence_type":
            return numpy_helper.from_list(value, vi.name)
        if kind == "optional_type":
            return numpy_helper.from_optional(value, vi.name)
        if kind == "map_type":
            return numpy_helper.from_dict(value, vi.name)
        return value if isinstance(value, TensorProto) else numpy_helper.from_array(value, vi.name)

    data = out / "test_data_set_0"
    data.mkdir(parents=True, exist_ok=True)
    inputs, outputs = case.data_sets[0]
    g = case.model.graph
    for prefix, values, infos in (("input", inputs, g.input), ("output", outputs, g.output)):
        for j, value in enumerate(values):
            (data / f"{prefix}_{j}.pb").write_bytes(proto(value, infos[j]).SerializeToString())
    (out / "model.onnx").write_bytes(case.model.SerializeToString())


def read_case(case_dir: Path):
    """(model, {input name: value}, [expected outputs]) as onnx's backend test runner reads them."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(case_dir / "model.onnx"))

    def value(path: Path, vi):
        kind = vi.type.WhichOneof("value")
        msg = {"sequence_type": onnx.SequenceProto, "optional_type": onnx.OptionalProto}.get(kind, onnx.TensorProto)()
        msg.ParseFromString(path.read_bytes())
        return {"sequence_type": numpy_helper.to_list, "optional_type": numpy_helper.to_optional}.get(
            kind, numpy_helper.to_array)(msg)

    data = case_dir / "test_data_set_0"
    n_in, n_out = len(list(data.glob("input_*.pb"))), len(list(data.glob("output_*.pb")))
    g = model.graph
    inputs = {g.input[j].name: value(data / f"input_{j}.pb", g.input[j]) for j in range(n_in)}
    return model, inputs, [value(data / f"output_{j}.pb", g.output[j]) for j in range(n_out)]


# ------------------------------------------------------------------------------ one case (child)
_stage = ["import"]  # the stage the child is in: which status an exception means
_reporter = [sys.stdout]  # where protocol lines go: stdout with --one, the parent's pipe when forked


def stage(name: str) -> None:
    _stage[0] = name
    _reporter[0].write(f"{MARK}stage {name}\n")
    _reporter[0].flush()


def run_onnxruntime(case_dir: Path, model, inputs: dict) -> list:
    import onnxruntime as ort

    stage("import")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(case_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    stage("run")
    elem = {vi.name: vi.type.tensor_type.elem_type for vi in model.graph.input}
    feeds = {}
    for name, value in inputs.items():
        # ONNX Runtime's Python API takes no ml_dtypes arrays (bfloat16, float8): give it their bytes.
        if isinstance(value, np.ndarray) and value.dtype.type.__module__ == "ml_dtypes" and elem.get(name) in RAW_TYPES:
            value = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(value.view(f"u{value.dtype.itemsize}"), elem[name])
        feeds[name] = value
    return sess.run(None, feeds)


def run_crosstune(case_dir: Path, _model, inputs: dict) -> list:
    from crosstune._torchblock import block_torch

    block_torch()  # as the CLI does: tvm_ffi would import torch (+2 s per child)
    import tvm
    import tvm_ffi
    from tvm import relax

    from crosstune import targets
    from crosstune.compile import onnx_model, pipeline, relax_import
    from crosstune.tensors import check_inputs, numpy_dtype

    stage("import")
    src = onnx_model.load(case_dir / "model.onnx")
    from crosstune.tensors import SequenceShape

    shapes = {s.name: inputs[s.name].shape for s in src.inputs if not s.static and isinstance(inputs.get(s.name), np.ndarray)}
    shapes |= {s.name: SequenceShape(np.shape(v) for v in inputs[s.name]) for s in src.inputs
               if s.is_sequence and isinstance(inputs.get(s.name), list)}
    src = onnx_model.with_shapes(src, shapes)
    try:
        relax_model = relax_import.to_relax(src)
        bound = {}
    except relax_import.NeedsBinding as err:
        # What a user does after that line: --bind the named inputs to their values.
        bound = {n: inputs[n] for n in err.inputs}
        _reporter[0].write(f"{MARK}bound {' '.join(bound)}\n")
        relax_model = relax_import.to_relax(src, bindings=bound)
    stage("build")
    built = pipeline.build(relax_model.mod, relax_model.weights, targets.get(TARGET))
    stage("run")
    given = {s.name: inputs[s.name] for s in src.inputs if s.name in inputs and s.name not in bound}
    check_inputs([s for s in src.inputs if s.name not in bound], given)  # what the runtime's session checks
    dev = tvm.cpu()
    def arg(spec, value):  # the session's conversion: a sequence is a tuple of tensors
        if spec.is_sequence:
            return [tvm.runtime.tensor(np.asarray(v, order="C"), dev) for v in value]
        return tvm.runtime.tensor(np.asarray(value, order="C"), dev)

    args = [arg(s, given[s.name]) for s in src.inputs if s.name not in bound]
    result = relax.VirtualMachine(built.executable, dev)["main"](*args, *built.weights)
    items = [result] if hasattr(result, "numpy") or len(src.outputs) == 1 else list(result)

    def to_numpy(value, spec=None):  # the session's conversion; tuples (ONNX sequences) become lists
        if not hasattr(value, "numpy"):
            if not isinstance(value, tvm_ffi.Array):
                raise TypeError(f"an output is a {type(value).__name__}, not a tensor")
            return [to_numpy(v) for v in value]
        arr = value.numpy()
        try:
            want = numpy_dtype(spec.dtype) if spec is not None else arr.dtype
        except (TypeError, AttributeError):
            want = arr.dtype
        return arr if arr.dtype == want else arr.astype(want)

    specs = src.outputs if len(src.outputs) == len(items) else [None] * len(items)
    return [to_numpy(v, s) for v, s in zip(items, specs)]


def error_line(err: BaseException) -> str:
    """`Type: message`, the message's first line (TVM's, after any traceback it starts with)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback"):
        rest = [line for line in lines[1:] if not re.match(r"(File |\d+: |\^|~)", line)]
        lines = rest[-1:] or lines
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")[:300]


def compare(expected, got, where: str) -> str | None:
    """None when `got` matches `expected`, else a one-line description of the first difference."""
    if expected is None or got is None or isinstance(expected, list) or isinstance(got, list):
        if not (expected is None and got is None or isinstance(expected, list) and isinstance(got, list)):
            return f"{where}: got {type(got).__name__}, expected {type(expected).__name__}"
        if expected is None:
            return None
        if len(got) != len(expected):
            return f"{where}: sequence of {len(got)}, expected {len(expected)}"
        return next((m for i, (e, g) in enumerate(zip(expected, got)) if (m := compare(e, g, f"{where}[{i}]"))), None)
    e, g = np.asarray(expected), np.asarray(got)
    if g.shape != e.shape:
        return f"{where}: shape {g.shape}, expected {e.shape}"
    if e.dtype.kind in "OUS":  # strings
        same = np.array([str(a) == str(b) for a, b in zip(g.ravel(), e.ravel())], dtype=bool)
    elif g.dtype != e.dtype:
        return f"{where}: dtype {g.dtype}, expected {e.dtype}"
    elif e.dtype.kind in "fc" or e.dtype.name.startswith(("float", "bfloat")):
        wide = np.complex128 if e.dtype.kind == "c" else np.float64
        a, b = g.astype(wide), e.astype(wide)
        same = np.isclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True)
        if not same.all():
            diff = np.abs(a - b)[~same]
            worst = np.nan if np.isnan(diff).all() else np.nanmax(diff)
            return f"{where}: {int((~same).sum())} of {e.size} values off, max abs error {worst:.3g}"
        return None
    else:
        same = np.asarray(g == e, dtype=bool)
    if not same.all():
        return f"{where}: {int((~same).sum())} of {e.size} values differ"
    return None


def one(engine: str, case_dir: Path) -> dict:
    """Run one case on one engine in this process: {"status", "error"}."""
    try:
        model, inputs, expected = read_case(case_dir)
        outputs = (run_onnxruntime if engine == "onnxruntime" else run_crosstune)(case_dir, model, inputs)
    except Exception as err:  # noqa: BLE001 - every failure is a result
        return {"status": STAGE_STATUS[_stage[0]], "error": error_line(err).replace(str(case_dir) + "/", "")}
    if len(outputs) != len(expected):
        return {"status": "wrong", "error": f"{len(outputs)} outputs, expected {len(expected)}"}
    for i, (e, g) in enumerate(zip(expected, outputs)):
        if (msg := compare(e, g, f"output {i}")) is not None:
            return {"status": "wrong", "error": msg}
    return {"status": "pass", "error": ""}


# ------------------------------------------------------------------------------ the run (parent)
def warm_up(engines: list[str]) -> None:
    """Import what the children need once, in the parent: a forked child starts with it loaded
    (a fresh Python took 1.5-2 s of a 2.35 s crosstune case). Nothing here starts threads."""
    if "crosstune" in engines:
        from crosstune._torchblock import block_torch

        block_torch()
        import tvm  # noqa: F401
        from tvm.relax.frontend.onnx import onnx_frontend  # noqa: F401

        from crosstune import targets  # noqa: F401
        from crosstune.compile import onnx_model, pipeline, relax_import  # noqa: F401
    if "onnxruntime" in engines:
        import onnxruntime  # noqa: F401
    import onnx.reference  # noqa: F401


class Child:
    """One (engine, case) in a forked child of its own session; it reports on a pipe with the
    protocol lines the `--one` mode prints, and its stderr goes to a file (the last line of a crash)."""

    def __init__(self, engine: str, case_dir: Path, timeout: float, scratch: Path):
        self.engine, self.case_dir, self.timeout = engine, case_dir, timeout
        self.err_path = scratch / f"{os.getpid()}-{id(self)}.err"
        read, write = os.pipe()
        self.t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            try:
                os.close(read)
                os.setsid()
                fd = os.open(self.err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                null = os.open(os.devnull, os.O_WRONLY)
                sys.stdout.flush()
                os.dup2(null, 1)
                os.dup2(fd, 2)
                out = os.fdopen(write, "w", buffering=1)
                _reporter[0] = out
                out.write(MARK + "result " + json.dumps(one(engine, case_dir)) + "\n")
                out.flush()
            finally:
                os._exit(0)
        os.close(write)
        self.pid, self.fd, self.buf = pid, read, b""
        os.set_blocking(read, False)

    def read(self) -> bool:
        """Drain the pipe; True at its end."""
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return False
            if not chunk:
                return True
            self.buf += chunk

    def finish(self, timed_out: bool) -> dict:
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        self.read()
        os.close(self.fd)
        lines = [line[len(MARK):] for line in self.buf.decode(errors="replace").splitlines() if line.startswith(MARK)]
        where = next((line.split(" ", 1)[1] for line in reversed(lines) if line.startswith("stage ")), "start-up")
        result = next((json.loads(line[7:]) for line in lines if line.startswith("result ")), None)
        bound = next((line.split(" ", 1)[1].split() for line in lines if line.startswith("bound ")), None)
        err = self.err_path.read_text(errors="replace") if self.err_path.exists() else ""
        self.err_path.unlink(missing_ok=True)
        if timed_out:
            result = {"status": "timeout", "error": f"no result after {self.timeout:g} s (in {where})"}
        elif result is None and os.WIFSIGNALED(status):
            name = signal.Signals(os.WTERMSIG(status)).name
            result = {"status": "run_error", "error": f"crash: {name} (in {where})"}
        elif result is None:
            last = next((line for line in reversed(err.splitlines()) if line.strip()), "")
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
            result = {"status": "run_error", "error": f"child exited with code {code} (in {where}): {last[:200]}"}
        return {**result, "seconds": round(time.monotonic() - self.t0, 2), **({"bound": bound} if bound else {})}


def run_all(todo: list[tuple[str, str]], root: Path, jobs: int, timeout: float):
    """Yield ((case, engine), result) as children finish, at most `jobs` at a time."""
    import select
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="ct-conformance-"))
    queue, running = list(todo), {}
    try:
        while queue or running:
            while queue and len(running) < max(1, jobs):
                name, engine = queue.pop(0)
                child = Child(engine, root / "node" / name, timeout, scratch)
                running[child.fd] = (child, (name, engine))
            now_ = time.monotonic()
            wait = max(0.0, min(c.t0 + c.timeout for c, _ in running.values()) - now_)
            ready, _, _ = select.select(list(running), [], [], min(wait, 1.0))
            for fd in list(running):
                child, key = running[fd]
                ended = fd in ready and child.read()
                over = time.monotonic() - child.t0 > child.timeout
                if ended or over:
                    del running[fd]
                    yield key, child.finish(timed_out=over and not ended)
    finally:
        for child, _ in running.values():  # interrupted: no orphans
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            os.waitpid(child.pid, 0)
        with contextlib.suppress(OSError):
            for f in scratch.iterdir():
                f.unlink()
            scratch.rmdir()


def versions() -> dict:
    out = {}
    for dist in ("onnx", "onnxruntime", "apache-tvm", "crosstune"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def save(path: Path, doc: dict) -> None:
    from crosstune.report.results import write_text_atomic

    write_text_atomic(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def cause(line: str) -> str:
    """A bucket for similar first error lines: names in quotes and numbers dropped, 60 characters of
    message, and the operators listed by the frontend's "cannot convert" left out."""
    kind, _, msg = line.partition(": ")
    msg = re.sub(r"(frontend cannot convert:).*", r"\1 ...", msg)
    msg = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", msg)
    msg = re.sub(r"(?<![\w.])[-+]?\d+(\.\d+)?(e[-+]?\d+)?", "", msg)  # not the 16 of float16
    return f"{kind}: {msg[:60]}" if msg else kind


def cell(text: str, width: int = 160) -> str:
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.replace("|", "\\|").replace("\n", " ")


def known_failures() -> dict[str, str]:
    """Case -> reason, from every crosstune.frontend.ops module's KNOWN_FAILURES."""
    import importlib
    import pkgutil

    from crosstune.frontend import ops

    out: dict[str, str] = {}
    for info in pkgutil.iter_modules(ops.__path__):
        out.update(getattr(importlib.import_module(f"{ops.__name__}.{info.name}"), "KNOWN_FAILURES", {}))
    return out


def markdown(doc: dict) -> str:
    cases, meta = doc["cases"], doc["meta"]
    v, m = meta["versions"], meta.get("machine", {})
    about = (f"The `node` suite of onnx {v['onnx']} ({len(cases)} cases run). ONNX Runtime {v['onnxruntime']}: CPU, "
             f"all graph optimisations. crosstune {v['crosstune']} on apache-tvm {v['apache-tvm']}: target "
             f"`{TARGET}`, untuned. {m.get('cpu')}, {m.get('cores')} cores. Floats match within rtol {RTOL:g}, "
             f"atol {ATOL:g}, everything else exactly; timeout {meta['timeout']:g} s per case and engine. "
             f"`{meta['command']}`, {meta['updated']}.")
    lines = ["# ONNX node conformance: crosstune and ONNX Runtime", "", about, ""]
    for engine in ENGINES:
        rows = [r[engine] for r in cases.values() if engine in r]
        if rows:
            counts = Counter(r["status"] for r in rows)
            secs = sum(r.get("seconds", 0) for r in rows) / len(rows)
            lines += [f"## {engine}", "", "| status | cases | share |", "|---|--:|--:|"]
            lines += [f"| {label} | {counts[s]} | {100 * counts[s] / len(rows):.1f}% |" for s, label in STATUSES.items()]
            lines += [f"| **all** | {len(rows)} | |", "", f"{secs:.1f} s a case on average."]
            bound = [r for r in rows if r.get("bound")]
            if bound:
                ok = sum(r["status"] == "pass" for r in bound)
                lines += [f"{len(bound)} cases needed inputs bound as constants (`--bind`, see above); {ok} of them pass."]
            lines += [""]
    both = {n: r for n, r in cases.items() if all(e in r for e in ENGINES)}
    if not both:
        return "\n".join(lines)
    gap = sorted((r["op"], n, r["crosstune"]) for n, r in both.items()
                 if r["onnxruntime"]["status"] == "pass" and r["crosstune"]["status"] != "pass")
    ahead = sum(r["crosstune"]["status"] == "pass" and r["onnxruntime"]["status"] != "pass" for r in both.values())
    by_status = ", ".join(f"{s}: {n}" for s, n in Counter(STATUSES[c["status"]] for _, _, c in gap).most_common())
    lines += [f"## Cases ONNX Runtime passes and crosstune fails: {len(gap)}", "",
              f"{by_status or 'none'}. (crosstune passes and ONNX Runtime fails: {ahead}.)", "",
              "By cause (the first error line, names in quotes and numbers left out, 60 characters):", "",
              "| cases | crosstune | cause | e.g. |", "|--:|---|---|---|"]
    buckets: dict[tuple[str, str], list[str]] = {}
    for _, name, c in gap:
        buckets.setdefault((STATUSES[c["status"]], cause(c["error"])), []).append(name)
    for (status, why), names in sorted(buckets.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lines.append(f"| {len(names)} | {status} | {cell(why)} | {names[0]} |")
    known = known_failures()
    lines += ["", "Each case, with why where it is known (an ops module's KNOWN_FAILURES, or an operator crosstune "
              "cannot have), else the first error line:", "",
              "| operator | case | crosstune | why / first error line |", "|---|---|---|---|"]
    lines += [f"| {op} | {name} | {STATUSES[c['status']]} | {cell(known.get(name) or CASE_NOTES.get(name) or LIMITS.get(op) or c['error'])} |"
              for op, name, c in gap]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=Path, default=None, help="case folder (default ~/.cache/crosstune/onnx-node-cases/<onnx>)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "onnx_conformance"),
                   help="writes PREFIX.json and PREFIX.md (default bench/results/onnx_conformance)")
    p.add_argument("--engines", default=",".join(ENGINES), help="comma-separated (default: both)")
    p.add_argument("--only", default=None, help="regular expression: run the cases whose name it finds")
    p.add_argument("--limit", type=int, default=None, help="at most N cases (after --only, by name)")
    p.add_argument("--jobs", type=int, default=1, help="child processes at a time (default 1)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per case and engine (default 60)")
    p.add_argument("--rerun", action="store_true", help="run cases that PREFIX.json already has results for")
    p.add_argument("--one", nargs=2, metavar=("ENGINE", "CASE_DIR"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(MARK + "result " + json.dumps(one(args.one[0], Path(args.one[1]))), flush=True)
        return 0

    engines = [e for e in args.engines.split(",") if e]
    if unknown := set(engines) - set(ENGINES):
        p.error(f"unknown engine(s) {', '.join(sorted(unknown))}; known: {', '.join(ENGINES)}")
    root = (args.cases or default_cases_dir()).expanduser()
    ops = materialise(root)
    names = sorted(n for n in ops if not args.only or re.search(args.only, n))[: args.limit]
    out_json, out_md = Path(args.out + ".json"), Path(args.out + ".md")
    doc = json.loads(out_json.read_text()) if out_json.exists() else {"meta": {}, "cases": {}}
    old = doc["meta"].get("versions")
    if old and old != versions():
        print(f"warning: {out_json} holds results of {old}; this is {versions()} (--rerun redoes them)")
    from crosstune.report.results import machine_info, now

    doc["meta"].update(versions=versions(), machine=machine_info(), timeout=args.timeout, cases_dir=str(root),
                       command=shlex.join(["python", *sys.argv]), updated=now(), target=TARGET,
                       tolerance={"rtol": RTOL, "atol": ATOL})
    todo = [(n, e) for n in names for e in engines if args.rerun or e not in doc["cases"].get(n, {})]
    print(f"{len(names)} cases selected, {len(todo)} runs to do, {args.jobs} at a time", flush=True)
    warm_up(engines)
    try:
        for done, ((name, engine), res) in enumerate(run_all(todo, root, args.jobs, args.timeout), 1):
            doc["cases"].setdefault(name, {"op": ops[name]})[engine] = res
            print(f"[{done}/{len(todo)}] {engine:11} {name}: {STATUSES[res['status']]} ({res['seconds']:.1f} s)"
                  + (f"  {res['error'][:120]}" if res["error"] else ""), flush=True)
            if done % 25 == 0 or done == len(todo):
                save(out_json, doc)
    except KeyboardInterrupt:  # the running children are killed; what finished is saved
        print("interrupted: the results so far are saved; run again to go on", file=sys.stderr)
    doc["meta"]["updated"] = now()
    save(out_json, doc)
    from crosstune.report.results import write_text_atomic

    write_text_atomic(out_md, markdown(doc))
    print(f"wrote {out_json} and {out_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
