"""From results documents to what a report shows: runs grouped by model and column (a target on a
machine or a board), the latest run of each group with its rows ranked and compared with the
baseline, and the earlier runs as history. Both renderers (HTML, Markdown) draw this same view, so
they cannot disagree about a number.

The rules about emulated timings live here and nowhere else: a timing measured under an emulator
(a board run in QEMU) says nothing about the real board, so it is never ranked, never marked
fastest, and never divided by or into another timing.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from ..textfmt import ms, sci
from .results import emulated

DEFAULT_BASELINE = "onnxruntime"

METHOD = (
    "Every engine is timed by the same code (`crosstune.runtime.timing`): warm-up runs first, not "
    "timed; then each sample times one inference plus the device synchronisation with a monotonic clock. "
    "Tables give the median, the 90th percentile (p90), min and max over the timed runs, with the input "
    "shapes listed under Runs. A run count marked *time limit* stopped early at its time budget. Speed-up "
    "is the baseline's median divided by the engine's: above 1 the engine is faster. Agreement compares "
    "the engine's outputs with the reference engine's on the same seeded inputs, element by element: "
    "|actual − expected| ≤ atol + rtol·|expected|. Timings tagged *emulated* come from an emulated board "
    "(QEMU): they are shown, but say nothing about the real board's speed, so they are never ranked, "
    "never marked fastest and never turned into a speed-up. The machine is the computer that ran "
    "crosstune; a board run was timed on the board it names."
)


@dataclass(frozen=True)
class Column:
    """Where a run was timed. Runs on a board are told apart by the board; local runs by the machine."""

    target: str
    where: str  # the machine (CPU or GPU) or the board key
    board: bool
    emulated: bool

    @property
    def label(self) -> str:
        return self.target

    @property
    def sublabel(self) -> str:
        return f"board {self.where}" if self.board else self.where


@dataclass
class Run:
    """One results document and the file it came from."""

    path: str
    doc: dict[str, Any]

    @property
    def created(self) -> datetime.datetime:
        return datetime.datetime.fromisoformat(self.doc["created"]).astimezone(datetime.timezone.utc)

    @property
    def when(self) -> str:
        return self.created.strftime("%Y-%m-%d %H:%M UTC")


@dataclass
class Row:
    """One engine at one precision in one run."""

    engine: dict[str, Any]
    emulated: bool
    reference: str | None
    fastest: bool = False
    speedup: float | None = None
    speedup_note: str = "—"  # shown when speedup is None
    is_baseline: bool = False

    @property
    def name(self) -> str:
        return self.engine["name"]

    @property
    def precision(self) -> str:
        return self.engine["precision"]

    @property
    def label(self) -> str:
        return f"{self.name} {self.precision}"

    @property
    def ok(self) -> bool:
        return self.engine["status"] == "ok"

    @property
    def latency(self) -> dict[str, Any]:
        return self.engine["latency_ms"]

    @property
    def median(self) -> float:
        return self.engine["latency_ms"]["median"]

    @property
    def is_reference(self) -> bool:
        return self.reference == self.name and self.engine.get("agreement") is None


@dataclass
class Point:
    """An engine's median in one run of a history."""

    run: Run
    median: float | None  # None: not timed in that run
    status: str = ""  # why not: "failed", "unavailable", or "" when the run did not have the engine


@dataclass
class Series:
    label: str
    name: str
    points: list[Point]

    @property
    def change(self) -> float | None:
        """Last median over first (both timed): < 1 means it got faster."""
        timed = [p.median for p in self.points if p.median is not None]
        return timed[-1] / timed[0] if len(timed) >= 2 else None


@dataclass
class Section:
    """One model on one column: the latest run in full, earlier runs as history."""

    model: str
    column: Column
    runs: list[Run]  # oldest first
    rows: list[Row] = field(default_factory=list)
    baseline: Row | None = None
    baseline_name: str = DEFAULT_BASELINE
    history: list[Series] = field(default_factory=list)
    anchor: str = ""

    @property
    def latest(self) -> Run:
        return self.runs[-1]

    @property
    def timed(self) -> list[Row]:
        return [r for r in self.rows if r.ok]

    @property
    def not_timed(self) -> list[Row]:
        return [r for r in self.rows if not r.ok]

    @property
    def fastest(self) -> Row | None:
        return next((r for r in self.rows if r.fastest), None)

    def crosstune(self) -> Row | None:
        """The crosstune row the overview shows (fp32 first, then whatever precision ran)."""
        ours = [r for r in self.timed if r.name == "crosstune"]
        return next((r for r in ours if r.precision == "fp32"), ours[0] if ours else None)


@dataclass
class Report:
    sections: list[Section]
    columns: list[Column]
    models: list[str]
    problems: list[str]  # one line per results file that could not be used
    baseline: str
    runs: list[Run]

    def section(self, model: str, column: Column) -> Section | None:
        return next((s for s in self.sections if s.model == model and s.column == column), None)


def column_of(doc: dict[str, Any]) -> Column:
    board = doc.get("board")
    target = doc["target"]["name"]
    if board:
        return Column(target, board["key"], True, bool(board["emulated"]))
    machine = doc.get("machine") or {}
    gpu = machine.get("gpu")
    if gpu and (doc["target"].get("device") or "cpu") != "cpu":
        where = gpu["name"]
    else:
        cores = machine.get("cores")
        where = (machine.get("cpu") or "unknown CPU") + (f", {cores} cores" if cores else "")
    return Column(target, where, False, False)


def build(runs: list[Run], problems: list[str], baseline: str | None = None) -> Report:
    """The report's view of `runs`. `baseline` is the engine speed-ups are relative to."""
    groups: dict[tuple[str, Column], list[Run]] = {}
    for run in sorted(runs, key=lambda r: r.created):
        groups.setdefault((run.doc["model"]["name"], column_of(run.doc)), []).append(run)
    models = sorted({m for m, _ in groups})
    columns = sorted({c for _, c in groups}, key=lambda c: (c.emulated, c.board, c.target, c.where))
    base = baseline or DEFAULT_BASELINE
    sections = []
    for model in models:
        for column in columns:
            if (model, column) in groups:
                section = Section(model, column, groups[(model, column)], baseline_name=base)
                section.anchor = f"s{len(sections) + 1}"
                _fill(section)
                sections.append(section)
    return Report(sections, columns, models, problems, base, sorted(runs, key=lambda r: r.created))


def engine_names(runs: list[Run]) -> set[str]:
    return {e["name"] for r in runs for e in r.doc["engines"]}


def _rows(run: Run) -> list[Row]:
    doc = run.doc
    return [Row(e, emulated(doc, e), doc.get("reference")) for e in doc["engines"]]


def _fill(section: Section) -> None:
    rows = _rows(section.latest)
    # Timed rows fastest first, then the engines that did not run, in the order the run lists them.
    timed = sorted((r for r in rows if r.ok), key=lambda r: (r.emulated, r.median))
    section.rows = timed + [r for r in rows if not r.ok]
    comparable = [r for r in timed if not r.emulated]
    if len(comparable) >= 2:
        comparable[0].fastest = True
    section.baseline = _pick_baseline(comparable, section.baseline_name)
    for row in timed:
        if row.emulated:
            row.speedup_note = "—, emulated"
        elif section.baseline is None:
            continue
        elif row is section.baseline:
            row.is_baseline, row.speedup = True, 1.0
        else:
            row.speedup = section.baseline.median / row.median if row.median > 0 else None
    if len(section.runs) > 1:
        section.history = _history(section.runs)


def _pick_baseline(comparable: list[Row], name: str) -> Row | None:
    """The baseline engine's fp32 row (its only row, if it ran at one precision). Emulated rows
    never serve: `comparable` holds only real timings."""
    mine = [r for r in comparable if r.name == name]
    return next((r for r in mine if r.precision == "fp32"), mine[0] if mine else None)


def _history(runs: list[Run]) -> list[Series]:
    """A series per engine and precision seen in any of the runs."""
    labels: dict[tuple[str, str], None] = {}
    for run in runs:
        for e in run.doc["engines"]:
            labels[(e["name"], e["precision"])] = None
    series = []
    for name, precision in labels:
        points = []
        for run in runs:
            e = next((e for e in run.doc["engines"] if (e["name"], e["precision"]) == (name, precision)), None)
            if e is not None and e["status"] == "ok":
                points.append(Point(run, e["latency_ms"]["median"]))
            else:
                points.append(Point(run, None, e["status"] if e is not None else ""))
        if any(p.median is not None for p in points):  # never timed: "Not timed" already says why
            series.append(Series(f"{name} {precision}", name, points))
    last = {s.label: (s.points[-1].median is None, s.points[-1].median or 0) for s in series}
    return sorted(series, key=lambda s: last[s.label])


# ------------------------------------------------------------------------------------ words for cells
def tuning_text(tuning: dict[str, Any] | None) -> str:
    """'35/35 kernels tuned, 1531 trials', or 'untuned (TVM default schedules)'."""
    if tuning is None:
        return ""
    covered, tasks, trials = tuning.get("covered"), tuning.get("tasks"), tuning.get("trials")
    if not covered:
        return "untuned (TVM default schedules)"
    text = f"{covered}/{tasks} kernels tuned" if tasks else f"{covered} kernels tuned"
    if trials:
        text += f", {trials} trials"
    elif tuning.get("records"):
        text += f" (store of {tuning['records']} records)"
    return text


def board_text(board: dict[str, Any]) -> str:
    """'rpi4 via 10.0.0.2:9190 (aarch64, QEMU -cpu cortex-a72)': the key, the tracker, and what the
    board said about itself when it did (`crosstune rpc server` boards do)."""
    text = board["key"] + (f" via {board['tracker']}" if board.get("tracker") else "")
    about = [str(board["machine"])] if board.get("machine") else []
    if board.get("qemu_cpu"):
        about.append(f"QEMU -cpu {board['qemu_cpu']}")
    return text + (f" ({', '.join(about)})" if about else "")


def runs_text(latency: dict[str, Any]) -> str:
    text = f"{latency['count']}"
    if latency.get("truncated"):
        text += " (time limit)"
    return text


def point_text(point: Point) -> str:
    """A history cell: the median, or why there is none."""
    return ms(point.median) if point.median is not None else (point.status or "—")


def speedup_text(row: Row) -> str:
    if row.is_baseline:
        return "1.00× (baseline)"
    if row.speedup is None:
        return row.speedup_note
    return f"{row.speedup:.2f}×" if row.speedup >= 0.095 else f"{row.speedup:.2g}×"


def run_tuning(run: Run) -> str:
    """The tuning state of a run's crosstune engine, for history headers."""
    for e in run.doc["engines"]:
        if e["name"] == "crosstune" and e.get("tuning") is not None:
            return tuning_text(e["tuning"])
    return ""


def agreement_text(row: Row) -> tuple[str, str]:
    """(verdict, detail): verdict is PASS, FAIL, "reference" or "—" (not checked)."""
    agreement = row.engine.get("agreement")
    if agreement is None:
        return ("reference", "others are checked against it") if row.is_reference else ("—", "not checked")
    parts = []
    if agreement.get("max_abs") is not None:
        parts.append(f"abs err {sci(agreement['max_abs'])}")
    if agreement.get("max_rel") is not None:
        parts.append(f"rel err {sci(agreement['max_rel'])}")
    parts.append(f"vs {agreement['reference']}")
    tolerance = tolerance_text(agreement)
    return ("PASS" if agreement["passed"] else "FAIL", " · ".join(parts + ([tolerance] if tolerance else [])))


def tolerance_text(check: dict[str, Any]) -> str:
    """`rtol 0.01 · atol 0.031 (0.01 of max |ref|)` from an agreement or an agreement pair."""
    parts = [f"{k} {check[k]:.3g}" for k in ("rtol", "atol") if check.get(k) is not None]
    text = " · ".join(parts)
    if check.get("scale_atol"):
        text += f" ({check['scale_atol']:g} of max |ref|)"
    return text


def pair_cells(pair: dict[str, Any]) -> list[str]:
    """An `agreement_pairs` entry as table cells: a, b, verdict, max abs err, max rel err, tolerance."""
    def err(key):
        return "—" if pair.get(key) is None else sci(pair[key])

    return [f"{pair['a']} {pair['a_precision']}", f"{pair['b']} {pair['b_precision']}",
            "PASS" if pair["passed"] else "FAIL", err("max_abs"), err("max_rel"), tolerance_text(pair)]
