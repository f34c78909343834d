"""Element-wise activations TVM lacks or gets wrong for half-precision inputs.

- Swish (opset 24): x * sigmoid(alpha * x); missing in TVM.
- Celu (opset 12): max(0, x) + min(0, alpha * (exp(x / alpha) - 1)); missing in TVM.
- Elu (opsets 6+): TVM's converter adds float32 constants to the input, which fails for float16 and
  bfloat16 (the expanded Celu cases): here the constants take the input's type.
- Softmax (opsets 13+): float16/bfloat16 inputs rounded to their type after each step (x - max,
  exp, the sum, the quotient) with the sum accumulated in float32, which is what ONNX's reference
  computes (TVM sums in float16 and drifts by several units in the last place).
- Softmax before opset 13, LogSoftmax: float16/bfloat16 computed in float32, rounded once.
- Clip (opsets 11+): relax `maximum`/`minimum` ops. TVM's converter emits them as `call_tir` of TE
  functions, which Relax's ToMixedPrecision cannot look through (an internal error in fp16 builds of
  every MobileNet, whose ReLU6 is a Clip).
Other dtypes go to TVM's converters unchanged.
float16 and bfloat16 inputs are computed in float32 and rounded once at the end.

Selu, LeakyRelu, HardSigmoid, ThresholdedRelu and Shrink stay TVM's (their failing `_expanded`
cases were Constant value_float nodes, which the constant folding before import now handles).
"""

from __future__ import annotations

from ..registry import converter

_HALF = ("float16", "bfloat16")


def _compute(ctx, x, fn):
    """fn(x in the computation dtype, const) -> expr; float16/bfloat16 go through float32."""
    from tvm import relax

    dtype = str(x.ty.dtype)
    work = "float32" if dtype in _HALF else dtype
    xw = ctx.bb.emit(relax.op.astype(x, work)) if work != dtype else x
    y = fn(xw, lambda v: relax.const(v, work))
    return relax.op.astype(ctx.bb.emit(y), dtype) if work != dtype else y


@converter("Swish", since=24, note="missing in TVM")
def swish(ctx, inputs, attrs):
    from tvm import relax

    alpha = float(attrs.get("alpha", 1.0))
    return _compute(ctx, inputs[0], lambda x, c: relax.op.multiply(x, relax.op.sigmoid(relax.op.multiply(x, c(alpha)))))


@converter("Celu", since=12, note="missing in TVM")
def celu(ctx, inputs, attrs):
    from tvm import relax

    alpha = float(attrs.get("alpha", 1.0))

    def fn(x, c):
        neg = relax.op.multiply(c(alpha), relax.op.subtract(relax.op.exp(relax.op.divide(x, c(alpha))), c(1.0)))
        return relax.op.add(relax.op.maximum(x, c(0.0)), relax.op.minimum(neg, c(0.0)))

    return _compute(ctx, inputs[0], fn)


@converter("Elu", since=6, note="constants in the input's dtype (TVM's are float32: float16 fails)")
def elu(ctx, inputs, attrs):
    from tvm import relax

    alpha = float(attrs.get("alpha", 1.0))

    def fn(x, c):
        neg = relax.op.multiply(c(alpha), relax.op.subtract(relax.op.exp(relax.op.minimum(x, c(0.0))), c(1.0)))
        return relax.op.where(relax.op.greater(x, c(0.0)), x, neg)

    return _compute(ctx, inputs[0], fn)


@converter("Clip", since=11, note="relax maximum/minimum (TVM's call_tir stops fp16 builds)")
def clip(ctx, inputs, attrs):
    from tvm import relax

    x = inputs[0]
    lo = inputs[1] if len(inputs) > 1 else None
    hi = inputs[2] if len(inputs) > 2 else None
    if lo is not None:
        x = ctx.bb.emit(relax.op.maximum(x, lo))
    if hi is not None:
        x = relax.op.minimum(x, hi)
    return x


def _half_through_float32(ctx, op, inputs, attrs):
    from tvm import relax

    from .tensor import _tvm

    x = inputs[0]
    dtype = str(x.ty.dtype)
    if dtype not in _HALF:
        return _tvm(ctx, op, inputs, attrs)
    y = ctx.bb.emit(_tvm(ctx, op, [ctx.bb.emit(relax.op.astype(x, "float32")), *inputs[1:]], attrs))
    return relax.op.astype(y, dtype)


@converter("Softmax", since=13, note="float16/bfloat16: each step rounded to the input's type, the sum "
           "accumulated in float32, as ONNX's reference does (TVM sums in float16)")
def softmax(ctx, inputs, attrs):
    from tvm import relax

    from .tensor import _tvm

    x = inputs[0]
    dtype = str(x.ty.dtype)
    if dtype not in _HALF:
        return _tvm(ctx, "Softmax", inputs, attrs)
    op, axis = relax.op, [int(attrs.get("axis", -1))]

    def rounded(e):  # a float32 value rounded to the input's type, back in float32
        return ctx.bb.emit(op.astype(op.astype(e, dtype), "float32"))

    x32 = ctx.bb.emit(op.astype(x, "float32"))
    e = rounded(op.exp(rounded(op.subtract(x32, op.max(x32, axis=axis, keepdims=True)))))
    return op.astype(op.divide(e, rounded(op.sum(e, axis=axis, keepdims=True))), dtype)


@converter("Softmax", since=1, until=12, note="float16/bfloat16 computed in float32 (TVM sums in float16)")
def softmax_v1(ctx, inputs, attrs):
    return _half_through_float32(ctx, "Softmax", inputs, attrs)


@converter("LogSoftmax", since=1, note="float16/bfloat16 computed in float32 (TVM sums in float16)")
def log_softmax(ctx, inputs, attrs):
    return _half_through_float32(ctx, "LogSoftmax", inputs, attrs)


CASES = r"^test_(swish|celu|elu|softmax|logsoftmax|clip)(_|$)"
KNOWN_FAILURES: dict[str, str] = {}
