"""The tuning-log store: MetaSchedule records on disk, one folder per target preset.

Layout of a store (for example `logs/x86-avx512/`): any number of *shards*, each written by exactly
one process. A tuner's shard is a plain `*.jsonl` file, only ever appended to; a shard written whole
(by `prune`, `merge` into a store, `export`) is gzip-compressed, `*.jsonl.gz`: the workload and trace
JSON compresses about 13x, which is what makes stores small enough to commit and ship. Every line
is one JSON object:

    {"kind": "header", "format": 1, "tvm": "0.27.0.post1", "crosstune": "...", "created": "..."}
    {"kind": "workload", "hash": "<structural hash>", "mod": "<TVM's Workload JSON>"}
    {"kind": "record", "workload": "<hash>", "trace": ..., "run_secs": [...], "target": ...,
     "args_info": ..., "task": "fused_conv2d_add_relu", "model": "resnet50", "time": ...}
    {"kind": "default", "workload": "<hash>", "run_secs": [...], "task": ..., "time": ...}
    {"kind": "in_model", "workload": "<hash>", "trace_sha": ..., "machine": ..., "secs": ..., "model": ...}

Records and default lines carry `"machine": "<id>"`, the kind of machine that measured them
(`targets.host.Machine`: `intel-6-143`, `amd-25-17`, `cuda-nvidia-h200`, a board's CPU); a tuner's
header says it once more with a name for people. A time is a fact about the machine that measured it,
and one preset's store gathers records from several kinds of machine (`x86-avx512` covers Intel Xeons
and AMD Zen 4, whose best schedules differ), so a store is read for a machine (`Index.view`):
- compiling for a machine uses, for each workload, the records measured on it when there are any,
  and all records otherwise (better than no record; a schedule tuned elsewhere still beats the
  default schedule by far);
- tuning on a machine counts, and resumes from, only its own trials and those of records that name
  no machine (stores from before records named one), so a second kind of machine tunes for itself;
- compaction keeps the best K records of every workload *per machine*, and merging keeps a
  schedule measured on two machines once for each.

A `default` line is the workload's time with the schedule a build gives it when no record applies
(dlight's rules on GPUs, TVM's plain lowering on CPUs), measured once by the tuner alongside the
task's first candidates. Compile applies a workload's best record only when it is faster than that:
a few trials on a large kernel can find schedules slower than dlight's.

An `in_model` line pins one record of a workload for one machine: `crosstune calibrate` timed the
workload's best records inside a compiled model on that machine, and this one ran fastest there
(`tuning/calibrate.py`). Compiling for that machine applies the pinned record instead of the one with
the fastest tuning time, until the workload is tuned again there (a record of that machine newer than
the pin ends it); the latest pin of a (workload, machine) counts, and compaction keeps pinned records
whatever their rank.

A shard names each workload before its first record, so every shard stands alone: shards can be
copied between machines and merged by copying files. Why this shape:
- one writer per file, so two `tune` processes on one store never interleave partial lines; a crash
  or Ctrl-C loses at most the record being written, and every measured record is flushed and fsynced
  as it arrives;
- a truncated or corrupt line is reported with its file and line number and skipped; the rest loads;
- compaction (`prune`, `merge` into a store, `export`) writes a new shard atomically (temp file +
  rename) and only then removes the shards it replaced, under an exclusive lock that running tuners
  hold shared, so it never removes a shard that is still being written.

Reading the index (`Store.load`) needs no TVM: listing, pruning and merging work on the JSON.
`Store.tvm_database()` builds a MetaSchedule `MemoryDatabase` from it for tuning and compiling.
"""

from __future__ import annotations

import datetime
import fcntl
import gzip
import io
import json
import math
import os
import socket
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .. import __version__
from ..errors import UserError

FORMAT_VERSION = 1
FAILED_SECS = 1e10  # what MetaSchedule records for a candidate that failed to build or run
LOCK_NAME = ".lock"


def project_logs_root() -> Path:
    """Where stored logs live: $CROSSTUNE_LOGS, else the checkout's `logs/`, else the user cache."""
    env = os.environ.get("CROSSTUNE_LOGS")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "logs"
    if checkout.is_dir():
        return checkout
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "crosstune" / "logs"


def store_for(target, db: str | None = None) -> "Store":
    """The store a target uses: `db` when given, else `<logs root>/<target's log folder>`."""
    if db:
        return Store(Path(db))
    return Store(project_logs_root() / (target.logs or target.name))


@dataclass
class Record:
    workload: str  # structural hash
    data: dict  # the line as stored
    where: str  # "file:line"
    # The workload its trace was measured on: the last workload line of its hash before it in its
    # shard. Structurally equal workloads (one hash) can name their blocks differently (a layer
    # norm's blocks are named after its input variable), and a trace replays only on its own names.
    mod: str | None = None

    @property
    def seconds(self) -> float:
        secs = [float(s) for s in self.data.get("run_secs") or [FAILED_SECS]]
        secs.sort()
        return secs[len(secs) // 2]

    @property
    def ok(self) -> bool:
        return self.seconds < FAILED_SECS / 10

    @property
    def machine(self) -> str | None:
        """The kind of machine that measured it (None: a record from before records named one)."""
        m = self.data.get("machine")
        return m if isinstance(m, str) and m else None

    @property
    def key(self) -> tuple[str, str, str | None]:
        """Identity of a measurement: its workload, its trace and the machine that timed it."""
        return self.workload, str(self.data.get("trace_sha")), self.machine


@dataclass
class Index:
    """Everything a store holds, read without TVM."""

    workloads: dict[str, str] = field(default_factory=dict)  # hash -> Workload JSON (mod)
    records: list[Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "file:line: what is wrong"
    shards: list[Path] = field(default_factory=list)
    # Trials that `prune`/`export` dropped, per workload: they still count against a task's
    # budget, so a pruned store does not make `tune` measure the same workloads again.
    tallies: dict[str, int] = field(default_factory=dict)
    # Shards not read whole (another log format, unreadable file): compaction must leave them be.
    skipped: list[Path] = field(default_factory=list)
    # hash -> the fastest `default` line of the workload (its time without a record)
    defaults: dict[str, dict] = field(default_factory=dict)
    # (hash, machine) -> the fastest `default` line each machine measured; (hash, machine) -> trials
    # dropped by compaction: what compaction writes back, one per machine
    default_lines: dict[tuple[str, str | None], dict] = field(default_factory=dict)
    tally_lines: dict[tuple[str, str | None], int] = field(default_factory=dict)
    # machine id -> its name, from the tuners' shard headers
    machines: dict[str, str] = field(default_factory=dict)
    # the machine this index was read for (`view`), None: every record as stored
    machine: str | None = None
    # (hash, machine) -> the latest `in_model` line: the record calibrate pinned for that machine
    pins: dict[tuple[str, str], dict] = field(default_factory=dict)

    def by_workload(self) -> dict[str, list[Record]]:
        out: dict[str, list[Record]] = defaultdict(list)
        for r in self.records:
            out[r.workload].append(r)
        return out

    def trials(self, workload: str) -> int:
        return sum(1 for r in self.records if r.workload == workload) + self.tallies.get(workload, 0)

    def best(self, workload: str) -> Record | None:
        ok = [r for r in self.records if r.workload == workload and r.ok]
        return min(ok, key=lambda r: r.seconds) if ok else None

    def default_seconds(self, workload: str) -> float | None:
        line = self.defaults.get(workload)
        return median(line["run_secs"]) if line else None

    def add_default(self, obj: dict) -> None:
        old = self.defaults.get(obj["workload"])
        if old is None or median(obj["run_secs"]) < median(old["run_secs"]):
            self.defaults[obj["workload"]] = obj
        key = (obj["workload"], machine_of(obj))
        old = self.default_lines.get(key)
        if old is None or median(obj["run_secs"]) < median(old["run_secs"]):
            self.default_lines[key] = obj

    def add_pin(self, obj: dict) -> None:
        key = (obj["workload"], obj["machine"])
        old = self.pins.get(key)
        if old is None or float(obj.get("time") or 0) >= float(old.get("time") or 0):
            self.pins[key] = obj

    def pinned(self) -> dict[str, Record]:
        """Workload hash -> the record pinned for the machine this index was read for, where the
        store holds it (none when read for no machine: `--tuned-on any` goes by tuning times)."""
        if self.machine is None:
            return {}
        want = {wl: line["trace_sha"] for (wl, m), line in self.pins.items() if m == self.machine}
        # a pin stands until the workload is tuned again on that machine: newer records were never
        # timed inside the model, and one of them may well beat the pinned one there too
        for r in self.records:
            pin = self.pins.get((r.workload, r.machine)) if r.machine == self.machine else None
            if pin is not None and float(r.data.get("time") or 0) > float(pin.get("time") or 0):
                want.pop(r.workload, None)
        out: dict[str, Record] = {}
        for r in self.records:
            if want.get(r.workload) == r.data.get("trace_sha") and r.machine == self.machine and r.ok:
                if r.workload not in out or r.seconds < out[r.workload].seconds:
                    out[r.workload] = r
        return out

    def add_tally(self, workload: str, machine: str | None, trials: int) -> None:
        self.tallies[workload] = self.tallies.get(workload, 0) + trials
        self.tally_lines[(workload, machine)] = self.tally_lines.get((workload, machine), 0) + trials

    def trials_on(self, workload: str, machine: str | None) -> int:
        """Trials measured on `machine` (records and compaction tallies)."""
        return (sum(1 for r in self.records if r.workload == workload and r.machine == machine)
                + self.tally_lines.get((workload, machine), 0))

    def machine_counts(self) -> dict[str | None, int]:
        """Records per measuring machine (None: records that name none)."""
        out: dict[str | None, int] = defaultdict(int)
        for r in self.records:
            out[r.machine] += 1
        return dict(out)

    def view(self, machine: str | None, strict: bool = False) -> "Index":
        """This index as read for `machine` (see the module docstring); None: unchanged.
        Compiling (`strict=False`): each workload's records measured on `machine` where it has any,
        else all of its records. Tuning (`strict=True`): the records, default times and tallies of
        `machine` and of no named machine only, so other machines' trials neither count against a
        task's budget nor stand in for this machine's best time."""
        if machine is None:
            return self
        out = Index(workloads=self.workloads, problems=self.problems, shards=self.shards, skipped=self.skipped,
                    machines=self.machines, machine=machine)
        mine_wl: set[str] = set()
        for wl, recs in self.by_workload().items():
            mine = [r for r in recs if r.machine == machine]
            if mine:
                mine_wl.add(wl)
            if strict:
                keep = [r for r in recs if r.machine in (machine, None)]
            else:
                keep = mine or recs
            out.records.extend(keep)

        def wanted(wl: str, m: str | None) -> bool:
            if strict:
                return m in (machine, None)
            return m == machine if wl in mine_wl else True

        for (wl, m), line in self.default_lines.items():
            if wanted(wl, m):
                out.add_default(line)
        for (wl, m), n in self.tally_lines.items():
            if wanted(wl, m):
                out.add_tally(wl, m, n)
        for (wl, m), line in self.pins.items():
            if m == machine:
                out.add_pin(line)
        return out

    def default_wins(self) -> set[str]:
        """Workloads whose default schedule measured faster than their best record."""
        out = set()
        for wl in self.defaults:
            best = self.best(wl)
            if best is not None and self.default_seconds(wl) <= best.seconds:
                out.add(wl)
        return out


def median(secs) -> float:
    secs = sorted(float(s) for s in secs)
    return secs[len(secs) // 2]


def _load_intrinsics_for(records: list[Record]) -> None:
    """Register the tensor intrinsics that the records' targets use before their traces are parsed:
    a trace that tensorizes (CUDA tensor cores, x86 VNNI) names its intrinsic, and TVM refuses the
    whole record when that intrinsic is not registered yet."""
    from .intrinsics import load_tensor_intrinsics

    devices = set()
    for r in records:
        raw = r.data.get("record")
        tgt = raw[2] if isinstance(raw, list) and len(raw) > 2 else None
        kind = tgt.get("kind") if isinstance(tgt, dict) else None
        if kind:
            devices.add("cuda" if kind == "cuda" else "cpu")
    for device in sorted(devices):
        load_tensor_intrinsics(device)


class Store:
    """A folder of shards. Create with a path; nothing is written until a `Writer` opens."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def exists(self) -> bool:
        return bool(self.shards())

    def shards(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return sorted([*self.path.glob("*.jsonl"), *self.path.glob("*.jsonl.gz")])

    # -- reading ----------------------------------------------------------------------------------
    def load(self) -> Index:
        index = Index()
        for shard in self.shards():
            read_shard(shard, index)
            index.shards.append(shard)
        return index

    def tvm_database(self, index: Index | None = None, best_only: bool = False):
        """A MetaSchedule MemoryDatabase holding every readable record (imports TVM). Compiling
        needs only each workload's best record (`best_only`); tuning wants them all, so the
        search never re-measures a stored schedule."""
        from tvm.s_tir import meta_schedule as ms

        index = index or self.load()
        db = ms.database.MemoryDatabase()
        committed: set[str] = set()  # hashes the database has a workload for
        variants: dict[tuple[str, str], object] = {}  # (hash, workload JSON) -> Workload
        bad: set[tuple[str, str]] = set()
        records = best_k(index, 1, pinned=False) if best_only else index.records
        if best_only:  # compiling: a record slower than the default schedule is not applied
            wins = index.default_wins()
            pins = index.pinned()  # a record calibrate found fastest in the model goes instead
            records = [r for r in records if r.workload not in wins and r.workload not in pins]
            records += [r for wl, r in pins.items() if wl not in wins]
        _load_intrinsics_for(records)
        for r in records:
            mod_json = r.mod or index.workloads.get(r.workload)
            if mod_json is None:
                index.problems.append(f"{r.where}: record of unknown workload {r.workload} skipped")
                continue
            key = (r.workload, mod_json)
            if key in bad:
                continue
            wl = variants.get(key)
            if wl is None:
                # Each record is read against the workload it was measured on. The first variant of
                # a hash is the database's; MetaSchedule matches records to queries structurally and
                # applies a record to its own workload, so records of other variants serve too.
                try:
                    wl = ms.database.Workload.from_json([r.workload, mod_json])
                    if r.workload not in committed:
                        wl = db.commit_workload(wl.mod)
                        committed.add(r.workload)
                except Exception as err:  # noqa: BLE001 - a corrupt workload must not stop the rest
                    index.problems.append(f"{r.where}: unreadable workload {r.workload} skipped ({_short(err)})")
                    bad.add(key)
                    continue
                variants[key] = wl
            try:
                rec = ms.database.TuningRecord.from_json(r.data["record"], wl)
            except Exception as err:  # noqa: BLE001
                index.problems.append(f"{r.where}: unreadable record skipped ({_short(err)})")
                continue
            db.commit_tuning_record(rec)
        return db

    # -- writing ----------------------------------------------------------------------------------
    def writer(self, label: str = "tune", machine: dict | None = None) -> "Writer":
        """This process's shard; `machine` ({"id", "name"}: the machine that measures) goes into its
        header, and its id onto every record and default line added."""
        return Writer(self, label, machine)

    def lock(self, exclusive: bool) -> "_Lock":
        return _Lock(self.path, exclusive)

    def write_shard(self, records: Iterable[Record], workloads: dict[str, str], label: str,
                    tallies: dict | None = None, defaults: Iterable[dict] | None = None,
                    machines: dict[str, str] | None = None, pins: Iterable[dict] | None = None) -> Path | None:
        """Write `records` (and trial tallies of dropped records, keyed by workload or by (workload,
        machine), default-schedule lines and `in_model` pins) to one new shard atomically; returns
        its path (None when empty). `machines` (id -> name) goes into the header."""
        records = list(records)
        defaults = [d for d in (defaults or []) if d.get("workload") in workloads]
        pins = [p for p in (pins or []) if p.get("workload") in workloads]
        if not records and not defaults and not pins:
            return None
        self.path.mkdir(parents=True, exist_ok=True)
        final = self.path / (_shard_name(label) + ".gz")
        tmp = final.with_name(final.name + ".tmp")
        seen: set[str] = set()
        current: dict[str, str] = {}  # hash -> the workload line in effect in this shard
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
                io.TextIOWrapper(gz, encoding="utf-8") as f:
            header = _header()
            if machines:
                header["machines"] = dict(sorted(machines.items()))
            f.write(_dumps(header) + "\n")
            for r in records:
                mod = r.mod or workloads[r.workload]
                if current.get(r.workload) != mod:
                    # a record's own workload precedes it (another variant of the hash: another line)
                    seen.add(r.workload)
                    current[r.workload] = mod
                    f.write(_dumps({"kind": "workload", "hash": r.workload, "mod": mod}) + "\n")
                f.write(_dumps(r.data) + "\n")
            by_machine = [(*(key if isinstance(key, tuple) else (key, None)), n) for key, n in (tallies or {}).items()]
            for wl, machine, n in sorted(by_machine, key=lambda t: (t[0], t[1] or "")):
                if n > 0 and wl in seen:
                    line = {"kind": "tally", "workload": wl, "trials": int(n)}
                    if machine:
                        line["machine"] = machine
                    f.write(_dumps(line) + "\n")
            for line in [*sorted(defaults, key=lambda d: (d["workload"], str(d.get("machine") or ""))),
                         *sorted(pins, key=lambda d: (d["workload"], d["machine"]))]:
                wl = line["workload"]
                if wl not in current:
                    current[wl] = workloads[wl]
                    f.write(_dumps({"kind": "workload", "hash": wl, "mod": workloads[wl]}) + "\n")
                f.write(_dumps(line) + "\n")
            f.flush()
            gz.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, final)
        return final

    def replace(self, index: Index, records: list[Record], label: str) -> Path | None:
        """Replace the shards `index` read whole by one shard holding `records` and the tallies of
        the trials left out; shards it could not read whole stay (caller holds the exclusive lock)."""
        new = self.write_shard(records, index.workloads, label, dropped_tallies(index, records),
                               index.default_lines.values(), index.machines, index.pins.values())
        for shard in index.shards:
            if shard != new and shard not in index.skipped:
                shard.unlink(missing_ok=True)
        return new


class Writer:
    """Appends records to this process's own shard; every record is on disk when `add` returns."""

    def __init__(self, store: Store, label: str, machine: dict | None = None):
        self.store = store
        self.label = label
        self.machine = machine
        self.path: Path | None = None
        self._f = None
        self._written: set[str] = set()
        self._lock: _Lock | None = None
        self.count = 0

    def __enter__(self) -> "Writer":
        self.store.path.mkdir(parents=True, exist_ok=True)
        self._lock = self.store.lock(exclusive=False).acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def add(self, workload_hash: str, mod_json: str, data: dict, kind: str = "record") -> None:
        if self._f is None:
            self.path = self.store.path / _shard_name(self.label)
            self._f = open(self.path, "a")
            header = _header()
            if self.machine:
                header["machine"] = self.machine
            self._f.write(_dumps(header) + "\n")
        lines = []
        if workload_hash not in self._written:
            lines.append(_dumps({"kind": "workload", "hash": workload_hash, "mod": mod_json}))
            self._written.add(workload_hash)
        line = {"kind": kind, "workload": workload_hash, **data}
        if self.machine and kind in ("record", "default"):
            line.setdefault("machine", self.machine["id"])
        lines.append(_dumps(line))
        self._f.write("\n".join(lines) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        if kind == "record":
            self.count += 1


class _Lock:
    """flock on `<store>/.lock`: tuners hold it shared, compaction exclusive (never blocking)."""

    def __init__(self, folder: Path, exclusive: bool):
        self.folder = folder
        self.exclusive = exclusive
        self._fd: int | None = None

    def acquire(self) -> "_Lock":
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            what = "a running `crosstune tune` is writing to it" if self.exclusive else "it is being rewritten"
            raise UserError(f"tuning log store {self.folder} is busy: {what}; try again when it finishes") from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "_Lock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# -- operations over indexes (no TVM) -----------------------------------------------------------------
def best_k(index: Index, k: int, pinned: bool = True) -> list[Record]:
    """The `k` fastest distinct successful records of every workload measured on each machine
    (failures dropped): times from different machines are not compared, so one machine's faster
    clock never pushes another machine's records out. `pinned`: and every record an `in_model`
    line pins, whatever its rank (what compaction keeps)."""
    pins = {(wl, m, line["trace_sha"]) for (wl, m), line in index.pins.items()} if pinned else set()
    out: list[Record] = []
    for wl, recs in sorted(index.by_workload().items()):
        ok = _dedupe(r for r in recs if r.ok)
        for machine in sorted({r.machine or "" for r in ok}):
            mine = sorted((r for r in ok if (r.machine or "") == machine), key=lambda r: r.seconds)
            out.extend(mine[:k])
            out.extend(r for r in mine[k:] if (wl, r.machine, r.data.get("trace_sha")) in pins)
    return out


def dropped_tallies(index: Index, kept: list[Record]) -> dict[tuple[str, str | None], int]:
    """Per workload and measuring machine, the trials that keeping only `kept` leaves unrepresented."""
    trials: dict[tuple[str, str | None], int] = defaultdict(int, index.tally_lines)
    for r in index.records:
        trials[(r.workload, r.machine)] += 1
    for r in kept:
        trials[(r.workload, r.machine)] -= 1
    return dict(trials)


def _dedupe(records: Iterable[Record]) -> list[Record]:
    """One record per (workload, trace): the fastest measurement of a schedule measured twice."""
    best: dict[tuple[str, str], Record] = {}
    for r in records:
        prev = best.get(r.key)
        if prev is None or r.seconds < prev.seconds:
            best[r.key] = r
    return list(best.values())


def dedupe(records: Iterable[Record]) -> list[Record]:
    """All records with exact duplicates (same workload, same trace) collapsed to the fastest."""
    return _dedupe(records)


def read_shard(path: Path, index: Index) -> None:
    """Add one shard's workloads, records and tallies to `index`; problems are noted, not raised."""
    try:
        if path.name.endswith(".gz"):
            f = gzip.open(path, "rt", encoding="utf-8", errors="replace")
        else:
            f = open(path, encoding="utf-8", errors="replace")
    except OSError as err:
        index.problems.append(f"{path}: cannot read ({err.strerror})")
        index.skipped.append(path)
        return
    read = [0]  # lines read so far
    try:
        with f:
            _read_lines(path, f, index, read)
    except (OSError, EOFError, zlib.error) as err:
        # A compressed shard cut off or damaged: the lines before the damage are read; the shard
        # counts as not read whole, so compaction never deletes it.
        index.problems.append(f"{path}:{read[0] + 1}: compressed shard damaged here "
                              f"({_short(err) or type(err).__name__}); its first {read[0]} lines read, the rest skipped")
        index.skipped.append(path)


def _read_lines(path: Path, f, index: Index, read: list[int]) -> None:
    current: dict[str, str] = {}  # hash -> the last workload line of that hash in this shard
    for lineno, line in enumerate(f, 1):
        read[0] = lineno
        where = f"{path}:{lineno}"
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            kind = obj["kind"]
        except (json.JSONDecodeError, KeyError, TypeError):
            truncated = not line.endswith("\n")
            index.problems.append(f"{where}: {'truncated' if truncated else 'corrupt'} line skipped")
            continue
        if kind == "header":
            if obj.get("format") != FORMAT_VERSION:
                index.problems.append(
                    f"{where}: log format {obj.get('format')} (this crosstune reads {FORMAT_VERSION}); shard skipped"
                )
                index.skipped.append(path)
                return
            _header_machines(obj, index)
        elif kind == "workload":
            if not isinstance(obj.get("hash"), str) or not isinstance(obj.get("mod"), str):
                index.problems.append(f"{where}: corrupt workload line skipped")
                continue
            index.workloads.setdefault(obj["hash"], obj["mod"])
            current[obj["hash"]] = obj["mod"]
        elif kind == "record":
            if not _valid_record(obj):
                index.problems.append(f"{where}: corrupt record line skipped")
                continue
            index.records.append(Record(obj["workload"], obj, where, current.get(obj["workload"])))
        elif kind == "default":
            secs = obj.get("run_secs")
            if not (isinstance(obj.get("workload"), str) and isinstance(secs, list) and secs
                    and all(isinstance(x, (int, float)) and math.isfinite(x) and x > 0 for x in secs)):
                index.problems.append(f"{where}: corrupt default line skipped")
                continue
            index.add_default(obj)
        elif kind == "in_model":
            secs = obj.get("secs")
            if not (all(isinstance(obj.get(k), str) and obj[k] for k in ("workload", "trace_sha", "machine"))
                    and isinstance(secs, (int, float)) and math.isfinite(secs) and secs > 0):
                index.problems.append(f"{where}: corrupt in_model line skipped")
                continue
            index.add_pin(obj)
        elif kind == "tally":
            if not isinstance(obj.get("workload"), str) or not isinstance(obj.get("trials"), int):
                index.problems.append(f"{where}: corrupt tally line skipped")
                continue
            index.add_tally(obj["workload"], machine_of(obj), obj["trials"])
        else:
            index.problems.append(f"{where}: unknown line kind {kind!r} skipped")


def machine_of(obj: dict) -> str | None:
    m = obj.get("machine")
    return m if isinstance(m, str) and m else None


def _header_machines(obj: dict, index: Index) -> None:
    """Machine names a header gives: a tuner's `machine` {id, name}, compaction's `machines` {id: name}."""
    one = obj.get("machine")
    if isinstance(one, dict) and isinstance(one.get("id"), str):
        index.machines.setdefault(one["id"], str(one.get("name") or one["id"]))
    many = obj.get("machines")
    if isinstance(many, dict):
        for k, v in many.items():
            if isinstance(k, str):
                index.machines.setdefault(k, str(v))


def _valid_record(obj: dict) -> bool:
    secs = obj.get("run_secs")
    return (
        isinstance(obj.get("workload"), str)
        and isinstance(secs, list)
        and len(secs) > 0
        and all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in secs)
        and isinstance(obj.get("record"), list)
        and len(obj["record"]) == 4
        and isinstance(obj.get("trace_sha"), str)
    )


def record_line(record, run_secs: list[float], task: str, model: str) -> dict:
    """The stored form of a MetaSchedule TuningRecord: TVM's own JSON of it (trace, run_secs,
    target, argument info), as TVM's JSONDatabase writes it (objects inside a trace, such as the
    index maps of layout rewrites, become JSON-graph strings), plus plain fields for `logs` commands."""
    import hashlib

    from tvm.s_tir.meta_schedule import _ffi_api

    raw = plain_json(_ffi_api.TuningRecordAsJSON(record))
    raw[1] = [float(s) for s in run_secs]
    return {
        "record": raw,
        "trace_sha": hashlib.sha1(json.dumps(raw[0], separators=(",", ":")).encode()).hexdigest(),
        "run_secs": [float(s) for s in run_secs],
        "task": task,
        "model": model,
        "time": round(time.time(), 3),
    }


def plain_json(obj):
    """A TVM FFI value tree as plain JSON values; other objects as TVM JSON-graph strings."""
    import tvm

    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, (tvm.tirx.IntImm, tvm.tirx.FloatImm)):
        return obj.value
    if hasattr(obj, "items") and callable(obj.items):
        return {str(k): plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) or type(obj).__name__ in ("Array", "List"):
        return [plain_json(x) for x in obj]
    return str(tvm.get_global_func("ffi.ToJSONGraphString")(obj, {"tvm_version": tvm.__version__}))


def _header() -> dict:
    import importlib.metadata as md

    try:
        tvm_version = md.version("apache-tvm")
    except md.PackageNotFoundError:
        tvm_version = "unknown"
    return {
        "kind": "header",
        "format": FORMAT_VERSION,
        "tvm": tvm_version,
        "crosstune": __version__,
        "host": socket.gethostname(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _shard_name(label: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    host = socket.gethostname().split(".")[0] or "host"
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)[:40]
    return f"{safe}-{stamp}-{host}-{os.getpid()}-{time.monotonic_ns() % 10**6:06d}.jsonl"


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[-1][:200] if text else type(err).__name__
