"""Load, check and pin down an ONNX model before anything is built.

`load` turns a path (or a ModelProto) into an `OnnxModel`, with one-line errors for a missing file,
a file that is not ONNX, a truncated file, or a model the ONNX checker rejects. `with_shapes` fixes
the dynamic dimensions the user gave with --input-shape, runs ONNX shape inference, and refuses a
dynamic dimension that is still unknown (TVM builds static shapes here).
"""

from __future__ import annotations

import copy
import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import onnx
from onnx import helper, shape_inference

from ..errors import UserError
from ..tensors import SequenceShape, TensorSpec, format_shape

# Ops through which an integer input keeps its meaning as an index (ids -> Cast -> Gather).
_INDEX_PRESERVING = {"Cast", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Expand"}


@dataclass
class OnnxModel:
    proto: onnx.ModelProto
    name: str
    sha256: str
    path: str | None
    inputs: list[TensorSpec]  # graph inputs that are not initializers, in graph order
    outputs: list[TensorSpec]
    opset: int
    shapes_given: dict[str, tuple[int, ...]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # checker findings that did not stop us

    @property
    def dynamic_inputs(self) -> list[TensorSpec]:
        return [s for s in self.inputs if not s.static]


def load(source: str | Path | onnx.ModelProto) -> OnnxModel:
    """Read and check an ONNX model. The sha256 is that of the file as given (or the serialised proto)."""
    if isinstance(source, onnx.ModelProto):
        proto, path, name = source, None, source.graph.name or "model"
        data = source.SerializeToString()
    else:
        p = Path(source)
        if not p.exists():
            raise UserError(f"no such file: {p}")
        if not p.is_file():
            raise UserError(f"not a file: {p}")
        data = p.read_bytes()
        if not data:
            raise UserError(f"{p} is empty, not an ONNX model")
        try:
            proto = onnx.load_model_from_string(data)
        except Exception as err:  # protobuf's DecodeError and friends
            raise UserError(f"{p} cannot be parsed as ONNX: truncated, corrupt or not an ONNX file ({err})") from None
        if _uses_external_data(proto):
            try:
                onnx.external_data_helper.load_external_data_for_model(proto, str(p.parent))
            except OSError as err:
                raise UserError(f"{p}: cannot read its external weight data: {err}") from None
        path, name = str(p), p.stem
    sha = hashlib.sha256(data).hexdigest()
    where = path or "the model"
    if len(proto.graph.node) == 0 and len(proto.graph.output) == 0:
        # Protobuf accepts many byte strings as an empty message: not a truncated model's symptom
        # alone, but nothing here is a model.
        raise UserError(f"{where} is not an ONNX model (no graph: empty or not an ONNX file)")
    warnings = []
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        # The checker is stricter than the engines (it rejects, for one, graph outputs declared
        # without a shape, which ONNX Runtime runs). Refuse the model only if the reference engine
        # refuses it too; otherwise carry the finding as a warning.
        if not _onnxruntime_loads(path or data):
            raise UserError(f"{where} fails the ONNX checker (truncated or invalid?): {first}") from None
        warnings.append(f"the ONNX checker rejects this model ({first}), but ONNX Runtime loads it")
    model = _describe(proto, name, sha, path)
    model.warnings = warnings
    return model


def _onnxruntime_loads(model: str | bytes) -> bool:
    """Whether ONNX Runtime accepts the model (a path, so it finds external weight files, or bytes)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except Exception:  # any refusal counts
        return False
    return True


def _uses_external_data(proto: onnx.ModelProto) -> bool:
    return any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer
    )


def _dims(type_proto: onnx.TypeProto) -> tuple[int | str, ...] | None:
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return None
    dims: list[int | str] = []
    for i, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or f"?{i}")
    return tuple(dims)


def _dtype(type_proto: onnx.TypeProto) -> str:
    tt = type_proto.tensor_type
    if not type_proto.HasField("tensor_type"):
        return type_proto.WhichOneof("value") or "unknown"
    try:
        return helper.tensor_dtype_to_np_dtype(tt.elem_type).name
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(tt.elem_type).lower()


def _spec(vi: onnx.ValueInfoProto, elems=None) -> TensorSpec:
    if vi.type.HasField("optional_type") and vi.type.optional_type.elem_type.HasField("sequence_type"):
        # An optional sequence: built for it being present, as a sequence.
        vi = onnx.helper.make_value_info(vi.name, vi.type.optional_type.elem_type)
    if vi.type.HasField("optional_type") and vi.type.optional_type.elem_type.HasField("tensor_type"):
        # An optional tensor: crosstune builds for it being present (an empty one cannot be passed).
        dims = _dims(vi.type.optional_type.elem_type)
        return TensorSpec(vi.name, dims if dims is not None else ("?rank",), _dtype(vi.type.optional_type.elem_type))
    if vi.type.HasField("sequence_type") and vi.type.sequence_type.elem_type.HasField("tensor_type"):
        inner = vi.type.sequence_type.elem_type
        return TensorSpec(vi.name, (), _dtype(inner), kind="sequence", elems=elems)
    dims = _dims(vi.type)
    return TensorSpec(vi.name, dims if dims is not None else ("?rank",), _dtype(vi.type))


def _describe(proto, name, sha, path, shapes_given=None) -> OnnxModel:
    g = proto.graph
    init = {t.name for t in g.initializer}
    given = {k: v for k, v in (shapes_given or {}).items() if isinstance(v, SequenceShape)}
    inputs = [_spec(i, given.get(i.name)) for i in g.input if i.name not in init]
    outputs = [_spec(o) for o in g.output]
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)
    inputs = _bound_index_inputs(proto, inputs)
    return OnnxModel(proto, name, sha, path, inputs, outputs, opset, dict(shapes_given or {}))


def with_shapes(
    model: OnnxModel, shapes: dict[str, tuple[int, ...]] | None, *, require_static: bool = True
) -> OnnxModel:
    """Pin inputs to the given static shapes and re-run shape inference. With `require_static`
    (compile), a dynamic dimension left without a shape is an error naming the input; without it
    (inspect), such dimensions stay symbolic."""
    shapes = dict(shapes or {})
    by_name = {s.name: s for s in model.inputs}
    for name, shape in shapes.items():
        if name not in by_name:
            raise UserError(
                f"--input-shape names '{name}', but the model's inputs are: {', '.join(by_name)}"
            )
        if by_name[name].is_sequence != isinstance(shape, SequenceShape):
            want = "element shapes joined by '+', e.g. 2x3+2x3" if by_name[name].is_sequence else "one shape, e.g. 1x3x224x224"
            raise UserError(f"--input-shape {name}: input '{name}' is a {by_name[name].kind}: give {want}")
        if by_name[name].is_sequence:
            continue
        have = by_name[name].shape
        if have != ("?rank",) and len(have) != len(shape):
            raise UserError(
                f"--input-shape {name}={format_shape(shape)} has rank {len(shape)}, "
                f"but input '{name}' is {format_shape(have)} (rank {len(have)})"
            )
        for axis, (want, got) in enumerate(zip(have, shape)):
            if isinstance(want, int) and want != got:
                raise UserError(
                    f"--input-shape {name}={format_shape(shape)} conflicts with the model's shape "
                    f"{format_shape(have)}: dimension {axis} is fixed at {want}"
                )
    missing = [s for s in model.inputs if not s.static and s.name not in shapes]
    if missing and require_static:
        s = missing[0]
        if s.is_sequence:
            raise UserError(
                f"input '{s.name}' is a sequence of {s.dtype} tensors: give each element's shape, joined by '+', "
                f"e.g. --input-shape {s.name}=2x3+2x3")
        example = suggested_shape(s)
        raise UserError(
            f"input '{s.name}' has dynamic shape {format_shape(s.shape)}: give it with "
            f"--input-shape {s.name}={example}"
        )
    optional_inputs = any(vi.type.HasField("optional_type") for vi in model.proto.graph.input)
    if not shapes and not missing and not optional_inputs and all(o.static for o in model.outputs):
        return model  # static already, outputs declared: nothing to infer
    proto = copy.deepcopy(model.proto)
    for vi in proto.graph.input:
        if vi.type.HasField("optional_type") and vi.type.optional_type.elem_type.HasField("sequence_type"):
            vi.type.CopyFrom(vi.type.optional_type.elem_type)  # built for a present value: a sequence
        if vi.name in shapes and isinstance(shapes[vi.name], SequenceShape):
            tt = vi.type.sequence_type.elem_type.tensor_type
            elems = shapes[vi.name]
            tt.ClearField("shape")
            if elems and all(len(e) == len(elems[0]) for e in elems):  # a dim is known where all agree
                for dims in zip(*elems):
                    d = tt.shape.dim.add()
                    if len(set(dims)) == 1:
                        d.dim_value = dims[0]
            continue
        if vi.type.HasField("optional_type") and vi.type.optional_type.elem_type.HasField("tensor_type"):
            vi.type.CopyFrom(vi.type.optional_type.elem_type)  # built for a present value: a tensor
        if vi.name in shapes:
            tt = vi.type.tensor_type
            tt.shape.Clear()
            for d in shapes[vi.name]:
                tt.shape.dim.add().dim_value = d
    # Stale intermediate shapes would contradict the new ones; let inference redo them.
    del proto.graph.value_info[:]
    for o in proto.graph.output:
        if o.type.HasField("tensor_type") and shapes:
            o.type.tensor_type.ClearField("shape")
    proto = infer_shapes(proto)
    pinned = _describe(proto, model.name, model.sha256, model.path, shapes)
    pinned.warnings = list(model.warnings)
    return pinned


def suggested_shape(spec: TensorSpec) -> str:
    """A concrete --input-shape value for a dynamic input: its static dims, 1 for the rest."""
    return "x".join(str(d) if isinstance(d, int) else "1" for d in spec.shape)


def infer_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True)
    except Exception as err:  # inference errors are the model's, not ours
        raise UserError(f"ONNX shape inference failed: {str(err).strip().splitlines()[0]}") from None


def op_histogram(proto: onnx.ModelProto) -> Counter:
    """(domain, op_type) -> count, including nodes inside If/Loop/Scan bodies."""
    counts: Counter = Counter()

    def walk(graph):
        for node in graph.node:
            counts[(node.domain if node.domain != "ai.onnx" else "", node.op_type)] += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for sub in attr.graphs:
                        walk(sub)

    walk(proto.graph)
    return counts


def _bound_index_inputs(proto: onnx.ModelProto, inputs: list[TensorSpec]) -> list[TensorSpec]:
    """Give integer inputs that index a table (Gather's indices) the table's size as `high`."""
    g = proto.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in g.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    known_shapes = {t.name: tuple(t.dims) for t in g.initializer}
    for vi in list(g.value_info) + list(g.input):
        d = _dims(vi.type)
        if d is not None and all(isinstance(x, int) for x in d):
            known_shapes.setdefault(vi.name, d)

    def bound(value: str, depth: int = 0) -> int | None:
        best = None
        for node in consumers.get(value, []):
            b = None
            if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == value:
                axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                data = known_shapes.get(node.input[0])
                if data and -len(data) <= axis < len(data):
                    b = data[axis]
            elif node.op_type in _INDEX_PRESERVING and depth < 8 and node.input[0] == value:
                b = bound(node.output[0], depth + 1)
            if b is not None:
                best = b if best is None else min(best, b)
        return best

    out = []
    for s in inputs:
        if s.dtype.startswith(("int", "uint")):
            s = replace(s, high=bound(s.name))
        out.append(s)
    return out
