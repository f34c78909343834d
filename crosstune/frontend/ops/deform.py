"""DeformConv (opsets 19 and 22; missing in TVM's Relax frontend), 2-D.

Compiled as Relax ops, by ONNX's reference semantics (a bilinear GridSample with align_corners=1
and zero padding at every kernel tap): for each kernel tap (kh, kw) and output pixel (i, j) the
sampling point is (i*stride_h - pad_top + kh*dilation_h + offset_y, j*stride_w - pad_left +
kw*dilation_w + offset_x); the base grid is a numpy constant, the offsets are the runtime input.
The four neighbours floor/floor+1 of the point are gathered with one `take` on the image laid out
as (N*offset_group*H*W, C/offset_group) (out-of-range neighbours count as 0: clipped index times a
validity weight), weighted bilinearly and by `mask` (input 4, ones when absent), giving im2col
columns (N, C*kH*kW, oH*oW) that a grouped matmul with the weights contracts; `B` (input 3) is
added. Every dimension (N too) and the attributes must be static.
"""

from __future__ import annotations

import numpy as np

from ..importer import const
from ..registry import converter


def _static(ctx, x, what):
    shape = ctx.shape(x)
    if shape is None or any(not isinstance(d, (int, np.integer)) for d in shape):
        raise ValueError(f"DeformConv: {what} must have a static shape (got {shape})")
    return tuple(int(d) for d in shape)


@converter("DeformConv", since=19, note="missing in TVM")
def deform_conv(ctx, inputs, attrs):
    from tvm import relax

    op = relax.op
    bb = ctx.bb
    X, Wt, offset = inputs[0], inputs[1], inputs[2]
    B = inputs[3] if len(inputs) > 3 else None
    mask = inputs[4] if len(inputs) > 4 else None

    xs = _static(ctx, X, "X")
    ws = _static(ctx, Wt, "W")
    os_ = _static(ctx, offset, "offset")
    if len(xs) != 4:
        raise ValueError(f"DeformConv: only 2-D inputs (N x C x H x W) are supported, got rank {len(xs)}")
    n, c, h, w = xs
    oc = ws[0]
    kshape = tuple(attrs.get("kernel_shape", ws[2:]))
    kh, kw = (int(k) for k in kshape)
    dh, dw = (int(d) for d in attrs.get("dilations", (1, 1)))
    sh, sw = (int(s) for s in attrs.get("strides", (1, 1)))
    pads = tuple(int(p) for p in attrs.get("pads", (0, 0, 0, 0)))
    group = int(attrs.get("group", 1))
    ogroup = int(attrs.get("offset_group", 1))
    oh, ow = os_[2], os_[3]
    K, P = kh * kw, oh * ow

    if c != ws[1] * group or oc % group != 0:
        raise ValueError(f"DeformConv: X {xs} and W {ws} do not fit group={group}")
    if c % ogroup != 0:
        raise ValueError(f"DeformConv: {c} input channels are not divisible by offset_group={ogroup}")
    if os_[0] != n or os_[1] != ogroup * K * 2:
        raise ValueError(f"DeformConv: offset shape {os_} does not fit offset_group={ogroup}, kernel {kshape}")
    if tuple(ws[2:]) != (kh, kw):
        raise ValueError(f"DeformConv: kernel_shape {kshape} differs from W's {ws[2:]}")
    cg = c // ogroup  # channels per offset group

    dtype = ctx.dtype(X)
    cdt = "float64" if dtype == "float64" else "float32"  # coordinate arithmetic

    def cast(e, dt):
        return e if ctx.dtype(e) == dt else bb.emit(op.astype(e, dt))

    def fc(v):
        return relax.const(np.asarray(v, dtype=cdt), cdt)

    # sampling points: (N, G, K, oH, oW)
    off = bb.emit(op.reshape(cast(offset, cdt), (n, ogroup, K, 2, oh, ow)))
    dy = bb.emit(op.squeeze(op.strided_slice(off, axes=[3], begin=[0], end=[1]), axis=[3]))
    dx = bb.emit(op.squeeze(op.strided_slice(off, axes=[3], begin=[1], end=[2]), axis=[3]))
    ki, kj = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
    base_y = (ki.reshape(K, 1, 1) * dh + np.arange(oh).reshape(1, oh, 1) * sh - pads[0]).astype(cdt)
    base_x = (kj.reshape(K, 1, 1) * dw + np.arange(ow).reshape(1, 1, ow) * sw - pads[1]).astype(cdt)
    y = bb.emit(op.add(dy, const(base_y)))
    x = bb.emit(op.add(dx, const(base_x)))
    y0 = bb.emit(op.floor(y))
    x0 = bb.emit(op.floor(x))
    ly = bb.emit(op.subtract(y, y0))
    lx = bb.emit(op.subtract(x, x0))
    one = fc(1.0)
    zero = fc(0.0)

    m = None
    if mask is not None:
        ms = _static(ctx, mask, "mask")
        if ms[0] != n or ms[1] != ogroup * K or tuple(ms[2:]) != (oh, ow):
            raise ValueError(f"DeformConv: mask shape {ms} does not fit offset shape {os_}")
        m = bb.emit(op.reshape(cast(mask, cdt), (n, ogroup, K, oh, ow)))

    def tap(start, frac, d, size):
        """Index along one axis (clipped, int64) and its weight (bilinear * in-range)."""
        if d == 0:
            coord, wgt = start, bb.emit(op.subtract(one, frac))
        else:
            coord, wgt = bb.emit(op.add(start, one)), frac
        valid = op.multiply(
            op.astype(op.greater_equal(coord, zero), cdt),
            op.astype(op.less_equal(coord, fc(size - 1)), cdt),
        )
        wgt = bb.emit(op.multiply(wgt, valid))
        idx = bb.emit(op.astype(op.minimum(op.maximum(coord, zero), fc(size - 1)), "int64"))
        return idx, wgt

    ys = [tap(y0, ly, d, h) for d in (0, 1)]
    xs_ = [tap(x0, lx, d, w) for d in (0, 1)]

    # image as rows (N*G*H*W, C/G); base row of each (n, g)
    img = bb.emit(op.reshape(X, (n, ogroup, cg, h * w)))
    img = bb.emit(op.reshape(op.permute_dims(img, [0, 1, 3, 2]), (n * ogroup * h * w, cg)))
    row0 = const((np.arange(n * ogroup, dtype=np.int64) * (h * w)).reshape(n, ogroup, 1, 1, 1))

    sampled = None
    for iy, wy in ys:
        for ix, wx in xs_:
            rows = bb.emit(op.add(op.add(op.multiply(iy, const(np.int64(w))), ix), row0))
            vals = bb.emit(op.take(img, op.reshape(rows, (-1,)), axis=0, mode="clip"))  # (N*G*K*P, cg); clip: NaN offsets
            wgt = bb.emit(op.multiply(wy, wx))
            if m is not None:
                wgt = bb.emit(op.multiply(wgt, m))
            wgt = cast(bb.emit(op.reshape(wgt, (n * ogroup * K * P, 1))), dtype)
            term = bb.emit(op.multiply(vals, wgt))
            sampled = term if sampled is None else bb.emit(op.add(sampled, term))

    # columns (N, group, C/group*K, P), channel c = g*cg + j
    cols = bb.emit(op.reshape(sampled, (n, ogroup, K, P, cg)))
    cols = bb.emit(op.permute_dims(cols, [0, 1, 4, 2, 3]))  # (N, G, cg, K, P)
    cols = bb.emit(op.reshape(cols, (n, group, (c // group) * K, P)))
    wmat = bb.emit(op.reshape(Wt, (1, group, oc // group, (c // group) * K)))
    if ctx.dtype(Wt) != dtype:
        wmat = bb.emit(op.astype(wmat, dtype))
    out = bb.emit(op.matmul(wmat, cols))  # (N, group, oc/group, P)
    out = bb.emit(op.reshape(out, (n, oc, oh, ow)))
    if B is not None:
        out = bb.emit(op.add(out, op.reshape(B, (1, oc, 1, 1))))
    return out


CASES = r"deform_conv"
KNOWN_FAILURES: dict[str, str] = {}
