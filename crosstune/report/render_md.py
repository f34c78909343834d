"""The report as Markdown (GitHub-flavoured) for pull requests and wikis: the same sections and
numbers as the HTML, with the bar charts drawn in text (they must survive renderers that strip
SVG). Text from results files is escaped (`md`, `code`) so it cannot inject markup or links."""

from __future__ import annotations

import html

from .. import __version__
from ..textfmt import ms
from . import analysis as an
from .render_html import change_text
from .svg import clip_limit

BAR_WIDTH = 40  # characters of the longest bar
EIGHTHS = " ▏▎▍▌▋▊▉"


def md(value: object) -> str:
    """Inline text from a results file: no HTML, no emphasis, no links, no table breaks."""
    text = " ".join(str(value).split())
    text = html.escape(text, quote=False)
    for ch in "\\`*_[]|#":
        text = text.replace(ch, "\\" + ch)
    return text


def code(value: object) -> str:
    """A code span (commands); falls back to escaped text when the value holds a backtick."""
    text = " ".join(str(value).split())
    if "`" in text:
        return md(text)
    return "`" + text.replace("|", "\\|") + "`"


def render(report: an.Report, *, title: str, generated: str) -> str:
    out = [
        f"# {md(title)}",
        "",
        f"Generated {md(generated)} by crosstune {md(__version__)} from {len(report.runs)} results "
        f"document{'s' if len(report.runs) != 1 else ''}; speed-ups relative to **{md(report.baseline)}**.",
        "",
    ]
    if report.problems:
        out += [f"> **{len(report.problems)} results file{'s' if len(report.problems) != 1 else ''} "
                "left out of this report:**"]
        out += [f"> - {md(p)}" for p in report.problems]
        out.append("")
    out += _overview(report)
    for section in report.sections:
        out += _section(section)
    out += _how(report)
    return "\n".join(out) + "\n"


def _table(head: list[str], align: str, rows: list[list[str]]) -> list[str]:
    sep = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(head) + " |", "| " + " | ".join(sep) + " |"] + [
        "| " + " | ".join(r) + " |" for r in rows] + [""]


def _overview(report: an.Report) -> list[str]:
    head = ["model"] + [f"{md(c.label)}<br>{md(c.sublabel)}" + (" *(emulated)*" if c.emulated else "")
                        for c in report.columns]
    rows = []
    for model in report.models:
        cells = [f"**{md(model)}**"]
        for column in report.columns:
            s = report.section(model, column)
            cells.append(_overview_cell(s, report.baseline) if s else "—")
        rows.append(cells)
    return ["## Targets side by side", "",
            "Latest run of each model on each target: the fastest engine (real timings only) and crosstune's median.",
            ""] + _table(head, "l" * len(head), rows)


def _overview_cell(s: an.Section, baseline: str) -> str:
    fastest = s.fastest
    if fastest is not None:
        best = f"fastest: **{md(fastest.name)}** {md(fastest.precision)} {ms(fastest.median)} ms"
    elif any(r.emulated for r in s.timed):
        best = "fastest: —, emulated timings are not ranked"
    else:
        best = "fastest: — (fewer than two engines timed)"
    ours = s.crosstune()
    if ours is None:
        mine = "crosstune: not timed"
    elif ours.emulated:
        mine = f"crosstune {ms(ours.median)} ms *(emulated)*"
    else:
        vs = f" · {an.speedup_text(ours)} vs {md(baseline)}" if ours.speedup is not None and not ours.is_baseline else ""
        mine = f"crosstune {ms(ours.median)} ms{vs}"
    return f"{best}<br>{mine}"


def _tags(row: an.Row) -> str:
    tags = [t for t, on in (("fastest", row.fastest), ("baseline", row.is_baseline), ("emulated", row.emulated),
                            (row.engine["status"], not row.ok)) if on]
    return "".join(f" *({t})*" for t in tags)


def _section(s: an.Section) -> list[str]:
    run = s.latest
    out = [f"## {md(s.model)} on {md(s.column.label)}", "",
           f"{md(s.column.sublabel)} · measured {md(run.when)} · {code(run.doc['command'])}", ""]
    if s.column.emulated:
        out += ["> These timings were taken on an **emulated** board: they are not ranked and give no speed-ups.", ""]
    baseline = s.baseline.label if s.baseline else s.baseline_name
    head = ["engine", "precision", "median ms", "p90", "min", "max", "runs", f"speed-up vs {md(baseline)}",
            "agreement", "version"]
    rows = []
    for r in s.rows:
        name = f"**{md(r.name)}**{_tags(r)}"
        version = md(r.engine.get("version") or "")
        if not r.ok:
            rows.append([name, md(r.precision), "—", "—", "—", "—", "—", "—",
                         f"{md(r.engine['status'])}: {md(r.engine['error'])}", version])
            continue
        lat = r.latency
        verdict, detail = an.agreement_text(r)
        verdict = f"**{verdict}**" if verdict in ("PASS", "FAIL") else md(verdict)
        detail = f" ({md(detail)})" if detail else ""
        rows.append([name, md(r.precision), f"**{ms(lat['median'])}**", ms(lat["p90"]), ms(lat["min"]),
                     ms(lat["max"]), md(an.runs_text(lat)), md(an.speedup_text(r)), verdict + detail, version])
    out += _table(head, "llrrrrrrll", rows)
    if s.baseline is None and s.timed and not s.column.emulated:
        out += [f"No real timing of {md(s.baseline_name)} in this run: no speed-ups.", ""]
    out += _pairs(run.doc.get("agreement_pairs") or [])
    if s.timed:
        out += ["```text", *_text_chart(s.timed), "```", ""]
    if s.not_timed:
        out += ["Not timed:", ""]
        out += [f"- **{md(r.label)}** ({md(r.engine['status'])}): {md(r.engine['error'])}" for r in s.not_timed]
        out.append("")
    if s.history:
        out += _history(s)
    return out


def _pairs(pairs: list[dict]) -> list[str]:
    if not pairs:
        return []
    rows = []
    for p in pairs:
        a, b, verdict, abs_err, rel_err, tol = an.pair_cells(p)
        rows.append([md(a), md(b), f"**{verdict}**", abs_err, rel_err, md(tol)])
    return (["Engines checked against each other, on the same inputs (relative errors relative to b):", ""]
            + _table(["a", "b", "agreement", "max abs err", "max rel err", "tolerance"], "llcrrl", rows))


def _text_chart(rows: list[an.Row]) -> list[str]:
    """Bars of block characters (░ for emulated timings), a whisker ─┤ to the p90, and the value;
    bars beyond a large jump are clipped, as in the SVG chart."""
    limit = clip_limit([r.median for r in rows])
    shown = [r for r in rows if limit is None or r.median <= limit]
    top = max(max(r.latency["p90"], r.median) for r in shown) or 1.0
    width = max(len(r.label) for r in rows)
    lines = []
    for r in rows:
        clipped = limit is not None and r.median > limit
        if clipped:
            bar = ("░" if r.emulated else "█") * (BAR_WIDTH - 2) + "╱╱"
            whisker = ""
        else:
            cells = r.median / top * BAR_WIDTH
            full, part = int(cells), int((cells - int(cells)) * 8)
            bar = ("░" * max(full, 1)) if r.emulated else "█" * full + (EIGHTHS[part] if part else "")
            reach = int(round(r.latency["p90"] / top * BAR_WIDTH)) - len(bar)
            whisker = "─" * (reach - 1) + "┤" if reach >= 1 else ""
        tags = [t for t, on in (("off scale", clipped), ("emulated", r.emulated), ("fastest", r.fastest)) if on]
        value = f"{ms(r.median)} ms" + (f"  ({', '.join(tags)})" if tags else "")
        lines.append(f"{r.label.ljust(width)}  {(bar + whisker).ljust(BAR_WIDTH + 1)} {value}")
    lines.append(f"{'':{width}}  median latency; ─┤ reaches the p90")
    return lines


def _history(s: an.Section) -> list[str]:
    head = ["engine"] + [f"{md(run.when)}<br>{md(an.run_tuning(run))}" for run in s.runs] + ["first → last"]
    rows = []
    for series in s.history:
        cells = [md(an.point_text(p)) for p in series.points]
        change = "—, emulated" if s.column.emulated else change_text(series.change)
        rows.append([f"**{md(series.label)}**", *cells, change])
    return ([f"### History: {len(s.runs)} runs", "",
             f"Every run of {md(s.model)} on this target, oldest first (median ms); the tables above show the latest.",
             ""] + _table(head, "l" + "r" * (len(head) - 1), rows))


def _how(report: an.Report) -> list[str]:
    out = ["## How these numbers were taken", "", an.METHOD, "", "### Machines", ""]
    machines = []
    for column in report.columns:
        doc = next(s.latest for s in report.sections if s.column == column).doc
        m, board = doc["machine"], doc.get("board")
        gpu = m.get("gpu")
        machines.append([
            md(column.label),
            md((m.get("cpu") or "?") + (f", {m['cores']} cores" if m.get("cores") else "")),
            md(f"{gpu['name']}" + (f", driver {gpu['driver']}" if gpu.get("driver") else "")) if gpu else "—",
            md(an.board_text(board)) + (" *(emulated)*" if board["emulated"] else "") if board else "— (local)",
            md(m.get("platform") or m.get("arch") or "?"),
        ])
    out += _table(["target", "host CPU", "GPU", "board", "system"], "lllll", machines)
    runs, engines = [], []
    for run in report.runs:
        doc = run.doc
        model = doc["model"]
        inputs = ", ".join(f"{i['name']} {'x'.join(map(str, i['shape']))} {i['dtype']}" for i in model["inputs"])
        digest = f"sha256 {model['sha256'][:16]}…" if model.get("sha256") else "digest not recorded"
        runs.append([md(run.when), f"**{md(model['name'])}**<br>{md(digest)}<br>{md(inputs)}", md(doc["target"]["name"]),
                     code(doc["command"]), md(f"crosstune {doc.get('crosstune_version') or '?'}"), md(run.path)])
        for e in doc["engines"]:
            lat = e["latency_ms"] or {}
            engines.append([md(run.when), md(model["name"]), f"**{md(e['name'])}** {md(e['precision'])}",
                            md(e.get("version") or ""), md(e["threads"]) if e.get("threads") else "default",
                            md(lat["warmup"]) if lat.get("warmup") is not None else "—",
                            md(an.runs_text(lat)) if lat else "—", md(an.tuning_text(e.get("tuning")))])
    out += ["### Runs", ""] + _table(["measured", "model", "target", "command", "version", "file"], "llllll", runs)
    out += ["### Engines", ""] + _table(
        ["measured", "model", "engine", "version", "threads", "warm-up", "timed runs", "tuning"], "llllrrrl", engines)
    return out
