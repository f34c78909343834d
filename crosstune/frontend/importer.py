"""TVM's Relax ONNX graph importer with crosstune's converter table in front of TVM's.

The subclass changes four things and copies none of TVM's converters:
- each node goes first to crosstune's table (`registry.lookup`, by domain and the model's opset for
  that domain), then to TVM's;
- a shape value (Relax ShapeExpr, what TVM's `Shape` yields for static shapes) that reaches an
  operator TVM cannot feed one to becomes an int64 tensor first, instead of "Node cannot handle
  ShapeExpr inputs" (the `*_expanded` function bodies compute on shapes all the time);
- small non-float initializers (axes, shapes, pads, indices) and values bound by the user
  (`--bind`) are Relax constants, not weights, so converters that need constants find them;
- `Ctx.convert_graph` converts a subgraph (a Loop or Scan body) with given values for its inputs.
"""

from __future__ import annotations

import types

import numpy as np

from . import registry

# Operators TVM's importer lets take a ShapeExpr input (onnx_frontend.ONNXGraphImporter._construct_nodes).
SHAPE_COMPATIBLE_OPS = frozenset({
    "Reshape", "Resize", "ConstantOfShape", "Gather", "Slice", "Shape", "Expand", "Concat", "Equal",
    "Where", "Cast", "CastLike", "Squeeze",
})
# Initializers that are constants, not weights: int32/int64 ones up to this many elements (axes,
# shapes, pads, indices), and scalars of any type (clip bounds, pad values, epsilons). Everything
# else stays a weight (biases and quantized int8 weights included).
SMALL_INDEX_INITIALIZER = 4096


def const(value):
    """relax.const keeping the numpy dtype (TVM 0.27's relax.const makes int64 arrays int32 unless
    the dtype is given)."""
    from tvm import relax

    value = np.asarray(value)
    return relax.const(value, str(value.dtype))


class Ctx:
    """What a crosstune converter gets besides its inputs and attributes."""

    def __init__(self, importer, node, opset: int):
        self.importer = importer
        self.bb = importer.bb
        self.node = node  # the onnx NodeProto
        self.opset = opset

    @property
    def name(self) -> str:
        return self.node.name or (self.node.output[0] if self.node.output else self.node.op_type)

    def const(self, expr) -> np.ndarray | None:
        """The value of an input that is a constant (or a weight, or a bound input), else None."""
        import tvm
        from tvm import relax

        if expr is None:
            return None
        if isinstance(expr, tvm.ir.GenericConst):  # TVM 0.27's Relax constant
            return expr.value.numpy()
        if isinstance(expr, relax.Var) and str(expr.name) in self.importer._params:
            return self.importer._params[str(expr.name)][1].numpy()
        if isinstance(expr, relax.ShapeExpr) and all(hasattr(v, "value") for v in expr.values):
            return np.array([int(v.value) for v in expr.values], dtype=np.int64)
        return None

    def input_name(self, i: int) -> str:
        return self.node.input[i] if i < len(self.node.input) else ""

    def shape(self, expr) -> tuple[int, ...] | None:
        """The static shape of a tensor expression, or None where a dimension is symbolic."""
        ty = expr.ty
        if getattr(ty, "shape", None) is None:
            return None
        try:
            return tuple(int(d) for d in ty.shape.values)
        except (TypeError, AttributeError):
            return None

    def dtype(self, expr) -> str:
        return str(expr.ty.dtype)

    def convert_graph(self, graph, values: list) -> list:
        """Convert `graph` (an attribute's GraphProto) with `values` for its inputs, in order; the
        outer graph's values stay visible. Returns the Relax values of its outputs."""
        return self.importer.convert_body(graph, values)


def make_importer(shape_dict: dict, dtype_dict: dict, opsets: dict[str, int], bound: dict | None = None,
                  sequences: dict | None = None):
    """An importer (ONNXGraphImporter subclass instance). `opsets` maps a domain ("" for ONNX's) to
    the model's opset for it; `bound` maps input names to numpy values to use as constants;
    `sequences` maps sequence inputs to (element shapes, dtype): each is a Relax tuple parameter."""
    from tvm import relax
    from tvm.relax.frontend.onnx import onnx_frontend

    class Importer(onnx_frontend.ONNXGraphImporter):
        def __init__(self):
            super().__init__(shape_dict, dtype_dict, keep_params_in_input=True, sanitize=True)
            self._opsets = opsets
            self._bound = dict(bound or {})
            self._node = None
            self._main_graph = None
            self._seq_values: set[str] = set()

        def from_onnx(self, graph, opset):
            self._main_graph = graph
            self._seq_values = {v.name for v in [*graph.value_info, *graph.output, *graph.input]
                                if v.type.HasField("sequence_type")}
            return super().from_onnx(graph, opset)

        def _convert_sequence_node(self, node):
            """A one-output node whose output is an ONNX sequence: its value is the whole tuple."""
            attr = self._parse_attr(node.attribute)
            inputs = onnx_frontend.onnx_input()
            for name in node.input:
                inputs.append(self._nodes[name] if name else None)
            attr["tvm_custom"] = {"name": node.name, "num_outputs": 1}
            self._nodes[node.output[0]] = self._convert_operator(node.op_type, inputs, attr, self.opset)

        # ---- sequence inputs: a tuple parameter, seen by converters as a relax.Tuple of its items
        def _parse_graph_input(self, graph):
            for vi in graph.input:
                if vi.name in (sequences or {}) and vi.name not in self._nodes:
                    elems, dtype = sequences[vi.name]
                    var = relax.Var(self._sanitize_name(vi.name) if self._sanitize else vi.name,
                                    relax.TupleType([relax.TensorType(list(e), dtype) for e in elems]))
                    self._num_input += 1
                    self._input_names.append(vi.name)
                    self._inputs[vi.name] = var
                    self._nodes[vi.name] = relax.Tuple([relax.TupleGetItem(var, i) for i in range(len(elems))])
                else:
                    super()._parse_graph_input(types.SimpleNamespace(input=[vi]))

        # ---- initializers and bound inputs
        def _parse_graph_initializers(self, graph):
            small = []
            for t in graph.initializer:
                n = int(np.prod(t.dims, dtype=np.int64))
                is_index = t.data_type in (6, 7)  # INT32, INT64
                if (n <= SMALL_INDEX_INITIALIZER if is_index else n <= 1) and t.data_type != 8:  # 8: STRING
                    small.append(t)
            rest = types.SimpleNamespace(initializer=[t for t in graph.initializer if t not in small])
            super()._parse_graph_initializers(rest)
            for t in small:
                self._nodes[t.name] = const(onnx_frontend.get_numpy(t).reshape(tuple(t.dims)))
            for name, value in self._bound.items():
                self._nodes[name] = const(value)

        # ---- one node at a time, through TVM's loop
        def _check_for_unsupported_ops(self, graph):
            pass  # crosstune checks coverage (with domains and opsets) before importing

        def _construct_nodes(self, graph):
            if graph is self._main_graph:
                # A sequence input's items as Vars: TVM's converters take a bare TupleGetItem for a
                # constant (BinaryBase reads `.value`).
                for name in sequences or {}:
                    value = self._nodes.get(name)
                    if isinstance(value, relax.Tuple):
                        self._nodes[name] = relax.Tuple([self.bb.emit(f) for f in value.fields])
            for node in graph.node:
                self._node = node
                swapped = {}
                if node.op_type not in SHAPE_COMPATIBLE_OPS or registry.lookup(node.op_type, self._opset(node), node.domain):
                    for name in node.input:
                        value = self._nodes.get(name) if name else None
                        if isinstance(value, relax.Expr) and isinstance(value.ty, relax.ShapeType):
                            swapped[name] = value
                            self._nodes[name] = self.bb.normalize(relax.op.shape_to_tensor(value))
                if (graph is not self._main_graph and self._fold(node)) or (node.op_type == "If" and self._constant_if(node)):
                    for name, value in swapped.items():
                        self._nodes[name] = value
                    self._node = None
                    continue
                ours = registry.lookup(node.op_type, self._opset(node), node.domain) is not None
                if len(node.output) == 1 and node.op_type != "If" and (ours or node.output[0] in self._seq_values):
                    self._convert_sequence_node(node)  # TVM would keep only a returned tuple's first item
                else:
                    super()._construct_nodes(types.SimpleNamespace(node=[node]))  # on failure, _node names the culprit
                for name, value in swapped.items():
                    self._nodes[name] = value
                self._node = None
            if graph is self._main_graph:
                # A shape value that is a graph output leaves as the int64 tensor ONNX promises.
                for out in graph.output:
                    value = self._nodes.get(out.name)
                    if isinstance(value, relax.Expr) and isinstance(value.ty, relax.ShapeType):
                        self._nodes[out.name] = self.bb.normalize(relax.op.shape_to_tensor(value))

        def _fold(self, node) -> bool:
            """In a subgraph (an unrolled Loop/Scan body, an If branch), a node whose inputs are all
            constants is computed now with ONNX's reference implementation, as the main graph's are
            before import: the iteration number is a constant in each unrolled copy, so what the body
            computes from it (conditions, slice bounds) becomes constant too."""
            from onnx import helper
            from onnx.reference import ReferenceEvaluator
            from .constants import NO_FOLD, FOLD_LIMIT

            if node.domain not in registry.STANDARD_DOMAINS or node.op_type in NO_FOLD or node.op_type == "Constant":
                return False
            if any(a.HasField("g") or a.graphs for a in node.attribute):
                return False
            ins = [n for n in node.input if n]
            if not ins:
                return False
            ctx = Ctx(self, node, self._opset(node))
            feeds = {}
            for name in ins:
                value = self._nodes.get(name)
                c = ctx.const(value) if value is not None and not isinstance(value, relax.Var) else None
                if c is None or c.dtype.kind in "OUS" or c.dtype.type.__module__ == "ml_dtypes":
                    return False
                feeds[name] = c
            try:
                one = helper.make_model(
                    helper.make_graph([node], "fold", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in feeds.items()],
                                      [helper.make_empty_tensor_value_info(o) for o in node.output if o]),
                    opset_imports=[helper.make_opsetid("", self._opset(node))])
                outs = ReferenceEvaluator(one).run(None, feeds)
            except Exception:  # noqa: BLE001 - what the reference cannot compute stays a computation
                return False
            if any(not isinstance(o, np.ndarray) or o.size > FOLD_LIMIT or o.dtype.kind in "OUS" for o in outs):
                return False
            for name, out in zip([o for o in node.output if o], outs):
                self._nodes[name] = const(out)
            return True

        def _constant_if(self, node) -> bool:
            """An If whose condition is a constant: convert only the branch it takes, inline (its
            outputs may be sequences, optionals or differ in shape from the other branch's)."""
            cond = Ctx(self, node, self._opset(node)).const(self._nodes.get(node.input[0]))
            if cond is None:
                return False
            attrs = {a.name: a.g for a in node.attribute if a.HasField("g")}
            branch = attrs["then_branch" if bool(np.asarray(cond).reshape(-1)[0]) else "else_branch"]
            for name, value in zip(node.output, self.convert_body(branch, [])):
                self._nodes[name] = value
            return True

        def _opset(self, node) -> int:
            domain = "" if node.domain in registry.STANDARD_DOMAINS else node.domain
            return self._opsets.get(domain, self.opset if domain == "" else 1)

        def _convert_operator(self, op_name, inputs, attrs, opset):
            node = self._node
            if node is not None:
                entry = registry.lookup(op_name, self._opset(node), node.domain)
                if entry is not None:
                    attrs = {k: v for k, v in attrs.items() if k != "tvm_custom"}
                    out = entry.fn(Ctx(self, node, self._opset(node)), list(inputs), attrs)
                    return self.bb.normalize(out) if isinstance(out, relax.Expr) else out
            return super()._convert_operator(op_name, inputs, attrs, opset)

        # ---- subgraphs (Loop and Scan bodies)
        def convert_body(self, graph, values: list) -> list:
            saved, outer = self._node, dict(self._nodes)
            try:
                for t in graph.initializer:
                    self._nodes[t.name] = const(onnx_frontend.get_numpy(t).reshape(tuple(t.dims)))
                for vi, value in zip(graph.input, values):
                    self._nodes[vi.name] = value
                self._construct_nodes(graph)
                return [self._nodes[o.name] for o in graph.output]
            finally:
                self._nodes, self._node = outer, saved

    return Importer()
