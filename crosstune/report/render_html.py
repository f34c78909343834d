"""The report as one self-contained HTML file: inline CSS and SVG, no script, no font, image or
style sheet fetched from anywhere, so it opens offline and can be mailed or attached as it is.
Every value from a results file is escaped (`esc`): those files are untrusted input."""

from __future__ import annotations

import json
import re

from .. import __version__
from ..textfmt import ms
from . import analysis as an
from .svg import Bar, Line, bar_chart, engine_colors, esc, history_chart

CSS = """
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f6f7f9; --card:#fff; --accent:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 19px; margin: 0 0 2px; }
h2 .on { color: var(--muted); font-weight: 400; }
h3 { font-size: 15px; margin: 22px 0 8px; }
p { margin: 6px 0; }
.meta { color: var(--muted); font-size: 13px; }
code { font: 12px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; background:#f1f3f5;
  padding: 1px 4px; border-radius: 3px; word-break: break-all; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 18px 22px;
  margin: 18px 0; box-shadow: 0 1px 2px rgba(0,0,0,.03); }
.problems { background:#fffbeb; border-color:#fcd34d; }
.problems li { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
table { border-collapse: collapse; width: 100%; margin: 10px 0; font-size: 13px; }
th, td { padding: 6px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: #fafafa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.nowrap { white-space: nowrap; }
td.median { font-weight: 600; }
tr.emulated td { background: repeating-linear-gradient(135deg, #fff 0 6px, #f3f4f6 6px 12px); }
tr.not-timed td { color: var(--muted); }
.sub { display:block; color: var(--muted); font-size: 11.5px; }
.tag { display:inline-block; font-size: 11px; font-weight: 600; padding: 0 6px; border-radius: 9px;
  margin-left: 4px; line-height: 17px; vertical-align: 1px; }
.tag.fastest { background:#dcfce7; color:#166534; }
.tag.baseline { background:#dbeafe; color:#1e40af; }
.tag.emulated { background:#e5e7eb; color:#374151; }
.tag.failed { background:#fee2e2; color:#991b1b; }
.tag.unavailable { background:#f3f4f6; color:#4b5563; }
.pass { color:#15803d; font-weight: 600; }
.fail { color:#b91c1c; font-weight: 600; }
.reason { color:#991b1b; }
.overview { width: auto; min-width: 60%; }
.overview td { min-width: 240px; }
.overview th[scope=row] { min-width: 120px; }
.overview .best { font-weight: 600; }
.chart { overflow-x: auto; margin: 8px 0 0; }
.chart svg { max-width: 100%; height: auto; }
.note { color: var(--muted); font-size: 12.5px; }
.notice { background:#f3f4f6; border-left: 4px solid #9ca3af; padding: 8px 12px; margin: 10px 0; font-size: 13px; }
nav ol { margin: 6px 0 0; padding-left: 20px; columns: 2; font-size: 13px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
footer { color: var(--muted); font-size: 12px; margin-top: 28px; }
"""


def render(report: an.Report, *, title: str, generated: str) -> str:
    colors = engine_colors([r.name for s in report.sections for r in s.rows]
                           + [line.name for s in report.sections for line in s.history])
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">Generated {esc(generated)} by crosstune {esc(__version__)} from '
        f"{len(report.runs)} results document{'s' if len(report.runs) != 1 else ''}; "
        f"speed-ups relative to <b>{esc(report.baseline)}</b>.</p>",
    ]
    if report.problems:
        parts.append(_problems(report.problems))
    parts.append(_overview(report))
    for section in report.sections:
        parts.append(_section(section, colors))
    parts.append(_how(report))
    parts.append(f"<footer>crosstune {esc(__version__)} · <code>crosstune report</code> · "
                 "self-contained: no scripts, no network</footer></main></body></html>")
    return "\n".join(parts) + "\n"


def _problems(problems: list[str]) -> str:
    items = "".join(f"<li>{esc(p)}</li>" for p in problems)
    return (f'<div class="card problems" id="problems"><b>{len(problems)} results '
            f"file{'s' if len(problems) != 1 else ''} left out of this report</b><ul>{items}</ul></div>")


def _tags(row: an.Row) -> str:
    tags = []
    if row.fastest:
        tags.append('<span class="tag fastest">fastest</span>')
    if row.is_baseline:
        tags.append('<span class="tag baseline">baseline</span>')
    if row.emulated:
        tags.append('<span class="tag emulated">emulated</span>')
    if not row.ok:
        status = row.engine["status"]
        tags.append(f'<span class="tag {esc(status)}">{esc(status)}</span>')
    return "".join(tags)


def _overview(report: an.Report) -> str:
    head = "".join(f'<th>{esc(c.label)}<span class="sub">{esc(c.sublabel)}</span>'
                   + ('<span class="tag emulated">emulated</span>' if c.emulated else "") + "</th>"
                   for c in report.columns)
    rows = []
    for model in report.models:
        cells = []
        for column in report.columns:
            s = report.section(model, column)
            cells.append(f"<td>{_overview_cell(s, report.baseline)}</td>" if s else '<td class="note">—</td>')
        rows.append(f"<tr><th scope=\"row\">{esc(model)}</th>{''.join(cells)}</tr>")
    toc = ""
    if len(report.sections) > 1:
        items = "".join(f'<li><a href="#{s.anchor}">{esc(s.model)} on {esc(s.column.label)} '
                        f'<span class="note">({esc(s.column.sublabel)})</span></a></li>' for s in report.sections)
        toc = f"<nav><b>Sections</b><ol>{items}</ol></nav>"
    return (
        '<div class="card"><h2>Targets side by side</h2>'
        '<p class="note">Latest run of each model on each target: the fastest engine (real timings only) '
        "and crosstune's median.</p>"
        f'<table class="overview"><thead><tr><th>model</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f"{toc}</div>"
    )


def _overview_cell(s: an.Section, baseline: str) -> str:
    fastest = s.fastest
    if fastest is not None:
        best = (f'<div class="best">fastest: {esc(fastest.name)} <span class="note">{esc(fastest.precision)}</span> '
                f"{ms(fastest.median)} ms</div>")
    elif any(r.emulated for r in s.timed):
        best = '<div class="note">fastest: —, emulated timings are not ranked</div>'
    else:
        best = '<div class="note">fastest: — (fewer than two engines timed)</div>'
    ours = s.crosstune()
    if ours is None:
        mine = '<div class="note">crosstune: not timed</div>'
    else:
        ratio = an.speedup_text(ours)
        vs = f" · {esc(ratio)} vs {esc(baseline)}" if ours.speedup is not None and not ours.is_baseline else ""
        if ours.emulated:
            vs = ' <span class="tag emulated">emulated</span>'
        mine = f"<div>crosstune {ms(ours.median)} ms{vs}</div>"
    return f'<a href="#{s.anchor}">{best}</a>{mine}'


def _section(s: an.Section, colors: dict[str, str]) -> str:
    run = s.latest
    doc = run.doc
    out = [
        f'<section class="card run" id="{s.anchor}">',
        f'<h2>{esc(s.model)} <span class="on">on</span> {esc(s.column.label)}</h2>',
        f'<p class="meta">{esc(s.column.sublabel)} · measured {esc(run.when)} · <code>{esc(doc["command"])}</code></p>',
    ]
    if s.column.emulated:
        out.append('<p class="notice">These timings were taken on an <b>emulated</b> board: they are not '
                   "ranked and give no speed-ups.</p>")
    out.append(_results_table(s))
    out.append(_pairs(doc.get("agreement_pairs") or []))
    bars = [Bar(r.name, r.precision, r.median, r.latency["p90"], colors[r.name], r.emulated, r.fastest) for r in s.timed]
    if bars:
        title = f"{s.model} on {s.column.label}: median latency per engine"
        out.append(f'<figure class="chart">{bar_chart(bars, s.anchor, title)}</figure>')
    if s.not_timed:
        items = "".join(f'<li><b>{esc(r.label)}</b> <span class="tag {esc(r.engine["status"])}">{esc(r.engine["status"])}</span> '
                        f'<span class="reason">{esc(r.engine["error"])}</span></li>' for r in s.not_timed)
        out.append(f'<h3>Not timed</h3><ul class="failures">{items}</ul>')
    if s.history:
        out.append(_history(s, colors))
    out.append("</section>")
    return "\n".join(out)


def _results_table(s: an.Section) -> str:
    baseline = s.baseline.label if s.baseline else s.baseline_name
    head = ("<tr><th>engine</th><th>precision</th><th class='num'>median ms</th><th class='num'>p90</th>"
            "<th class='num'>min</th><th class='num'>max</th><th class='num'>runs</th>"
            f"<th class='num'>speed-up vs {esc(baseline)}</th><th>agreement</th></tr>")
    rows = []
    for r in s.rows:
        version = f'<span class="sub">{esc(r.engine["version"])}</span>' if r.engine.get("version") else ""
        name = f"<td><b>{esc(r.name)}</b>{_tags(r)}{version}</td><td>{esc(r.precision)}</td>"
        if not r.ok:
            rows.append(f'<tr class="not-timed">{name}<td colspan="7"><span class="reason">'
                        f'{esc(r.engine["status"])}: {esc(r.engine["error"])}</span></td></tr>')
            continue
        lat = r.latency
        verdict, detail = an.agreement_text(r)
        css = {"PASS": "pass", "FAIL": "fail"}.get(verdict, "note")
        cls = ' class="emulated"' if r.emulated else ""
        rows.append(
            f"<tr{cls}>{name}<td class='num median'>{ms(lat['median'])}</td><td class='num'>{ms(lat['p90'])}</td>"
            f"<td class='num'>{ms(lat['min'])}</td><td class='num'>{ms(lat['max'])}</td>"
            f"<td class='num'>{esc(an.runs_text(lat))}</td><td class='num'>{esc(an.speedup_text(r))}</td>"
            f'<td><span class="{css}">{esc(verdict)}</span><span class="sub">{esc(detail)}</span></td></tr>'
        )
    note = ""
    if s.baseline is None and s.timed and not s.column.emulated:
        note = f'<p class="note">No real timing of {esc(s.baseline_name)} in this run: no speed-ups.</p>'
    return f'<table class="results"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>{note}'


def _pairs(pairs: list[dict]) -> str:
    if not pairs:
        return ""
    rows = []
    for p in pairs:
        a, b, verdict, abs_err, rel_err, tol = an.pair_cells(p)
        css = "pass" if verdict == "PASS" else "fail"
        rows.append(f"<tr><td>{esc(a)}</td><td>{esc(b)}</td><td><span class='{css}'>{verdict}</span></td>"
                    f"<td class='num'>{esc(abs_err)}</td><td class='num'>{esc(rel_err)}</td><td>{esc(tol)}</td></tr>")
    return ("<h3>Engines checked against each other</h3><p class='note'>Same seeded inputs; relative errors are "
            "relative to b.</p><table class='pairs'><thead><tr><th>a</th><th>b</th><th>agreement</th>"
            "<th class='num'>max abs err</th><th class='num'>max rel err</th><th>tolerance</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _history(s: an.Section, colors: dict[str, str]) -> str:
    head = "".join(
        f"<th class='num'>{esc(run.when)}<span class='sub'>{esc(an.run_tuning(run) or '')}</span></th>"
        for run in s.runs
    )
    rows = []
    for series in s.history:
        cells = "".join(f"<td class='num'>{esc(an.point_text(p))}</td>" for p in series.points)
        rows.append(f"<tr><td><b>{esc(series.label)}</b></td>{cells}<td class='num'>{esc(_change(series, s))}</td></tr>")
    lines = [Line(series.label, colors[series.name], [p.median for p in series.points]) for series in s.history]
    dates = [run.created.strftime("%Y-%m-%d %H:%M") for run in s.runs]
    chart = history_chart(lines, dates, f"h{s.anchor}", f"{s.model} on {s.column.label}: median over time",
                          s.column.emulated)
    return (
        f"<h3>History: {len(s.runs)} runs</h3>"
        f'<p class="note">Every run of {esc(s.model)} on this target, oldest first; the tables above show the '
        "latest. Under each date: the tuning state of its crosstune engine.</p>"
        f'<table class="history"><thead><tr><th>engine</th>{head}<th class="num">first → last</th></tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table><figure class="chart">{chart}</figure>'
    )


def _change(series: an.Series, s: an.Section) -> str:
    if s.column.emulated:
        return "—, emulated"
    return change_text(series.change)


def change_text(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    if abs(ratio - 1) < 0.02:
        return "unchanged"
    return f"{1 / ratio:.2f}× faster" if ratio < 1 else f"{ratio:.2f}× slower"


def _how(report: an.Report) -> str:
    machines = []
    for column in report.columns:
        run = next(s.latest for s in report.sections if s.column == column)
        machines.append(_machine_row(column, run.doc))
    runs = []
    settings = []
    for run in report.runs:
        doc = run.doc
        model = doc["model"]
        digest = f'<span class="sub">sha256 {esc(model["sha256"][:16])}…</span>' if model.get("sha256") else (
            '<span class="sub">digest not recorded</span>')
        inputs = ", ".join(f"{i['name']} {'x'.join(map(str, i['shape']))} {i['dtype']}" for i in model["inputs"])
        target = doc["target"]
        tvm = json.dumps(target["tvm"], separators=(",", ":")) if target.get("tvm") else ""
        runs.append(
            f"<tr><td class='nowrap'>{esc(run.when)}</td><td><b>{esc(model['name'])}</b>{digest}"
            f"<span class='sub'>{esc(inputs)}</span></td>"
            f"<td><span class='nowrap'>{esc(target['name'])}</span><span class='sub'>{esc(tvm)}</span></td>"
            f"<td><code>{esc(doc['command'])}</code><span class='sub'>crosstune {esc(doc.get('crosstune_version') or '?')}"
            f" · {esc(run.path)}</span></td></tr>"
        )
        for e in doc["engines"]:
            lat = e["latency_ms"] or {}
            warm = lat.get("warmup")
            settings.append(
                f"<tr><td class='nowrap'>{esc(run.when)}</td><td>{esc(model['name'])}</td><td><b>{esc(e['name'])}</b> {esc(e['precision'])}"
                f"<span class='sub'>{esc(e.get('version') or '')}</span></td>"
                f"<td class='num'>{esc(e['threads']) if e.get('threads') else 'default'}</td>"
                f"<td class='num'>{esc(warm) if warm is not None else '—'}</td>"
                f"<td class='num'>{esc(an.runs_text(lat)) if lat else '—'}</td>"
                f"<td>{esc(an.tuning_text(e.get('tuning')))}</td></tr>"
            )
    return (
        '<section class="card how" id="how"><h2>How these numbers were taken</h2>'
        f"<p>{_inline(an.METHOD)}</p>"
        "<h3>Machines</h3><table><thead><tr><th>target</th><th>host CPU</th><th>GPU</th><th>board</th><th>system</th>"
        f"</tr></thead><tbody>{''.join(machines)}</tbody></table>"
        "<h3>Runs</h3><table><thead><tr><th>measured</th><th>model</th><th>target</th><th>command</th></tr></thead>"
        f"<tbody>{''.join(runs)}</tbody></table>"
        "<h3>Engines</h3><table><thead><tr><th>measured</th><th>model</th><th>engine</th><th class='num'>threads</th>"
        "<th class='num'>warm-up</th><th class='num'>timed runs</th><th>tuning</th></tr></thead>"
        f"<tbody>{''.join(settings)}</tbody></table></section>"
    )


def _machine_row(column: an.Column, doc: dict) -> str:
    m = doc["machine"]
    cpu = (m.get("cpu") or "?") + (f", {m['cores']} cores" if m.get("cores") else "")
    gpu = m.get("gpu")
    gpu_text = f"{gpu['name']}" + (f", driver {gpu['driver']}" if gpu.get("driver") else "") if gpu else "—"
    board = doc.get("board")
    if board:
        board_text = esc(an.board_text(board))
        if board["emulated"]:
            board_text += ' <span class="tag emulated">emulated</span>'
    else:
        board_text = "— (local)"
    return (f"<tr><td>{esc(column.label)}</td><td>{esc(cpu)}</td><td>{esc(gpu_text)}</td><td>{board_text}</td>"
            f"<td>{esc(m.get('platform') or m.get('arch') or '?')}</td></tr>")


def _inline(text: str) -> str:
    """Our own prose with `code` and *emphasis* marks, as HTML."""
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))
    return re.sub(r"\*([^*]+)\*", r"<i>\1</i>", html)
