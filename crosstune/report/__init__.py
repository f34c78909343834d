"""Latency results and reports.

- `results`: the results format (one JSON document per run of a model on a target), its builder,
  validating loader and atomic writer; docs/results-format.md is its specification.
- `analysis`: documents -> the report's view (sections, ranking, speed-ups, history).
- `render_html` / `render_md` (with `svg`): that view as self-contained HTML or Markdown.
- `cli`: `crosstune report`; `legacy`: upgrades the JSON the bench scripts wrote before the format.

Nothing in this package imports TVM: reports are made wherever the results files are.
"""
