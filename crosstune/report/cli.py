"""`crosstune report RESULTS... -o report.html|report.md`: results files to a report.

A file that cannot be used (missing, truncated, another format version) costs one warning line on
stderr and a line in the report; the others still make the report. Only when none can be read is
it an error. Imports stay inside `run`: this command must not pay for TVM, which it never needs.
"""

from __future__ import annotations

import sys
from pathlib import Path

FORMATS = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md"}


def add_parser(sub) -> None:
    s = sub.add_parser("report", help="latency report (self-contained HTML, or Markdown) from results files",
                       description="Merge results files (from `crosstune run --json` and the bench commands) "
                                   "into one report: targets side by side, charts, speed-ups, history.")
    s.add_argument("results", nargs="+", metavar="RESULTS", help="results files (crosstune results format)")
    s.add_argument("-o", "--output", required=True, help="report path; .html or .md picks the format")
    s.add_argument("--baseline", metavar="ENGINE",
                   help="engine speed-ups are relative to: tensorrt, onnxruntime, torch, crosstune or any "
                        "engine in the results (default onnxruntime)")
    s.add_argument("--title", default="Latency report", help="report title (default: Latency report)")
    s.set_defaults(func=run)


def run(args) -> int:
    from ..errors import UserError
    from . import analysis, results

    out = Path(args.output)
    kind = FORMATS.get(out.suffix.lower())
    if kind is None:
        raise UserError(f"-o {out}: the report's name must end in .html or .md (the format)")
    runs, problems = [], []
    for name in dict.fromkeys(args.results):  # a file named twice (overlapping globs) counts once
        try:
            runs.append(analysis.Run(name, results.load(name)))
        except results.ResultsError as err:
            problems.append(str(err))
            print(f"crosstune: warning: {err}", file=sys.stderr)
    if not runs:
        raise UserError(f"no usable results file ({len(problems)} unreadable, see the warnings above)")
    present = analysis.engine_names(runs)
    if args.baseline and args.baseline not in present:
        raise UserError(f"--baseline {args.baseline}: no results file has that engine; "
                        f"engines present: {', '.join(sorted(present))}")
    report = analysis.build(runs, problems, args.baseline)
    generated = results.now().replace("T", " ").replace("+00:00", " UTC")
    if kind == "html":
        from .render_html import render
    else:
        from .render_md import render
    text = render(report, title=args.title, generated=generated)
    results.write_text_atomic(out, text)
    print(f"wrote {out}: {len(report.sections)} model/target sections from {len(runs)} results files"
          + (f", {len(problems)} left out" if problems else ""))
    return 0
