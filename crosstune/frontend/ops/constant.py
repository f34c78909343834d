"""Constant (opset 1+): every value attribute, not only `value` (TVM reads only `value`).

The main graph's Constant nodes are folded into initializers before import; this converter is for
the ones left, in Loop/Scan/If bodies."""

from __future__ import annotations

import numpy as np

from ..registry import converter


@converter("Constant", since=1, note="value_float(s), value_int(s), sparse_value; TVM reads only 'value'")
def constant(ctx, inputs, attrs):
    from onnx import numpy_helper
    from tvm import relax

    if "value" in attrs:
        value = numpy_helper.to_array(attrs["value"])
    elif "value_float" in attrs:
        value = np.array(attrs["value_float"], dtype=np.float32)
    elif "value_floats" in attrs:
        value = np.array(attrs["value_floats"], dtype=np.float32)
    elif "value_int" in attrs:
        value = np.array(attrs["value_int"], dtype=np.int64)
    elif "value_ints" in attrs:
        value = np.array(attrs["value_ints"], dtype=np.int64)
    elif "sparse_value" in attrs:
        from onnx.numpy_helper import to_array

        sp = attrs["sparse_value"]
        dense = np.zeros(tuple(sp.dims), dtype=to_array(sp.values).dtype)
        idx = to_array(sp.indices)
        vals = to_array(sp.values)
        if idx.ndim == 1:
            dense.reshape(-1)[idx] = vals
        else:
            dense[tuple(idx.T)] = vals
        value = dense
    else:
        raise ValueError("Constant has no value attribute (strings are not supported)")
    return relax.const(value, str(np.asarray(value).dtype))


CASES = r"^test_constant$"
KNOWN_FAILURES: dict[str, str] = {}
