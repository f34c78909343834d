"""Range (opset 11+): start, limit and delta must be constants (the output's length depends on
  them); the values are computed at import. TVM imports a run-time Range but its build fails
  ("range_len_0 has not been computed"), so a model input that feeds one is named for `--bind`.
"""

from __future__ import annotations

import numpy as np

from ..importer import const
from ..registry import converter

CASES = r"^test_range_"
KNOWN_FAILURES: dict[str, str] = {}


@converter("Range", since=11, note="constant start/limit/delta computed at import; a run-time one is named for --bind")
def range_(ctx, inputs, attrs):
    values = [ctx.const(v) for v in inputs[:3]]
    if any(v is None for v in values):
        missing = [ctx.input_name(i) for i, v in enumerate(values) if v is None]
        raise ValueError(f"Range needs {', '.join(missing)} as constants")
    start, limit, delta = (np.asarray(v).reshape(()) for v in values)
    out = np.arange(start, limit, delta, dtype=np.asarray(values[0]).dtype)
    return const(out)
