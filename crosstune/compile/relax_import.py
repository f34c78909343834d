"""ONNX -> Relax through TVM's Relax ONNX frontend, with crosstune's checks around it.

crosstune does not copy TVM's frontend: it subclasses its graph importer to know which node a
converter failed on, and asks its converter table which operators it covers. Fixes and new
operators will be registered here, on top of that table, so upstream fixes stay easy to take.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import os
import traceback
import warnings
from dataclasses import dataclass

from .._native import native_stderr_captured
from ..errors import UserError
from .onnx_model import OnnxModel, op_histogram

STANDARD_DOMAINS = ("", "ai.onnx")


def frontend_ops() -> frozenset[str]:
    """Operator types TVM's Relax ONNX frontend converts (its converter table plus the ops its
    importer handles itself)."""
    from tvm.relax.frontend.onnx import onnx_frontend

    return frozenset(onnx_frontend._get_convert_map()) | {"If", "Constant"}


def unsupported_ops(model: OnnxModel) -> dict[str, int]:
    """'Op' (or 'domain.Op' outside the standard domain) -> node count, for ops TVM cannot convert.
    Ops of other domains (com.microsoft, ai.onnx.ml) count as unsupported: TVM's table ignores the
    domain and would convert a same-named standard op with other semantics."""
    known = frontend_ops()
    out: dict[str, int] = {}
    for (domain, op), n in sorted(op_histogram(model.proto).items()):
        if domain not in STANDARD_DOMAINS:
            out[f"{domain}.{op}"] = n
        elif op not in known:
            out[op] = n
    return out


@dataclass
class RelaxModel:
    mod: object  # tvm.IRModule whose "main" takes the inputs, then the weights
    weights: list  # tvm.runtime.Tensor, in "main"'s parameter order after the inputs
    weight_names: list[str]


def to_relax(model: OnnxModel) -> RelaxModel:
    """Import a checked, shape-pinned model. Raises UserError naming the operator that fails."""
    missing = unsupported_ops(model)
    if missing:
        listed = ", ".join(f"{op} ({n} node{'s' if n > 1 else ''})" for op, n in missing.items())
        raise UserError(f"TVM's Relax ONNX frontend cannot convert: {listed}")
    for s in model.inputs:
        if not s.static:
            raise UserError(f"input '{s.name}' has dynamic shape; give it with --input-shape")

    from tvm import relax
    from tvm.relax.frontend.onnx import onnx_frontend

    class Importer(onnx_frontend.ONNXGraphImporter):
        def _convert_operator(self, op_name, inputs, attrs, opset):
            try:
                return super()._convert_operator(op_name, inputs, attrs, opset)
            except Exception as err:
                node = attrs.get("tvm_custom", {}).get("name") or "(unnamed)"
                raise _ConversionFailed(op_name, node, err) from err

    proto = _without_initializer_inputs(model.proto)
    shape_dict = {s.name: list(s.shape) for s in model.inputs}
    dtype_dict = {s.name: s.dtype for s in model.inputs}
    failure = None
    native_log: list[str] = []
    # The frontend prints a dump of the failing node's inputs, warns about renamed inputs, and a
    # failed import leaves a BlockBuilder whose C++ destructor complains: keep all of it off the
    # user's terminal (CROSSTUNE_DEBUG shows it); the error below says what matters.
    with native_stderr_captured(native_log), contextlib.redirect_stdout(io.StringIO()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                importer = Importer(shape_dict, dtype_dict, keep_params_in_input=True, sanitize=True)
                mod = importer.from_onnx(proto.graph, model.opset)
            except _ConversionFailed as err:
                failure = str(err)
                if os.environ.get("CROSSTUNE_DEBUG"):
                    traceback.print_exc()
        importer = None
        gc.collect()  # destroy a failed import's BlockBuilder while its warning is captured
    if failure:
        raise UserError(failure)
    mod, params = relax.frontend.detach_params(mod)
    weights = list(params.get("main", []))
    main = mod["main"]
    names = [str(p.name) for p in main.params[len(main.params) - len(weights) :]]
    return RelaxModel(mod, weights, names)


class _ConversionFailed(Exception):
    def __init__(self, op: str, node: str, err: Exception):
        msg = str(err).strip().splitlines()
        detail = msg[-1] if msg else type(err).__name__
        super().__init__(f"TVM cannot convert node '{node}' ({op}): {type(err).__name__}: {detail}")


def _without_initializer_inputs(proto):
    """IR < 4 models list every initializer among the graph inputs too. TVM's importer then makes
    each weight a function parameter twice and the build fails ('used before its definition').
    They are weights, not inputs: drop them from the input list (on a copy)."""
    init = {t.name for t in proto.graph.initializer}
    if not any(i.name in init for i in proto.graph.input):
        return proto
    proto = copy.deepcopy(proto)
    keep = [i for i in proto.graph.input if i.name not in init]
    del proto.graph.input[:]
    proto.graph.input.extend(keep)
    return proto
