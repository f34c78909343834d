"""ONNX -> Relax: TVM's Relax ONNX frontend with crosstune's converter layer in front of it.

`to_relax` binds the inputs the user gave values for (`--bind`), checks that every operator is
covered (by crosstune's table in `crosstune.frontend`, or TVM's), folds constant subgraphs, and
imports with `frontend.importer`; a failure is one line naming the node, or the model input that
has to be bound. `coverage_table` is what `inspect` shows.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import os
import re
import traceback
import warnings
from dataclasses import dataclass

from .._native import native_stderr_captured
from ..errors import UserError
from ..frontend import registry
from ..frontend.registry import STANDARD_DOMAINS
from .onnx_model import OnnxModel, op_histogram


def model_opsets(proto) -> dict[str, int]:
    """Domain ("" for ONNX's own) -> the model's opset for it."""
    return {("" if o.domain in STANDARD_DOMAINS else o.domain): o.version for o in proto.opset_import}


def coverage_table(proto) -> list[tuple[str, int, int, str]]:
    """(op, opset, node count, who converts it: "tvm" / "crosstune" / "none"), op names outside
    the standard domain written "domain.Op"."""
    opsets = model_opsets(proto)
    rows = []
    for (domain, op), n in sorted(op_histogram(proto).items()):
        d = "" if domain in STANDARD_DOMAINS else domain
        opset = opsets.get(d, 1)
        rows.append((op if d == "" else f"{d}.{op}", opset, n, registry.coverage(op, opset, d)))
    return rows


@dataclass
class RelaxModel:
    mod: object  # tvm.IRModule whose "main" takes the inputs, then the weights
    weights: list  # tvm.runtime.Tensor, in "main"'s parameter order after the inputs
    weight_names: list[str]


def to_relax(model: OnnxModel, bindings: dict | None = None) -> RelaxModel:
    """Import a checked, shape-pinned model. `bindings` (input name -> numpy value) become constants
    (`--bind`). Raises UserError naming the operator that fails, or the input to bind."""
    from ..frontend import constants
    from ..frontend.importer import make_importer

    proto = _without_initializer_inputs(model.proto)
    proto = constants.bind_inputs(proto, dict(bindings or {}))
    missing = {op: n for op, opset, n, who in coverage_table(proto) if who == "none"}
    if missing:
        opsets = model_opsets(proto)
        listed = ", ".join(f"{op} ({n} node{'s' if n > 1 else ''}, opset {opsets.get(op.rpartition('.')[0], opsets.get('', 1))})"
                           for op, n in missing.items())
        raise UserError(f"no converter for: {listed}: neither TVM's Relax ONNX frontend nor crosstune's layer covers it")
    bound = set(bindings or ())
    for s in model.inputs:
        if not s.static and s.name not in bound:
            raise UserError(f"input '{s.name}' has dynamic shape; give it with --input-shape")
    proto = _code_safe_weight_names(constants.fold_constants(_with_value_shapes(proto)))

    from tvm import relax

    shape_dict = {s.name: list(s.shape) for s in model.inputs if s.name not in bound and not s.is_sequence}
    dtype_dict = {s.name: s.dtype for s in model.inputs if s.name not in bound and not s.is_sequence}
    sequences = {s.name: (s.elems, s.dtype) for s in model.inputs if s.is_sequence and s.name not in bound}
    failure = None
    native_log: list[str] = []
    importer = make_importer(shape_dict, dtype_dict, model_opsets(proto), sequences=sequences)
    # The frontend prints a dump of the failing node's inputs, warns about renamed inputs, and a
    # failed import leaves a BlockBuilder whose C++ destructor complains: keep all of it off the
    # user's terminal (CROSSTUNE_DEBUG shows it); the error below says what matters.
    with native_stderr_captured(native_log), contextlib.redirect_stdout(io.StringIO()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                mod = importer.from_onnx(proto.graph, model_opsets(proto).get("", model.opset))
            except Exception as err:  # noqa: BLE001 - named below
                node = importer._node
                failure = _failure_line(proto.graph, node, err)
                if os.environ.get("CROSSTUNE_DEBUG"):
                    traceback.print_exc()
        importer = None
        if failure:
            gc.collect()  # destroy a failed import's BlockBuilder while its warning is captured
    if failure:
        raise failure if isinstance(failure, UserError) else UserError(failure)
    mod, params = relax.frontend.detach_params(mod)
    weights = list(params.get("main", []))
    main = mod["main"]
    names = [str(p.name) for p in main.params[len(main.params) - len(weights) :]]
    return RelaxModel(mod, weights, names)


_CODE_SAFE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def _code_safe_weight_names(proto):
    """Weights renamed where their ONNX names cannot name a C/CUDA kernel parameter.

    Exporters name values after their node paths (PyTorch: `/pos/Gather_output_0`), and constant
    folding turns such values into weights. A weight keeps its name down to the kernels that read it,
    and a kernel parameter called `/pos/Gather_output_0` is a syntax error for NVRTC and nvcc (fp16
    builds of the zoo's encoder failed so). Model inputs and outputs keep their names."""
    g = proto.graph
    keep = {o.name for o in g.output}
    taken = ({i.name for i in g.initializer} | {i.name for i in g.input} |
             {o for n in g.node for o in n.output})
    renames: dict[str, str] = {}
    for init in g.initializer:
        if _CODE_SAFE.fullmatch(init.name) or init.name in keep:
            continue
        base = re.sub(r"[^A-Za-z0-9_.]", "_", init.name).strip("_.") or "w"
        base = f"w_{base}" if base[0].isdigit() else base
        new, k = base, 1
        while new in taken:
            new, k = f"{base}_{k}", k + 1
        taken.add(new)
        renames[init.name] = new
    if not renames:
        return proto
    for init in g.initializer:
        init.name = renames.get(init.name, init.name)
    for vi in list(g.input) + list(g.value_info):
        vi.name = renames.get(vi.name, vi.name)

    def rename_uses(graph):
        for node in graph.node:
            for i, name in enumerate(node.input):
                if name in renames:
                    node.input[i] = renames[name]
            for attr in node.attribute:
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    rename_uses(sub)

    rename_uses(g)
    return proto


def load_and_import(source, input_shapes: dict, bindings: dict | None = None):
    """Load, pin shapes (a bound input's value pins its own), import: (OnnxModel, RelaxModel).
    What compile and tune share."""
    from . import onnx_model

    src = onnx_model.load(source)
    bindings = dict(bindings or {})
    names = [s.name for s in src.inputs]
    for name in bindings:
        if name not in names:
            raise UserError(f"--bind {name}: the model has no input '{name}' (inputs: {', '.join(names)})")
    dynamic = {s.name for s in src.inputs if not s.static}
    shapes = {**{n: tuple(v.shape) for n, v in bindings.items() if n in dynamic and n not in input_shapes},
              **input_shapes}
    src = onnx_model.with_shapes(src, shapes)
    return src, to_relax(src, bindings=bindings)


class NeedsBinding(UserError):
    """A node needs as a constant a value that comes from model inputs."""

    def __init__(self, message: str, inputs: list[str]):
        super().__init__(message)
        self.inputs = inputs


def _failure_line(graph, node, err: Exception) -> Exception | str:
    from ..frontend import constants

    msg = str(err).strip().splitlines()
    detail = msg[-1] if msg else type(err).__name__
    if node is None:
        return f"TVM cannot import the model: {type(err).__name__}: {detail}"
    name = node.name or (node.output[0] if node.output else "(unnamed)")
    feeding = constants.unbound_constant_inputs(graph, node)
    if feeding:
        binds = " ".join(f"--bind {n}=FILE.npy" for n in feeding)
        return NeedsBinding(f"node '{name}' ({node.op_type}) needs {'these model inputs' if len(feeding) > 1 else 'model input'} "
                           f"{', '.join(repr(n) for n in feeding)} as a constant: give the value with {binds}", feeding)
    return f"cannot convert node '{name}' ({node.op_type}): {type(err).__name__}: {detail}"


def _with_value_shapes(proto):
    """The model with every intermediate value's type inferred (what folding Shape/Size needs);
    the model unchanged where inference fails."""
    if proto.graph.value_info or not proto.graph.node:
        return proto
    from onnx import shape_inference

    try:
        return shape_inference.infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - inference is an optimisation here; the import reports real problems
        return proto


def _without_initializer_inputs(proto):
    """IR < 4 models list every initializer among the graph inputs too. TVM's importer then makes
    each weight a function parameter twice and the build fails ('used before its definition').
    They are weights, not inputs: drop them from the input list (on a copy)."""
    init = {t.name for t in proto.graph.initializer}
    if not any(i.name in init for i in proto.graph.input):
        return proto
    proto = copy.deepcopy(proto)
    keep = [i for i in proto.graph.input if i.name not in init]
    del proto.graph.input[:]
    proto.graph.input.extend(keep)
    return proto
