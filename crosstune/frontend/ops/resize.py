"""Resize (opset 10, 11+) and Upsample (opset 7-9), every mode of the ONNX spec.

TVM's Resize converter reads only 3-5-D NCHW-like inputs through TOPI's resize kernels: it has no
`axes`, `keep_aspect_ratio_policy`, `antialias` or `half_pixel_symmetric`, its cubic/linear
downsampling and align_corners results differ from ONNX's, and Upsample fails when `scales` is an
input. crosstune resizes one axis at a time, as ONNX's reference implementation does (resizing is
separable): for each resized axis the source indices and the interpolation weights of every output
position are computed at import time with numpy (scales/sizes/roi must be constants; the conformance
runner and `--bind` make them so), and the graph does a `take` along the axis (nearest: that is all)
followed by a weighted sum over the kernel taps (linear, cubic, antialiased). tf_crop_and_resize's
out-of-range positions become `extrapolation_value` through a constant mask.
"""

from __future__ import annotations

import math

import numpy as np

from ..importer import const
from ..registry import converter


def _s(attrs, name, default):
    v = attrs.get(name, default)
    return v.decode() if isinstance(v, bytes) else v


# ---- interpolation coefficients (ONNX reference semantics)
def _nearest(mode):
    def fn(ratio, scale):
        if float(ratio).is_integer():
            return np.array([0.0, 1.0])
        if mode == "round_prefer_floor":
            return np.array([ratio <= 0.5, ratio > 0.5], dtype=np.float64)
        if mode == "round_prefer_ceil":
            return np.array([ratio < 0.5, ratio >= 0.5], dtype=np.float64)
        if mode == "floor":
            return np.array([1.0, 0.0])
        if mode == "ceil":
            return np.array([0.0, 1.0])
        raise ValueError(f"Resize: unknown nearest_mode {mode!r}")

    return fn


def _linear(antialias):
    def fn(ratio, scale):
        if not antialias:
            return np.array([1 - ratio, ratio])
        scale = min(scale, 1.0)
        start = int(np.floor(-1 / scale) + 1)
        footprint = 2 - 2 * start
        args = (np.arange(start, start + footprint) - ratio) * scale
        c = np.clip(1 - np.abs(args), 0, 1)
        return c / c.sum()

    return fn


def _cubic(A, antialias):
    def fn(ratio, scale):
        if not antialias:
            r = ratio
            return np.array([
                ((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A,
                ((A + 2) * r - (A + 3)) * r * r + 1,
                ((A + 2) * (1 - r) - (A + 3)) * (1 - r) * (1 - r) + 1,
                ((A * ((1 - r) + 1) - 5 * A) * ((1 - r) + 1) + 8 * A) * ((1 - r) + 1) - 4 * A,
            ])
        scale = min(scale, 1.0)

        def k(x):
            x = abs(x)
            if x <= 1:
                return (A + 2) * x**3 - (A + 3) * x**2 + 1
            if x < 2:
                return A * x**3 - 5 * A * x**2 + 8 * A * x - 4 * A
            return 0.0

        i_start = int(np.floor(-2 / scale) + 1)
        c = np.array([k(scale * (i - ratio)) for i in range(i_start, 2 - i_start)])
        return c / c.sum()

    return fn


def _source_coords(mode, out_int, scale, in_w, roi):
    y = np.arange(out_int, dtype=np.float64)
    out_w = scale * in_w
    extrap = None
    if mode == "align_corners":
        x = np.zeros(out_int) if out_w == 1 else y * (in_w - 1) / (out_w - 1)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_crop_and_resize":
        if out_w == 1:
            x = np.full(out_int, (roi[1] - roi[0]) * (in_w - 1) / 2)
        else:
            x = y * (roi[1] - roi[0]) * (in_w - 1) / (out_w - 1)
        x = x + roi[0] * (in_w - 1)
        extrap = (x < 0) | (x > in_w - 1)
    elif mode == "pytorch_half_pixel":
        x = np.full(out_int, -0.5) if out_w == 1 else (y + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif mode == "half_pixel_symmetric":
        adjustment = out_int / out_w
        x = in_w / 2 * (1 - adjustment) + (y + 0.5) / scale - 0.5
    else:
        raise ValueError(f"Resize: unknown coordinate_transformation_mode {mode!r}")
    return x, extrap


def axis_plan(in_w, out_int, scale, coeffs_fn, coord_mode, roi, exclude_outside):
    """(indices [out, n] into the axis, weights [out, n], extrapolated mask [out] or None)."""
    x, extrap = _source_coords(coord_mode, out_int, scale, in_w, roi)
    xi = np.floor(x).astype(np.int64)
    ratios = np.where(x == xi, 1.0, x - xi)
    coeffs = np.stack([np.asarray(coeffs_fn(float(r), scale), dtype=np.float64) for r in ratios])
    n = coeffs.shape[1]
    pad = int(np.ceil(n / 2))
    xp = x + pad
    p = np.floor(xp).astype(np.int64)
    frac = xp - p
    if n % 2 == 0:
        off = np.where(frac == 0, -(n // 2), -(n // 2) + 1)
    else:
        base = -((n - 1) // 2)
        off = np.where(frac <= 0.5, base, base + 1)
    idx = (p + off)[:, None] + np.arange(n)[None, :] - pad
    if exclude_outside:
        coeffs = np.where((idx < 0) | (idx >= in_w), 0.0, coeffs)
        s = coeffs.sum(axis=-1, keepdims=True)
        coeffs = coeffs / np.where(s == 0, 1.0, s)
    return np.clip(idx, 0, in_w - 1), coeffs, extrap


def resize_nd(ctx, x, shape, *, mode, coord_mode, nearest_mode, cubic_a, exclude_outside, extrapolation,
              antialias, scales=None, sizes=None, roi=None, axes=None, policy="stretch"):
    """Emit the resize of `x` (static `shape`). scales/sizes/roi per ONNX (over `axes` when given)."""
    from tvm import relax

    r = len(shape)
    axes = list(range(r)) if axes is None else [int(a) + r if a < 0 else int(a) for a in axes]
    if roi is not None and np.asarray(roi).size == 0:
        roi = None
    full_roi = None
    if roi is not None:
        roi = np.asarray(roi, dtype=np.float64)
        full_roi = [0.0] * r + [1.0] * r
        k = len(axes)
        for i, d in enumerate(axes):
            full_roi[d], full_roi[r + d] = roi[i], roi[k + i]
    if sizes is not None:
        sizes = [int(s) for s in np.asarray(sizes).reshape(-1)]
        out = list(shape)
        for i, d in enumerate(axes):
            out[d] = sizes[i]
        scale_f = [out[i] / shape[i] for i in range(r)]
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            if policy not in ("not_larger", "not_smaller"):
                raise ValueError(f"Resize: unknown keep_aspect_ratio_policy {policy!r}")
            s = pick(scale_f[d] for d in axes)
            scale_f = [s if i in axes else 1.0 for i in range(r)]
            out = [int(s * shape[i] + 0.5) if i in axes else shape[i] for i in range(r)]
    elif scales is not None:
        scales = np.asarray(scales).reshape(-1)
        full = np.ones(r, dtype=scales.dtype)
        for i, d in enumerate(axes):
            full[d] = scales[i]
        scale_f = [float(s) for s in full]
        out = [int(v) for v in (full * np.array(shape, dtype=np.int64)).astype(np.int64)]
    else:
        raise ValueError("Resize needs scales or sizes")

    if mode == "nearest":
        fn = _nearest(nearest_mode)
    elif mode == "linear":
        fn = _linear(antialias)
    elif mode == "cubic":
        fn = _cubic(cubic_a, antialias)
    else:
        raise ValueError(f"Resize: unknown mode {mode!r}")

    dtype = ctx.dtype(x)
    is_float = dtype.startswith("float") or dtype.startswith("bfloat")
    work = "float64" if dtype == "float64" else "float32"
    cur, cur_shape, casted = x, list(shape), False
    for d in axes:
        in_w, out_w, sc = cur_shape[d], out[d], scale_f[d]
        axis_roi = None if full_roi is None else [full_roi[d], full_roi[d + r]]
        if math.isclose(sc, 1.0) and out_w == in_w and (
                axis_roi is None or (math.isclose(axis_roi[0], 0.0) and math.isclose(axis_roi[1], 1.0))):
            continue
        if out_w == 0 or in_w == 0:
            cur_shape[d] = out_w
            cur = ctx.bb.emit(relax.op.zeros(relax.ShapeExpr(cur_shape), ctx.dtype(cur)))
            continue
        idx, coeffs, extrap = axis_plan(in_w, out_w, sc, fn, coord_mode, axis_roi, exclude_outside)
        if mode == "nearest":
            pick = idx[np.arange(out_w), np.argmax(coeffs, axis=1)]
            cur = ctx.bb.emit(relax.op.take(cur, const(pick.astype(np.int64)), axis=d))
        else:
            if not casted and dtype != work:
                cur = ctx.bb.emit(relax.op.astype(cur, work))
                casted = True
            n = idx.shape[1]
            g = ctx.bb.emit(relax.op.take(cur, const(idx.reshape(-1).astype(np.int64)), axis=d))
            split = cur_shape[:d] + [out_w, n] + cur_shape[d + 1:]
            g = ctx.bb.emit(relax.op.reshape(g, split))
            w = coeffs.astype(work).reshape((out_w, n) + (1,) * (r - d - 1))
            cur = ctx.bb.emit(relax.op.sum(relax.op.multiply(g, const(w)), axis=[d + 1]))
        cur_shape[d] = out_w
        if extrap is not None and extrap.any():
            m = extrap.reshape((out_w,) + (1,) * (r - d - 1))
            fill = relax.const(np.array(extrapolation, dtype=ctx.dtype(cur)), ctx.dtype(cur))
            cur = ctx.bb.emit(relax.op.where(const(m), fill, cur))
    if casted:
        if is_float:
            cur = relax.op.astype(cur, dtype)
        else:
            info = np.iinfo(np.dtype(dtype))
            cur = relax.op.astype(relax.op.clip(relax.op.round(cur), float(info.min), float(info.max)), dtype)
    return cur


def const_value(ctx, expr):
    """ctx.const, also for weights: TVM 0.27's relax.Var has `.name`, not the `.name_hint` that
    Ctx.const looks for, so Ctx.const raises AttributeError on a weight (a float initializer)."""
    from tvm import relax

    if isinstance(expr, relax.Var):
        name = getattr(expr, "name", None)
        params = ctx.importer._params
        return params[name][1].numpy() if name in params else None
    return ctx.const(expr)


def _need(ctx, expr, what):
    if expr is None:
        return None
    v = const_value(ctx, expr)
    if v is None:
        raise ValueError(f"{ctx.node.op_type} needs '{what}' as a constant")
    return v


def _static_shape(ctx, x):
    shape = ctx.shape(x)
    if shape is None:
        raise ValueError(f"{ctx.node.op_type} needs a static input shape")
    return list(shape)


@converter("Resize", since=11, note="axes, antialias, keep_aspect_ratio_policy, half_pixel_symmetric, any rank; "
           "cubic/linear/align_corners numbers as ONNX's reference; scales/sizes of any kind once constant")
def resize(ctx, inputs, attrs):
    x = inputs[0]
    shape = _static_shape(ctx, x)
    get = lambda i: inputs[i] if len(inputs) > i else None  # noqa: E731
    roi = _need(ctx, get(1), "roi")
    scales = _need(ctx, get(2), "scales")
    sizes = _need(ctx, get(3), "sizes")
    if scales is not None and scales.size == 0:
        scales = None
    if sizes is not None and sizes.size == 0:
        sizes = None
    axes = attrs.get("axes")
    return resize_nd(
        ctx, x, shape,
        mode=_s(attrs, "mode", "nearest"),
        coord_mode=_s(attrs, "coordinate_transformation_mode", "half_pixel"),
        nearest_mode=_s(attrs, "nearest_mode", "round_prefer_floor"),
        cubic_a=float(attrs.get("cubic_coeff_a", -0.75)),
        exclude_outside=bool(attrs.get("exclude_outside", 0)),
        extrapolation=float(attrs.get("extrapolation_value", 0.0)),
        antialias=bool(attrs.get("antialias", 0)),
        scales=scales, sizes=sizes, roi=roi,
        axes=None if axes is None else list(axes),
        policy=_s(attrs, "keep_aspect_ratio_policy", "stretch"),
    )


def _upsample_like(ctx, x, scales, attrs):
    shape = _static_shape(ctx, x)
    mode = _s(attrs, "mode", "nearest")
    return resize_nd(ctx, x, shape, mode="linear" if mode in ("linear", "bilinear") else mode,
                     coord_mode="asymmetric", nearest_mode="floor", cubic_a=-0.75, exclude_outside=False,
                     extrapolation=0.0, antialias=False, scales=np.asarray(scales, dtype=np.float32))


@converter("Resize", since=10, until=10, note="opset-10 Resize (asymmetric, nearest floor) with any rank")
def resize_v10(ctx, inputs, attrs):
    return _upsample_like(ctx, inputs[0], _need(ctx, inputs[1], "scales"), attrs)


@converter("Upsample", since=7, note="scales as an input (opset 9) or attribute (7), any rank")
def upsample(ctx, inputs, attrs):
    if len(inputs) > 1 and inputs[1] is not None:
        scales = _need(ctx, inputs[1], "scales")
    else:
        scales = np.asarray(attrs["scales"], dtype=np.float32)
    return _upsample_like(ctx, inputs[0], scales, attrs)


CASES = r"^test_(resize|upsample)_"
KNOWN_FAILURES: dict[str, str] = {}
