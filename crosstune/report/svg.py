"""Charts as inline SVG text: a report must open anywhere, offline, with no script and no request.

Two charts: latency bars per engine (median, whisker to p90) and median over time per engine.
Every string that reaches the markup comes from results files, which are untrusted: all of it
goes through `esc`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from ..textfmt import ms

# Fixed colours for the engines crosstune knows, so an engine looks the same in every chart;
# others take the next free colour of the palette.
KNOWN = {
    "crosstune": "#2563eb",
    "crosstune-untuned": "#93c5fd",
    "onnxruntime": "#d97706",
    "openvino": "#7c3aed",
    "torch": "#dc2626",
    "torch-compile": "#f97316",
    "tensorrt": "#16a34a",
}
PALETTE = ("#0891b2", "#db2777", "#65a30d", "#4f46e5", "#b45309", "#0f766e", "#9333ea")
EMULATED = "#9ca3af"
INK, MUTED, GRID = "#1f2937", "#6b7280", "#e5e7eb"
CLIP_GAP = 5.0  # bars beyond a jump of this factor between neighbours are drawn clipped


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def engine_colors(names: list[str]) -> dict[str, str]:
    """A colour per engine name, stable for a given set of names."""
    colors, spare = {}, iter(PALETTE * (len(names) // len(PALETTE) + 1))
    for name in sorted(set(names)):
        colors[name] = KNOWN.get(name) or next(spare)
    return colors


@dataclass
class Bar:
    name: str
    precision: str
    median: float
    p90: float
    color: str
    emulated: bool = False
    fastest: bool = False


def nice_step(span: float, count: int = 5) -> float:
    """A 1-2-5 step that cuts `span` into about `count` intervals."""
    raw = span / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def _tick(value: float) -> str:
    return f"{value:g}" if value >= 1 else f"{value:.3g}"


def clip_limit(medians: list[float]) -> float | None:
    """The median above which bars are clipped: the lower side of the largest jump between sorted
    neighbours, when that jump exceeds CLIP_GAP and at least two bars stay below it (an untuned
    7.5 s module beside 50 ms engines would otherwise squash every other bar into a sliver).
    None: draw all bars to scale."""
    values = sorted(v for v in medians if v > 0)
    best, limit = CLIP_GAP, None
    for lo, hi in zip(values[1:], values[2:]):
        if hi / lo > best:
            best, limit = hi / lo, lo
    return limit


def bar_chart(bars: list[Bar], uid: str, title: str) -> str:
    """Horizontal bars, one per engine and precision: the median, a whisker to the p90, the value
    at the end. Emulated timings are hatched grey and tagged; clipped bars end in a break mark."""
    label_w, plot_w, value_w = 200, 470, 190
    row_h, bar_h, top, axis_h = 30, 18, 10, 34
    width = label_w + plot_w + value_w
    height = top + row_h * len(bars) + axis_h
    limit = clip_limit([b.median for b in bars])
    shown = [b for b in bars if limit is None or b.median <= limit]
    top_value = max((max(b.p90, b.median) for b in shown), default=1.0) or 1.0
    step = nice_step(top_value * 1.05)
    axis_max = step * math.ceil(top_value * 1.05 / step)

    def x(value: float) -> float:
        return label_w + plot_w * min(value, axis_max) / axis_max

    out = [
        f'<svg class="bar-chart" role="img" aria-label="{esc(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="inherit" font-size="12">',
        f"<title>{esc(title)}</title>",
        f'<defs><pattern id="hatch-{esc(uid)}" patternUnits="userSpaceOnUse" width="6" height="6" '
        f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#e5e7eb"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{EMULATED}" stroke-width="3"/></pattern></defs>',
    ]
    base_y = top + row_h * len(bars)
    tick = 0.0
    while tick <= axis_max + step / 1000:
        tx = x(tick)
        out.append(f'<line x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{base_y}" stroke="{GRID}"/>')
        out.append(f'<text x="{tx:.1f}" y="{base_y + 16}" text-anchor="middle" fill="{MUTED}">{_tick(tick)}</text>')
        tick += step
    out.append(f'<text x="{label_w + plot_w}" y="{base_y + 30}" text-anchor="end" fill="{MUTED}">'
               f"median latency, ms (whisker: p90)</text>")
    for i, b in enumerate(bars):
        y = top + row_h * i + (row_h - bar_h) / 2
        mid = y + bar_h / 2 + 4
        clipped = limit is not None and b.median > limit
        classes = "bar" + (" emulated" if b.emulated else "") + (" clipped" if clipped else "") + (
            " fastest" if b.fastest else "")
        fill = f"url(#hatch-{esc(uid)})" if b.emulated else b.color
        end = label_w + plot_w if clipped else x(b.median)
        tip = f"{b.name} {b.precision}: median {ms(b.median)} ms, p90 {ms(b.p90)} ms" + (
            " (emulated)" if b.emulated else "")
        out.append(f'<g class="{classes}"><title>{esc(tip)}</title>')
        out.append(f'<text x="{label_w - 10}" y="{mid:.1f}" text-anchor="end" fill="{INK}">'
                   f'<tspan font-weight="600">{esc(b.name)}</tspan> <tspan fill="{MUTED}">{esc(b.precision)}</tspan></text>')
        out.append(f'<rect x="{label_w}" y="{y:.1f}" width="{max(end - label_w, 1):.1f}" height="{bar_h}" '
                   f'rx="2" fill="{fill}"' + (f' stroke="{EMULATED}"' if b.emulated else "") + "/>")
        if clipped:  # two slanted cuts near the end: the bar continues off the axis
            for dx in (-12, -7):
                cx = end + dx
                out.append(f'<line x1="{cx - 3:.1f}" y1="{y + bar_h + 2:.1f}" x2="{cx + 3:.1f}" y2="{y - 2:.1f}" '
                           f'stroke="#fff" stroke-width="2.5"/>')
            value_x = end + 6
        else:
            wx = x(b.p90)
            if b.p90 > b.median:
                out.append(f'<line x1="{end:.1f}" y1="{mid - 4:.1f}" x2="{wx:.1f}" y2="{mid - 4:.1f}" stroke="{INK}"/>')
                out.append(f'<line x1="{wx:.1f}" y1="{mid - 9:.1f}" x2="{wx:.1f}" y2="{mid + 1:.1f}" stroke="{INK}"/>')
            value_x = max(end, wx) + 6
        value = f"{ms(b.median)} ms"
        tags = []
        if clipped:
            tags.append(("off scale", MUTED))
        if b.emulated:
            tags.append(("emulated", MUTED))
        if b.fastest:
            tags.append(("fastest", "#15803d"))
        tag_text = "".join(f' <tspan fill="{c}" font-style="italic">{t}</tspan>' for t, c in tags)
        out.append(f'<text class="value" x="{value_x:.1f}" y="{mid:.1f}" fill="{INK}">{esc(value)}{tag_text}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks covering [lo, hi] on a log axis: powers of ten across several decades, 1-2-5 steps
    across fewer; at least two."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    if len(decades) > 3:
        return [10.0 ** k for k in decades]
    ticks = [m * 10.0 ** k for k in decades for m in (1, 2, 5)]
    below = max(t for t in ticks if t <= lo)
    inside = [t for t in ticks if t >= below]
    above = next(t for t in inside[1:] if t >= hi)
    return [t for t in inside if t <= above]


@dataclass
class Line:
    label: str
    color: str
    values: list[float | None]  # one per run; None where the engine was not timed


def history_chart(lines: list[Line], dates: list[str], uid: str, title: str, emulated: bool) -> str:
    """Median per engine across runs (oldest left), log scale so a 50x improvement and a 5 %
    drift both show. Emulated histories are drawn dashed."""
    left, plot_w, right, top, plot_h, bottom = 64, 500, 290, 14, 170, 40
    width = left + plot_w + right
    height = max(top + plot_h + bottom, top + 18 * len(lines) + 10)  # room for the legend
    values = [v for line in lines for v in line.values if v is not None and v > 0]
    lo, hi = (min(values), max(values)) if values else (1.0, 10.0)
    ticks = log_ticks(lo, hi)
    t_lo, t_hi = math.log10(ticks[0]), math.log10(ticks[-1])
    span = (t_hi - t_lo) or 1.0

    def y(value: float) -> float:
        return top + plot_h - plot_h * (math.log10(value) - t_lo) / span

    def x(i: int) -> float:
        return left + (plot_w * i / (len(dates) - 1) if len(dates) > 1 else plot_w / 2)

    out = [
        f'<svg class="history-chart" role="img" aria-label="{esc(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="inherit" font-size="12">',
        f"<title>{esc(title)}</title>",
    ]
    for t in ticks:
        out.append(f'<line x1="{left}" y1="{y(t):.1f}" x2="{left + plot_w}" y2="{y(t):.1f}" stroke="{GRID}"/>')
        out.append(f'<text x="{left - 8}" y="{y(t) + 4:.1f}" text-anchor="end" fill="{MUTED}">{_tick(t)}</text>')
    out.append(f'<text x="12" y="{top + plot_h / 2:.1f}" transform="rotate(-90 12 {top + plot_h / 2:.1f})" '
               f'text-anchor="middle" fill="{MUTED}">median ms (log)</text>')
    for i, date in enumerate(dates):
        out.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 18}" text-anchor="middle" fill="{MUTED}">{esc(date)}</text>')
    dash = ' stroke-dasharray="5 4"' if emulated else ""
    for n, line in enumerate(lines):
        color = EMULATED if emulated else line.color
        pts = [(x(i), y(v), v) for i, v in enumerate(line.values) if v is not None and v > 0]
        out.append(f'<g class="series"><title>{esc(line.label)}</title>')
        if len(pts) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for px, py, v in pts:
            out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{color}">'
                       f"<title>{esc(line.label)}: {ms(v)} ms</title></circle>")
        ly = top + 8 + 18 * n
        out.append(f'<rect x="{left + plot_w + 24}" y="{ly - 9}" width="14" height="4" fill="{color}"/>')
        last = next((v for v in reversed(line.values) if v is not None), None)
        value = f" {ms(last)} ms" if last is not None else " not timed"
        out.append(f'<text x="{left + plot_w + 44}" y="{ly - 3}" fill="{INK}">{esc(line.label)}'
                   f'<tspan fill="{MUTED}">{esc(value)}</tspan></text></g>')
    out.append("</svg>")
    return "\n".join(out)
