"""Normalization operators, built from Relax reductions and element-wise ops.

- LayerNormalization (opset 17): the Mean and InvStdDev outputs with the reduced shape (X's shape,
  1 from `axis` on) and dtype U (stash_type); TVM returns scalar placeholders for them. The
  statistics are computed in the stash type (float32 for stash_type=1, as ONNX's function body
  casts). Y alone with matching scale/bias shapes and no cast stays TVM's fused `nn.layer_norm`.

LayerNormalization, RMSNormalization and GroupNormalization apply scale and bias in the
computation dtype too and cast once at the end (the correctly rounded result, as ONNX Runtime's
kernels give; ONNX's function bodies cast before scaling, one float16 ulp off).
- RMSNormalization (opset 23): any axis, stash_type; TVM's `nn.rms_norm` fails to build when it
  reduces every axis (axis 0).
- GroupNormalization (opsets 18 and 21): 18 takes scale/bias per group, 21 per channel (with
  stash_type); any float dtype and a symbolic channel count (TVM's 18 wants float32, static C).
- MeanVarianceNormalization (opsets 9, 13): the spec's epsilon (1e-9 added to the standard
  deviation) and any float dtype (TVM omits the epsilon and squares with a float32 constant).
- LpNormalization (opsets 1, 22): missing in TVM. p=1 (sum of |x|) or p=2; a zero norm gives 0.
- BatchNormalization (opsets 14, 15): training_mode=1 (batch statistics normalise Y; running_mean
  and running_var outputs are the momentum updates); TVM's training mode gives wrong numbers.
  Inference mode stays `nn.batch_norm`, float16 data with float32 statistics computed in float32.
"""

from __future__ import annotations

from ..registry import converter

# ONNX TensorProto element types of stash_type.
_STASH = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}
_PRECISION = {"float16": 1, "bfloat16": 1, "float32": 2, "float64": 3}


def _rank(ctx, x, op: str) -> int:
    ndim = getattr(x.ty, "ndim", -1)
    if ndim is None or ndim < 0:
        raise ValueError(f"{op} needs an input of known rank")
    return int(ndim)


def _axis(axis: int, ndim: int, op: str) -> int:
    a = axis + ndim if axis < 0 else axis
    if not 0 <= a < max(ndim, 1):
        raise ValueError(f"{op}: axis {axis} out of range for rank {ndim}")
    return a


def _stash(attrs, x_dtype: str, op: str) -> tuple[str, str]:
    """(dtype the statistics are computed in, dtype U the spec gives them). The computation is
    never less precise than X (float64 X with stash float32 computes in float64)."""
    stash_type = int(attrs.get("stash_type", 1))
    if stash_type not in _STASH:
        raise ValueError(f"{op}: unsupported stash_type {stash_type}")
    u = _STASH[stash_type]
    compute = x_dtype if _PRECISION.get(x_dtype, 0) > _PRECISION[u] else u
    return compute, u


def _cast(ctx, x, dtype: str):
    from tvm import relax

    if not isinstance(x.ty, relax.TensorType):
        x = ctx.bb.normalize(x)
    return x if str(x.ty.dtype) == dtype else relax.op.astype(x, dtype)


def _wanted(ctx, i: int) -> bool:
    return i < len(ctx.node.output) and ctx.node.output[i] != ""


def _outputs(ctx, values):
    """One expr, or a Tuple with one entry per node output."""
    from tvm import relax

    n = max(len(ctx.node.output), 1)
    if n == 1:
        return values[0]
    values = list(values[:n])
    while len(values) < n:  # optional outputs the model names but the mode does not produce
        values.append(values[0])
    return relax.Tuple(values)


# ----------------------------------------------------------------------------- LayerNormalization
@converter("LayerNormalization", since=17, note="Mean/InvStdDev with the reduced shape and stash dtype (TVM: scalars)")
def layer_normalization(ctx, inputs, attrs):
    from tvm import relax

    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    ndim = _rank(ctx, x, "LayerNormalization")
    axis = _axis(int(attrs.get("axis", -1)), ndim, "LayerNormalization")
    eps = float(attrs.get("epsilon", 1e-5))
    axes = list(range(axis, ndim))
    t = str(x.ty.dtype)
    compute, u = _stash(attrs, t, "LayerNormalization")
    want_stats = _wanted(ctx, 1) or _wanted(ctx, 2)

    xs = ctx.shape(x)
    norm_shape = xs[axis:] if xs is not None else None
    exact = norm_shape is not None and ctx.shape(scale) == norm_shape and (
        bias is None or ctx.shape(bias) == norm_shape)
    if not want_stats and compute == t and exact and str(scale.ty.dtype) == t and (
            bias is None or str(bias.ty.dtype) == t):
        if bias is None:
            bias = relax.op.zeros_like(scale)
        return _outputs(ctx, [relax.op.nn.layer_norm(x, scale, bias, axes, eps)])

    xc = ctx.bb.emit(_cast(ctx, x, compute))
    mean = ctx.bb.emit(relax.op.mean(xc, axis=axes, keepdims=True))
    dev = ctx.bb.emit(relax.op.subtract(xc, mean))
    var = relax.op.mean(relax.op.multiply(dev, dev), axis=axes, keepdims=True)
    inv_std = ctx.bb.emit(relax.op.rsqrt(relax.op.add(var, relax.const(eps, compute))))
    y = relax.op.multiply(relax.op.multiply(dev, inv_std), _cast(ctx, scale, compute))
    if bias is not None:
        y = relax.op.add(y, _cast(ctx, bias, compute))
    return _outputs(ctx, [_cast(ctx, y, t), _cast(ctx, mean, u), _cast(ctx, inv_std, u)])


# ------------------------------------------------------------------------------- RMSNormalization
@converter("RMSNormalization", since=23, note="reduction over every axis builds; stash_type")
def rms_normalization(ctx, inputs, attrs):
    from tvm import relax

    x, scale = inputs[0], inputs[1]
    ndim = _rank(ctx, x, "RMSNormalization")
    axis = _axis(int(attrs.get("axis", -1)), ndim, "RMSNormalization")
    eps = float(attrs.get("epsilon", 1e-5))
    t = str(x.ty.dtype)
    compute, _ = _stash(attrs, t, "RMSNormalization")
    xc = ctx.bb.emit(_cast(ctx, x, compute))
    ms = relax.op.mean(relax.op.multiply(xc, xc), axis=list(range(axis, ndim)), keepdims=True)
    inv = relax.op.rsqrt(relax.op.add(ms, relax.const(eps, compute)))
    return _cast(ctx, relax.op.multiply(relax.op.multiply(xc, inv), _cast(ctx, scale, compute)), t)


# ----------------------------------------------------------------------------- GroupNormalization
def _group_norm(ctx, inputs, attrs, per_group: bool):
    from tvm import relax

    x, scale, bias = inputs[0], inputs[1], inputs[2]
    ndim = _rank(ctx, x, "GroupNormalization")
    if ndim < 2:
        raise ValueError("GroupNormalization needs an input of rank >= 2")
    groups = int(attrs["num_groups"])
    if groups <= 0:
        raise ValueError(f"GroupNormalization: num_groups must be positive, got {groups}")
    eps = float(attrs.get("epsilon", 1e-5))
    t = str(x.ty.dtype)
    if per_group:  # opset 18 has no stash_type: statistics in float32 at least
        compute = t if _PRECISION.get(t, 0) >= _PRECISION["float32"] else "float32"
    else:
        compute, _ = _stash(attrs, t, "GroupNormalization")
    dims = list(x.ty.shape.values)
    channels = ctx.shape(x)[1] if ctx.shape(x) is not None else None
    if channels is None and hasattr(dims[1], "value"):
        channels = int(dims[1].value)
    if channels is not None and channels % groups:
        raise ValueError(f"GroupNormalization: num_groups {groups} does not divide C={channels}")

    x3 = ctx.bb.emit(relax.op.reshape(_cast(ctx, x, compute), [dims[0], groups, -1]))
    mean = ctx.bb.emit(relax.op.mean(x3, axis=[2], keepdims=True))
    dev = ctx.bb.emit(relax.op.subtract(x3, mean))
    var = relax.op.mean(relax.op.multiply(dev, dev), axis=[2], keepdims=True)
    norm = relax.op.multiply(dev, relax.op.rsqrt(relax.op.add(var, relax.const(eps, compute))))
    if per_group:  # scale/bias of shape (num_groups,): applied in the grouped view
        norm = relax.op.multiply(norm, relax.op.reshape(_cast(ctx, scale, compute), [1, groups, 1]))
        norm = relax.op.add(norm, relax.op.reshape(_cast(ctx, bias, compute), [1, groups, 1]))
        return _cast(ctx, relax.op.reshape(norm, dims), t)
    norm = relax.op.reshape(norm, dims)
    affine = [1, -1] + [1] * (ndim - 2)
    norm = relax.op.multiply(norm, relax.op.reshape(_cast(ctx, scale, compute), affine))
    return _cast(ctx, relax.op.add(norm, relax.op.reshape(_cast(ctx, bias, compute), affine)), t)


@converter("GroupNormalization", since=18, until=20, note="scale/bias per group; any float dtype, symbolic C")
def group_normalization_18(ctx, inputs, attrs):
    return _group_norm(ctx, inputs, attrs, per_group=True)


@converter("GroupNormalization", since=21, note="scale/bias per channel; stash_type; symbolic C")
def group_normalization_21(ctx, inputs, attrs):
    return _group_norm(ctx, inputs, attrs, per_group=False)


# ----------------------------------------------------------------------- MeanVarianceNormalization
@converter("MeanVarianceNormalization", since=9, note="the spec's 1e-9 epsilon; any float dtype")
def mean_variance_normalization(ctx, inputs, attrs):
    from tvm import relax

    x = inputs[0]
    ndim = _rank(ctx, x, "MeanVarianceNormalization")
    axes = sorted({_axis(int(a), ndim, "MeanVarianceNormalization") for a in attrs.get("axes", (0, 2, 3))})
    t = str(x.ty.dtype)
    mean = ctx.bb.emit(relax.op.mean(x, axis=axes, keepdims=True))
    dev = ctx.bb.emit(relax.op.subtract(x, mean))
    var = relax.op.mean(relax.op.multiply(dev, dev), axis=axes, keepdims=True)
    return relax.op.divide(dev, relax.op.add(relax.op.sqrt(var), relax.const(1e-9, t)))


# --------------------------------------------------------------------------------- LpNormalization
@converter("LpNormalization", since=1, note="missing in TVM")
def lp_normalization(ctx, inputs, attrs):
    from tvm import relax

    x = inputs[0]
    ndim = _rank(ctx, x, "LpNormalization")
    axis = _axis(int(attrs.get("axis", -1)), ndim, "LpNormalization")
    p = int(attrs.get("p", 2))
    if p == 1:
        norm = relax.op.sum(relax.op.abs(x), axis=[axis], keepdims=True)
    elif p == 2:
        norm = relax.op.sqrt(relax.op.sum(relax.op.multiply(x, x), axis=[axis], keepdims=True))
    else:
        raise ValueError(f"LpNormalization: p must be 1 or 2, got {p}")
    norm = ctx.bb.emit(norm)
    t = str(x.ty.dtype)
    zero = relax.op.equal(norm, relax.const(0, t))
    # A zero norm means a zero slice: divide it by 1 (0, not 0/0).
    return relax.op.divide(x, relax.op.where(zero, relax.const(1, t), norm))


# ------------------------------------------------------------------------------ BatchNormalization
@converter("BatchNormalization", since=14, note="training_mode=1: batch statistics, running mean/var outputs")
def batch_normalization(ctx, inputs, attrs):
    from tvm import relax

    x, scale, bias, mean, var = inputs[:5]
    eps = float(attrs.get("epsilon", 1e-5))
    momentum = float(attrs.get("momentum", 0.9))
    training = int(attrs.get("training_mode", 0))
    ndim = _rank(ctx, x, "BatchNormalization")
    t, ts, tm = str(x.ty.dtype), str(scale.ty.dtype), str(mean.ty.dtype)
    compute = t if t == ts == tm and (t != "float16" or not training) else (
        "float64" if "float64" in (t, ts, tm) else "float32")

    if not training:
        out = relax.op.nn.batch_norm(
            _cast(ctx, x, compute), _cast(ctx, scale, compute), _cast(ctx, bias, compute), _cast(ctx, mean, compute),
            _cast(ctx, var, compute), axis=1, epsilon=eps, training=False)
        y = _cast(ctx, ctx.bb.emit(relax.TupleGetItem(out, 0)), t)
        return _outputs(ctx, [y, mean, var])

    axes = [0] + list(range(2, ndim))
    xc = ctx.bb.emit(_cast(ctx, x, compute))
    bmean = ctx.bb.emit(relax.op.mean(xc, axis=axes, keepdims=True))
    dev = ctx.bb.emit(relax.op.subtract(xc, bmean))
    bvar = ctx.bb.emit(relax.op.mean(relax.op.multiply(dev, dev), axis=axes, keepdims=True))
    affine = [-1] + [1] * (ndim - 2)
    y = relax.op.multiply(dev, relax.op.rsqrt(relax.op.add(bvar, relax.const(eps, compute))))
    y = relax.op.multiply(y, relax.op.reshape(_cast(ctx, scale, compute), affine))
    y = _cast(ctx, relax.op.add(y, relax.op.reshape(_cast(ctx, bias, compute), affine)), t)
    m, keep = relax.const(momentum, compute), relax.const(1.0 - momentum, compute)
    saved_mean = relax.op.reshape(bmean, [-1])
    saved_var = relax.op.reshape(bvar, [-1])
    running_mean = relax.op.add(relax.op.multiply(_cast(ctx, mean, compute), m), relax.op.multiply(saved_mean, keep))
    running_var = relax.op.add(relax.op.multiply(_cast(ctx, var, compute), m), relax.op.multiply(saved_var, keep))
    return _outputs(ctx, [y, _cast(ctx, running_mean, tm), _cast(ctx, running_var, str(var.ty.dtype))])


CASES = (r"^test_(layer_normalization|rms_normalization|group_normalization|mvn|l1normalization|"
         r"l2normalization|lpnormalization|batchnorm|instancenorm)")

KNOWN_FAILURES: dict[str, str] = {}
