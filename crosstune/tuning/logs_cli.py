"""`crosstune logs list|show|merge|prune|export|tag`: the tuning-log store from the command line.

Everything except `export --format tvm` works on the JSON alone, without importing TVM.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..errors import UserError
from ..textfmt import table
from . import logstore


def _root(args) -> Path:
    return Path(args.root) if getattr(args, "root", None) else logstore.project_logs_root()


def resolve(name: str, args) -> logstore.Store:
    """A store from a target preset name (its folder under the logs root), the name of another folder
    under the root (`rpi4-emulated`), or a folder path."""
    from .. import targets

    if name in targets.names():
        return logstore.Store(_root(args) / (targets.get(name).logs or name))
    under_root = _root(args) / name
    if "/" not in name and not Path(name).exists() and under_root.is_dir():
        return logstore.Store(under_root)
    return logstore.Store(Path(name))


def _existing(args) -> logstore.Store:
    """The store named by `args.store`, which must hold logs (prune, export)."""
    if args.keep < 1:
        raise UserError("--keep must be at least 1")
    store = resolve(args.store, args)
    if not store.exists():
        raise UserError(f"no tuning logs in {store.path}")
    return store


def _load(store: logstore.Store, say) -> logstore.Index:
    index = store.load()
    _problems(index, say)
    return index


def _latency(secs: float | None) -> str:
    if secs is None:
        return "-"
    if secs < 1e-6:
        return f"{secs * 1e9:.0f} ns"
    return f"{secs * 1e6:.1f} us" if secs < 1e-3 else f"{secs * 1e3:.2f} ms"


def _problems(index: logstore.Index, say) -> None:
    for p in index.problems:
        say(f"warning: {p}")


def run(args, say) -> int:
    return {"list": _list, "show": _show, "merge": _merge, "prune": _prune, "export": _export,
            "tag": _tag}[args.logs_command](args, say)


def _list(args, say) -> int:
    root = _root(args)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    rows = []
    for folder in folders:
        store = logstore.Store(folder)
        if not store.shards():
            continue
        index = store.load()
        _problems(index, say)
        models = Counter(r.data.get("model") or "?" for r in index.records)
        ok = sum(1 for r in index.records if r.ok)
        rows.append([folder.name, str(len(index.shards)), str(len(index.by_workload())), str(ok),
                     str(len(index.records) - ok), ", ".join(sorted(models)), _machines_cell(index)])
    if not rows:
        say(f"no tuning logs under {root}")
        return 0
    say(f"tuning logs under {root}")
    say(table(["STORE", "SHARDS", "WORKLOADS", "RECORDS", "FAILED", "MODELS", "MEASURED ON"], rows))
    return 0


UNNAMED = "unrecorded"  # records from before records named the machine that measured them


def _machines_cell(index: logstore.Index) -> str:
    counts = index.machine_counts()
    return ", ".join(f"{m or UNNAMED} ({n})" for m, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _machines_lines(index: logstore.Index, say) -> None:
    counts = index.machine_counts()
    for m, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        name = index.machines.get(m or "", "")
        say(f"  measured on {m or UNNAMED}{f' ({name})' if name else ''}: {n} records")


def _show(args, say) -> int:
    store = resolve(args.store, args)
    if not store.exists():
        raise UserError(f"no tuning logs in {store.path}")
    raw = store.load()
    _problems(raw, say)
    machine = getattr(args, "machine", None)
    index = raw.view(None if machine in (None, "any") else machine)
    rows = []
    for wl, recs in sorted(index.by_workload().items(), key=lambda kv: kv[1][0].data.get("task", "")):
        models = sorted({r.data.get("model") or "?" for r in recs})
        if args.model and args.model not in models:
            continue
        tasks = sorted({r.data.get("task") or "?" for r in recs})
        best = index.best(wl)
        # TRIALS: every trial measured for the workload, those whose records prune/export dropped
        # included (their tallies); RECORDS: the records the store still holds.
        rows.append([", ".join(tasks)[:48], wl[:12], str(index.trials(wl)), str(len(recs)),
                     str(sum(1 for r in recs if not r.ok)), _latency(best.seconds if best else None),
                     _default(index, wl, best), ", ".join(models), (best.machine or UNNAMED) if best else "-"])
    say(f"{store.path}: {len(index.shards)} shards, {len(rows)} workloads, {len(index.records)} records"
        + (f", read for machine {machine} (its records where a workload has any)" if index.machine else ""))
    _machines_lines(index, say)
    pins: dict[str, int] = {}
    for (_, m), _line in index.pins.items():
        pins[m] = pins.get(m, 0) + 1
    for m, n in sorted(pins.items()):
        say(f"  pinned by calibrate for {m}: {n} workload{'s' if n != 1 else ''} (the record that ran fastest inside "
            "a model, applied instead of the fastest tuning time)")
    say(table(["TASK", "WORKLOAD", "TRIALS", "RECORDS", "FAILED", "BEST", "DEFAULT", "MODELS", "BEST FROM"], rows))
    return 0


def _default(index: logstore.Index, wl: str, best) -> str:
    """The workload's time on its default schedule; `*` where that beats its best record, so
    compile leaves the workload on its default schedule."""
    secs = index.default_seconds(wl)
    if secs is None:
        return "-"
    if secs >= logstore.FAILED_SECS / 10:
        return "failed"
    return _latency(secs) + (" *" if best is not None and secs <= best.seconds else "")


def _sources(paths: list[str]) -> logstore.Index:
    """Read shards from folders and files into one index."""
    index = logstore.Index()
    for name in paths:
        path = Path(name)
        if path.is_dir():
            sub = logstore.Store(path).load()
        elif path.is_file():
            sub = logstore.Index()
            logstore.read_shard(path, sub)
            sub.shards.append(path)
        else:
            raise UserError(f"no tuning logs at {path}")
        index.workloads.update({k: v for k, v in sub.workloads.items() if k not in index.workloads})
        index.records.extend(sub.records)
        for line in sub.default_lines.values():
            index.add_default(line)
        for line in sub.pins.values():
            index.add_pin(line)
        for k, v in sub.machines.items():
            index.machines.setdefault(k, v)
        index.problems.extend(sub.problems)
        index.shards.extend(sub.shards)
    return index


def _merge(args, say) -> int:
    dest = resolve(args.into, args)
    incoming = _sources(args.sources)
    _problems(incoming, say)
    existing = dest.load()
    have = {r.key for r in existing.records}
    new = [r for r in logstore.dedupe(incoming.records) if r.key not in have and r.workload in incoming.workloads]
    defaults = [d for key, d in incoming.default_lines.items()
                if key[0] in incoming.workloads and (key not in existing.default_lines or logstore.median(d["run_secs"])
                                                     < logstore.median(existing.default_lines[key]["run_secs"]))]
    pins = [p for key, p in incoming.pins.items()
            if key[0] in incoming.workloads and (key not in existing.pins or float(p.get("time") or 0)
                                                 > float(existing.pins[key].get("time") or 0))]
    shard = dest.write_shard(new, incoming.workloads, label="merge", defaults=defaults, machines=incoming.machines,
                             pins=pins)
    workloads = len({r.workload for r in new})
    known = len({r.workload for r in new} & set(existing.workloads))
    say(f"merged {len(new)} new records ({workloads} workloads, {known} of them already in the store) "
        f"from {len(incoming.shards)} shards into {dest.path}"
        + (f" ({shard.name})" if shard else "; nothing new"))
    return 0


def _prune(args, say) -> int:
    store = _existing(args)
    with store.lock(exclusive=True):
        index = _load(store, say)
        kept = logstore.best_k(index, args.keep)
        store.replace(index, kept, label="pruned")
    left = f"; left {len(index.skipped)} unreadable shard(s) as they were" if index.skipped else ""
    say(f"pruned {store.path}: kept {len(kept)} of {len(index.records)} records "
        f"(best {args.keep} per workload and measuring machine, {len(index.by_workload())} workloads){left}")
    return 0


def _export(args, say) -> int:
    store = _existing(args)
    index = _load(store, say)
    if args.machine and args.machine != "any":  # what a compile for that machine reads
        index = index.view(args.machine)
    best = logstore.best_k(index, args.keep)
    out = Path(args.output)
    if args.format == "crosstune":
        if logstore.Store(out).exists():
            raise UserError(f"{out} already holds tuning logs; export into a new folder")
        shard = logstore.Store(out).write_shard(best, index.workloads, label="export",
                                                tallies=logstore.dropped_tallies(index, best),
                                                defaults=index.default_lines.values(), machines=index.machines,
                                                pins=index.pins.values())
        say(f"exported {len(best)} records ({len(index.by_workload())} workloads) to {shard}")
        return 0
    # TVM's own JSONDatabase, for use with plain TVM (`ms.database.JSONDatabase(work_dir=...)`).
    out.mkdir(parents=True, exist_ok=True)
    for name in ("database_workload.json", "database_tuning_record.json"):
        if (out / name).exists():
            raise UserError(f"{out / name} exists; export into a new folder")
    from tvm.s_tir import meta_schedule as ms

    sub = logstore.Index(workloads=index.workloads, records=best)
    mem = store.tvm_database(sub)
    tvm_db = ms.database.JSONDatabase(work_dir=str(out))
    for rec in mem.get_all_tuning_records():
        tvm_db.commit_workload(rec.workload.mod)
        tvm_db.commit_tuning_record(ms.database.TuningRecord(rec.trace, tvm_db.commit_workload(rec.workload.mod),
                                                              rec.run_secs, rec.target, rec.args_info))
    say(f"exported {len(best)} records to TVM JSONDatabase {out}")
    return 0


def _tag(args, say) -> int:
    """Name the machine that measured records that name none (stores from before records did):
    the records and default-schedule times in a time window, and the trial tallies of workloads
    whose records then all name that one machine. Records that already name a machine keep it."""
    import datetime
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", args.machine):
        raise UserError(f"--machine {args.machine!r}: a machine id is lower-case letters, digits, '.', '_' and '-' "
                        "(as `crosstune logs show` lists them, e.g. intel-6-143)")

    def moment(text: str | None, flag: str) -> float | None:
        if text is None:
            return None
        try:
            t = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise UserError(f"{flag} {text!r}: not an ISO date or date-time (2026-12-04, 2026-12-04T21:30)") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=datetime.timezone.utc)
        return t.timestamp()

    since, until = moment(args.since, "--since"), moment(args.until, "--until")
    store = resolve(args.store, args)
    if not store.exists():
        raise UserError(f"no tuning logs in {store.path}")

    def chosen(obj: dict) -> bool:
        if logstore.machine_of(obj) is not None:
            return False
        t = obj.get("time")
        if (since is not None or until is not None) and not isinstance(t, (int, float)):
            return False
        if args.model and args.model not in str(obj.get("model") or "").split("+"):
            return False
        return (since is None or t >= since) and (until is None or t < until)

    with store.lock(exclusive=True):
        index = _load(store, say)
        if index.skipped:
            raise UserError(f"{len(index.skipped)} shard(s) of {store.path} cannot be read whole; "
                            "tagging rewrites the store, so it leaves such a store alone")
        tagged = 0
        for r in index.records:
            if chosen(r.data):
                r.data["machine"] = args.machine
                tagged += 1
        defaults = [dict(d, machine=args.machine) if chosen(d) else d for d in index.default_lines.values()]
        new = logstore.Index(workloads=index.workloads, records=index.records, problems=index.problems,
                             shards=index.shards, skipped=index.skipped, machines=dict(index.machines))
        for d in defaults:
            new.add_default(d)
        for p in index.pins.values():
            new.add_pin(p)
        owners = {wl: {r.machine for r in recs} for wl, recs in index.by_workload().items()}
        tallies = 0
        for (wl, m), n in index.tally_lines.items():
            if m is None and owners.get(wl) == {args.machine}:
                m, tallies = args.machine, tallies + n
            new.add_tally(wl, m, n)
        if not tagged:
            say(f"no record of {store.path} matches (untagged, in the window): nothing changed")
            return 0
        new.machines[args.machine] = args.name or new.machines.get(args.machine, args.machine)
        shard = store.replace(new, new.records, label="tagged")
    say(f"tagged {tagged} records of {store.path} as measured on {args.machine}"
        + (f", and {tallies} tallied trials of workloads whose records all are" if tallies else "")
        + (f" ({shard.name})" if shard else ""))
    return 0
