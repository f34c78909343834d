"""What an ONNX model holds, and what TVM can make of it, before any build is attempted."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tensors import TensorSpec
from . import onnx_model
from .relax_import import coverage_table


@dataclass
class OpCount:
    op: str  # "Conv", or "com.microsoft.FusedConv" outside the standard domain
    count: int
    opset: int  # the model's opset for the op's domain
    by: str  # who converts it: "tvm" (TVM's Relax frontend), "crosstune" (crosstune's layer), "none"

    @property
    def supported(self) -> bool:
        return self.by != "none"


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
    # model input -> where TVM needs its value as a constant ("node (Op) input 'axes'"): compile may
    # need `--bind NAME=FILE.npy` for it (TVM converts some of these dynamically)
    bindable: dict[str, list[str]] = field(default_factory=dict)

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
    from ..frontend.constants import needs_binding

    ops = [OpCount(op, n, opset, by) for op, opset, n, by in sorted(coverage_table(proto), key=lambda r: (-r[2], r[0]))]
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
        bindable=needs_binding(proto.graph),
    )


def _itemsize(data_type: int) -> int:
    from onnx import helper

    try:
        return helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return 1
