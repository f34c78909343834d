"""Signal processing operators (all missing in TVM's Relax frontend).

- HannWindow, HammingWindow, BlackmanWindow (opset 17): `periodic` and `output_datatype`; the size
  must be a constant (it is the output's shape), so the window is computed with numpy at import,
  by the spec's formulas.
- MelWeightMatrix (opset 17): every input is a scalar that sets the output's shape, so the matrix is
  computed at import as ONNX's reference computes it.
- DFT (opsets 17 and 20): as real matrix products on the transformed axis (cos/sin tables built at
  import for the constant dft_length): complex or real input, dft_length shorter (truncate) or
  longer (zero pad) than the axis, `onesided` (n//2+1 bins), `inverse` (1/n, and with onesided the
  real inverse of a one-sided spectrum, like numpy's irfft). The axis (input 2 from opset 20) and
  dft_length must be constants.
- STFT (opset 17): frames gathered with a constant index table (frame_step and frame_length must
  be constants), multiplied by the window (any input), then the DFT above (onesided by default).
"""

from __future__ import annotations

import numpy as np

from ..registry import converter


def _scalar(ctx, x, op: str, what: str):
    v = ctx.const(x)
    if v is None:
        raise ValueError(f"{op}: {what} must be a constant (bind the model input that gives it)")
    return np.asarray(v).reshape(-1)[0].item()


def _np_dtype(elem_type: int):
    from onnx.helper import tensor_dtype_to_np_dtype

    return np.dtype(tensor_dtype_to_np_dtype(int(elem_type)))


def _out(value: np.ndarray, elem_type: int):
    from tvm import relax

    dtype = _np_dtype(elem_type)
    return relax.const(np.asarray(value).astype(dtype), str(dtype))


def _window(ctx, inputs, attrs, op: str, fn):
    size = int(_scalar(ctx, inputs[0], op, "size"))
    periodic = int(attrs.get("periodic", 1))
    denom = size if periodic else size - 1
    n = np.arange(size, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = fn(n, denom) if size > 0 else np.zeros((0,))
    return _out(w, attrs.get("output_datatype", 1))


@converter("HannWindow", since=17, note="missing in TVM")
def hann_window(ctx, inputs, attrs):
    return _window(ctx, inputs, attrs, "HannWindow", lambda n, d: np.sin(np.pi * n / d) ** 2)


@converter("HammingWindow", since=17, note="missing in TVM")
def hamming_window(ctx, inputs, attrs):
    alpha = 25.0 / 46.0
    return _window(ctx, inputs, attrs, "HammingWindow",
                   lambda n, d: alpha - (1 - alpha) * np.cos(2 * np.pi * n / d))


@converter("BlackmanWindow", since=17, note="missing in TVM")
def blackman_window(ctx, inputs, attrs):
    return _window(ctx, inputs, attrs, "BlackmanWindow",
                   lambda n, d: 0.42 - 0.5 * np.cos(2 * np.pi * n / d) + 0.08 * np.cos(4 * np.pi * n / d))


@converter("MelWeightMatrix", since=17, note="missing in TVM")
def mel_weight_matrix(ctx, inputs, attrs):
    op = "MelWeightMatrix"
    num_mel_bins = int(_scalar(ctx, inputs[0], op, "num_mel_bins"))
    dft_length = int(_scalar(ctx, inputs[1], op, "dft_length"))
    sample_rate = int(_scalar(ctx, inputs[2], op, "sample_rate"))
    lower = float(_scalar(ctx, inputs[3], op, "lower_edge_hertz"))
    upper = float(_scalar(ctx, inputs[4], op, "upper_edge_hertz"))
    # as ONNX's reference implementation (which ONNX Runtime matches)
    n_spec = dft_length // 2 + 1
    bins = np.arange(0, num_mel_bins + 2)
    low_mel = 2595 * np.log1p(lower / 700) / np.log(10)
    high_mel = 2595 * np.log1p(upper / 700) / np.log(10)
    step = (high_mel - low_mel) / bins.shape[0]
    freq = 700 * np.expm1((bins * step + low_mel) / 2595 * np.log(10))
    freq = (((dft_length + 1) * freq) // sample_rate).astype(int)
    out = np.zeros((n_spec, num_mel_bins))
    for i in range(num_mel_bins):
        lo, mid, hi = freq[i], freq[i + 1], freq[i + 2]
        if mid == lo:
            out[mid, i] = 1
        else:
            for j in range(lo, mid + 1):
                out[j, i] = (j - lo) / (mid - lo)
        if hi > mid:
            for j in range(mid, hi):
                out[j, i] = (hi - j) / (hi - mid)
    return _out(out, attrs.get("output_datatype", 1))


# ------------------------------------------------------------------------------------------ DFT
def _dft_last(bb, xr, xi, n: int, inverse: bool, onesided: bool):
    """DFT along the last axis of xr (+ i xi; xi may be None) with length n. Returns (real, imag);
    imag is None for the real inverse of a one-sided spectrum. Inputs are float32."""
    from tvm import relax

    length = int(xr.ty.shape.values[-1])
    ndim = xr.ty.ndim

    def fit(v, m):  # truncate or zero-pad the last axis to m
        if v is None or length == m:
            return v
        if length > m:
            return bb.emit(relax.op.strided_slice(v, axes=[ndim - 1], begin=[0], end=[m]))
        shape = [int(d) for d in v.ty.shape.values[:-1]] + [m - length]
        return bb.emit(relax.op.concat([v, relax.op.zeros(shape, "float32")], axis=-1))

    def mm(v, table):
        return relax.op.matmul(v, relax.const(table.astype(np.float32), "float32"))

    if inverse and onesided:  # numpy's irfft: Hermitian extension of the first n//2+1 bins
        m = n // 2 + 1
        xr, xi = fit(xr, m), fit(xi, m)
        k = np.arange(m)[:, None]
        t = np.arange(n)[None, :]
        w = np.where((k == 0) | ((n % 2 == 0) & (k == n // 2)), 1.0, 2.0) / n
        ang = 2 * np.pi * k * t / n
        out = mm(xr, w * np.cos(ang))
        if xi is not None:
            out = relax.op.subtract(out, mm(xi, w * np.sin(ang)))
        return bb.emit(out), None
    xr, xi = fit(xr, n), fit(xi, n)
    bins = n // 2 + 1 if onesided else n
    t = np.arange(n)[:, None]
    k = np.arange(bins)[None, :]
    ang = 2 * np.pi * ((t * k) % n) / n
    cos, sin = np.cos(ang), np.sin(ang)
    if inverse:
        cos, sin = cos / n, -sin / n  # e^{+i..}/n
    # (xr + i xi)(cos - i sin) = xr cos + xi sin + i (xi cos - xr sin)
    re = mm(xr, cos)
    im = relax.op.negative(mm(xr, sin))
    if xi is not None:
        re = relax.op.add(re, mm(xi, sin))
        im = relax.op.add(im, mm(xi, cos))
    return bb.emit(re), bb.emit(im)


def _dft(ctx, x, axis: int, n: int | None, inverse: bool, onesided: bool):
    from tvm import relax

    bb = ctx.bb
    shape = ctx.shape(x)
    if shape is None:
        raise ValueError("DFT needs a statically shaped input")
    ndim = len(shape)
    axis = axis % ndim
    if axis == ndim - 1:
        raise ValueError("DFT: the axis cannot be the last (real/imaginary) axis")
    if n is None:
        n = 2 * (shape[axis] - 1) if inverse and onesided else shape[axis]
    dtype = str(x.ty.dtype)
    xf = x if dtype == "float32" else bb.emit(relax.op.astype(x, "float32"))

    def part(j):
        v = relax.op.strided_slice(xf, axes=[ndim - 1], begin=[j], end=[j + 1])
        return relax.op.squeeze(v, axis=[ndim - 1])

    xr = part(0)
    xi = part(1) if shape[-1] == 2 else None
    # move `axis` last (rank ndim - 1 now)
    perm = [d for d in range(ndim - 1) if d != axis] + [axis]
    back = [perm.index(d) for d in range(ndim - 1)]
    xr = bb.emit(relax.op.permute_dims(xr, perm))
    xi = bb.emit(relax.op.permute_dims(xi, perm)) if xi is not None else None
    re, im = _dft_last(bb, xr, xi, int(n), inverse, onesided)
    parts = [relax.op.permute_dims(re, back)]
    if im is not None:
        parts.append(relax.op.permute_dims(im, back))
    out = relax.op.stack(parts, axis=ndim - 1) if hasattr(relax.op, "stack") else \
        relax.op.concat([relax.op.expand_dims(p, ndim - 1) for p in parts], axis=ndim - 1)
    out = bb.emit(out)
    return out if dtype == "float32" else relax.op.astype(out, dtype)


@converter("DFT", since=17, until=19, note="missing in TVM")
def dft_17(ctx, inputs, attrs):
    n = int(_scalar(ctx, inputs[1], "DFT", "dft_length")) if len(inputs) > 1 and inputs[1] is not None else None
    return _dft(ctx, inputs[0], int(attrs.get("axis", 1)), n, bool(attrs.get("inverse", 0)),
                bool(attrs.get("onesided", 0)))


@converter("DFT", since=20, note="missing in TVM")
def dft_20(ctx, inputs, attrs):
    n = int(_scalar(ctx, inputs[1], "DFT", "dft_length")) if len(inputs) > 1 and inputs[1] is not None else None
    axis = int(_scalar(ctx, inputs[2], "DFT", "axis")) if len(inputs) > 2 and inputs[2] is not None else -2
    return _dft(ctx, inputs[0], axis, n, bool(attrs.get("inverse", 0)), bool(attrs.get("onesided", 0)))


@converter("STFT", since=17, note="missing in TVM")
def stft(ctx, inputs, attrs):
    from tvm import relax

    bb = ctx.bb
    x, step, window, length = (list(inputs) + [None] * 4)[:4]
    shape = ctx.shape(x)
    if shape is None or len(shape) != 3:
        raise ValueError("STFT needs a statically shaped [batch, length, 1 or 2] signal")
    step = int(_scalar(ctx, step, "STFT", "frame_step"))
    win_len = ctx.shape(window)[0] if window is not None else None
    n = int(_scalar(ctx, length, "STFT", "frame_length")) if length is not None else (win_len or shape[1])
    win_len = win_len if win_len is not None else n
    frames = 1 + (shape[1] - n) // step
    idx = np.arange(frames)[:, None] * step + np.arange(win_len)[None, :]
    if idx.size and idx.max() >= shape[1]:  # a window longer than frame_length: pad the signal
        pad = int(idx.max()) + 1 - shape[1]
        x = bb.emit(relax.op.concat([x, relax.op.zeros([shape[0], pad, shape[2]], str(x.ty.dtype))], axis=1))
    framed = bb.emit(relax.op.take(x, relax.const(idx.astype(np.int64), "int64"), axis=1))  # [B, F, W, C]
    if window is not None:
        w = bb.emit(relax.op.reshape(relax.op.astype(window, str(x.ty.dtype)), [1, 1, win_len, 1]))
        framed = bb.emit(relax.op.multiply(framed, w))
    return _dft(ctx, framed, 2, n, False, bool(attrs.get("onesided", 1)))


CASES = r"^test_(hannwindow|hammingwindow|blackmanwindow|melweightmatrix|dft|stft)"
KNOWN_FAILURES: dict[str, str] = {}
