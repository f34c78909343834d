"""Results documents and `crosstune report`: the format's round trip and validation, `crosstune run
--json` on a real package, reports from several targets with history, failures, an emulated board
and bad files, rendered in a real headless Chromium (DOM, screenshot, network log)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, assert_user_error, run_cli

from crosstune.compile import package
from crosstune.report import analysis, legacy, results
from crosstune.runtime.timing import LatencyStats

BENCH = ROOT / "bench" / "results"
HOSTILE = '<img src="https://evil.example/x.png"><script>alert(1)</script>'


# ----------------------------------------------------------------------------------- documents
def _stats(median: float, count: int = 20) -> LatencyStats:
    """Samples spread around `median` (p90 above it), as a real run gives."""
    return LatencyStats.from_samples([median * f for f in np.linspace(0.9, 1.1, count)], warmup=3)


def _agreement(passed: bool = True) -> dict:
    return {"reference": "onnxruntime", "passed": passed, "rtol": 1e-3, "atol": 1e-4,
            "max_abs": 2.5e-6 if passed else 0.3, "max_rel": 1e-5 if passed else 0.8}


def _doc(created: str, engines: list[dict], *, target="x86-avx512", device="cpu", gpu=None, board=None,
         model="tinynet") -> dict:
    return results.new_document(
        model={"name": model, "sha256": "ab" * 32, "inputs": [{"name": "x", "shape": [1, 3, 32, 32], "dtype": "float32"}]},
        target={"name": target, "preset": target, "device": device},
        machine={"cpu": "Test Xeon", "cores": 2, "arch": "x86_64", "platform": "Linux", "gpu": gpu},
        command=["crosstune", "bench", "tinynet.onnx", "--target", target],
        board=board, reference="onnxruntime", engines=engines, created=created,
    )


def _write_all(folder: Path) -> dict[str, Path]:
    """Two runs of one model on x86 (before and after tuning; the second with a failed and an
    unavailable engine, and hostile text), a GPU run, an emulated board run, a newer-format file
    and a truncated one."""
    untuned = {"logs": None, "tasks": None, "covered": 0, "trials": 0, "records": None}
    tuned = {"logs": "logs/x86-avx512", "tasks": 12, "covered": 12, "trials": 640, "records": 700}
    ort = results.engine_entry("onnxruntime", "onnxruntime 1.31.1", "fp32", _stats(4.0), threads=2)
    docs = {
        "before": _doc("2026-11-01T10:00:00+00:00", [
            results.engine_entry("crosstune", "crosstune 0.1.0, TVM 0.27", "fp32", _stats(400.0),
                                 agreement=_agreement(), threads=2, tuning=untuned),
            ort]),
        "after": _doc("2026-11-02T10:00:00+00:00", [
            results.engine_entry("crosstune", "crosstune 0.1.0, TVM 0.27", "fp32", _stats(5.0),
                                 agreement=_agreement(), threads=2, tuning=tuned),
            results.engine_entry("crosstune-untuned", "crosstune 0.1.0, TVM 0.27", "fp32", _stats(7000.0, 3),
                                 agreement=_agreement(), threads=2, tuning=untuned),
            results.engine_entry("onnxruntime", f"onnxruntime 1.31.1 {HOSTILE}", "fp32", _stats(4.2), threads=2),
            results.engine_entry("torch", "torch 2.13.0", "fp32", _stats(6.0), agreement=_agreement(False)),
            results.engine_entry("openvino", "openvino 2026.4", "fp32", status="failed",
                                 error="compile_model: unsupported operator GridSample"),
            results.engine_entry("tvm-rpc-thing", None, "fp32", status="unavailable", error="not installed"),
        ]),
        "gpu": _doc("2026-11-03T10:00:00+00:00", [
            results.engine_entry("tensorrt", "tensorrt 10.9", "fp16", _stats(0.5), agreement=_agreement()),
            results.engine_entry("tensorrt", "tensorrt 10.9", "fp32", _stats(0.9), agreement=_agreement()),
            results.engine_entry("torch", "torch 2.13.0", "fp32", _stats(1.8), agreement=_agreement()),
            results.engine_entry("crosstune", "crosstune 0.1.0", "fp32", _stats(1.2), agreement=_agreement()),
            results.engine_entry("onnxruntime", "onnxruntime-gpu 1.31", "fp32", _stats(1.5)),
        ], target="cuda-sm90", device="cuda", gpu={"name": "NVIDIA H100 80GB HBM3", "driver": "570.1", "count": 1}),
        "board": _doc("2026-11-04T10:00:00+00:00", [
            results.engine_entry("crosstune", "crosstune 0.1.0", "fp32", _stats(90.0), emulated=True),
            results.engine_entry("onnxruntime", "onnxruntime 1.31.1", "fp32", _stats(60.0), emulated=True),
        ], target="rpi4-aarch64", board={"key": "rpi4", "emulated": True, "tracker": "127.0.0.1:9190"}),
    }
    paths = {k: results.write(folder / f"{k}.results.json", d) for k, d in docs.items()}
    newer = dict(docs["gpu"], format_version=results.FORMAT_VERSION + 1)
    paths["newer"] = folder / "newer.results.json"
    paths["newer"].write_text(json.dumps(newer))
    text = paths["before"].read_text()
    paths["truncated"] = folder / "truncated.results.json"
    paths["truncated"].write_text(text[: len(text) // 2])
    return paths


@pytest.fixture(scope="module")
def result_files(tmp_path_factory) -> dict[str, Path]:
    return _write_all(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def html_report(result_files, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("report") / "report.html"
    proc = run_cli("report", *result_files.values(), "-o", out, timeout=120)
    return out, proc


# ---------------------------------------------------------------------------------- the format
def test_round_trip_and_atomic_write(result_files, tmp_path):
    doc = results.load(result_files["after"])
    out = results.write(tmp_path / "copy.json", doc)
    assert results.load(out) == doc
    assert [p.name for p in tmp_path.iterdir()] == ["copy.json"]  # no temporary file left behind
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # shareable, not mkstemp's 0600
    failed = next(e for e in doc["engines"] if e["name"] == "openvino")
    assert failed["status"] == "failed" and failed["latency_ms"] is None and "GridSample" in failed["error"]
    ours = doc["engines"][0]
    assert ours["latency_ms"]["count"] == 20 and ours["latency_ms"]["warmup"] == 3
    assert ours["latency_ms"]["min"] <= ours["latency_ms"]["median"] <= ours["latency_ms"]["p90"]


def _edit(doc: dict, path: str, value) -> dict:
    doc = json.loads(json.dumps(doc))
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is KeyError:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return doc


@pytest.mark.parametrize("path,value,fragment", [
    ("format_version", 2, "results format version 2 is newer than this crosstune"),
    ("format", "something-else", 'not a crosstune results document ("format" is not'),
    ("engines", [], "engines: empty"),
    ("engines.0.latency_ms", KeyError, "engines[0].latency_ms: missing"),
    ("engines.0.latency_ms.median", "fast", "engines[0].latency_ms.median: expected a number, got \"fast\""),
    ("engines.0.latency_ms.median", 1e9, "median 1e+09 is outside min..max"),
    ("engines.0.status", "crashed", "engines[0].status: \"crashed\" is not one of ok, failed, unavailable"),
    ("engines.4.error", KeyError, "engines[4].error: missing (a failed engine says why)"),
    ("model.name", 3, "model.name: expected a string, got 3"),
    ("created", "yesterday", "created: not an ISO 8601 time"),
    ("board", {"key": "rpi4"}, "board.emulated: missing"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_invalid_documents(result_files, tmp_path, path, value, fragment):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_edit(results.load(result_files["after"]), path, value)))
    with pytest.raises(results.ResultsError) as err:
        results.load(bad)
    assert str(err.value).startswith(f"{bad}: ") and fragment in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content,fragment", [
    ("", "empty file"),
    ('{"format": "crosstune-results", "format_version": 1, "engines": [', "not valid JSON, truncated or corrupt"),
    ("[1, 2]", "a JSON list, not an object"),
    ('{"median": NaN}', "NaN is not a JSON number"),
    ('{"benchmark": "cpu_vs_peers", "results": []}', "python -m crosstune.report.legacy"),
])
def test_unreadable_files(tmp_path, content, fragment):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(results.ResultsError, match=re.escape(fragment)):
        results.load(bad)
    with pytest.raises(results.ResultsError, match="no such file"):
        results.load(tmp_path / "missing.json")


def test_engine_entry_refuses_contradictions():
    with pytest.raises(ValueError, match="needs the reason"):
        results.engine_entry("tensorrt", None, "fp16", status="failed")
    with pytest.raises(ValueError, match="exactly when"):
        results.engine_entry("tensorrt", None, "fp16", _stats(1.0), status="failed", error="x")


def test_machine_info_describes_this_machine():
    from crosstune.targets import host

    m = results.machine_info()
    assert m["cores"] == host.detect().cores and m["cpu"] and m["platform"]
    assert m["cpu_id"] == host.this_machine().id  # the kind of CPU, as tuning records name it
    if shutil.which("nvidia-smi") is None:
        assert m["gpu"] is None


# ---------------------------------------------------------------------------------- crosstune run
def test_run_json_on_a_real_package(conv_package, tmp_path):
    out = tmp_path / "run.json"
    proc = run_cli("run", conv_package, "--repeat", "5", "--warmup", "1", "--json", out, check=0)
    assert f"results -> {out}" in proc.stdout
    doc = results.load(out)
    meta = json.loads(zipfile.ZipFile(conv_package).read("metadata.json"))
    assert doc["model"]["name"] == meta["model"]["name"] and doc["model"]["sha256"] == meta["model"]["sha256"]
    assert doc["model"]["inputs"] == [{"name": "x", "shape": [1, 3, 32, 32], "dtype": "float32"}]
    assert doc["target"]["name"].startswith("x86") and doc["target"]["preset"] == "host"
    assert doc["command"].startswith("crosstune run ") and doc["board"] is None
    (engine,) = doc["engines"]
    assert engine["name"] == "crosstune" and engine["status"] == "ok" and engine["precision"] == "fp32"
    assert engine["latency_ms"]["count"] == 5 and engine["latency_ms"]["warmup"] == 1
    assert engine["version"] == f"crosstune {meta['crosstune_version']}, TVM {meta['tvm_version']}"
    assert engine["tuning"]["covered"] == ((meta["build"]["tuning"] or {}).get("covered") or 0)


def test_run_document_from_a_board_is_emulated(conv_package):
    """What `crosstune run --rpc ... --json` records for a board: `BoardInfo.to_json()` as `board`."""
    from crosstune.rpc import BoardInfo

    info = package.read_info(conv_package)
    board = BoardInfo("rpi4", "127.0.0.1:9190", emulated=True, qemu_cpu="cortex-a72", preset="rpi4").to_json()
    inputs = {"x": np.zeros((1, 3, 32, 32), np.float32)}
    doc = results.run_document(info, _stats(3.0), inputs=inputs, board=board,
                               command=[sys.argv[0], "run", "m.ctm"])
    assert results.validate(doc, "doc")["board"] == board
    assert doc["engines"][0]["emulated"] is True


# ---------------------------------------------------------------------------------- the analysis
def test_emulated_timings_are_never_ranked_or_compared(result_files):
    runs = [analysis.Run(str(p), results.load(p)) for k, p in result_files.items() if k in ("after", "board")]
    report = analysis.build(runs, [], "onnxruntime")
    board = next(s for s in report.sections if s.column.emulated)
    assert board.fastest is None and board.baseline is None
    assert all(r.speedup is None and analysis.speedup_text(r) == "—, emulated" for r in board.timed)
    x86 = next(s for s in report.sections if not s.column.emulated)
    assert x86.fastest.name == "onnxruntime" and x86.baseline.name == "onnxruntime"
    ours = x86.crosstune()
    assert ours.speedup == pytest.approx(x86.baseline.median / ours.median)


def test_clipping_only_beyond_a_large_jump():
    from crosstune.report.svg import clip_limit

    assert clip_limit([51.2, 52.3, 112.4, 128.2, 7503.7]) == 128.2
    assert clip_limit([0.5, 0.9, 1.8, 4.0]) is None
    assert clip_limit([38.4, 777.3]) is None  # one bar alone on a scale would say nothing


# ---------------------------------------------------------------------------------- the command
def test_report_warns_per_bad_file_and_renders_the_rest(html_report, result_files, tmp_path):
    out, proc = html_report
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warnings) == 2, proc.stderr
    assert warnings[0].startswith(f"crosstune: warning: {result_files['newer']}: results format version 2")
    assert warnings[1].startswith(f"crosstune: warning: {result_files['truncated']}: not valid JSON")
    assert "3 model/target sections from 4 results files, 2 left out" in proc.stdout
    html = out.read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md_out = tmp_path / "report.md"
    run_cli("report", *result_files.values(), "-o", md_out, "--baseline", "crosstune", check=0)
    md = md_out.read_text()
    assert md.count("\n## ") == 5  # overview, three sections, how the numbers were taken
    assert "### History: 2 runs" in md and "80.00× faster" in md  # crosstune 400 ms -> 5 ms
    assert "**openvino** *(failed)*" in md and "compile\\_model: unsupported operator GridSample" in md
    assert "—, emulated" in md and "░" in md and "*(emulated)*" in md
    assert "&lt;script&gt;" in md and "<script>" not in md
    assert "speed-up vs crosstune fp32" in md


def test_report_fails_when_nothing_is_readable(result_files, tmp_path):
    """A warning line per file, then crosstune's one-line user error; no report written."""
    proc = run_cli("report", result_files["truncated"], result_files["newer"], "-o", tmp_path / "r.html")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert [line.split(":")[1] for line in lines] == [" warning", " warning", " error"], lines
    assert lines[-1] == "crosstune: error: no usable results file (2 unreadable, see the warnings above)"
    assert not (tmp_path / "r.html").exists()


def test_report_options_errors(result_files, tmp_path):
    assert_user_error(run_cli("report", result_files["gpu"], "-o", tmp_path / "r.pdf"), "must end in .html or .md")
    assert_user_error(run_cli("report", result_files["gpu"], "-o", tmp_path / "r.html", "--baseline", "openvino"),
                      "--baseline openvino: no results file has that engine", "tensorrt")


def test_report_command_does_not_import_tvm_or_torch(result_files, tmp_path):
    code = ("import sys; from crosstune.cli import main; "
            f"rc = main(['report', {str(result_files['gpu'])!r}, '-o', {str(tmp_path / 'r.md')!r}]); "
            "print(rc, sorted(m for m in ('tvm', 'torch', 'onnx', 'onnxruntime') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.split("\n")[-2] == "0 []"


# ---------------------------------------------------------------------------------- committed figures
def test_committed_bench_results_are_the_converted_legacy_files():
    """bench/results/*.results.json are exactly what the converter makes of the old bench JSON."""
    for stem in ("cpu_vs_peers-x86-avx512", "cpu_baseline-x86-avx512"):
        docs = legacy.convert(json.loads((BENCH / f"{stem}.json").read_text()), stem)
        assert len(docs) == 3
        for doc in docs:
            assert results.load(BENCH / f"{stem}.{doc['model']['name']}.results.json") == doc


def test_report_of_the_committed_cpu_results(tmp_path):
    # The documents committed up to stop 23 (later sessions add their own runs, which would change
    # the histories this test pins).
    files = sorted(f for f in BENCH.glob("cpu_*.results.json")
                   if json.loads(f.read_text())["created"] < "2026-12-04T20:00")
    out = tmp_path / "cpu.md"
    run_cli("report", *files, "-o", out, check=0)
    md = out.read_text()
    for model in ("resnet50", "mobilenetv2", "encoder"):
        assert f"## {model} on x86-avx512" in md
    # untuned (stop 9), first tuned records (stop 10), re-tuned on another 2-core VM (2026-12-03),
    # all three again after fast math (2026-12-03b), then the encoder alone three times (c1-c3),
    # all three after another CNN tuning job and default-schedule baselines (2026-12-03d)
    assert md.count("### History: 5 runs") == 2 and md.count("### History: 8 runs") == 1
    assert "| **crosstune fp32** | 6653.3 | 128.2 | 62.13 | 74.51 | 55.20 | 120.53× faster |" in md
    assert "| **crosstune fp32** | 667.4 | 13.95 | 7.20 | 4.34 | 3.95 | 3.77 | 3.74 | 3.86 | 172.75× faster |" in md
    assert "4041.4 ms  (off scale)" in md  # the latest ResNet-50 run's untuned bar


# ---------------------------------------------------------------------------------- in a browser
EXTERNAL = re.compile(r"""(?:\b(?:src|href|xlink:href|action|poster|srcset)\s*=\s*["']?\s*|url\(\s*["']?\s*|@import\s+["']?)"""
                      r"""(?:https?:)?//""", re.IGNORECASE)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  "--hide-scrollbars"]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("Chromium is not installed (Debian: apt-get install chromium); the report tests need a real browser")
    return exe


def browse(page: Path, work: Path) -> tuple[str, Path, list[str]]:
    """Open `page` in headless Chromium: (DOM after load, screenshot, URLs the page requested).
    Name resolution is mapped to nothing, so nothing can leave the machine even if the page asked."""
    work.mkdir(parents=True, exist_ok=True)
    shot, netlog = work / "shot.png", work / "netlog.json"
    proc = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={work / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
         f"--log-net-log={netlog}", "--window-size=1280,2000", f"--screenshot={shot}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, shot, page_requests(json.loads(netlog.read_text()))


def page_requests(netlog: dict) -> list[str]:
    """URLs of the requests the page made. Chromium's own background requests (update checks,
    accounts) run outside any page; a page's requests carry the page as initiator and in their
    network isolation key (file:// for a local report)."""
    kinds = {v: k for k, v in netlog["constants"]["logEventTypes"].items()}
    urls = []
    for event in netlog["events"]:
        params = event.get("params") or {}
        if kinds.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        by_page = params.get("initiator") not in (None, "not an origin") or "file://" in params.get(
            "network_isolation_key", "")
        if by_page and not params["url"].startswith(("file:", "data:")):
            urls.append(params["url"])
    return urls


def png_pixels(path: Path) -> np.ndarray:
    """An 8-bit RGB(A) non-interlaced PNG (what Chromium writes) as an array, decoded with zlib."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, []
    while pos < len(data):
        (n,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    bpp = 3 if color == 2 else 4
    rows = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(height, width * bpp + 1)
    out = np.zeros((height, width * bpp), np.int32)
    prev = np.zeros(width * bpp, np.int32)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 1:
            cur = line.reshape(width, bpp).cumsum(0).reshape(-1) % 256
        elif kind == 2:
            cur = (line + prev) % 256
        else:  # average / Paeth depend on the decoded left neighbour: byte by byte
            cur_l, up, raw = [0] * len(line), prev.tolist(), line.tolist()
            for i, x in enumerate(raw):
                a = cur_l[i - bpp] if i >= bpp else 0
                b, c = up[i], (up[i - bpp] if i >= bpp else 0)
                if kind == 3:
                    pred = (a + b) >> 1
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur_l[i] = (x + pred) & 255
            cur = np.array(cur_l, np.int32)
        out[y], prev = cur, cur
    return out.reshape(height, width, bpp)[:, :, :3]


def test_network_check_catches_external_references(tmp_path):
    """The two checks below are not vacuous: a page with an external image and an external CSS
    background fails both."""
    page = tmp_path / "leaky.html"
    page.write_text('<!doctype html><html><head><style>body { background: url("https://example.com/bg.png") }'
                    '</style></head><body><img src="http://example.org/logo.png"><p>hi</p></body></html>')
    assert len(EXTERNAL.findall(page.read_text())) == 2
    _, _, requested = browse(page, tmp_path / "leaky")
    assert "http://example.org/logo.png" in requested and "https://example.com/bg.png" in requested


def test_report_in_a_real_browser(html_report, tmp_path):
    out, proc = html_report
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert EXTERNAL.findall(html) == []
    dom, shot, requested = browse(out, tmp_path / "browser")
    assert requested == []
    # Charts: a bar chart per model and target (x86, GPU, board), a history chart for the x86 pair.
    assert len(re.findall(r'<svg class="bar-chart"', dom)) == 3
    assert len(re.findall(r'<svg class="history-chart"', dom)) == 1
    assert len(re.findall(r'<g class="bar[ "]', dom)) == 4 + 5 + 2  # timed engines only
    assert len(re.findall(r'<g class="bar emulated', dom)) == 2
    assert len(re.findall(r'<g class="bar clipped', dom)) == 1  # crosstune-untuned, 7 s beside 4-6 ms
    assert len(re.findall(r"<table", dom)) == 1 + 3 + 1 + 3  # overview, results x3, history, how (3)
    assert "compile_model: unsupported operator GridSample" in dom and "not installed" in dom
    assert dom.count('<span class="tag failed">failed</span>') >= 1
    # Emulated: tagged, no speed-up, never fastest.
    board = dom[dom.index("tinynet <span class=\"on\">on</span> rpi4-aarch64"):]
    board = board[: board.index("</section>")]
    assert board.count("—, emulated") == 2 and "fastest" not in board and "tag emulated" in board
    assert "<script>" not in dom and "evil.example" in dom  # shown as text, not loaded
    # The screenshot is a rendered page: many colours, the engines' bar colours among them.
    pixels = png_pixels(shot)
    assert pixels.shape == (2000, 1280, 3)
    colours = {tuple(p) for p in pixels[::4, ::4].reshape(-1, 3)}
    assert len(colours) > 200
    assert (pixels != pixels[0, 0]).any(axis=2).mean() > 0.05  # not a blank page
    for hex_colour in ("#2563eb", "#d97706"):  # crosstune and onnxruntime bars (x86 section, in view)
        rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        assert (pixels == rgb).all(axis=2).sum() > 500, hex_colour
