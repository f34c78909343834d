"""What an ONNX model holds, and what TVM can make of it, before any build is attempted."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tensors import TensorSpec
from . import onnx_model
from .relax_import import STANDARD_DOMAINS, frontend_ops


@dataclass
class OpCount:
    op: str  # "Conv", or "com.microsoft.FusedConv" outside the standard domain
    count: int
    supported: bool


@dataclass
class InspectReport:
    path: str | None
    sha256: str
    ir_version: int
    opsets: dict[str, int]
    producer: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    weight_count: int
    weight_bytes: int
    ops: list[OpCount] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def unsupported(self) -> list[OpCount]:
        return [o for o in self.ops if not o.supported]

    @property
    def dynamic_inputs(self) -> list[TensorSpec]:
        return [s for s in self.inputs if not s.static]

    @property
    def node_count(self) -> int:
        return sum(o.count for o in self.ops)


def inspect_model(model, input_shapes: dict) -> InspectReport:
    """Check the model (ONNX checker, shape inference with the given shapes) and describe it.
    Dynamic dimensions without a shape stay symbolic here; `compile` will ask for them."""
    src = onnx_model.with_shapes(onnx_model.load(model), input_shapes, require_static=False)
    proto = src.proto
    known = frontend_ops()
    ops = []
    for (domain, op), n in sorted(onnx_model.op_histogram(proto).items(), key=lambda kv: (-kv[1], kv[0])):
        name = op if domain in STANDARD_DOMAINS else f"{domain}.{op}"
        ops.append(OpCount(name, n, domain in STANDARD_DOMAINS and op in known))
    weight_bytes = 0
    for t in proto.graph.initializer:
        itemsize = _itemsize(t.data_type)
        weight_bytes += int(np.prod(t.dims, dtype=np.int64)) * itemsize
    return InspectReport(
        path=src.path,
        sha256=src.sha256,
        ir_version=proto.ir_version,
        opsets={(o.domain or "ai.onnx"): o.version for o in proto.opset_import},
        producer=" ".join(x for x in (proto.producer_name, proto.producer_version) if x),
        inputs=src.inputs,
        outputs=src.outputs,
        weight_count=len(proto.graph.initializer),
        weight_bytes=weight_bytes,
        ops=ops,
        warnings=list(src.warnings),
    )


def _itemsize(data_type: int) -> int:
    from onnx import helper

    try:
        return helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return 1
