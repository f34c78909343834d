"""`crosstune logs list|show|merge|prune|export`: the tuning-log store from the command line.

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
    return {"list": _list, "show": _show, "merge": _merge, "prune": _prune, "export": _export}[args.logs_command](args, say)


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
                     str(len(index.records) - ok), ", ".join(sorted(models))])
    if not rows:
        say(f"no tuning logs under {root}")
        return 0
    say(f"tuning logs under {root}")
    say(table(["STORE", "SHARDS", "WORKLOADS", "RECORDS", "FAILED", "MODELS"], rows))
    return 0


def _show(args, say) -> int:
    store = resolve(args.store, args)
    if not store.exists():
        raise UserError(f"no tuning logs in {store.path}")
    index = store.load()
    _problems(index, say)
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
                     _default(index, wl, best), ", ".join(models)])
    say(f"{store.path}: {len(index.shards)} shards, {len(rows)} workloads, {len(index.records)} records")
    say(table(["TASK", "WORKLOAD", "TRIALS", "RECORDS", "FAILED", "BEST", "DEFAULT", "MODELS"], rows))
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
        for line in sub.defaults.values():
            index.add_default(line)
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
    defaults = {h: d for h, d in incoming.defaults.items()
                if h in incoming.workloads and (h not in existing.defaults
                                                or logstore.median(d["run_secs"]) < existing.default_seconds(h))}
    shard = dest.write_shard(new, incoming.workloads, label="merge", defaults=defaults)
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
        f"(best {args.keep} per workload, {len(index.by_workload())} workloads){left}")
    return 0


def _export(args, say) -> int:
    store = _existing(args)
    index = _load(store, say)
    best = logstore.best_k(index, args.keep)
    out = Path(args.output)
    if args.format == "crosstune":
        if logstore.Store(out).exists():
            raise UserError(f"{out} already holds tuning logs; export into a new folder")
        shard = logstore.Store(out).write_shard(best, index.workloads, label="export",
                                                tallies=logstore.dropped_tallies(index, best),
                                                defaults=index.defaults)
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
