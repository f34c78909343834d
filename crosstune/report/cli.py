"""`crosstune report RESULTS... -o report.html|report.md`: results files to a report.

A file that cannot be used (missing, truncated, another format version) costs one warning line on
stderr and a line in the report; the others still make the report. Only when none can be read is
it an error. Imports stay inside `run`: this command must not pay for TVM, which it never needs.
"""

from __future__ import annotations

import os
import sys
import tempfile
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
    for name in args.results:
        try:
            runs.append(analysis.Run(name, results.load(name)))
        except results.ResultsError as err:
            problems.append(str(err))
            print(f"crosstune: warning: {err}", file=sys.stderr)
    if not runs:
        raise UserError(f"no usable results file: {len(problems)} of {len(problems)} could not be read "
                        "(see the warnings above)")
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
    _write(out, text)
    print(f"wrote {out}: {len(report.sections)} model/target sections from {len(runs)} results files"
          + (f", {len(problems)} left out" if problems else ""))
    return 0


def _write(path: Path, text: str) -> None:
    """Through a temporary file, so a report being viewed is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
