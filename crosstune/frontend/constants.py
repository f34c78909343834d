"""Inputs that TVM needs as constants, binding them (`--bind`), and folding constant subgraphs.

TVM's converters read some operator inputs at import time (`axes`, `k`, `depth`, `pads`, shapes,
scales, split sizes): where a model computes them at run time, Relax has no way to express the
result's shape. crosstune's answer, in order:
1. fold at the ONNX level every node whose inputs are all constants (Constant nodes included, and
   Shape/Size of a tensor whose shape is static), with ONNX's own reference implementation, so
   computed shapes and axes become initializers;
2. where a needed input still comes from a model input, `needs_binding` names it before any build
   (`crosstune inspect`) and the import fails with one line naming it;
3. `--bind name=file.npy` makes that input a constant of the given value.
"""

from __future__ import annotations

import copy

import numpy as np

from ..errors import UserError

# op -> input positions that TVM's converters read as constants (ONNX input order).
NEEDS_CONSTANT: dict[str, tuple[int, ...]] = {
    "Squeeze": (1,), "Unsqueeze": (1,), "Split": (1,), "TopK": (1,), "OneHot": (1,), "CumSum": (1,),
    "Resize": (1, 2, 3), "Upsample": (1,), "Pad": (1, 2, 3), "Reshape": (1,), "Tile": (1,),
    "Expand": (1,), "ConstantOfShape": (0,), "Range": (0, 1, 2), "Slice": (1, 2, 3, 4),
    "NonMaxSuppression": (2, 3, 4), "Trilu": (1,), "CenterCropPad": (1,), "Col2Im": (1, 2),
    "DFT": (1, 2), "STFT": (1, 3), "MaxUnpool": (2,), "MelWeightMatrix": (0, 1, 2, 3, 4),
    "HannWindow": (0,), "HammingWindow": (0,), "BlackmanWindow": (0,), "ReverseSequence": (),
    "SequenceInsert": (2,), "SequenceErase": (1,), "SequenceAt": (1,), "SplitToSequence": (1,),
    "Loop": (0, 1), "If": (0,), "AffineGrid": (1,),
    **{op: (1,) for op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                           "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")},
}
# Ops whose output depends on their input's shape only, not its values.
SHAPE_ONLY = {"Shape", "Size"}
# Ops whose output says whether an optional holds a value (known when importing), not what value.
PRESENCE_ONLY = {"OptionalHasElement"}
# Not folded: random draws and ops with side channels.
NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
           "Bernoulli", "Dropout", "If", "Loop", "Scan", "SequenceMap"}
FOLD_LIMIT = 1 << 20  # elements: a folded output larger than this stays a computation


def value_sources(graph, outer: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """Value name -> the graph inputs whose *values* it depends on (Shape/Size cut the chain). A node
    with subgraphs (If, Loop, Scan) also depends on the outer values its bodies read; `outer` gives
    the sources of names a subgraph reads from the graphs around it."""
    inputs = {i.name for i in graph.input} - {t.name for t in graph.initializer}
    src: dict[str, set[str]] = dict(outer or {})
    src.update({name: {name} for name in inputs if outer is None})
    for node in graph.node:
        deps: set[str] = set()
        if node.op_type not in SHAPE_ONLY | PRESENCE_ONLY:
            for name in [*node.input, *_subgraph_names(node)]:
                deps |= src.get(name, set())
        for name in node.output:
            src[name] = deps
    return src


def _subgraphs(node):
    for a in node.attribute:
        yield from ([a.g] if a.HasField("g") else []) + list(a.graphs)


def _needs(graph, src: dict[str, set[str]], node=None):
    """(node, input name, model inputs it comes from) for each needs-constant slot of `node` (every
    node of `graph` when None) and of the nodes in their subgraphs, at any depth."""
    for n in ([node] if node is not None else graph.node):
        for pos in NEEDS_CONSTANT.get(n.op_type, ()):
            if pos < len(n.input) and n.input[pos]:
                yield n, n.input[pos], src.get(n.input[pos], set())
        for g in _subgraphs(n):
            # a body's own inputs stand for the node's, position by position: a Loop body's are
            # (iteration number, condition, carried values...) for the node's (M, cond, initial
            # values...), and the iteration number is known wherever the trip count is
            inner = dict(src)
            for k, vi in enumerate(g.input):
                outer_name = n.input[k] if k < len(n.input) else ""
                inner[vi.name] = set() if n.op_type == "Loop" and k == 0 else src.get(outer_name, set())
            yield from _needs(g, value_sources(g, inner))


def needs_binding(graph, opsets: dict[str, int] | None = None) -> dict[str, list[str]]:
    """Model input -> the "node (Op) input 'name'" places where TVM needs its value as a constant.
    These are the inputs `--bind` may be needed for (TVM converts some of them dynamically)."""
    out: dict[str, list[str]] = {}
    for node, name, sources in _needs(graph, value_sources(graph)):
        for inp in sorted(sources):
            out.setdefault(inp, []).append(f"node '{node.name or node.output[0]}' ({node.op_type}) input '{name}'")
    return out


def unbound_constant_inputs(graph, node) -> list[str]:
    """The model inputs that feed `node`'s needs-constant positions, or those of its subgraphs."""
    names: list[str] = []
    for _, _, sources in _needs(graph, value_sources(graph), node):
        names += [n for n in sorted(sources) if n not in names]
    return names


def parse_bindings(specs: list[str]) -> dict[str, np.ndarray]:
    """`name=file.npy` (several) -> {name: array}, one-line errors for a bad spec or file."""
    out = {}
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--bind wants NAME=FILE.npy, got '{spec}'")
        try:
            out[name] = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise UserError(f"--bind {name}: no such file: {path}") from None
        except (ValueError, OSError) as err:
            raise UserError(f"--bind {name}: {path} is not a .npy array ({err})") from None
    return out


def bind_inputs(proto, bindings: dict[str, np.ndarray]):
    """A copy of `proto` in which the bound inputs are initializers of the given values. A name that
    is not a model input, or a value of the wrong dtype or shape, is a one-line error."""
    if not bindings:
        return proto
    from onnx import helper, numpy_helper

    inputs = {i.name: i for i in proto.graph.input}
    init = {t.name for t in proto.graph.initializer}
    for name, value in bindings.items():
        if name not in inputs or name in init:
            names = ", ".join(n for n in inputs if n not in init)
            raise UserError(f"--bind {name}: the model has no input '{name}' (inputs: {names})")
        tt = inputs[name].type.tensor_type
        want = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if value.dtype != want:
            if np.can_cast(value.dtype, want, casting="same_kind") and value.dtype.kind == want.kind:
                value = value.astype(want)
            else:
                raise UserError(f"--bind {name}: the model wants {want}, the file holds {value.dtype}")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if tt.HasField("shape") and (len(dims) != value.ndim or any(d is not None and d != v for d, v in zip(dims, value.shape))):
            shown = "x".join("?" if d is None else str(d) for d in dims) or "scalar"
            raise UserError(f"--bind {name}: the model wants shape {shown}, the file holds {value.shape}")
        bindings[name] = value
    proto = copy.deepcopy(proto)
    keep = [i for i in proto.graph.input if i.name not in bindings]
    del proto.graph.input[:]
    proto.graph.input.extend(keep)
    proto.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), n) for n, v in bindings.items())
    return proto


def _subgraph_names(node) -> set[str]:
    names: set[str] = set()
    for a in node.attribute:
        for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            for n in g.node:
                names |= set(n.input) | _subgraph_names(n)
    return names


def _static_shapes(g) -> dict[str, tuple[int, ...]]:
    """Value name -> shape, for tensors whose shape shape inference fixed completely."""
    out = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if tt is not None and tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            out[vi.name] = tuple(int(d.dim_value) for d in tt.shape.dim)
    for t in g.initializer:
        out[t.name] = tuple(int(d) for d in t.dims)
    return out


def fold_constants(proto):
    """A copy of `proto` with every node of the main graph whose inputs are all constants replaced by
    initializers holding its outputs (ONNX's reference implementation computes them), and every If
    whose condition thereby becomes a constant replaced by the branch it takes (then folded in
    turn: function bodies such as AffineGrid's compute shapes through If). Returns the proto
    unchanged when nothing folds."""
    for _ in range(16):
        proto = _fold_once(proto)
        inlined = inline_constant_ifs(proto)
        if inlined is proto:
            return proto
        proto = _reinfer(inlined)
    return proto


def inline_constant_ifs(proto):
    """If nodes of the main graph whose condition is an initializer, replaced by the nodes of the
    branch taken (and an Identity per output). Returns `proto` itself when there is none."""
    from onnx import helper, numpy_helper

    g = proto.graph
    inits = {t.name: t for t in g.initializer}

    def tensors_only(n):  # sequences and optionals stay with the importer's own If handling
        return all(o.type.HasField("tensor_type") for body in _subgraphs(n) for o in body.output)

    todo = {i for i, n in enumerate(g.node)
            if n.op_type == "If" and n.domain in ("", "ai.onnx") and n.input and n.input[0] in inits
            and int(np.prod(inits[n.input[0]].dims, dtype=np.int64)) == 1 and tensors_only(n)}
    if not todo:
        return proto
    proto = copy.deepcopy(proto)
    g = proto.graph
    nodes = []
    for i, n in enumerate(g.node):
        if i not in todo:
            nodes.append(n)
            continue
        taken = "then_branch" if bool(numpy_helper.to_array(inits[n.input[0]]).reshape(-1)[0]) else "else_branch"
        branch = next(a.g for a in n.attribute if a.name == taken)
        nodes.extend(branch.node)
        g.initializer.extend(branch.initializer)
        g.value_info.extend(branch.value_info)
        nodes.extend(helper.make_node("Identity", [b.name], [o], name=f"{o}__{taken}")
                     for o, b in zip(n.output, branch.output) if o)
    del g.node[:]
    g.node.extend(nodes)
    return proto


def _reinfer(proto):
    """Types and shapes inferred afresh (inlined branches bring values shape inference had not
    reached); the model unchanged where inference fails."""
    from onnx import shape_inference

    try:
        fresh = copy.deepcopy(proto)
        del fresh.graph.value_info[:]
        return shape_inference.infer_shapes(fresh, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - inference only helps folding
        return proto


def _fold_once(proto):
    """One forward pass of `fold_constants` over the main graph."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    g = proto.graph
    std = {o.domain: o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")}
    if not std:
        return proto
    values: dict[str, np.ndarray] = {}
    for t in g.initializer:
        if int(np.prod(t.dims, dtype=np.int64)) <= FOLD_LIMIT:
            values[t.name] = None  # loaded on demand
    inputs = {i.name for i in g.input} - {t.name for t in g.initializer}
    inits = {t.name: t for t in g.initializer}
    folded: list[int] = []
    new: dict[str, np.ndarray] = {}
    static = _static_shapes(g)
    graph_outputs = {o.name for o in g.output}  # a graph output stays computed (a weight cannot be one)

    def value(name):
        if name in new:
            return new[name]
        if values.get(name) is None:
            values[name] = numpy_helper.to_array(inits[name])
        return values[name]

    for idx, node in enumerate(g.node):
        if node.domain not in ("", "ai.onnx") or node.op_type in NO_FOLD or any(a.HasField("g") or a.graphs for a in node.attribute):
            continue
        ins = [n for n in node.input if n]
        if node.op_type in SHAPE_ONLY and ins and ins[0] in static:  # a static shape is a constant
            shape = static[ins[0]]
            if node.op_type == "Size":
                new[node.output[0]] = np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
            else:
                attrs = {a.name: a.i for a in node.attribute}
                start, end = attrs.get("start", 0), attrs.get("end", len(shape))
                new[node.output[0]] = np.array(shape[slice(start, end)], dtype=np.int64)
            folded.append(idx)
            continue
        if any(n in inputs or (n not in values and n not in new) for n in ins):
            continue
        if node.op_type != "Constant" and not ins:
            continue
        try:
            feeds = {n: value(n) for n in ins}
            if any(not isinstance(v, np.ndarray) or v.dtype.kind in "OUS" or v.dtype.type.__module__ == "ml_dtypes" for v in feeds.values()):
                continue
            one = helper.make_model(
                helper.make_graph([node], "fold", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(feeds[n].dtype), feeds[n].shape) for n in dict.fromkeys(ins)],
                                  [helper.make_empty_tensor_value_info(o) for o in node.output if o]),
                opset_imports=[helper.make_opsetid("", max(std.values()))], ir_version=proto.ir_version)
            outs = ReferenceEvaluator(one).run(None, {n: feeds[n] for n in dict.fromkeys(ins)})
        except Exception:  # noqa: BLE001 - what the reference cannot compute stays a computation
            continue
        if any(not isinstance(o, np.ndarray) or o.size > FOLD_LIMIT or o.dtype.kind in "OUS" or o.dtype.type.__module__ == "ml_dtypes" for o in outs):
            continue
        for name, out in zip([o for o in node.output if o], outs):
            new[name] = np.asarray(out)
        folded.append(idx)
    if not folded:
        return proto
    proto = copy.deepcopy(proto)
    g = proto.graph
    # A folded value that is also a graph output becomes a Constant node: a weight cannot be
    # returned (TVM's LiftTransformParams leaves `main` returning an undefined var when an output
    # depends on weights alone), a constant can.
    outputs_folded = {n: new.pop(n) for n in list(new) if n in graph_outputs}
    consts = [helper.make_node("Constant", [], [n], name=f"{n}__constant", value=numpy_helper.from_array(v, n))
              for n, v in outputs_folded.items()]
    keep = consts + [n for i, n in enumerate(g.node) if i not in set(folded)]
    used = {o.name for o in g.output}
    for n in keep:
        used |= set(n.input) | _subgraph_names(n)
    del g.node[:]
    g.node.extend(keep)
    kept_inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept_inits)
    g.initializer.extend(numpy_helper.from_array(v, n) for n, v in new.items() if n in used)
    # value_info of folded values is now the initializers'
    vi = [v for v in g.value_info if v.name not in new]
    del g.value_info[:]
    g.value_info.extend(vi)
    return proto
