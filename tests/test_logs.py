"""`crosstune logs list|show|merge|prune|export` on stores copied from the session's tuned store
(see test_tuning.tuned_store) or built by editing its JSON lines: no tuning happens here."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_user_error, run_cli, shard_files, shard_text
from crosstune.compile import package
from crosstune.targets.host import this_machine
from test_tuning import (
    FAST,
    PER_TASK,
    START,
    compile_coverage,
    per_workload,
    records,
    show,
    show_counts,
    table_rows,
    tuned_store,
)

FAILED_SECS = 1e10


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, model_dir):
    return tuned_store(tmp_path_factory, model_dir)


@pytest.fixture
def store(tuned, tmp_path) -> Path:
    """A private copy of the tuned store."""
    dst = tmp_path / "store"
    shutil.copytree(tuned.store, dst)
    return dst


def _median(rec: dict) -> float:
    secs = sorted(rec["run_secs"])
    return secs[len(secs) // 2]


def _key(rec: dict) -> tuple[str, str]:
    return rec["workload"], rec["trace_sha"]


def _canon(recs: list[dict]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in recs)


def _best(recs: list[dict]) -> dict[str, float]:
    """The fastest successful median time of each workload, computed from the JSON lines."""
    best: dict[str, float] = {}
    for r in recs:
        if _median(r) < FAILED_SECS / 10:
            best[r["workload"]] = min(best.get(r["workload"], float("inf")), _median(r))
    return best


def _write_shard(path: Path, lines: list[dict]) -> None:
    path.write_text("".join(json.dumps(obj, separators=(",", ":")) + "\n" for obj in lines))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# ------------------------------------------------------------------------------------------ 9. merge
def test_merge_copies_each_record_once(store, tmp_path):
    original = records(store)
    dest = tmp_path / "merged"
    proc = run_cli("logs", "merge", store, "--into", dest, check=0)
    assert re.search(rf"^merged {len(original)} new records \(4 workloads, 0 of them already in the store\) "
                     rf"from 1 shards into {re.escape(str(dest))} \(merge-\S+\.jsonl\.gz\)$", proc.stdout, re.MULTILINE), proc.stdout
    assert len(list(shard_files(dest))) == 1
    assert _canon(records(dest)) == _canon(original)
    assert show_counts(show(dest)) == (4, len(original))

    before = _snapshot(dest)
    proc = run_cli("logs", "merge", store, "--into", dest, check=0)
    assert "merged 0 new records" in proc.stdout and proc.stdout.rstrip().endswith("; nothing new")
    assert _snapshot(dest) == before
    assert _canon(records(store)) == _canon(original)  # the source is left as it was


def test_merge_keeps_one_record_per_workload_and_trace(store, tmp_path):
    """A source holding every record twice (a copied shard) and a third time, re-measured faster:
    the destination gets each (workload, trace) once, with its fastest measurement."""
    original = records(store)
    (shard,) = shard_files(store)
    shutil.copy(shard, store / "copy-of-a-shard.jsonl")
    objs = [json.loads(line) for line in shard_text(shard).splitlines()]
    first = next(o for o in objs if o["kind"] == "record")
    faster = json.loads(json.dumps(first))
    faster["run_secs"] = [s / 2 for s in first["run_secs"]]
    faster["record"][1] = faster["run_secs"]
    workload = next(o for o in objs if o["kind"] == "workload" and o["hash"] == first["workload"])
    _write_shard(store / "remeasured.jsonl", [objs[0], workload, faster])

    dest = tmp_path / "merged"
    proc = run_cli("logs", "merge", store, "--into", dest, check=0)
    assert f"merged {len(original)} new records (4 workloads" in proc.stdout
    assert "from 3 shards" in proc.stdout
    merged = records(dest)
    assert len(merged) == len({_key(r) for r in original}) == len(original)
    assert {_key(r) for r in merged} == {_key(r) for r in original}
    kept = next(r for r in merged if _key(r) == _key(first))
    assert kept["run_secs"] == faster["run_secs"]
    assert show_counts(show(dest)) == (4, len(original))


# ------------------------------------------------------------------------------------------ 10. prune
def test_prune_keeps_the_fastest_success_of_each_workload(store):
    (shard,) = shard_files(store)
    objs = [json.loads(line) for line in shard_text(shard).splitlines()]
    recs = [o for o in objs if o["kind"] == "record"]
    # Failed candidates, as MetaSchedule records them: one per workload, each with its own trace.
    failed = []
    for i, wl in enumerate(sorted({r["workload"] for r in recs})):
        f = json.loads(json.dumps(next(r for r in recs if r["workload"] == wl)))
        f["run_secs"] = [FAILED_SECS]
        f["record"][1] = [FAILED_SECS]
        f["trace_sha"] = f"{i:040x}"
        failed.append(f)
    _write_shard(shard, objs + failed)
    everything = records(store)
    assert len(everything) == len(recs) + 4
    assert show_counts(show(store)) == (4, len(everything))
    best = _best(everything)
    assert len(best) == 4

    proc = run_cli("logs", "prune", store, "--keep", 1, check=0)
    assert proc.stdout.strip() == (f"pruned {store}: kept 4 of {len(everything)} records "
                                   f"(best 1 per workload and measuring machine, 4 workloads)")
    shards = list(shard_files(store))
    assert len(shards) == 1 and shards[0].name.startswith("pruned-") and shards[0] != shard
    assert not list(store.glob("*.tmp"))
    kept = records(store)
    assert per_workload(kept) == {wl: 1 for wl in best}
    for r in kept:
        assert _median(r) == best[r["workload"]], r["workload"]
        assert r in recs  # one of the real measurements, unchanged
    assert not any(_median(r) >= FAILED_SECS for r in kept)
    # TRIALS still counts every measured trial (the tallies prune keeps), RECORDS what is left.
    trials = per_workload(everything)
    rows = table_rows(show(store).stdout, "TASK")
    assert len(rows) == 4 and all(row[3] == "1" and row[4] == "0" for row in rows), rows
    assert sorted(int(row[2]) for row in rows) == sorted(trials.values())


def test_compacted_shards_are_gzip_and_a_damaged_one_is_kept(store):
    """Shards written whole (prune, merge, export) are gzip-compressed JSON lines; a damaged one
    (cut off in a copy, say) is reported with its file and the line where it breaks, the lines
    before that stay usable, and a later prune leaves the damaged file as it was."""
    plain = records(store)
    run_cli("logs", "prune", store, "--keep", 8, check=0)
    (shard,) = shard_files(store)
    assert shard.name.endswith(".jsonl.gz") and shard.read_bytes()[:2] == b"\x1f\x8b"
    text = shard_text(shard)
    assert _canon(records(store)) == _canon(plain)
    assert len(shard.read_bytes()) < len(text.encode()) / 3  # workloads and traces compress well

    # Cut the compressed file after its first workload and record lines.
    lines = text.splitlines(keepends=True)
    kinds = [json.loads(line)["kind"] for line in lines]
    assert kinds[:3] == ["header", "workload", "record"], kinds
    import zlib
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    head = z.compress("".join(lines[:3]).encode()) + z.flush(zlib.Z_SYNC_FLUSH)
    shard.write_bytes(head + z.compress("".join(lines[3:]).encode())[:20])  # no end, no checksum
    damaged = shard.read_bytes()

    proc = show(store, check_clean=False)
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {shard}:"), proc.stdout
    assert "compressed shard damaged" in warnings[0] and "the rest skipped" in warnings[0], warnings
    assert show_counts(proc) == (1, 1)  # the first workload and its record were read

    proc = run_cli("logs", "prune", store, "--keep", 1, check=0)
    assert "left 1 unreadable shard(s) as they were" in proc.stdout, proc.stdout
    assert shard.read_bytes() == damaged


# ---------------------------------------------------------------------------------------- 11. busy
def test_prune_refuses_while_a_tuner_holds_the_store(store):
    before = _snapshot(store)
    fd = os.open(store / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # what a running `crosstune tune` holds
        proc = run_cli("logs", "prune", store, "--keep", 1)
        assert_user_error(proc, f"tuning log store {store} is busy", "a running `crosstune tune` is writing to it")
        assert _snapshot(store) == before
    finally:
        os.close(fd)
    run_cli("logs", "prune", store, "--keep", 1, check=0)  # the lock released, it goes ahead
    assert len(records(store)) == 4


# --------------------------------------------------------------------------------------- 12. export
def test_export_one_record_per_workload_is_enough_to_compile(tuned, store, tmp_path):
    original = records(store)
    out = tmp_path / "exported"
    proc = run_cli("logs", "export", store, "-o", out, check=0)
    shards = list(shard_files(out))
    assert len(shards) == 1
    assert proc.stdout.strip() == f"exported 4 records (4 workloads) to {shards[0]}"
    exported = records(out)
    assert per_workload(exported) == {wl: 1 for wl in per_workload(original)}
    best = _best(original)
    assert all(_median(r) == best[r["workload"]] and r in original for r in exported)
    assert _canon(records(store)) == _canon(original)  # export leaves the store alone

    full = compile_coverage(run_cli("compile", tuned.model, "--db", store, "-o", tmp_path / "a.ctm", check=0))
    small = compile_coverage(run_cli("compile", tuned.model, "--db", out, "-o", tmp_path / "b.ctm", check=0))
    assert small[0] == str(out) and small[1] == 4
    assert small[2:] == full[2:] == (4, 4, 0)

    again = run_cli("logs", "export", store, "-o", out)
    assert_user_error(again, f"{out} already holds tuning logs")


def test_export_tvm_format_loads_in_plain_tvm(store, tmp_path):
    original = records(store)
    out = tmp_path / "tvmdb"
    proc = run_cli("logs", "export", store, "-o", out, "--format", "tvm", check=0)
    assert proc.stdout.strip() == f"exported 4 records to TVM JSONDatabase {out}"
    assert sorted(p.name for p in out.iterdir()) == ["database_tuning_record.json", "database_workload.json"]
    assert len((out / "database_tuning_record.json").read_text().splitlines()) == 4
    assert len((out / "database_workload.json").read_text().splitlines()) == 4

    check = (
        "import json, sys\n"
        "sys.modules['torch'] = None\n"
        "from tvm.s_tir import meta_schedule as ms\n"
        f"db = ms.database.JSONDatabase(work_dir={str(out)!r}, allow_missing=False)\n"
        "recs = db.get_all_tuning_records()\n"
        "print(json.dumps({'records': len(recs), 'workloads': len({str(r.workload.mod) for r in recs}),\n"
        "                  'secs': sorted(sorted(float(s) for s in r.run_secs)[len(r.run_secs) // 2] for r in recs)}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded["records"] == 4 and loaded["workloads"] == 4
    assert loaded["secs"] == pytest.approx(sorted(_best(original).values()))

    again = run_cli("logs", "export", store, "-o", out, "--format", "tvm")
    assert_user_error(again, "database_workload.json exists")


# ----------------------------------------------------------------------------------------- 13. list
def test_list_shows_each_store_with_its_models(tuned, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(tuned.store, root / "x86-avx512")
    other = root / "other-board"
    shutil.copytree(tuned.store, other)
    (shard,) = shard_files(other)
    objs = [json.loads(line) for line in shard_text(shard).splitlines()]
    for o in objs:
        if o["kind"] == "record":
            o["model"] = "resnet_small"
    _write_shard(shard, objs)
    (root / "empty").mkdir()
    n = len(records(tuned.store))

    proc = run_cli("logs", "list", "--root", root, check=0)
    assert proc.stdout.splitlines()[0] == f"tuning logs under {root}"
    rows = table_rows(proc.stdout, "STORE")
    here = f"{this_machine().id} ({n})"  # the tuner tagged every record with this machine
    assert rows == [["other-board", "1", "4", str(n), "0", "resnet_small", here],
                    ["x86-avx512", "1", "4", str(n), "0", "matmul", here]]
    assert "warning" not in proc.stdout

    proc = run_cli("logs", "list", "--root", root / "empty", check=0)
    assert proc.stdout.strip() == f"no tuning logs under {root / 'empty'}"


def test_committed_stores_read_whole_in_a_fresh_process():
    """Every record under logs/ parses with the pinned TVM, in a process that has registered no tensor
    intrinsics yet (as `compile` and `tune` start). Records of tensor-core schedules name their
    intrinsic; the store must register the family first, or TVM drops each such record as unreadable
    (the h200 store lost its 14 tensor-core records this way until the store did so)."""
    code = r"""
import json, sys
from pathlib import Path
from crosstune.tuning import logstore
out = {}
for folder in sorted(p for p in Path("logs").iterdir() if p.is_dir()):
    store = logstore.Store(folder)
    index = store.load()
    db = store.tvm_database(index)
    recs = db.get_all_tuning_records()
    tensorized = sum(1 for r in recs if "tensorize" in str(r.trace).lower())
    out[folder.name] = [len(index.records), len(recs), tensorized, index.problems[:3]]
print(json.dumps(out))
"""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stores = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "h200" in stores and "x86-avx512" in stores, stores
    for name, (stored, parsed, _, problems) in stores.items():
        assert problems == [] and parsed == stored, (name, stored, parsed, problems)
    assert stores["h200"][2] > 0, "the h200 store should hold tensor-core schedules (fp16 tuning)"


# ------------------------------------------------------------------- machines that measured records
OTHER = "amd-25-17"  # another kind of machine, as a Zen 4 names itself


def _retag(store: Path, machine: str | None, faster: float = 1.0) -> None:
    """Rewrite a store's records and default lines as measured on `machine` (None: naming none, as
    records from before crosstune named machines), their times multiplied by `faster`."""
    for shard in shard_files(store):
        objs = [json.loads(line) for line in shard_text(shard).splitlines()]
        for o in objs:
            if o["kind"] in ("record", "default"):
                o.pop("machine", None)
                if machine:
                    o["machine"] = machine
                o["run_secs"] = [x * faster for x in o["run_secs"]]
                if o["kind"] == "record":
                    o["record"][1] = o["run_secs"]
            if o["kind"] == "header":
                o.pop("machine", None)
        shard.unlink()
        _write_shard(shard.with_name(shard.name.removesuffix(".gz")), objs)


def _other_machine_store(tuned, tmp_path, faster: float = 0.01) -> Path:
    """The tuned store plus a copy of every record as measured on OTHER, 100x faster (a faster machine)."""
    store = tmp_path / "two-machines"
    shutil.copytree(tuned.store, store)
    other = tmp_path / "other"
    shutil.copytree(tuned.store, other)
    _retag(other, OTHER, faster)
    for shard in shard_files(other):
        shutil.copy(shard, store / ("other-" + shard.name))
    return store


def test_records_name_the_machine_that_measured_them(tuned):
    """Every record and default line the tuner writes names this machine; its shard's header says
    which machine that is, for people; `logs show` counts records per machine."""
    here = this_machine()
    recs = records(tuned.store)
    assert recs and all(r["machine"] == here.id for r in recs)
    (shard,) = shard_files(tuned.store)
    header = json.loads(shard_text(shard).splitlines()[0])
    assert header["machine"] == {"id": here.id, "name": here.name}
    proc = show(tuned.store)
    assert f"  measured on {here.id} ({here.name}): {len(recs)} records" in proc.stdout.splitlines()
    rows = table_rows(proc.stdout, "TASK")
    assert rows and all(row[-1] == here.id for row in rows), rows
    assert f"measuring machine: {here.name} ({here.id})" in tuned.stdout


def test_compile_prefers_the_records_of_the_machine_it_builds_for(tuned, tmp_path):
    """A store with records of two machines: compile for this machine applies this machine's
    records although the other machine's times are 100x smaller; `--tuned-on` picks another
    machine's, `--tuned-on any` the fastest stored time. `logs show --machine` reads it the same way."""
    store = _other_machine_store(tuned, tmp_path)
    here = this_machine().id

    def records_from(*extra) -> dict:
        out = tmp_path / "m.ctm"
        proc = run_cli("compile", tuned.model, "--db", store, "-o", out, *extra, check=0)
        assert compile_coverage(proc)[2:4] == (4, 4), proc.stdout
        return package.read_info(out).build["tuning"], proc.stdout

    tuning, stdout = records_from()
    assert tuning["records_from"] == {here: 4} and tuning["preferred_machine"] == here
    assert f"  records measured on: {here} (this machine): 4 kernels" in stdout.splitlines()
    tuning, stdout = records_from("--tuned-on", OTHER, "--verify")
    assert tuning["records_from"] == {OTHER: 4}, tuning
    assert "PASSED" in stdout  # the other machine's schedules build and agree with ONNX Runtime here too
    tuning, _ = records_from("--tuned-on", "any")
    assert tuning["records_from"] == {OTHER: 4} and tuning["preferred_machine"] is None, tuning
    # a machine with no records: every workload falls back to the records there are
    tuning, stdout = records_from("--tuned-on", "intel-6-85")
    assert sum(tuning["records_from"].values()) == 4, tuning
    known = ", ".join(sorted([OTHER, here]))
    assert f"--tuned-on intel-6-85: no record of {store} was measured on it (machines with records: {known})" \
        in stdout, stdout

    mine = {r[1]: r for r in table_rows(run_cli("logs", "show", store, "--machine", here, check=0).stdout, "TASK")}
    theirs = {r[1]: r for r in table_rows(run_cli("logs", "show", store, "--machine", OTHER, check=0).stdout, "TASK")}
    assert set(mine) == set(theirs) and len(mine) == 4
    assert all(mine[w][-1] == here and theirs[w][-1] == OTHER for w in mine)
    # TRIALS counts the records of each workload that the machine's reading keeps: its own
    assert all(mine[w][2] == theirs[w][2] == str(PER_TASK) for w in mine), (mine, theirs)


def test_prune_and_merge_keep_each_machines_records(tuned, tmp_path):
    """Times from different machines are never compared: prune keeps the best K of every workload
    per machine, merge keeps a schedule measured on two machines once for each, and compile still
    prefers this machine's records afterwards."""
    store = _other_machine_store(tuned, tmp_path)
    here = this_machine().id
    before = records(store)
    proc = run_cli("logs", "prune", store, "--keep", 1, check=0)
    assert f"kept 8 of {len(before)} records" in proc.stdout, proc.stdout
    kept = records(store)
    assert sorted((r["workload"], r["machine"]) for r in kept) == sorted(
        {(r["workload"], r["machine"]) for r in before})
    for r in kept:  # each machine's own fastest
        same = [_median(b) for b in before if b["workload"] == r["workload"] and b["machine"] == r["machine"]]
        assert _median(r) == min(same)
    # trials still count per machine (tallies name their machine)
    for m in (here, OTHER):
        rows = table_rows(run_cli("logs", "show", store, "--machine", m, check=0).stdout, "TASK")
        assert all(int(row[2]) == PER_TASK for row in rows), rows
    shipped = tmp_path / "shipped"
    run_cli("logs", "export", store, "-o", shipped, "--machine", OTHER)  # what a Zen 4 compile reads
    assert sorted(r["machine"] for r in records(shipped)) == [OTHER] * 4
    merged = tmp_path / "merged"
    proc = run_cli("logs", "merge", store, "--into", merged, check=0)
    assert proc.stdout.startswith("merged 8 new records (4 workloads"), proc.stdout
    out = tmp_path / "p.ctm"
    run_cli("compile", tuned.model, "--db", merged, "-o", out)
    assert package.read_info(out).build["tuning"]["records_from"] == {here: 4}


def test_tune_counts_only_this_machines_trials(tuned, tmp_path):
    """Records measured on another machine neither fill a task's budget nor stand in for this
    machine's best time: tune measures every task again here. Records that name no machine (stores
    from before records named one) count, as they always did."""
    other = tmp_path / "other"
    shutil.copytree(tuned.store, other)
    _retag(other, OTHER)
    proc = run_cli("tune", tuned.model, *FAST, "--trials-per-task", 1, "--db", other, check=0)
    m = START.search(proc.stdout)
    assert m and m.group(1, 2, 3, 4) == ("4", "0", "0", "4"), proc.stdout
    mine = [r for r in records(other) if r["machine"] == this_machine().id]
    assert sorted(per_workload(mine).values()) == [1, 1, 1, 1]

    legacy = tmp_path / "legacy"
    shutil.copytree(tuned.store, legacy)
    _retag(legacy, None)
    proc = run_cli("tune", tuned.model, *FAST, "--trials-per-task", 1, "--db", legacy, check=0)
    m = START.search(proc.stdout)
    assert m and m.group(1, 2) == ("4", "4"), proc.stdout


def test_tag_names_the_machine_of_untagged_records(tuned, tmp_path):
    """`logs tag`: records that name no machine, in a time window, get the machine named; records
    outside it, and records that name one already, keep what they had; bad input is one line."""
    store = tmp_path / "legacy"
    shutil.copytree(tuned.store, store)
    _retag(store, None)
    recs = records(store)
    times = sorted(r["time"] for r in recs)
    import datetime

    iso = datetime.datetime.fromtimestamp(times[len(times) // 2], datetime.timezone.utc).isoformat()
    cut = datetime.datetime.fromisoformat(iso).timestamp()
    assert times[0] < cut <= times[-1]
    proc = run_cli("logs", "tag", store, "--machine", OTHER, "--name", "AMD EPYC (Zen 4)", "--since", iso, check=0)
    later = sum(1 for t in times if t >= cut)
    assert proc.stdout.startswith(f"tagged {later} records of {store} as measured on {OTHER}"), proc.stdout
    after = records(store)
    assert sorted((r["time"], r.get("machine")) for r in after) == sorted(
        (r["time"], OTHER if r["time"] >= cut else None) for r in recs)
    assert f"  measured on {OTHER} (AMD EPYC (Zen 4)): {later} records" in show(store).stdout.splitlines()
    # tagging the rest names them; the ones tagged before keep their machine
    proc = run_cli("logs", "tag", store, "--machine", "intel-6-143", check=0)
    assert proc.stdout.startswith(f"tagged {len(recs) - later} records"), proc.stdout
    assert {r["machine"] for r in records(store) if r["time"] >= cut} == {OTHER}
    proc = run_cli("logs", "tag", store, "--machine", "intel-6-143", check=0)
    assert "nothing changed" in proc.stdout
    assert_user_error(run_cli("logs", "tag", store, "--machine", "Intel Xeon"), "--machine 'Intel Xeon'")
    assert_user_error(run_cli("logs", "tag", store, "--machine", "x", "--since", "yesterday"),
                      "--since 'yesterday': not an ISO date")
