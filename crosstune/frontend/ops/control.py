"""Control flow with a trip count known at import, unrolled: each iteration converts the body
subgraph once (`ctx.convert_graph`), so the result is straight-line Relax code.

- Loop (opset 1+): the trip count M and the initial condition must be constants (the trip count of
  an exported `for` loop usually folds to one; otherwise bind it with --bind); the condition the
  body computes must fold to a constant too (a `while` loop over run-time values cannot be
  unrolled: ValueError). Without M the loop runs until the body's constant condition turns false
  (at most MAX_UNROLL iterations). Loop-carried values may change shape from one iteration to the
  next and may be sequences; scan outputs are stacked along a new leading axis.
- Scan (opset 8: batch axis, sequence_lens, directions; 9+: scan_input_axes/directions,
  scan_output_axes/directions, negative axes from 11): the scan length is the scan inputs' static
  length along their scan axis. Opset 8's sequence_lens must be a constant; past an entry's length
  its scan outputs are zeros (as ONNX Runtime writes them).
- SequenceMap (opset 17+): the body once per element of the first input sequence; other inputs
  that are sequences give their element of the same index, tensors are passed whole.
TVM has no converter for any of them. Until the importer emits the items of sequence model inputs,
`_emit_sequence_items` does it before each body (TVM's binary converters fail on a bare
TupleGetItem, e.g. Add on a SequenceAt of a model input in a SequenceMap's expanded Loop body).
"""

from __future__ import annotations

import numpy as np

from ..importer import const
from ..registry import converter

CASES = r"^test_(loop|scan|sequence_map|range_.*_expanded)"
KNOWN_FAILURES: dict[str, str] = {
    "test_range_bfloat16_type_positive_delta_expanded": "the trip count is computed in bfloat16, which the ONNX-level "
                                                        "folding skips, so it is no constant (ONNX Runtime fails it too)",
}

MAX_UNROLL = 4096  # iterations of a loop whose end a constant condition decides


def _is_seq(expr) -> bool:
    from tvm import relax

    return isinstance(expr, relax.Tuple) or isinstance(getattr(expr, "ty", None), relax.TupleType)


def _items(ctx, seq) -> list:
    from tvm import relax

    if isinstance(seq, relax.Tuple):
        return [ctx.bb.emit(f) if isinstance(f, relax.TupleGetItem) else f for f in seq.fields]
    return [ctx.bb.emit(relax.TupleGetItem(seq, i)) for i in range(len(seq.ty.fields))]


def _tensor(ctx, expr):
    """A body output as a value: a shape value (what TVM's Shape gives) becomes its int64 tensor,
    inside sequences too."""
    from tvm import relax

    if isinstance(expr, relax.Tuple):
        return relax.Tuple([_tensor(ctx, f) for f in expr.fields])
    if isinstance(getattr(expr, "ty", None), relax.ShapeType):
        return ctx.bb.normalize(relax.op.shape_to_tensor(expr))
    return expr


def _emit_sequence_items(ctx) -> None:
    """Emit the items of sequence model inputs (a relax.Tuple of bare TupleGetItem): TVM's binary
    converters take any input that is not a Call or a Var for a constant (`x.value`), so an Add on
    a SequenceAt of a model input fails inside a body. Emitting them makes each item a Var."""
    from tvm import relax

    nodes = ctx.importer._nodes
    for name, value in list(nodes.items()):
        if isinstance(value, relax.Tuple) and any(isinstance(f, relax.TupleGetItem) for f in value.fields):
            nodes[name] = relax.Tuple([ctx.bb.emit(f) if isinstance(f, relax.TupleGetItem) else f
                                       for f in value.fields])


def _body(ctx, graph, values) -> list:
    _emit_sequence_items(ctx)
    return [_tensor(ctx, v) for v in ctx.convert_graph(graph, values)]


def _result(ctx, values: list):
    from tvm import relax

    n = len(ctx.node.output)
    if n == 1:
        return values[0]
    return relax.Tuple(list(values[:n]))


def _scalar(ctx, expr, what: str, op: str):
    value = ctx.const(expr)
    if value is None:
        raise ValueError(f"{op}: {what} must be a constant to unroll the loop (it is computed at run time; "
                         "bind the model input it comes from with --bind)")
    return np.asarray(value).reshape(-1)[0]


def _stack(ctx, parts: list, axis: int):
    from tvm import relax

    return ctx.bb.emit(relax.op.stack(parts, axis=axis))


def _empty_like_stack(ctx, example, axis: int = 0):
    """A tensor of length 0 along `axis` shaped like a stack of `example`s."""
    from tvm import relax

    shape = ctx.shape(example)
    if shape is None:
        raise ValueError(f"{ctx.node.op_type}: a scan output of zero iterations needs a static element shape")
    shape = list(shape)
    shape.insert(axis, 0)
    return ctx.bb.emit(relax.op.zeros(shape, ctx.dtype(example)))


@converter("Loop", since=1, note="missing from TVM; unrolled for a constant trip count")
def loop(ctx, inputs, attrs):
    body = attrs["body"]
    m = inputs[0] if len(inputs) > 0 else None
    cond = inputs[1] if len(inputs) > 1 else None
    carried = list(inputs[2:])
    n_scan = len(body.output) - 1 - len(carried)
    if n_scan < 0:
        raise ValueError(f"Loop: the body has {len(body.output)} outputs for {len(carried)} loop-carried values")
    if m is None and cond is None:
        raise ValueError("Loop: neither a trip count nor a condition: an infinite loop")
    trip = None
    if m is not None:
        trip = int(_scalar(ctx, m, "the trip count M", "Loop"))
    running = True if cond is None else bool(_scalar(ctx, cond, "the initial condition", "Loop"))
    limit = min(trip, MAX_UNROLL) if trip is not None else MAX_UNROLL
    scans: list[list] = [[] for _ in range(n_scan)]
    cond_in = const(np.array(True))
    i = 0
    while running and i < limit:
        outs = _body(ctx, body, [const(np.array(i, dtype=np.int64)), cond_in, *carried])
        carried = outs[1:1 + len(carried)]
        for k, value in enumerate(outs[1 + len(carried):]):
            scans[k].append(value)
        i += 1
        value = ctx.const(outs[0])
        if value is None:
            if trip is not None and i >= trip:
                break  # the last iteration's condition decides nothing
            raise ValueError("Loop: the body computes its loop condition at run time; crosstune unrolls "
                             "loops and needs a condition that is constant (or passed through unchanged)")
        running = bool(np.asarray(value).reshape(-1)[0])
        cond_in = const(np.asarray(value).astype(bool).reshape(np.asarray(value).shape))
    if running and i >= MAX_UNROLL and (trip is None or trip > MAX_UNROLL):
        raise ValueError(f"Loop: still running after {MAX_UNROLL} iterations, the most crosstune unrolls")
    stacked = []
    for k in range(n_scan):
        if scans[k]:
            stacked.append(_stack(ctx, scans[k], 0))
        else:  # zero iterations: convert the body once only to learn the scan outputs' shapes
            example = _body(ctx, body, [const(np.array(0, dtype=np.int64)), const(np.array(True)), *inputs[2:]])
            stacked.append(_empty_like_stack(ctx, example[1 + len(carried) + k]))
    return _result(ctx, [*carried, *stacked])


def _slices(ctx, x, axis: int, length: int) -> list:
    """x split into `length` slices along `axis`, that axis removed."""
    from tvm import relax

    op = relax.op
    if length == 1:
        return [ctx.bb.emit(op.squeeze(x, axis=[axis]))]
    parts = ctx.bb.emit(op.split(x, length, axis=axis))
    return [ctx.bb.emit(op.squeeze(ctx.bb.emit(relax.TupleGetItem(parts, i)), axis=[axis])) for i in range(length)]


def _scan(ctx, body, states: list, xs: list, in_axes, in_dirs, length: int | None = None):
    """One scan (opset 9 semantics, on tensors without a batch axis): (final states, per scan output
    the list of its per-iteration values in iteration order)."""
    if not xs:
        raise ValueError("Scan: no scan inputs")
    lengths = []
    for x, axis in zip(xs, in_axes):
        shape = ctx.shape(x)
        if shape is None:
            raise ValueError("Scan: scan inputs need static shapes to unroll the scan")
        lengths.append(shape[axis])
    if len(set(lengths)) != 1:
        raise ValueError(f"Scan: scan inputs of different lengths {lengths}")
    full = lengths[0]
    steps = full if length is None else length
    sliced = [_slices(ctx, x, axis, full) if full else [] for x, axis in zip(xs, in_axes)]
    outs_per_iter = []
    for t in range(steps):
        values = [parts[steps - 1 - t] if rev else parts[t] for parts, rev in zip(sliced, in_dirs)]
        outs = _body(ctx, body, [*states, *values])
        states = outs[:len(states)]
        outs_per_iter.append(outs[len(states):])
    n_out = len(body.output) - len(states)
    return states, [[o[k] for o in outs_per_iter] for k in range(n_out)]


def _axes(attrs, name, n, ranks=None):
    axes = list(attrs.get(name, ())) or [0] * n
    if len(axes) != n:
        raise ValueError(f"Scan: {name} has {len(axes)} entries for {n} values")
    if ranks is not None:
        axes = [a + r if a < 0 else a for a, r in zip(axes, ranks)]
    return [int(a) for a in axes]


@converter("Scan", since=9, note="missing from TVM; unrolled over the static scan length")
def scan(ctx, inputs, attrs):
    body = attrs["body"]
    n_in = int(attrs["num_scan_inputs"])
    states, xs = list(inputs[:len(inputs) - n_in]), list(inputs[len(inputs) - n_in:])
    ranks = [len(ctx.shape(x) or ()) for x in xs]
    in_axes = _axes(attrs, "scan_input_axes", n_in, ranks)
    in_dirs = _axes(attrs, "scan_input_directions", n_in)
    finals, scans = _scan(ctx, body, states, xs, in_axes, in_dirs)
    n_out = len(scans)
    out_dirs = _axes(attrs, "scan_output_directions", n_out)
    raw_axes = _axes(attrs, "scan_output_axes", n_out)
    stacked = []
    for k, parts in enumerate(scans):
        if not parts:
            raise ValueError("Scan: a scan of length 0 is not supported")
        rank = len(ctx.shape(parts[0]) or ()) + 1
        axis = raw_axes[k] + rank if raw_axes[k] < 0 else raw_axes[k]
        stacked.append(_stack(ctx, parts[::-1] if out_dirs[k] else parts, axis))
    return _result(ctx, [*finals, *stacked])


@converter("Scan", since=8, until=8, note="missing from TVM; batch axis, sequence_lens; unrolled")
def scan8(ctx, inputs, attrs):
    from tvm import relax

    op = relax.op
    body = attrs["body"]
    n_in = int(attrs["num_scan_inputs"])
    seq_lens = inputs[0]
    rest = list(inputs[1:])
    states, xs = rest[:len(rest) - n_in], rest[len(rest) - n_in:]
    dirs = _axes(attrs, "directions", n_in)
    shape = ctx.shape(xs[0])
    if shape is None or len(shape) < 2:
        raise ValueError("Scan: scan inputs need static [batch, sequence, ...] shapes")
    batch, full = shape[0], shape[1]
    lens = [full] * batch
    if seq_lens is not None:
        value = ctx.const(seq_lens)
        if value is None:
            raise ValueError("Scan: sequence_lens must be a constant (bind it with --bind)")
        lens = [int(v) for v in value.reshape(-1)]
    finals, outs = [], []
    for b in range(batch):
        def pick(x, b=b):
            return ctx.bb.emit(op.squeeze(ctx.bb.emit(op.strided_slice(x, axes=[0], begin=[b], end=[b + 1])), axis=[0]))

        bx = [pick(x) for x in xs]
        if lens[b] < full:
            bx = [ctx.bb.emit(op.strided_slice(x, axes=[0], begin=[0], end=[lens[b]])) for x in bx]
        fin, scans = _scan(ctx, body, [pick(s) for s in states], bx, [0] * n_in, dirs)
        stacked = []
        for parts in scans:
            if parts:
                y = _stack(ctx, parts, 0)
            else:
                y = None
            if lens[b] < full:
                example = parts[0] if parts else None
                if example is None:
                    raise ValueError("Scan: a sequence of length 0 is not supported")
                pad_shape = [full - lens[b], *ctx.shape(example)]
                y = ctx.bb.emit(op.concat([y, ctx.bb.emit(op.zeros(pad_shape, ctx.dtype(example)))], axis=0))
            stacked.append(y)
        finals.append(fin)
        outs.append(stacked)
    final_states = [_stack(ctx, [f[k] for f in finals], 0) for k in range(len(states))]
    scan_outs = [_stack(ctx, [o[k] for o in outs], 0) for k in range(len(outs[0]) if outs else 0)]
    return _result(ctx, [*final_states, *scan_outs])


@converter("SequenceMap", since=17, note="missing from TVM; the body once per element")
def sequence_map(ctx, inputs, attrs):
    from tvm import relax

    body = attrs["body"]
    if not inputs or not _is_seq(inputs[0]):
        raise ValueError("SequenceMap: the first input must be a sequence")
    items = [_items(ctx, x) if _is_seq(x) else None for x in inputs]
    n = len(items[0])
    for x in items[1:]:
        if x is not None and len(x) != n:
            raise ValueError(f"SequenceMap: input sequences of different lengths ({n} and {len(x)})")
    outs: list[list] = [[] for _ in body.output]
    for i in range(n):
        values = [it[i] if it is not None else x for it, x in zip(items, inputs)]
        for k, value in enumerate(_body(ctx, body, values)):
            outs[k].append(value)
    return _result(ctx, [relax.Tuple(o) for o in outs])
