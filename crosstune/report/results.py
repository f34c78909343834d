"""The results format: one JSON document per run of one model on one target and machine, holding
every engine (and precision) timed in that run. `crosstune run --json` and the bench commands write
it; `crosstune report` reads it. docs/results-format.md describes every field.

Results files travel between machines and people, so `load` treats them as untrusted: it checks
every field the report reads and turns any problem into one `ResultsError` line naming the file.
Nothing here imports TVM or torch (the package, timing and agreement types appear in hints only):
`crosstune report` must start fast, and work on a laptop that has neither.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import UserError

if TYPE_CHECKING:
    from ..compare.agreement import Agreement
    from ..compile.package import PackageInfo
    from ..runtime.timing import LatencyStats

FORMAT = "crosstune-results"
FORMAT_VERSION = 1
STATUSES = ("ok", "failed", "unavailable")


class ResultsError(UserError):
    """A results file that cannot be used; `str()` is one line that starts with the file's path."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


# ------------------------------------------------------------------------------------------ building
def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def command_line(argv: list[str] | str) -> str:
    """The command as the user would retype it: `python -m crosstune ...` is shown as `crosstune ...`."""
    if isinstance(argv, str):
        return argv
    args = list(argv)
    if args and Path(args[0]).name in ("crosstune", "__main__.py", "cli.py"):
        args[0] = "crosstune"
    return shlex.join(args)


def machine_info() -> dict[str, Any]:
    """The computer this process runs on: CPU model and cores (/proc/cpuinfo), OS, and the first
    NVIDIA GPU with its driver when nvidia-smi answers (null otherwise)."""
    from ..targets import host

    cpu = host.detect()
    return {
        "cpu": cpu.model if cpu.model != "unknown" else (platform.processor() or None),
        "cpu_id": host.this_machine().id,  # the kind, as tuning records name it (intel-6-143)
        "cores": cpu.cores,
        "arch": platform.machine(),
        "platform": platform.platform(),
        "gpu": _nvidia_gpu(),
    }


def _nvidia_gpu() -> dict[str, Any] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line for line in proc.stdout.splitlines() if line.strip()] if proc.returncode == 0 else []
    if not lines:
        return None
    name, _, driver = lines[0].rpartition(",")
    return {"name": name.strip(), "driver": driver.strip(), "count": len(lines)}


def target_info(target: dict[str, Any]) -> dict[str, Any]:
    """A results `target` from `Target.to_json()`. `name` is what reports group runs by: `host`
    is named after the preset it resolved to, so `--target host` and `--target x86-avx512` on the
    same CPU land in the same column."""
    preset = str(target.get("preset") or "?")
    detected = str(target.get("detected") or "")
    name = detected.split(",")[0].strip() if preset == "host" and detected else preset
    return {"name": name, **{k: v for k, v in target.items() if k != "name"}}


def model_info(info: "PackageInfo", inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model of a package; `inputs` (name -> array) gives the shapes actually run, which the
    package's specs may leave symbolic."""
    specs = []
    for s in info.inputs:
        arr = (inputs or {}).get(s.name)
        shape = list(arr.shape) if arr is not None else list(s.shape)
        specs.append({"name": s.name, "shape": [int(d) if isinstance(d, int) else d for d in shape],
                      "dtype": str(arr.dtype) if arr is not None else s.dtype})
    return {"name": str(info.model.get("name")), "sha256": info.model.get("sha256"), "inputs": specs}


def tuning_info(coverage: dict[str, Any] | None, trials: int | None = None,
                layout: str | None = None, conv: str | None = None) -> dict[str, Any]:
    """A crosstune engine's tuning state from a package's `build["tuning"]` (None: compiled
    without records, every kernel on TVM's default schedule). `trials` is what the store holds
    for the model's kernels, when the caller counted them; `layout` its convolutions' layout
    (`build["layout"]`; None for a model without any, or a package from before layouts), `conv`
    how its 3x3 convolutions are computed (`build["conv"]`: direct, winograd, winograd-f2)."""
    extra = {"layout": layout} if layout else {}
    if layout and conv:
        extra["conv"] = conv
    if coverage is None:
        return {"logs": None, "tasks": None, "covered": 0, "trials": 0, "records": None, **extra}
    if coverage.get("records_from"):
        extra["records_from"] = dict(coverage["records_from"])
    if coverage.get("preferred_machine"):
        extra["machine"] = coverage["preferred_machine"]
    return {"logs": coverage.get("database") or None, "tasks": coverage.get("tasks"),
            "covered": coverage.get("covered"), "trials": trials,
            "records": coverage.get("records_in_database"), **extra}


def precision_of(info: "PackageInfo") -> str:
    """The arithmetic precision of a crosstune package: what its build says, else the float type
    of its outputs (a package compiled from an fp32 model computes in fp32)."""
    if info.build.get("precision"):
        return str(info.build["precision"])
    names = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}
    for s in info.outputs:
        if s.dtype in names:
            return names[s.dtype]
    return "fp32"


def latency_json(stats: "LatencyStats") -> dict[str, Any]:
    return {"median": stats.median_ms, "p90": stats.p90_ms, "min": stats.min_ms, "max": stats.max_ms,
            "mean": stats.mean_ms, "count": stats.count, "warmup": stats.warmup, "truncated": stats.truncated,
            "rounds": stats.rounds}


def agreement_json(agreement: "Agreement") -> dict[str, Any]:
    """The worst error over all outputs; non-finite errors (a missing output, NaN) become null."""
    def worst(values):
        vals = list(values)
        return max(vals) if vals and all(math.isfinite(v) for v in vals) else None

    out = {"reference": agreement.expected, "passed": agreement.passed, "rtol": agreement.rtol,
           "atol": agreement.applied_atol, "max_abs": worst(o.max_abs for o in agreement.outputs),
           "max_rel": worst(o.max_rel for o in agreement.outputs)}
    if agreement.scale_atol:
        out["scale_atol"] = agreement.scale_atol
    return out


def pair_json(agreement: "Agreement", precision: str, a_precision: str, b_precision: str) -> dict[str, Any]:
    """One entry of `agreement_pairs`: engine `agreement.actual` at `a_precision` against
    `agreement.expected` at `b_precision`, with the tolerances of `precision`."""
    d = agreement_json(agreement)
    return {"precision": precision, "a": agreement.actual, "a_precision": a_precision, "b": agreement.expected,
            "b_precision": b_precision, **{k: v for k, v in d.items() if k != "reference"}}


def engine_entry(
    name: str,
    version: str | None,
    precision: str,
    stats: "LatencyStats | None" = None,
    *,
    agreement: "Agreement | dict | None" = None,
    status: str | None = None,
    error: str | None = None,
    emulated: bool = False,
    threads: int | None = None,
    tuning: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One engine at one precision. With `stats` the status is "ok"; without, give `error` (the
    reason, one line) and status "failed" (it ran and broke) or "unavailable" (not installed, no
    such device)."""
    status = status or ("ok" if stats is not None else "failed")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    if (status == "ok") != (stats is not None):
        raise ValueError("an engine has latency exactly when its status is 'ok'")
    if status != "ok" and not error:
        raise ValueError("a failed or unavailable engine needs the reason in `error`")
    if agreement is not None and not isinstance(agreement, dict):
        agreement = agreement_json(agreement)
    return {
        "name": name,
        "version": version,
        "precision": precision,
        "status": status,
        "latency_ms": latency_json(stats) if stats is not None else None,
        "agreement": agreement,
        "emulated": emulated,
        "threads": threads,
        "tuning": tuning,
        "error": (error.strip().splitlines() or [""])[0] if error else None,
    }


def new_document(
    *,
    model: dict[str, Any],
    target: dict[str, Any],
    command: list[str] | str,
    machine: dict[str, Any] | None = None,
    board: dict[str, Any] | None = None,
    reference: str | None = None,
    engines: list[dict[str, Any]] | None = None,
    created: str | None = None,
    agreement_pairs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A results document; append `engine_entry(...)` dicts to its "engines". `target` is a
    `target_info` dict; `machine` defaults to this machine; `board` is
    {"key", "emulated", "tracker"} for runs on a board through RPC; `agreement_pairs` are
    `pair_json(...)` dicts (engines checked against each other, bench only)."""
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": created or now(),
        "command": command_line(command),
        "crosstune_version": __version__,
        "model": model,
        "target": target,
        "machine": machine if machine is not None else machine_info(),
        "board": board,
        "reference": reference,
        "engines": list(engines or []),
    }
    if agreement_pairs is not None:
        doc["agreement_pairs"] = list(agreement_pairs)
    return doc


def run_document(info: "PackageInfo", stats: "LatencyStats", *, inputs: dict[str, Any],
                 board: dict[str, Any] | None, command: list[str] | str) -> dict[str, Any]:
    """What `crosstune run --json` writes: the package's one engine, no reference run."""
    threads = os.environ.get("TVM_NUM_THREADS")
    engine = engine_entry(
        "crosstune", f"crosstune {info.crosstune_version}, TVM {info.tvm_version}", precision_of(info), stats,
        emulated=bool(board and board.get("emulated")),
        threads=int(threads) if threads and threads.isdigit() else None,
        tuning=tuning_info(info.build.get("tuning"), layout=info.build.get("layout"), conv=info.build.get("conv")),
    )
    machine = None
    if board:  # timed on the board, not on this machine: describe the board as far as it is known
        kind = "emulated " if board.get("emulated") else ""
        machine = {"cpu": f"{kind}'{board.get('key')}' board ({info.target.get('preset')} preset)",
                   "cores": None, "arch": board.get("machine"), "platform": None, "gpu": None}
    return new_document(model=model_info(info, inputs), target=target_info(info.target), command=command,
                        machine=machine, board=board, engines=[engine])


def write(path: str | Path, doc: dict[str, Any]) -> Path:
    """Validate `doc` and write it atomically (`write_text_atomic`)."""
    path = Path(path)
    validate(doc, str(path))
    write_text_atomic(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return path


def write_text_atomic(path: Path, text: str) -> None:
    """Write through a temporary file renamed into place: a reader never sees half a file, and an
    interrupted write leaves the previous one as it was. The file gets the umask's usual mode (a
    report is for sharing), not mkstemp's owner-only 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------- reading
def load(path: str | Path) -> dict[str, Any]:
    """The validated document in `path`, optional fields filled in; raises `ResultsError`."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ResultsError(p, "no such file") from None
    except OSError as err:
        raise ResultsError(p, f"cannot read it ({err.strerror or err})") from None
    if not raw.strip():
        raise ResultsError(p, "empty file")
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ResultsError(p, "not a text file (not UTF-8)") from None
    except json.JSONDecodeError as err:
        raise ResultsError(p, f"not valid JSON, truncated or corrupt ({err.msg} at line {err.lineno} "
                              f"column {err.colno})") from None
    except ValueError as err:  # NaN / Infinity
        raise ResultsError(p, str(err)) from None
    return validate(doc, str(p))


def _reject_constant(name: str):
    raise ValueError(f"not valid JSON ({name} is not a JSON number)")


def validate(doc: Any, where: str) -> dict[str, Any]:
    """Check `doc` against this format version and fill optional fields with their defaults."""
    if not isinstance(doc, dict):
        raise ResultsError(where, f"not a crosstune results document (a JSON {type(doc).__name__}, not an object)")
    if doc.get("format") != FORMAT:
        if "benchmark" in doc and "results" in doc:
            raise ResultsError(where, "an old bench/ results file: convert it with "
                                      "`python -m crosstune.report.legacy FILE`")
        raise ResultsError(where, f"not a crosstune results document (\"format\" is not \"{FORMAT}\")")
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ResultsError(where, f"bad format_version {_show(version)}")
    if version > FORMAT_VERSION:
        raise ResultsError(where, f"results format version {version} is newer than this crosstune "
                                  f"({__version__}) reads (up to {FORMAT_VERSION}): upgrade crosstune")
    try:
        _check_document(doc)
    except _Invalid as err:
        raise ResultsError(where, f"invalid results document: {err}") from None
    return doc


class _Invalid(Exception):
    """A field that does not fit the format: its JSON path and what is wrong."""


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _get(d: dict, key: str, where: str, kind: str, *, required: bool = True, default: Any = None) -> Any:
    """`d[key]` checked against `kind` (str, int, number, bool, dict, list); absent or null optional
    fields are set to `default`."""
    if key not in d or d[key] is None:
        if required:
            raise _Invalid(f"{where}{key}: missing")
        d[key] = default
        return default
    value = d[key]
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        "bool": isinstance(value, bool),
        "dict": isinstance(value, dict),
        "list": isinstance(value, list),
    }[kind]
    if not ok:
        article = "an" if kind[0] in "aeiou" else "a"
        kinds = {"str": "string", "dict": "object", "bool": "boolean", "int": "integer", "list": "list"}
        raise _Invalid(f"{where}{key}: expected {article} {kinds.get(kind, kind)}, got {_show(value)}")
    return value


def _check_document(doc: dict) -> None:
    created = _get(doc, "created", "", "str")
    try:
        stamp = datetime.datetime.fromisoformat(created)
    except ValueError:
        raise _Invalid(f"created: not an ISO 8601 time: {_show(created)}") from None
    if stamp.tzinfo is None:
        raise _Invalid(f"created: {_show(created)} has no time zone")
    _get(doc, "command", "", "str")
    _get(doc, "crosstune_version", "", "str", required=False)
    model = _get(doc, "model", "", "dict")
    if not _get(model, "name", "model.", "str").strip():
        raise _Invalid("model.name: empty")
    _get(model, "sha256", "model.", "str", required=False)
    for i, spec in enumerate(_get(model, "inputs", "model.", "list", required=False, default=[])):
        w = f"model.inputs[{i}]."
        if not isinstance(spec, dict):
            raise _Invalid(f"{w[:-1]}: expected an object")
        _get(spec, "name", w, "str")
        shape = _get(spec, "shape", w, "list")
        if not all(isinstance(d, (int, str)) and not isinstance(d, bool) for d in shape):
            raise _Invalid(f"{w}shape: expected integers or dimension names, got {_show(shape)}")
        _get(spec, "dtype", w, "str")
    target = _get(doc, "target", "", "dict")
    if not _get(target, "name", "target.", "str").strip():
        raise _Invalid("target.name: empty")
    _get(target, "device", "target.", "str", required=False)
    machine = _get(doc, "machine", "", "dict")
    for key in ("cpu", "arch", "platform"):
        _get(machine, key, "machine.", "str", required=False)
    _get(machine, "cores", "machine.", "int", required=False)
    gpu = _get(machine, "gpu", "machine.", "dict", required=False)
    if gpu is not None:
        _get(gpu, "name", "machine.gpu.", "str")
        _get(gpu, "driver", "machine.gpu.", "str", required=False)
    board = _get(doc, "board", "", "dict", required=False)
    if board is not None:
        _get(board, "key", "board.", "str")
        _get(board, "emulated", "board.", "bool")
        _get(board, "tracker", "board.", "str", required=False)
    _get(doc, "reference", "", "str", required=False)
    engines = _get(doc, "engines", "", "list")
    if not engines:
        raise _Invalid("engines: empty (a run times at least one engine)")
    for i, engine in enumerate(engines):
        if not isinstance(engine, dict):
            raise _Invalid(f"engines[{i}]: expected an object, got {_show(engine)}")
        _check_engine(engine, f"engines[{i}].")
    if doc.get("agreement_pairs") is not None:  # optional; left out of documents that have none
        for i, pair in enumerate(_get(doc, "agreement_pairs", "", "list")):
            if not isinstance(pair, dict):
                raise _Invalid(f"agreement_pairs[{i}]: expected an object, got {_show(pair)}")
            _check_pair(pair, f"agreement_pairs[{i}].")


def _check_engine(e: dict, w: str) -> None:
    if not _get(e, "name", w, "str").strip():
        raise _Invalid(f"{w}name: empty")
    _get(e, "version", w, "str", required=False)
    _get(e, "precision", w, "str", required=False, default="fp32")
    status = _get(e, "status", w, "str")
    if status not in STATUSES:
        raise _Invalid(f"{w}status: {_show(status)} is not one of {', '.join(STATUSES)}")
    _get(e, "emulated", w, "bool", required=False, default=False)
    _get(e, "threads", w, "int", required=False)
    _get(e, "error", w, "str", required=False)
    if status == "ok":
        lat = _get(e, "latency_ms", w, "dict")
        lw = f"{w}latency_ms."
        for key in ("median", "p90", "min", "max"):
            if _get(lat, key, lw, "number") < 0:
                raise _Invalid(f"{lw}{key}: negative")
        _get(lat, "mean", lw, "number", required=False)
        if _get(lat, "count", lw, "int") < 1:
            raise _Invalid(f"{lw}count: must be at least 1")
        _get(lat, "warmup", lw, "int", required=False)
        _get(lat, "truncated", lw, "bool", required=False, default=False)
        if _get(lat, "rounds", lw, "int", required=False, default=1) < 1:
            raise _Invalid(f"{lw}rounds: must be at least 1")
        if not lat["min"] <= lat["median"] <= lat["max"]:
            raise _Invalid(f"{lw[:-1]}: median {lat['median']:g} is outside min..max")
    else:
        e["latency_ms"] = None
        if not (e["error"] or "").strip():
            raise _Invalid(f"{w}error: missing (a {status} engine says why)")
    agreement = _get(e, "agreement", w, "dict", required=False)
    if agreement is not None:
        aw = f"{w}agreement."
        _get(agreement, "reference", aw, "str")
        _get(agreement, "passed", aw, "bool")
        for key in ("rtol", "atol", "max_abs", "max_rel"):
            _get(agreement, key, aw, "number", required=False)
        if "scale_atol" in agreement:
            _get(agreement, "scale_atol", aw, "number", required=False)
    tuning = _get(e, "tuning", w, "dict", required=False)
    if tuning is not None:
        for key in ("tasks", "covered", "trials", "records"):
            _get(tuning, key, f"{w}tuning.", "int", required=False)
        _get(tuning, "logs", f"{w}tuning.", "str", required=False)
        _get(tuning, "layout", f"{w}tuning.", "str", required=False)


def _check_pair(p: dict, w: str) -> None:
    for key in ("a", "b"):
        if not _get(p, key, w, "str").strip():
            raise _Invalid(f"{w}{key}: empty")
    _get(p, "precision", w, "str")
    for key in ("a_precision", "b_precision"):
        _get(p, key, w, "str", required=False, default=p["precision"])
    _get(p, "passed", w, "bool")
    for key in ("rtol", "atol", "max_abs", "max_rel"):
        _get(p, key, w, "number", required=False)
    if "scale_atol" in p:
        _get(p, "scale_atol", w, "number", required=False)


def emulated(doc: dict[str, Any], engine: dict[str, Any]) -> bool:
    """Whether an engine's timings come from an emulator: its own flag, or an emulated board."""
    return bool(engine.get("emulated") or (doc.get("board") or {}).get("emulated"))
