"""Classic-ML operators: the ai.onnx.ml domain, and TfIdfVectorizer (all missing in TVM).

- Binarizer (ai.onnx.ml 1): x > threshold, in x's type.
- ArrayFeatureExtractor (ai.onnx.ml 1): `take` on the last axis with the flattened indices (a 1-D
  input gives one row, as ONNX Runtime does).
- LabelEncoder (ai.onnx.ml 2+): numeric keys and values (int64s, floats, or key/value tensors) as
  a comparison against every key; string keys or values cannot be Relax tensors.
- TreeEnsemble (ai.onnx.ml 5): the trees are static, so they compile to tensor ops: every node's
  comparison at once (a gather of its feature, all seven modes, set membership, missing values
  tracking true), each leaf's path as an AND of its nodes' outcomes, and the aggregation (SUM,
  AVERAGE: a matmul; MIN, MAX: a masked reduction) per target; post_transform NONE, SOFTMAX,
  LOGISTIC, SOFTMAX_ZERO.
- TfIdfVectorizer (opset 9): integer input ([C] or [B, C]); every n-gram window (skips included,
  unigrams once) is a constant gather, matched against the pool's n-grams; TF, IDF and TFIDF
  weighting. String pools cannot be Relax tensors.
"""

from __future__ import annotations

import numpy as np

from ..registry import converter

ML = "ai.onnx.ml"


def _arr(value) -> np.ndarray:
    """An attribute as numpy: a TensorProto, a tuple or a scalar."""
    from onnx import TensorProto, numpy_helper

    if isinstance(value, TensorProto):
        return numpy_helper.to_array(value)
    return np.asarray(value)


@converter("Binarizer", since=1, domain=ML, note="missing in TVM")
def binarizer(ctx, inputs, attrs):
    from tvm import relax

    x = inputs[0]
    dtype = str(x.ty.dtype)
    thr = relax.const(float(attrs.get("threshold", 0.0)), dtype)
    return relax.op.astype(relax.op.greater(x, thr), dtype)


@converter("ArrayFeatureExtractor", since=1, domain=ML, note="missing in TVM")
def array_feature_extractor(ctx, inputs, attrs):
    from tvm import relax

    bb = ctx.bb
    x, idx = inputs
    idx = bb.emit(relax.op.reshape(idx, [-1]))
    if x.ty.ndim == 1:
        x = bb.emit(relax.op.reshape(x, [1, -1]))
    return relax.op.take(x, idx, axis=x.ty.ndim - 1)


# --------------------------------------------------------------------------------- LabelEncoder
def _label_table(attrs, kind: str):
    """keys or values, and their numpy dtype, from the *_int64s / *_floats / *_tensor attributes."""
    if f"{kind}_tensor" in attrs:
        return _arr(attrs[f"{kind}_tensor"]).reshape(-1)
    if f"{kind}_int64s" in attrs:
        return np.asarray(attrs[f"{kind}_int64s"], dtype=np.int64)
    if f"{kind}_floats" in attrs:
        return np.asarray(attrs[f"{kind}_floats"], dtype=np.float32)
    if f"{kind}_strings" in attrs:
        raise ValueError("LabelEncoder with string keys or values: string tensors have no Relax dtype")
    raise ValueError(f"LabelEncoder has no {kind}")


@converter("LabelEncoder", since=2, domain=ML, note="missing in TVM (numeric keys and values)")
def label_encoder(ctx, inputs, attrs):
    from tvm import relax

    bb = ctx.bb
    x = inputs[0]
    keys, values = _label_table(attrs, "keys"), _label_table(attrs, "values")
    if keys.dtype.kind in "OUS" or values.dtype.kind in "OUS":
        raise ValueError("LabelEncoder with string keys or values: string tensors have no Relax dtype")
    if "default_tensor" in attrs:
        default = _arr(attrs["default_tensor"]).reshape(-1)[0]
    elif values.dtype.kind == "f":
        default = attrs.get("default_float", -0.0)
    else:
        default = attrs.get("default_int64", -1)
    vdtype = str(values.dtype)
    xdtype = str(x.ty.dtype)
    k = relax.const(keys.astype(xdtype), xdtype)
    eq = relax.op.equal(relax.op.expand_dims(x, -1), k)  # a NaN key matches nothing (as ONNX's reference)
    hit = bb.emit(relax.op.astype(eq, "int32"))
    found = relax.op.greater(relax.op.max(hit, axis=-1), relax.const(0, "int32"))
    pos = relax.op.argmax(hit, axis=-1)
    picked = relax.op.take(relax.const(values, vdtype), pos, axis=0)
    return relax.op.where(found, picked, relax.const(np.asarray(default, dtype=values.dtype), vdtype))


# --------------------------------------------------------------------------------- TreeEnsemble
def _tree_leaves(attrs):
    """[(leaf index, [(node, outcome)...])] for every tree, and the member sets of MEMBER nodes
    (in the order ONNX's reference consumes membership_values: depth first, true branch first)."""
    true_ids = list(attrs["nodes_truenodeids"])
    false_ids = list(attrs["nodes_falsenodeids"])
    true_leaf = list(attrs["nodes_trueleafs"])
    false_leaf = list(attrs["nodes_falseleafs"])
    modes = _arr(attrs["nodes_modes"]).reshape(-1).astype(int)
    members = _arr(attrs["membership_values"]).reshape(-1) if "membership_values" in attrs else np.zeros(0)
    member_iter = iter(members.tolist())
    sets: dict[int, list[float]] = {}
    trees = []

    def walk(node, path, out):
        if modes[node] == 6 and node not in sets:
            s = []
            for v in member_iter:
                if np.isnan(v):
                    break
                s.append(v)
            sets[node] = s
        for outcome, nxt, leaf in ((True, true_ids[node], true_leaf[node]), (False, false_ids[node], false_leaf[node])):
            p = path + [(node, outcome)]
            if leaf:
                out.append((nxt, p))
            else:
                walk(nxt, p, out)

    for root in attrs["tree_roots"]:
        out = []
        if true_leaf[root] and false_leaf[root] and true_ids[root] == false_ids[root]:
            out.append((root, []))  # a tree that is one leaf (ONNX's reference indexes it by root)
        else:
            walk(root, [], out)
        trees.append(out)
    return trees, sets


@converter("TreeEnsemble", since=5, domain=ML, note="missing in TVM")
def tree_ensemble(ctx, inputs, attrs):
    from tvm import relax

    bb = ctx.bb
    x = inputs[0]
    xdtype = str(x.ty.dtype)
    splits = _arr(attrs["nodes_splits"]).reshape(-1)
    cdtype = "float64" if "float64" in (xdtype, str(splits.dtype)) else "float32"
    features = np.asarray(attrs["nodes_featureids"], dtype=np.int64)
    modes = _arr(attrs["nodes_modes"]).reshape(-1).astype(int)
    tracks = np.asarray(attrs.get("nodes_missing_value_tracks_true", [0] * len(features)), dtype=bool)
    weights = _arr(attrs["leaf_weights"]).reshape(-1).astype(np.float64)
    targets = np.asarray(attrs["leaf_targetids"], dtype=np.int64)
    n_targets = int(attrs["n_targets"])
    agg = int(attrs.get("aggregate_function", 1))
    post = int(attrs.get("post_transform", 0))
    trees, sets = _tree_leaves(attrs)
    if x.ty.ndim != 2:
        raise ValueError("TreeEnsemble wants a [N, F] input")

    # every node's outcome: [N, nodes]
    xc = x if xdtype == cdtype else bb.emit(relax.op.astype(x, cdtype))
    xv = bb.emit(relax.op.take(xc, relax.const(features, "int64"), axis=1))
    s = relax.const(splits.astype(cdtype), cdtype)
    ops = [relax.op.less_equal, relax.op.less, relax.op.greater_equal, relax.op.greater,
           relax.op.equal, lambda a, b: relax.op.logical_not(relax.op.equal(a, b))]  # NaN != v is true
    cond = None
    for mode in sorted(set(modes.tolist())):
        if mode == 6:
            width = max([len(v) for v in sets.values()] + [1])
            table = np.full((len(features), width), np.nan)
            for node, vals in sets.items():
                table[node, :len(vals)] = vals
            c = relax.op.equal(relax.op.expand_dims(xv, -1), relax.const(table.astype(cdtype), cdtype))
            c = relax.op.greater(relax.op.max(relax.op.astype(c, "int32"), axis=-1), relax.const(0, "int32"))
        elif 0 <= mode <= 5:
            c = ops[mode](xv, s)
        else:
            raise ValueError(f"TreeEnsemble: unknown node mode {mode}")
        sel = relax.const(modes == mode, "bool")
        cond = c if cond is None else relax.op.where(sel, c, cond)
    if tracks.any():
        cond = relax.op.logical_or(cond, relax.op.logical_and(relax.op.isnan(xv), relax.const(tracks, "bool")))
    # a padding column that is always "true", for paths shorter than the deepest
    cond = bb.emit(relax.op.concat([relax.op.astype(cond, "int32"),
                                    relax.op.ones([int(x.ty.shape.values[0]), 1], "int32")], axis=1))
    pad = len(features)
    leaves = [leaf for tree in trees for leaf in tree]
    depth = max([len(p) for _, p in leaves] + [1])
    nodes_idx = np.full((len(leaves), depth), pad, dtype=np.int64)
    want = np.ones((len(leaves), depth), dtype=np.int32)
    for i, (_, path) in enumerate(leaves):
        for j, (node, outcome) in enumerate(path):
            nodes_idx[i, j], want[i, j] = node, int(outcome)
    got = bb.emit(relax.op.take(cond, relax.const(nodes_idx.reshape(-1), "int64"), axis=1))
    got = bb.emit(relax.op.reshape(got, [-1, len(leaves), depth]))
    ok = relax.op.astype(relax.op.equal(got, relax.const(want, "int32")), "int32")
    reach = bb.emit(relax.op.min(ok, axis=-1))  # [N, leaves]: 1 where the sample ends there
    leaf_ids = np.array([leaf for leaf, _ in leaves], dtype=np.int64)
    w, t = weights[leaf_ids], targets[leaf_ids]
    onehot = (t[:, None] == np.arange(n_targets)[None, :])
    if agg in (0, 1):
        m = onehot * w[:, None] / (len(trees) if agg == 0 else 1)
        y = relax.op.matmul(relax.op.astype(reach, cdtype), relax.const(m.astype(cdtype), cdtype))
    elif agg in (2, 3):
        info = np.finfo(np.dtype(xdtype))
        fill = info.max if agg == 2 else info.min
        table = np.where(onehot, w[:, None], fill).astype(cdtype)  # [leaves, targets]
        hit = relax.op.expand_dims(relax.op.greater(reach, relax.const(0, "int32")), -1)
        vals = relax.op.where(hit, relax.const(table, cdtype), relax.const(fill, cdtype))
        y = (relax.op.min if agg == 2 else relax.op.max)(vals, axis=1)
    else:
        raise ValueError(f"TreeEnsemble: unknown aggregate_function {agg}")
    y = bb.emit(y)
    if post == 1:
        y = bb.emit(relax.op.nn.softmax(y, axis=-1))
    elif post == 2:
        y = bb.emit(relax.op.sigmoid(y))
    elif post == 3:  # softmax over the non-zero scores, zeros stay zero
        nz = relax.op.not_equal(y, relax.const(0, cdtype))
        mx = relax.op.max(relax.op.where(nz, y, relax.const(-np.inf, cdtype)), axis=-1, keepdims=True)
        e = relax.op.where(nz, relax.op.exp(relax.op.subtract(y, mx)), relax.const(0, cdtype))
        y = bb.emit(relax.op.divide(e, relax.op.maximum(relax.op.sum(e, axis=-1, keepdims=True),
                                                        relax.const(np.finfo(np.float32).tiny, cdtype))))
    elif post != 0:
        raise ValueError(f"TreeEnsemble: post_transform {post} (PROBIT) is not supported")
    return y if cdtype == xdtype else relax.op.astype(y, xdtype)


# ------------------------------------------------------------------------------ TfIdfVectorizer
@converter("TfIdfVectorizer", since=9, note="missing in TVM (integer input)")
def tfidf_vectorizer(ctx, inputs, attrs):
    from tvm import relax

    bb = ctx.bb
    x = inputs[0]
    if "pool_strings" in attrs:
        raise ValueError("TfIdfVectorizer with pool_strings: string tensors have no Relax dtype")
    shape = ctx.shape(x)
    if shape is None or len(shape) not in (1, 2):
        raise ValueError("TfIdfVectorizer wants a statically shaped [C] or [B, C] input")
    rows = x if len(shape) == 2 else bb.emit(relax.op.reshape(x, [1, shape[0]]))
    rows = bb.emit(relax.op.astype(rows, "int64"))
    n_rows, width = (shape if len(shape) == 2 else (1, shape[0]))
    min_n, max_n = int(attrs["min_gram_length"]), int(attrs["max_gram_length"])
    max_skip = int(attrs["max_skip_count"])
    counts = list(attrs["ngram_counts"])
    indexes = np.asarray(attrs["ngram_indexes"], dtype=np.int64)
    pool = np.asarray(attrs.get("pool_int64s", ()), dtype=np.int64)
    out_size = int(indexes.max()) + 1 if indexes.size else 0
    mode = attrs.get("mode", b"TF")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    weights = np.asarray(attrs.get("weights", ()), dtype=np.float32)

    total = None
    gram_id = 0
    for size_idx, start in enumerate(counts):
        n = size_idx + 1
        end = counts[size_idx + 1] if size_idx + 1 < len(counts) else len(pool)
        grams = pool[start:end].reshape(-1, n) if end > start else np.zeros((0, n), np.int64)
        ids = np.arange(gram_id, gram_id + len(grams))
        gram_id += len(grams)
        if not len(grams) or not min_n <= n <= max_n:
            continue
        # every window of n items, skip distances 1..max_skip+1 (unigrams once)
        pos = [s + np.arange(n) * d for d in (range(1, max_skip + 2) if n > 1 else [1])
               for s in range(width) if s + (n - 1) * d < width]
        if not pos:
            continue
        pos = np.stack(pos)  # [W, n]
        win = bb.emit(relax.op.take(rows, relax.const(pos.reshape(-1), "int64"), axis=1))
        win = bb.emit(relax.op.reshape(win, [n_rows, len(pos), 1, n]))
        eq = relax.op.astype(relax.op.equal(win, relax.const(grams.reshape(1, 1, -1, n), "int64")), "int32")
        match = bb.emit(relax.op.min(eq, axis=-1))  # [B, W, P]
        freq = bb.emit(relax.op.astype(relax.op.sum(match, axis=1), "float32"))  # [B, P]
        scatter = (indexes[ids][:, None] == np.arange(out_size)[None, :]).astype(np.float32)
        part = relax.op.matmul(freq, relax.const(scatter, "float32"))
        total = bb.emit(part if total is None else relax.op.add(total, part))
    if total is None:
        total = relax.op.zeros([n_rows, out_size], "float32")
    if mode == "IDF":
        w = weights if weights.size else np.ones(out_size, np.float32)
        total = relax.op.where(relax.op.greater(total, relax.const(0.0, "float32")),
                               relax.const(w, "float32"), relax.const(0.0, "float32"))
    elif mode == "TFIDF" and weights.size:
        total = relax.op.multiply(total, relax.const(weights, "float32"))
    elif mode not in ("TF", "TFIDF"):
        raise ValueError(f"TfIdfVectorizer: unknown mode {mode!r}")
    total = bb.emit(total)
    return total if len(shape) == 2 else relax.op.reshape(total, [out_size])


CASES = r"^test_(ai_onnx_ml_|tfidfvectorizer)"
_STRINGS = "string tensors: TVM has no string dtype"
KNOWN_FAILURES: dict[str, str] = {
    "test_ai_onnx_ml_label_encoder_string_int": _STRINGS,
    "test_ai_onnx_ml_label_encoder_string_int_no_default": _STRINGS,
    "test_ai_onnx_ml_label_encoder_tensor_mapping": _STRINGS,
    "test_ai_onnx_ml_label_encoder_tensor_value_only_mapping": _STRINGS,
}
