"""Sequence operators where TVM's converter falls short.

- SequenceInsert (opset 11+): `position` given as a one-element tensor (TVM takes only a 0-d one),
  and inserting into a sequence that is a model input (a tuple parameter).
"""

from __future__ import annotations

from ..registry import converter

CASES = r"^test_sequence_insert"
KNOWN_FAILURES: dict[str, str] = {}


def _items(ctx, seq):
    from tvm import relax

    if isinstance(seq, relax.Tuple):
        return list(seq.fields)
    n = len(seq.ty.fields)
    return [ctx.bb.emit(relax.TupleGetItem(seq, i)) for i in range(n)]


@converter("SequenceInsert", since=11, note="a position of shape (1,), as ONNX Runtime accepts")
def sequence_insert(ctx, inputs, attrs):
    from tvm import relax

    items = _items(ctx, inputs[0])
    position = len(items)
    if len(inputs) > 2 and inputs[2] is not None:
        value = ctx.const(inputs[2])
        if value is None:
            raise ValueError("SequenceInsert: position must be a constant")
        position = int(value.reshape(-1)[0])
        if position < 0:
            position += len(items)
    if not 0 <= position <= len(items):
        raise ValueError(f"SequenceInsert: position {position} is outside a sequence of {len(items)}")
    items.insert(position, inputs[1])
    return relax.Tuple(items)
