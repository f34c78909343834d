"""Recurrent operators, unrolled over the (static) sequence length into Relax ops.

- LSTM (opset 1+; `layout` from 14): gates i, o, f, c; peepholes P; bidirectional / reverse;
  initial_h / initial_c; sequence_lens (a constant or a run-time tensor: steps past a batch entry's
  length keep its state and give zeros in Y, as ONNX Runtime does); activations with
  activation_alpha/beta; clip; input_forget (f = 1 - i, as ONNX Runtime does).
- GRU (opset 1+): gates z, r, h; linear_before_reset; the same options as LSTM.
- RNN (opset 1+): one gate; the same options.
TVM has no converter for any of them. Any of the outputs (Y, Y_h, Y_c) may be omitted. The
activation_alpha/beta lists are consumed in the order of the activations, one value for each
activation that takes that parameter (ONNX Runtime's reading of the spec).
"""

from __future__ import annotations

import numpy as np

from ..registry import converter

CASES = r"^test_(lstm|gru|simple_rnn|rnn_seq)"
KNOWN_FAILURES: dict[str, str] = {}

# activation -> (takes alpha, takes beta, default alpha, default beta), the ONNX ops' defaults
_ACTIVATIONS = {
    "relu": (False, False, 0.0, 0.0), "tanh": (False, False, 0.0, 0.0), "sigmoid": (False, False, 0.0, 0.0),
    "affine": (True, True, 1.0, 0.0), "leakyrelu": (True, False, 0.01, 0.0),
    "thresholdedrelu": (True, False, 1.0, 0.0), "scaledtanh": (True, True, 1.0, 1.0),
    "hardsigmoid": (True, True, 0.2, 0.5), "elu": (True, False, 1.0, 0.0),
    "softsign": (False, False, 0.0, 0.0), "softplus": (False, False, 0.0, 0.0),
}


def _str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


class _Rnn:
    """What the three operators share: inputs, directions, activations, the unrolled loop."""

    def __init__(self, ctx, inputs, attrs, op: str, gates: int, default_acts: tuple[str, ...]):
        from tvm import relax

        self.ctx, self.op, self.gates = ctx, op, gates
        self.relax = relax
        x, w, r = inputs[0], inputs[1], inputs[2]
        get = lambda i: inputs[i] if len(inputs) > i else None
        self.b, self.seq_lens, self.h0 = get(3), get(4), get(5)
        self.direction = _str(attrs.get("direction", b"forward"))
        if self.direction not in ("forward", "reverse", "bidirectional"):
            raise ValueError(f"{op}: unknown direction {self.direction!r}")
        self.nd = 2 if self.direction == "bidirectional" else 1
        self.layout = int(attrs.get("layout", 0))
        self.dtype = ctx.dtype(x)
        xshape = ctx.shape(x)
        if xshape is None or len(xshape) != 3:
            raise ValueError(f"{op}: X must have a static 3-D shape to unroll the sequence (got {x.ty})")
        if self.layout:
            x = self.emit(relax.op.permute_dims(x, [1, 0, 2]))
            xshape = (xshape[1], xshape[0], xshape[2])
        self.x = x
        self.seq, self.batch, _ = xshape
        rshape = ctx.shape(r)
        hidden = attrs.get("hidden_size")
        self.hidden = int(hidden) if hidden is not None else (rshape[-1] if rshape else None)
        if self.hidden is None:
            raise ValueError(f"{op}: hidden_size is not given and R's shape is not static")
        self.w, self.r = w, r
        acts = [_str(a).lower() for a in attrs.get("activations", ())] or list(default_acts) * self.nd
        if len(acts) == len(default_acts) and self.nd == 2:
            acts = acts * 2
        if len(acts) != len(default_acts) * self.nd:
            raise ValueError(f"{op}: {len(acts)} activations for {self.nd} direction(s); expected "
                             f"{len(default_acts) * self.nd}")
        alphas = list(attrs.get("activation_alpha", ()))
        betas = list(attrs.get("activation_beta", ()))
        self.acts = []
        for name in acts:
            if name not in _ACTIVATIONS:
                raise ValueError(f"{op}: unsupported activation {name!r}")
            takes_a, takes_b, da, db = _ACTIVATIONS[name]
            a = float(alphas.pop(0)) if takes_a and alphas else da
            b = float(betas.pop(0)) if takes_b and betas else db
            self.acts.append((name, a, b))
        self.nacts = len(default_acts)
        clip = attrs.get("clip")
        self.clip = float(clip) if clip is not None else None

    # ---- helpers
    def emit(self, expr):
        return self.ctx.bb.emit(expr)

    def c(self, value):
        return self.relax.const(np.asarray(value, dtype=self.dtype), self.dtype)

    def item(self, tup, i):
        return self.emit(self.relax.TupleGetItem(tup, i))

    def split(self, expr, n, axis):
        parts = self.emit(self.relax.op.split(expr, n, axis=axis))
        return [self.item(parts, i) for i in range(n)]

    def direction_slice(self, expr, d):
        """expr[d] of a [num_directions, ...] tensor."""
        op = self.relax.op
        return self.emit(op.squeeze(self.emit(op.strided_slice(expr, axes=[0], begin=[d], end=[d + 1])), axis=[0]))

    def act(self, d, k, x):
        """Activation k (f, g, h order) of direction d, on x, clipped first when clip is set."""
        op = self.relax.op
        if self.clip is not None:
            x = self.emit(op.minimum(op.maximum(x, self.c(-self.clip)), self.c(self.clip)))
        name, a, b = self.acts[d * self.nacts + k]
        if name == "relu":
            e = op.nn.relu(x)
        elif name == "tanh":
            e = op.tanh(x)
        elif name == "sigmoid":
            e = op.sigmoid(x)
        elif name == "affine":
            e = op.add(op.multiply(x, self.c(a)), self.c(b))
        elif name == "leakyrelu":
            e = op.where(op.less(x, self.c(0)), op.multiply(x, self.c(a)), x)
        elif name == "thresholdedrelu":
            e = op.where(op.greater(x, self.c(a)), x, self.c(0))
        elif name == "scaledtanh":
            e = op.multiply(self.c(a), op.tanh(op.multiply(x, self.c(b))))
        elif name == "hardsigmoid":
            e = op.minimum(op.maximum(op.add(op.multiply(x, self.c(a)), self.c(b)), self.c(0)), self.c(1))
        elif name == "elu":
            e = op.where(op.less(x, self.c(0)), op.multiply(self.c(a), op.subtract(op.exp(x), self.c(1))), x)
        elif name == "softsign":
            e = op.divide(x, op.add(op.abs(x), self.c(1)))
        else:  # softplus
            e = op.log(op.add(op.exp(x), self.c(1)))
        return self.emit(e)

    def initial(self, expr):
        """Per-direction initial state [batch, hidden] (zeros when omitted)."""
        op = self.relax.op
        if expr is None:
            zero = self.emit(op.zeros((self.batch, self.hidden), self.dtype))
            return [zero] * self.nd
        if self.layout:
            expr = self.emit(op.permute_dims(expr, [1, 0, 2]))
        return [self.direction_slice(expr, d) for d in range(self.nd)]

    def weights(self, d):
        """(W_d^T [input, G*H], R_d^T [H, G*H], Wb_d [G*H] or None, Rb_d [G*H] or None)."""
        op = self.relax.op
        wt = self.emit(op.permute_dims(self.direction_slice(self.w, d), [1, 0]))
        rt = self.emit(op.permute_dims(self.direction_slice(self.r, d), [1, 0]))
        if self.b is None:
            return wt, rt, None, None
        bd = self.direction_slice(self.b, d)
        wb, rb = self.split(bd, 2, 0)
        return wt, rt, wb, rb

    def masks(self):
        """Per time step a [batch, 1] bool mask (t < sequence_lens[b]), or None when every entry has
        the full length (sequence_lens omitted, or a constant equal to the sequence length)."""
        op = self.relax.op
        if self.seq_lens is None:
            return None
        value = self.ctx.const(self.seq_lens)
        if value is not None and np.all(value.reshape(-1) >= self.seq):
            return None
        lens = self.emit(op.expand_dims(self.emit(op.astype(self.seq_lens, "int64")), -1))
        return [self.emit(op.less(self.relax.const(np.array(t, dtype=np.int64), "int64"), lens))
                for t in range(self.seq)]

    def run(self, step, states: list):
        """Unroll `step(d, x_proj_t, *states) -> (h, *states)` for every direction. `states` is a
        list of per-direction initial state lists. Returns (Y [seq, nd, batch, H], finals: one
        [nd, batch, H] tensor per state)."""
        op = self.relax.op
        masks = self.masks()
        ys, finals = [], []
        for d in range(self.nd):
            wt, rt, wb, rb = self.weights(d)
            proj = self.emit(op.matmul(self.x, wt))  # [seq, batch, G*H]
            if wb is not None:
                proj = self.emit(op.add(proj, wb))
            steps = self.split(proj, self.seq, 0) if self.seq > 1 else [proj]
            steps = [self.emit(op.squeeze(s, axis=[0])) for s in steps]
            reverse = self.direction == "reverse" or d == 1
            order = range(self.seq - 1, -1, -1) if reverse else range(self.seq)
            cur = [s[d] for s in states]
            out = [None] * self.seq
            for t in order:
                h, *new = step(d, steps[t], rt, rb, *cur)
                if masks is not None:
                    m = masks[t]
                    out[t] = self.emit(op.where(m, h, self.c(0)))
                    new = [self.emit(op.where(m, n, c)) for n, c in zip(new, cur)]
                else:
                    out[t] = h
                cur = new
            ys.append(self.emit(op.stack(out, axis=0)))  # [seq, batch, H]
            finals.append(cur)
        y = self.emit(op.stack(ys, axis=1))  # [seq, nd, batch, H]
        outs = [self.emit(op.stack([f[k] for f in finals], axis=0)) for k in range(len(states))]
        if self.layout:
            y = self.emit(op.permute_dims(y, [2, 0, 1, 3]))
            outs = [self.emit(op.permute_dims(o, [1, 0, 2])) for o in outs]
        return y, outs

    def result(self, values: list):
        n = len(self.ctx.node.output)
        if n == 1:
            return values[0]
        return self.relax.Tuple(values[:n])


def _recurrent(ctx, rnn: _Rnn, hr_plus_rb, x_t, rt, rb, h):
    """x_t's projection is already biased by Wb; add H @ R^T (+ Rb)."""
    op = rnn.relax.op
    hr = rnn.emit(op.matmul(h, rt))
    if rb is not None:
        hr = rnn.emit(op.add(hr, rb))
    return rnn.emit(op.add(x_t, hr)) if hr_plus_rb else hr


@converter("LSTM", since=1, note="missing from TVM; unrolled over the static sequence length")
def lstm(ctx, inputs, attrs):
    rnn = _Rnn(ctx, inputs, attrs, "LSTM", 4, ("sigmoid", "tanh", "tanh"))
    from tvm import relax

    op_ = relax.op
    get = lambda i: inputs[i] if len(inputs) > i else None
    c0, p = get(6), get(7)
    input_forget = bool(attrs.get("input_forget", 0))
    peeps = []
    for d in range(rnn.nd):
        peeps.append(rnn.split(rnn.direction_slice(p, d), 3, 0) if p is not None else None)

    def step(d, x_t, rt, rb, h, c):
        gates = _recurrent(ctx, rnn, True, x_t, rt, rb, h)
        gi, go, gf, gc = rnn.split(gates, 4, -1)
        pk = peeps[d]
        if pk is not None:
            gi = rnn.emit(op_.add(gi, op_.multiply(pk[0], c)))
            gf = rnn.emit(op_.add(gf, op_.multiply(pk[2], c)))
        i = rnn.act(d, 0, gi)
        f = rnn.emit(op_.subtract(rnn.c(1), i)) if input_forget else rnn.act(d, 0, gf)
        cc = rnn.act(d, 1, gc)
        c_new = rnn.emit(op_.add(op_.multiply(f, c), op_.multiply(i, cc)))
        if pk is not None:
            go = rnn.emit(op_.add(go, op_.multiply(pk[1], c_new)))
        o = rnn.act(d, 0, go)
        h_new = rnn.emit(op_.multiply(o, rnn.act(d, 2, c_new)))
        return h_new, h_new, c_new

    y, (yh, yc) = rnn.run(step, [rnn.initial(rnn.h0), rnn.initial(c0)])
    return rnn.result([y, yh, yc])


@converter("GRU", since=1, note="missing from TVM; unrolled over the static sequence length")
def gru(ctx, inputs, attrs):
    from tvm import relax

    op_ = relax.op
    rnn = _Rnn(ctx, inputs, attrs, "GRU", 3, ("sigmoid", "tanh"))
    lbr = bool(attrs.get("linear_before_reset", 0))
    H = rnn.hidden
    parts: dict = {}  # direction -> (R_zr^T, R_h^T, Rb_zr, Rb_h), sliced once

    def recurrent_parts(d, rt, rb):
        if d not in parts:
            sl = lambda x, axis, lo, hi: rnn.emit(op_.strided_slice(x, axes=[axis], begin=[lo], end=[hi]))
            parts[d] = (sl(rt, 1, 0, 2 * H), sl(rt, 1, 2 * H, 3 * H),
                        sl(rb, 0, 0, 2 * H) if rb is not None else None, sl(rb, 0, 2 * H, 3 * H) if rb is not None else None)
        return parts[d]

    def step(d, x_t, rt, rb, h):
        xz, xr, xh = rnn.split(x_t, 3, -1)
        if lbr:
            hz, hr, hh = rnn.split(_recurrent(ctx, rnn, False, x_t, rt, rb, h), 3, -1)
            z = rnn.act(d, 0, rnn.emit(op_.add(xz, hz)))
            r = rnn.act(d, 0, rnn.emit(op_.add(xr, hr)))
            hbar = rnn.act(d, 1, rnn.emit(op_.add(xh, op_.multiply(r, hh))))
        else:
            rt_zr, rt_h, rb_zr, rb_h = recurrent_parts(d, rt, rb)
            hz, hr = rnn.split(_recurrent(ctx, rnn, False, x_t, rt_zr, rb_zr, h), 2, -1)
            z = rnn.act(d, 0, rnn.emit(op_.add(xz, hz)))
            r = rnn.act(d, 0, rnn.emit(op_.add(xr, hr)))
            rh = _recurrent(ctx, rnn, False, x_t, rt_h, rb_h, rnn.emit(op_.multiply(r, h)))
            hbar = rnn.act(d, 1, rnn.emit(op_.add(xh, rh)))
        h_new = rnn.emit(op_.add(op_.multiply(op_.subtract(rnn.c(1), z), hbar), op_.multiply(z, h)))
        return h_new, h_new

    y, (yh,) = rnn.run(step, [rnn.initial(rnn.h0)])
    return rnn.result([y, yh])


@converter("RNN", since=1, note="missing from TVM; unrolled over the static sequence length")
def rnn_(ctx, inputs, attrs):
    rnn = _Rnn(ctx, inputs, attrs, "RNN", 1, ("tanh",))

    def step(d, x_t, rt, rb, h):
        h_new = rnn.act(d, 0, _recurrent(ctx, rnn, True, x_t, rt, rb, h))
        return h_new, h_new

    y, (yh,) = rnn.run(step, [rnn.initial(rnn.h0)])
    return rnn.result([y, yh])
