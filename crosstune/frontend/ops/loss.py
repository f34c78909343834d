"""Loss operators TVM's Relax ONNX frontend lacks: NegativeLogLikelihoodLoss (opset 12+) and
SoftmaxCrossEntropyLoss (opset 12+), with every attribute of the spec.

Both take scores of shape (N, C, d1, ..., dk) and integer targets of shape (N, d1, ..., dk), an
optional per-class `weight` of shape (C,), `ignore_index` (any integer, negative ones included:
targets equal to it add nothing to the loss nor to the mean's denominator) and `reduction`
none / sum / mean. The mean with weights or an ignore_index divides by the sum of the weights of
the targets that are not ignored (1 each when there are no weights), as the spec says.
SoftmaxCrossEntropyLoss computes log_softmax over axis 1 and returns it as its optional second
output, `log_prob`.

Everything is Relax ops (gather_elements, take, where, sum): compiled, any rank, any N and C.
An ignored target may be out of [0, C) (e.g. -100, or C itself): the index used for the gathers is
replaced by 0 where the target is ignored and clamped to [0, C-1] everywhere, so no gather ever
reads out of bounds. The `_expanded` test variants of SoftmaxCrossEntropyLoss expand into
NegativeLogLikelihoodLoss, so they go through this converter too.
"""

from __future__ import annotations

from ..registry import converter

CASES = r"^test_(sce|nllloss)_"
KNOWN_FAILURES: dict[str, str] = {}


def _str(value, default: str) -> str:
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


def _nll(ctx, scores, target, weight, reduction: str, ignore_index: int | None):
    """The NegativeLogLikelihoodLoss of `scores` (N, C, ...) against `target` (N, ...)."""
    from tvm import relax

    op, bb = relax.op, ctx.bb
    dtype = ctx.dtype(scores)
    tdtype = ctx.dtype(target)
    if 0 <= scores.ty.ndim < 2:  # -1: unknown rank
        raise ValueError(f"{ctx.node.op_type}: input must have rank >= 2, got rank {scores.ty.ndim}")

    # The number of classes, as a scalar of the target's dtype (static when the shape is).
    shape = ctx.shape(scores)
    if shape is not None:
        num_classes = relax.const(shape[1], tdtype)
    else:
        dims = bb.emit(op.shape_to_tensor(op.shape_of(scores)))
        num_classes = bb.emit(op.astype(op.take(dims, relax.const(1, "int64"), axis=0, mode="clip"), tdtype))

    # Which targets count, and an index that is always in [0, C) for the gathers.
    valid = None
    index = target
    if ignore_index is not None:
        valid = bb.emit(op.not_equal(target, relax.const(ignore_index, tdtype)))
        index = bb.emit(op.where(valid, target, relax.const(0, tdtype)))
    index = bb.emit(op.maximum(index, relax.const(0, tdtype)))
    index = bb.emit(op.minimum(index, op.subtract(num_classes, relax.const(1, tdtype))))

    picked = bb.emit(op.gather_elements(scores, op.expand_dims(index, 1), axis=1))
    loss = bb.emit(op.negative(op.squeeze(picked, axis=[1])))  # (N, d1, ..., dk)

    # Per-target weights: weight[target], 0 where ignored (None: all ones, nothing ignored).
    w = None
    if weight is not None:
        w = bb.emit(op.take(weight, index, axis=0, mode="clip"))
        if valid is not None:
            w = bb.emit(op.where(valid, w, relax.const(0, dtype)))
    elif valid is not None:
        w = bb.emit(op.astype(valid, dtype))
    if w is not None:
        loss = bb.emit(op.multiply(loss, w))

    if reduction == "none":
        return loss
    if reduction == "sum":
        return bb.emit(op.sum(loss))
    if reduction == "mean":
        if w is None:
            return bb.emit(op.mean(loss))
        return bb.emit(op.divide(op.sum(loss), op.sum(w)))
    raise ValueError(f"{ctx.node.op_type}: unknown reduction {reduction!r}")


def _ignore_index(attrs):
    value = attrs.get("ignore_index")
    return None if value is None else int(value)


@converter("NegativeLogLikelihoodLoss", since=12, note="missing from TVM")
def negative_log_likelihood_loss(ctx, inputs, attrs):
    scores, target = inputs[0], inputs[1]
    weight = inputs[2] if len(inputs) > 2 else None
    return _nll(ctx, scores, target, weight, _str(attrs.get("reduction"), "mean"), _ignore_index(attrs))


@converter("SoftmaxCrossEntropyLoss", since=12, note="missing from TVM")
def softmax_cross_entropy_loss(ctx, inputs, attrs):
    from tvm import relax

    scores, target = inputs[0], inputs[1]
    weight = inputs[2] if len(inputs) > 2 else None
    log_prob = ctx.bb.emit(relax.op.nn.log_softmax(scores, axis=1))
    loss = _nll(ctx, log_prob, target, weight, _str(attrs.get("reduction"), "mean"), _ignore_index(attrs))
    if len(ctx.node.output) > 1:
        return relax.Tuple([loss, log_prob])
    return loss
