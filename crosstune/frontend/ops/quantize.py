"""Quantized, integer and 8-bit float arithmetic: casts, QLinear ops, integer Pow.

- Cast (opset 1+) and CastLike (opset 15+) to and from the 8-bit float types (FLOAT8E4M3FN,
  FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ, FLOAT8E8M0): TVM's LLVM conversions get NaN,
  saturation, subnormals and the FNUZ encodings wrong. Decoding is a 256-entry table lookup on the
  bits; encoding rounds to nearest even on the float32 (float64 for double) bits, with the spec's
  `saturate` (clip to the largest finite value, else NaN / infinity), and for E8M0 its
  `round_mode` (up, down, nearest). Every other cast is TVM's converter unchanged.
- QLinearMatMul (opsets 10, 21): missing in TVM. Integer matmul of the zero-point-shifted operands
  (int32), rescaled in float32 by a_scale*b_scale/y_scale (per-row / per-column scales too),
  rounded half to even, saturated to the output type.
- QLinearConv (opset 10): missing in TVM; the same over an int32 `nn.conv2d`/`conv1d`/`conv3d`,
  per-output-channel w_scale and w_zero_point, int32 bias.
- ConvInteger (opset 10): missing in TVM; int32 convolution of the zero-point-shifted operands.
- Pow (opsets 7+): mixed operand types (float base with integer exponent and the reverse: the
  result has the base's type) and integer bases (exact integer powers by repeated squaring);
  TVM's converter wants one float dtype for both.
"""

from __future__ import annotations

import numpy as np

from ..importer import const
from ..registry import converter

# 8-bit float formats by TVM dtype: (exponent bits, mantissa bits, bias, largest finite code,
# NaN code, infinity code or None, FNUZ: no negative zero, NaN is 0x80).
_FP8 = {
    "float8_e4m3fn": (4, 3, 7, 0x7E, 0x7F, None, False),
    "float8_e4m3fnuz": (4, 3, 8, 0x7F, 0x80, None, True),
    "float8_e5m2": (5, 2, 15, 0x7B, 0x7F, 0x7C, False),
    "float8_e5m2fnuz": (5, 2, 16, 0x7F, 0x80, None, True),
}
_E8M0 = "float8_e8m0fnu"
_SMALL_FLOATS = set(_FP8) | {_E8M0}


def _bits_of(bb, x, dtype: str):
    """The uint8 bits of an 8-bit float tensor."""
    from tvm import te, tirx

    return bb.emit_te(lambda a: te.compute(a.shape, lambda *i: tirx.reinterpret("uint8", a(*i)), name="fp8_bits"), x)


def _from_bits(bb, u, dtype: str):
    from tvm import te, tirx

    return bb.emit_te(lambda a: te.compute(a.shape, lambda *i: tirx.reinterpret(dtype, a(*i)), name="fp8_from_bits"), u)


def _decode_small_float(bb, x, dtype: str):
    """An 8-bit float tensor as float32 (exact): a table lookup on its bits."""
    import ml_dtypes
    from tvm import relax

    table = np.arange(256, dtype=np.uint8).view(getattr(ml_dtypes, dtype)).astype(np.float32)
    bits = bb.emit(relax.op.astype(_bits_of(bb, x, dtype), "int32"))
    return bb.emit(relax.op.take(relax.const(table, "float32"), bits, axis=0))


def _encode_fp8(bb, x, dtype: str, saturate: bool):
    """A float tensor (float32 or float64) as `dtype` (one of _FP8), rounded to nearest even."""
    from tvm import te, tirx

    _, mbits, bias, max_code, nan_code, inf_code, fnuz = _FP8[dtype]
    emin = 1 - bias
    src = str(x.ty.dtype)
    if src == "float64":
        ubits, fexp, fman, fbias = "uint64", 11, 52, 1023
    else:
        ubits, fexp, fman, fbias = "uint32", 8, 23, 127
    exp_all = (1 << fexp) - 1

    def body(a, *i):
        v = a(*i)
        b = tirx.reinterpret(ubits, v)
        sign = tirx.Cast("int32", b >> tirx.const(fexp + fman, ubits))
        expf = tirx.Cast("int32", (b >> tirx.const(fman, ubits)) & tirx.const(exp_all, ubits))
        mant_nz = (b & tirx.const((1 << fman) - 1, ubits)) != tirx.const(0, ubits)
        special = expf == exp_all
        is_nan = tirx.all(special, mant_nz)
        is_inf = tirx.all(special, tirx.Not(mant_nz))
        mag = tirx.if_then_else(special, tirx.const(0, src), tirx.abs(v))
        e = tirx.max(tirx.if_then_else(special, 0, expf - fbias), emin)
        # quantum 2^(e - mbits), built from its bits (e - mbits >= emin - mbits, a normal float)
        q = tirx.reinterpret(src, tirx.Cast(ubits, e - mbits + fbias) << tirx.const(fman, ubits))
        r = tirx.Cast("int32", tirx.nearbyint(mag / q))
        code = (e - emin) * (1 << mbits) + r
        over = tirx.any(is_inf, code > max_code)
        if saturate:
            over_code = tirx.const(max_code, "int32")
        else:
            over_code = tirx.const(inf_code if inf_code is not None else nan_code, "int32")
        code = tirx.if_then_else(over, over_code, code)
        if fnuz:
            signed = tirx.if_then_else(tirx.all(sign == 1, code != 0), code | 0x80, code)
            if not saturate:  # overflow is NaN (0x80), unsigned
                signed = tirx.if_then_else(over, tirx.const(nan_code, "int32"), signed)
            out = tirx.if_then_else(is_nan, tirx.const(nan_code, "int32"), signed)
        else:
            out = tirx.if_then_else(is_nan, tirx.const(nan_code, "int32"), code) | (sign << 7)
        return tirx.Cast("uint8", out)

    u = bb.emit_te(lambda a: te.compute(a.shape, lambda *i: body(a, *i), name="to_fp8"), x)
    return _from_bits(bb, u, dtype)


def _encode_e8m0(bb, x, saturate: bool, round_mode: str):
    """A float32 tensor as float8_e8m0fnu (onnx.numpy_helper.to_float8e8m0's rules)."""
    from tvm import te, tirx

    def body(a, *i):
        b = tirx.reinterpret("uint32", a(*i))
        expf = tirx.Cast("int32", (b >> tirx.const(23, "uint32")) & tirx.const(0xFF, "uint32"))
        special = expf == 0xFF
        if round_mode == "nearest":
            g = (b & tirx.const(0x400000, "uint32")) != tirx.const(0, "uint32")
            r = (b & tirx.const(0x200000, "uint32")) != tirx.const(0, "uint32")
            s = (b & tirx.const(0x1FFFFF, "uint32")) != tirx.const(0, "uint32")
            up = tirx.all(g, tirx.any(r, s, expf > 0))
        elif round_mode == "up":
            up = (b & tirx.const(0x7FFFFF, "uint32")) != tirx.const(0, "uint32")
        elif round_mode == "down":
            up = tirx.const(False, "bool")
        else:
            raise ValueError(f"Cast: unsupported round_mode {round_mode!r}")
        if saturate:
            up = tirx.all(up, expf != 0xFE)
        out = tirx.if_then_else(special, 0xFF, (expf + tirx.Cast("int32", up)) & 0xFF)
        return tirx.Cast("uint8", out)

    u = bb.emit_te(lambda a: te.compute(a.shape, lambda *i: body(a, *i), name="to_e8m0"), x)
    return _from_bits(bb, u, _E8M0)


def _unwrap_shape(x):
    """The ShapeExpr behind `shape_to_tensor(shape)` (the importer turns shape values into tensors
    for crosstune's converters): TVM's Cast folds constant shapes, which keeps them foldable."""
    import tvm
    from tvm import relax

    if isinstance(x, relax.Call) and x.op == tvm.ir.Op.get("relax.shape_to_tensor"):
        return x.args[0]
    return x


def _cast(ctx, x, to: str, attrs):
    from tvm import relax
    from tvm.relax.frontend.onnx import onnx_frontend

    bb = ctx.bb
    x = _unwrap_shape(x)
    src = str(x.ty.dtype) if isinstance(getattr(x, "ty", None), relax.TensorType) else None
    if src not in _SMALL_FLOATS and to not in _SMALL_FLOATS:
        return onnx_frontend.Cast._impl_v13(bb, [x], {"to": to}, None)
    saturate = bool(attrs.get("saturate", 1))
    round_mode = attrs.get("round_mode", b"up")
    round_mode = round_mode.decode() if isinstance(round_mode, bytes) else str(round_mode)
    if src == to:
        return x
    if src in _SMALL_FLOATS:
        x = _decode_small_float(bb, x, src)
        src = "float32"
    if to not in _SMALL_FLOATS:
        return x if to == src else onnx_frontend.Cast._impl_v13(bb, [x], {"to": to}, None)
    if src not in ("float32", "float64"):  # float16, bfloat16 and integers: float32 first
        x = bb.emit(relax.op.astype(x, "float32"))
    if to == _E8M0:
        if str(x.ty.dtype) == "float64":
            x = bb.emit(relax.op.astype(x, "float32"))
        return _encode_e8m0(bb, x, saturate, round_mode)
    return _encode_fp8(bb, x, to, saturate)


@converter("Cast", since=1, note="8-bit floats: exact decoding, round-to-nearest-even encoding, saturate, E8M0 round_mode")
def cast(ctx, inputs, attrs):
    from tvm.relax.frontend.onnx.onnx_frontend import get_type

    return _cast(ctx, inputs[0], get_type(attrs["to"]), attrs)


@converter("CastLike", since=15, note="8-bit floats as Cast")
def cast_like(ctx, inputs, attrs):
    from tvm import relax

    target = inputs[1]
    to = "int64" if isinstance(target, relax.ShapeExpr) else str(target.ty.dtype)
    return _cast(ctx, inputs[0], to, attrs)


# --------------------------------------------------------------------------- QLinear / integer ops
def _int32(bb, x):
    from tvm import relax

    return x if str(x.ty.dtype) == "int32" else bb.emit(relax.op.astype(x, "int32"))


def _shifted(bb, x, zero_point, axis_shape=None):
    """int32(x) - int32(zero_point); a 1-D zero point of more than one element is reshaped to
    `axis_shape` (per row / per channel) first."""
    from tvm import relax

    x = _int32(bb, x)
    if zero_point is None:
        return x
    zp = _int32(bb, zero_point)
    if axis_shape is not None and zp.ty.ndim == 1:
        zp = bb.emit(relax.op.reshape(zp, axis_shape))
    return bb.emit(relax.op.subtract(x, zp))


def _per_axis(bb, v, axis_shape):
    """A scale or zero point: a scalar or a 1-element tensor stays as it is; a 1-D tensor of more
    elements is reshaped to `axis_shape` so that it broadcasts along its axis."""
    from tvm import relax

    if v is None or v.ty.ndim != 1:
        return v
    n = v.ty.shape.values[0]
    if (isinstance(n, int) or hasattr(n, "value")) and int(n) == 1:
        return bb.emit(relax.op.reshape(v, []))
    return bb.emit(relax.op.reshape(v, axis_shape))


def _requantize(bb, acc, scale, y_zero_point, out_dtype: str):
    """round_half_even(acc * scale + y_zero_point), saturated to out_dtype; acc int32, scale a
    float32 tensor broadcasting against it."""
    from tvm import relax

    info = np.iinfo(np.dtype(out_dtype))
    y = bb.emit(relax.op.multiply(relax.op.astype(acc, "float32"), scale))
    if y_zero_point is not None:
        y = bb.emit(relax.op.add(y, relax.op.astype(y_zero_point, "float32")))
    y = bb.emit(relax.op.round(y))
    y = bb.emit(relax.op.clip(y, float(info.min), float(info.max)))
    return relax.op.astype(y, out_dtype)


def _f32(bb, x):
    from tvm import relax

    return x if str(x.ty.dtype) == "float32" else bb.emit(relax.op.astype(x, "float32"))


@converter("QLinearMatMul", since=10, note="missing in TVM")
def qlinear_matmul(ctx, inputs, attrs):
    from tvm import relax

    bb = ctx.bb
    a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp = (list(inputs) + [None] * 8)[:8]
    # a: [..., M, K] quantized per row (scale/zero point of M elements); b: [..., K, N] per column
    a_s = _per_axis(bb, a_scale, [-1, 1])
    b_s = _per_axis(bb, b_scale, [-1])
    acc = bb.emit(relax.op.matmul(_shifted(bb, a, _per_axis(bb, a_zp, [-1, 1])),
                                  _shifted(bb, b, _per_axis(bb, b_zp, [-1])), out_dtype="int32"))
    scale = bb.emit(relax.op.divide(relax.op.multiply(_f32(bb, a_s), _f32(bb, b_s)), _f32(bb, y_scale)))
    out_dtype = str((y_zp if y_zp is not None else a).ty.dtype)
    return _requantize(bb, acc, scale, y_zp, out_dtype)


def _int_conv(ctx, x, w, bias, attrs):
    """TVM's Conv converter on int32 operands (it handles auto_pad, pads, strides, dilations,
    groups and 1-D/2-D/3-D); zero padding is right: the zero points are already subtracted."""
    from tvm.relax.frontend.onnx import onnx_frontend

    return ctx.bb.normalize(onnx_frontend.Conv._impl_v11(ctx.bb, [x, w, bias], dict(attrs), None))


@converter("ConvInteger", since=10, note="missing in TVM")
def conv_integer(ctx, inputs, attrs):
    bb = ctx.bb
    x, w, x_zp, w_zp = (list(inputs) + [None] * 4)[:4]
    nd = w.ty.ndim
    xs = _shifted(bb, x, _per_axis(bb, x_zp, []) if x_zp is not None else None)
    ws = _shifted(bb, w, _per_axis(bb, w_zp, [-1] + [1] * (nd - 1)) if w_zp is not None else None)
    return _int_conv(ctx, xs, ws, None, attrs)


@converter("QLinearConv", since=10, note="missing in TVM")
def qlinear_conv(ctx, inputs, attrs):
    from tvm import relax

    bb = ctx.bb
    x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias = (list(inputs) + [None] * 9)[:9]
    nd = w.ty.ndim
    per_channel = [1, -1] + [1] * (nd - 2)  # over the output's channel axis
    xs = _shifted(bb, x, _per_axis(bb, x_zp, []) if x_zp is not None else None)
    ws = _shifted(bb, w, _per_axis(bb, w_zp, [-1] + [1] * (nd - 1)) if w_zp is not None else None)
    acc = _int_conv(ctx, xs, ws, _int32(bb, bias) if bias is not None else None, attrs)
    w_s = _per_axis(bb, w_scale, per_channel)
    scale = bb.emit(relax.op.divide(relax.op.multiply(_f32(bb, x_scale), _f32(bb, w_s)), _f32(bb, y_scale)))
    out_dtype = str((y_zp if y_zp is not None else x).ty.dtype)
    return _requantize(bb, acc, scale, y_zp, out_dtype)


# ------------------------------------------------------------------------------------------- Pow
def _int_pow(bb, base, exponent):
    """Exact integer power, wrapping like numpy's, for exponents 0..63 (square-and-multiply over
    six exponent bits). Larger exponents overflow for every base but 0 and +-1, which are exact;
    the others give 0 (the wrapped value for even bases). A negative exponent gives base**e
    truncated toward zero: 1 for base 1, +-1 for base -1, else 0."""
    from tvm import relax

    dtype = str(base.ty.dtype)
    e = exponent if str(exponent.ty.dtype) == dtype else bb.emit(relax.op.astype(exponent, dtype))

    def c(v):
        return relax.const(v, dtype)

    r = None
    x = base
    for k in range(6):
        bit = relax.op.equal(relax.op.bitwise_and(relax.op.right_shift(e, c(k)), c(1)), c(1))
        factor = relax.op.where(bit, x, c(1))
        r = bb.emit(factor if r is None else relax.op.multiply(r, factor))
        if k < 5:
            x = bb.emit(relax.op.multiply(x, x))
    # |e| >= 64, or e < 0: only bases 0 and +-1 have an integer (non-overflowing) result
    odd = relax.op.equal(relax.op.bitwise_and(e, c(1)), c(1))
    unit = relax.op.where(relax.op.equal(base, c(1)), c(1), c(0))
    if not dtype.startswith("uint"):
        unit = relax.op.where(relax.op.equal(base, c(-1)), relax.op.where(odd, c(-1), c(1)), unit)
        big = relax.op.logical_or(relax.op.less(e, c(0)), relax.op.greater_equal(e, c(64)))
    else:
        big = relax.op.greater_equal(e, c(64))
    return relax.op.where(big, unit, r)


@converter("Pow", since=7, note="mixed base/exponent dtypes, integer bases; TVM wants one float dtype")
def pow_(ctx, inputs, attrs):
    from tvm import relax
    from tvm.relax.frontend.onnx import onnx_frontend

    bb = ctx.bb
    x, y = inputs
    xt = str(x.ty.dtype) if isinstance(getattr(x, "ty", None), relax.TensorType) else None
    yt = str(y.ty.dtype) if isinstance(getattr(y, "ty", None), relax.TensorType) else None
    cx, cy = ctx.const(x), ctx.const(y)
    if cx is not None and cy is not None:
        with np.errstate(all="ignore"):
            return const(np.power(cx, cy).astype(cx.dtype))
    x_float = xt is not None and xt.startswith(("float", "bfloat"))
    y_float = yt is not None and yt.startswith(("float", "bfloat"))
    if xt == yt and x_float:
        return onnx_frontend.Pow._impl_v7(bb, inputs, attrs, None)
    if x_float:  # float base, integer (or other float) exponent: in the base's type
        return relax.op.power(x, bb.emit(relax.op.astype(y, xt)))
    if y_float:  # integer base, float exponent: float64 power, truncated to the base's type
        p = bb.emit(relax.op.power(relax.op.astype(x, "float64"), relax.op.astype(y, "float64")))
        return relax.op.astype(p, xt)
    return _int_pow(bb, x, y)


CASES = r"^test_(cast_|castlike_|qlinearmatmul|qlinearconv|convinteger|pow)"
_SUB_BYTE = "2/4-bit integer tensors: TVM's runtime cannot copy packed sub-byte arrays in or out"
_FP4 = "FLOAT4E2M1: TVM has no float4 conversions and its runtime cannot copy 4-bit arrays"
KNOWN_FAILURES: dict[str, str] = {
    f"test_{op}_{case}": why
    for op in ("cast", "castlike")
    for case, why in [
        *[(c, _FP4) for c in ("FLOAT16_to_FLOAT4E2M1", "FLOAT4E2M1_to_FLOAT", "FLOAT4E2M1_to_FLOAT16",
                              "FLOAT_to_FLOAT4E2M1")],
        *[(f"{src}_to_{t}", _SUB_BYTE) for src in ("FLOAT16", "FLOAT") for t in ("INT2", "INT4", "UINT2", "UINT4")],
        *[(f"{t}_to_{dst}", _SUB_BYTE) for t in ("INT2", "INT4", "UINT2", "UINT4")
          for dst in ("FLOAT", "FLOAT16", "UINT8" if t.startswith("U") else "INT8")],
    ]
}
