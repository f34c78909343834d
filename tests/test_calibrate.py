"""`crosstune calibrate` and the `in_model` pins it writes: candidates built and timed inside the real
model, picks written to the store only at the end, compile applying a pinned record, compaction
keeping pinned records, and bad input. Which candidate runs fastest is a matter of timing, so the
tests check what follows from the picks (pins name records the store holds, compile applies exactly
them), never which one was picked; the pin tests write their pins by hand."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import assert_user_error, default_sigint, run_cli, shard_files, shard_text
from crosstune.compile import package
from crosstune.targets.host import this_machine
from crosstune.tuning import logstore
from test_logs import store, tuned  # noqa: F401 - fixtures: the session's tuned matmul store and a private copy
from test_tuning import FAST, compile_coverage, records, table_rows


def lines_of(store: Path, kind: str) -> list[dict]:
    out = []
    for shard in shard_files(store):
        out += [o for o in map(json.loads, shard_text(shard).splitlines()) if o["kind"] == kind]
    return out


def snapshot(store: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in shard_files(store)}


def pin_slowest(store: Path) -> tuple[str, dict]:
    """Pin, by hand, the slowest record of the workload with the widest spread of times."""
    index = logstore.Store(store).load()
    wl, recs = max(index.by_workload().items(), key=lambda kv: max(r.seconds for r in kv[1]) / min(r.seconds for r in kv[1]))
    slow = max(recs, key=lambda r: r.seconds)
    assert slow.seconds > min(r.seconds for r in recs), "the tuned store needs two different times for a workload"
    pin = {"kind": "in_model", "workload": wl, "trace_sha": slow.data["trace_sha"], "machine": this_machine().id,
           "secs": 1e-3, "usual_secs": 2e-3, "model": "matmul_net", "time": time.time()}
    logstore.Store(store).write_shard([], index.workloads, "pin", pins=[pin])
    return wl, slow.data


def applied_secs(store: Path, wl: str) -> list[float]:
    """The run_secs of the record a compile on this machine applies to workload `wl`."""
    s = logstore.Store(store)
    db = s.tvm_database(s.load().view(this_machine().id), best_only=True)
    recs = [r for r in db.get_all_tuning_records() if _hash(r) == wl]
    assert len(recs) == 1, recs
    return [float(x) for x in recs[0].run_secs]


def _hash(rec) -> str:
    from tvm.s_tir import meta_schedule as ms

    return ms.database.Workload(rec.workload.mod).as_json()[0]


def test_pinned_record_is_applied_and_survives_prune_merge_export(tuned, store, tmp_path):
    wl, slow = pin_slowest(store)
    assert applied_secs(store, wl) == slow["record"][1]  # the pinned record, not the fastest
    out = tmp_path / "m.ctm"
    proc = run_cli("compile", tuned.model, "--db", store, "-o", out, check=0)
    assert compile_coverage(proc)[2:4] == (4, 4), proc.stdout
    assert "  1 kernel with the record that ran fastest inside the model (pinned by `crosstune calibrate`)" \
        in proc.stdout.splitlines(), proc.stdout
    assert package.read_info(out).build["tuning"]["in_model"] == 1
    # --tuned-on any goes by tuning times: no pin applies
    proc = run_cli("compile", tuned.model, "--db", store, "-o", out, "--tuned-on", "any", check=0)
    assert "inside the model" not in proc.stdout and package.read_info(out).build["tuning"]["in_model"] == 0

    run_cli("logs", "prune", store, "--keep", 1, check=0)
    kept = records(store)
    assert any(r["trace_sha"] == slow["trace_sha"] for r in kept), "prune dropped the pinned record"
    assert len(kept) == 5 and [p["trace_sha"] for p in lines_of(store, "in_model")] == [slow["trace_sha"]]
    assert applied_secs(store, wl) == slow["record"][1]
    shipped = tmp_path / "shipped"
    run_cli("logs", "export", store, "-o", shipped, "--keep", 1, check=0)
    merged = tmp_path / "merged"
    run_cli("logs", "merge", shipped, "--into", merged, check=0)
    for s in (shipped, merged):
        assert [p["trace_sha"] for p in lines_of(s, "in_model")] == [slow["trace_sha"]], s
        assert applied_secs(s, wl) == slow["record"][1]
    proc = run_cli("logs", "show", merged, check=0)
    assert f"  pinned by calibrate for {this_machine().id}: 1 workload (" in proc.stdout, proc.stdout

    # tuning the workload again on this machine ends the pin: a newer record was never timed in the model
    index = logstore.Store(merged).load()
    fast = min((r for r in index.records if r.workload == wl), key=lambda r: r.seconds)
    newer = logstore.Record(wl, dict(fast.data, time=time.time() + 10), "by hand")
    logstore.Store(merged).write_shard([newer], index.workloads, "newer")
    assert applied_secs(merged, wl) == fast.data["record"][1]
    proc = run_cli("compile", tuned.model, "--db", merged, "-o", out, check=0)
    assert "inside the model" not in proc.stdout and package.read_info(out).build["tuning"]["in_model"] == 0


def test_corrupt_pin_is_reported_and_skipped(tuned, store, tmp_path):
    wl, _ = pin_slowest(store)
    shard = next(p for p in shard_files(store) if "pin" in p.name)
    text = shard_text(shard).replace('"secs":0.001', '"secs":-1')
    shard.unlink()
    (store / "pin-by-hand.jsonl").write_text(text)
    proc = run_cli("logs", "show", store, check=0)
    assert "pin-by-hand.jsonl:3: corrupt in_model line skipped" in proc.stdout + proc.stderr
    best = min(r["run_secs"][0] for r in records(store) if r["workload"] == wl)
    assert applied_secs(store, wl)[0] == best  # back to the fastest record
    proc = run_cli("compile", tuned.model, "--db", store, "-o", tmp_path / "m.ctm", check=0)
    assert "inside the model" not in proc.stdout
    proc = run_cli("calibrate", tuned.model, "--db", store, "--rounds", 1, "--runs", 2, "--no-check", check=0)
    assert "  tuning log: " in proc.stdout and "pin-by-hand.jsonl:3: corrupt in_model line skipped" in proc.stdout


def test_calibrate_pins_what_it_picked_and_compile_applies_it(tuned, store, tmp_path):
    """Two candidates per kernel plus the best record of a `tune --cache-flush` store; --margin 0 and
    --no-check so that any candidate faster in the model is picked and written. Whatever was picked,
    the pins name records the store now holds and a compile applies exactly those."""
    flushed = tmp_path / "flushed"
    run_cli("tune", tuned.model, *FAST, "--trials-per-task", 1, "--cache-flush", "--db", flushed, check=0)
    before = len(records(store))
    proc = run_cli("calibrate", tuned.model, "--target", "host", "--db", store, "--from", flushed, "--candidates", 2,
                   "--rounds", 1, "--runs", 3, "--margin", 0, "--no-check", check=0)
    assert "  4 tuned kernels, up to 3 candidate records each; 0 on default schedules" in proc.stdout, proc.stdout
    rows = table_rows(proc.stdout, "KERNEL")
    assert len(rows) == 4 and all(r[1] == "1" for r in rows), rows
    picked = [r for r in rows if r[-1] != "keep"]
    pins = lines_of(store, "in_model")
    assert len(pins) == len(picked)
    if pins:
        assert f"pinned {len(pins)} kernel" in proc.stdout
    else:
        assert "nothing pinned" in proc.stdout
    have = {(r["workload"], r["trace_sha"]) for r in records(store)}
    assert all((p["workload"], p["trace_sha"]) in have and p["machine"] == this_machine().id for p in pins)
    copied = [p for p in pins if p["from"].startswith(str(flushed))]
    assert len(records(store)) == before + len(copied)  # a picked --from record is copied in, once
    for p in pins:
        rec = next(r for r in records(store) if (r["workload"], r["trace_sha"]) == (p["workload"], p["trace_sha"]))
        assert applied_secs(store, p["workload"]) == rec["record"][1]
    out = tmp_path / "m.ctm"
    proc = run_cli("compile", tuned.model, "--db", store, "-o", out, "--verify", check=0)
    assert package.read_info(out).build["tuning"]["in_model"] == len(pins) and "PASSED" in proc.stdout


def test_calibrate_bad_input_is_one_line_and_writes_nothing(tuned, store, tmp_path):
    proc = run_cli("calibrate", tuned.model, "--db", tmp_path / "none")
    assert_user_error(proc, f"no tuning logs in {tmp_path / 'none'}")
    proc = run_cli("calibrate", tuned.model, "--target", "rpi4", "--db", store)
    assert_user_error(proc, "calibrate runs the model on this machine", "'rpi4' is aarch64")
    proc = run_cli("calibrate", tuned.model, "--db", store, "--from", tmp_path / "none")
    assert_user_error(proc, "--from", "no tuning logs there")
    proc = run_cli("calibrate", tuned.model, "--db", store, "--rounds", 0)
    assert_user_error(proc, "--rounds must be at least 1")
    assert not lines_of(store, "in_model")


def test_ctrl_c_during_calibrate_leaves_the_store_as_it_was(tuned, store, tmp_path):
    before = snapshot(store)
    log = tmp_path / "log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "crosstune", "calibrate", str(tuned.model), "--db", str(store),
                                 "--rounds", "5000", "--runs", "200"], stdout=f, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=default_sigint)
    try:
        deadline = time.time() + 300
        while "timing every kernel" not in log.read_text() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 130, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert log.read_text().rstrip().splitlines()[-1] == "crosstune: interrupted"
    assert snapshot(store) == before
