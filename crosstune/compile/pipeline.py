"""The build pipeline: Relax module -> executable for a target, with stored tuning records applied.

Three stages, shared by `compile` and `tune` so both see the same kernels, after a stage 0,
`relayout`: 2-D convolutions in the build's layout (NHWC unless the target, the store or --layout
says NCHW), their weight transposes run once ahead of time.
1. `prepare`: the passes MetaSchedule's `static_shape_tuning` pipeline runs before it extracts tasks
   (decompose, legalize, fuse). On CPUs it also marks weights as layout-free
   (`AttachAttrLayoutFreeBuffers`, what `cpu_weight_prepack=True` does), so tuned schedules may ask
   for weights in a blocked layout. The fused PrimFuncs after this stage are the tuning workloads.
2. `apply_records`: every PrimFunc that the tuning database covers gets its best stored schedule
   (`MetaScheduleApplyDatabase`); the rest keep TVM's defaults. Returns the coverage.
3. `finish`: split the weight-layout rewrites out of the kernels and lift every computation that
   depends only on weights into `main_transform_params` (`SplitLayoutRewritePreproc`,
   `LiftTransformParams`). crosstune runs that function once at compile time, on the host, and ships
   the transformed weights in the package, so the deployed module's interface stays "inputs, then
   weights" and the rewrite costs nothing at run time.

GPU targets run the stages in another order: prepare, lift the weight-only computations (fp16 casts
of weights among them), then apply the records to what is left. Their kernels need no weight-layout
rewrite, so nothing in the lifting depends on a schedule, and the tuning workloads are then exactly
the kernels the deployed module launches (no weight-only kernels among them). Kernels without a
record get TVM's default GPU schedules (dlight: Matmul, GEMV, Reduction, GeneralReduction, Fallback)
inside `tvm.compile`'s CUDA pipeline, and the module replays its kernel launches as CUDA graphs
(`relax.backend.use_cuda_graph`): at batch 1 launch overhead, not kernel time, dominates otherwise.
fp16 (`precision="fp16"`) is `ToMixedPrecision` before everything else: fp16 weights (biases too;
normalisation parameters stay fp32) and activations, convolutions and matrix products accumulating in fp32, inputs
and outputs in the model's dtypes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..targets import Target

TRANSFORM = "main_transform_params"
PRECISIONS = ("fp32", "fp16")
# Data layouts of 2-D convolutions: as imported (ONNX's NCHW), or channels-last. NHWC kernels read
# their input channels, the convolution's reduction axis, contiguously: vector lanes on CPUs and
# coalesced loads into tensor-core tiles on GPUs come from that axis instead of from rows of 7 or 14
# pixels. The model's inputs and outputs keep their layout (one transpose at each end).
LAYOUTS = ("NCHW", "NHWC")
# How 3x3 stride-1 convolutions are computed (compile/winograd.py; Winograd in fp32 builds only):
# directly; as Winograd F(4x4, 3x3) where a map has 49+ 4x4 tiles (4x fewer multiply-adds); or, with
# "winograd-f2", also as F(2x2, 3x3) where it has 49+ 2x2 tiles only (2.25x fewer). A build's "form"
# is its layout with the algorithm's suffix: "NHWC", "NCHW+winograd", "NHWC+winograd-f2", ...
CONVS = ("direct", "winograd", "winograd-f2")
SUFFIX = {"direct": "", "winograd": "+winograd", "winograd-f2": "+winograd-f2"}
_DESCRIBE = {"direct": "", "winograd": ", 3x3 as Winograd F(4x4, 3x3)",
             "winograd-f2": ", 3x3 as Winograd F(4x4, 3x3), on smaller maps F(2x2, 3x3)"}


def form_of(layout: str, conv: str | None) -> str:
    """The build form of `layout` with `conv` convolutions ("NHWC", "winograd" -> "NHWC+winograd")."""
    return layout + SUFFIX.get(conv or "direct", "")


def split_form(form: str | None) -> tuple[str | None, str]:
    """(layout, conv) of a build form ("NHWC+winograd" -> ("NHWC", "winograd"))."""
    if form is None:
        return None, "direct"
    for conv, suffix in SUFFIX.items():
        if suffix and form.endswith(suffix):
            return form[: -len(suffix)], conv
    return form, "direct"


def describe_form(form: str | None) -> str:
    layout, conv = split_form(form)
    if layout is None:
        return ""
    return layout + _DESCRIBE[conv]


@dataclass
class Coverage:
    """Which tuning workloads of a model the database had records for."""

    tasks: int = 0
    covered: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    database: str = ""
    records: int = 0
    # of `missing`: workloads with records that measured slower than their default schedule
    default_faster: list[str] = field(default_factory=list)
    # of `covered`: kernels per machine that measured the applied record ("" for records that name
    # none), and the machine whose records the build preferred (None: any)
    machines: dict[str, int] = field(default_factory=dict)
    machine: str | None = None
    # of `covered`: kernels whose record `crosstune calibrate` pinned (fastest inside the model)
    in_model: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "database": self.database,
            "tasks": self.tasks,
            "covered": len(self.covered),
            "default_schedules": len(self.missing),
            "records_in_database": self.records,
            "default_faster": len(self.default_faster),
            "records_from": dict(sorted(self.machines.items())),
            "preferred_machine": self.machine,
            "in_model": len(self.in_model),
            "missing": self.missing,
        }


def tuning_target(target: Target):
    """The TVM target for tuning and applying records. MetaSchedule's CPU rules need `num-cores`;
    presets that do not pin it get this machine's count."""
    import tvm

    spec = dict(target.tvm)
    if spec.get("kind") == "llvm" and "num-cores" not in spec:
        from ..tuning.pools import cpu_count

        spec["num-cores"] = cpu_count()
    if target.host is None:
        return tvm.target.Target(spec)
    return tvm.target.Target(spec, host=target.host)


def check_precision(target: Target, precision: str) -> None:
    from ..errors import UserError

    if precision not in PRECISIONS:
        raise UserError(f"unknown precision '{precision}'; known: {', '.join(PRECISIONS)}")
    if precision == "fp16" and target.device != "cuda":
        raise UserError(f"fp16 is built for GPU targets; target '{target.name}' is a {target.device} "
                        "(its kernels run fp32)")


def check_layout(layout: str) -> None:
    from ..errors import UserError

    if layout not in LAYOUTS:
        raise UserError(f"unknown layout '{layout}'; known: {', '.join(LAYOUTS)}")


def check_conv(conv: str) -> None:
    from ..errors import UserError

    if conv not in CONVS:
        raise UserError(f"unknown convolution algorithm '{conv}'; known: {', '.join(CONVS)}")


def _convert_layout(mod, layout: str):
    from tvm import relax

    mod = relax.transform.ConvertToDataflow()(mod)
    return relax.transform.ConvertLayout({"relax.nn.conv2d": [layout, "OHWI"]})(mod)


def layout_problem(mod, layout: str) -> str | None:
    """Why TVM's ConvertLayout cannot put this model's convolutions in `layout`, or None when it
    can. It fails on some graphs around them (in TVM 0.27: an inference-time Dropout, whose tuple
    result it cannot follow; a 5-D reshape or stack of a convolution's output)."""
    if layout == "NCHW" or not has_conv2d(mod):
        return None
    try:
        _convert_layout(mod, layout)
    except Exception as err:  # noqa: BLE001 - TVM's checks raise InternalError, ValueError, ...
        lines = [x.strip() for x in str(err).splitlines() if x.strip()]
        return (lines[-1] if lines else type(err).__name__)[:200]
    return None


def resolve_layout(mod, target: Target, precisions, index=None, given: str | None = None,
                   conv: str | None = None) -> tuple[str | None, str]:
    """The form of a build's convolutions (layout, "+winograd" where they are Winograd: see
    `split_form`) and why. The layout is `given` (--layout) and the algorithm `conv` (--conv) where
    told; what is not told `choose_layout` picks over the store's `index` (a logstore.Index, None: no
    store), else the target's (`layout`, direct convolutions). None for a model without 2-D
    convolutions. A model TVM cannot convert to NHWC stays NCHW (an error when NHWC was given);
    Winograd needs fp32 3x3 stride-1 convolutions (an error when --conv winograd finds none)."""
    from ..errors import UserError

    if given is not None:
        check_layout(given)
    if conv is not None:
        check_conv(conv)
    if not has_conv2d(mod):
        return None, ""
    problem = layout_problem(mod, "NHWC") if (given or "NHWC") == "NHWC" else None
    if problem and given:
        raise UserError(f"--layout NHWC: TVM's ConvertLayout cannot convert this model ({problem}); "
                        "build it with --layout NCHW")
    applies = _winograd_convs(mod, precisions)
    if conv in applies and not applies[conv]:
        m = "4x4" if conv == "winograd" else "4x4 or 2x2"
        raise UserError(f"--conv {conv}: the model has no float32 3x3 stride-1 convolution with at least "
                        f"16 channels and 49 output tiles (batch x rows x columns of {m} tiles)"
                        + (" (fp16 builds keep direct convolutions)" if "fp32" not in precisions else ""))
    layouts = ["NCHW"] if problem else [given] if given else [target.layout, *[x for x in LAYOUTS if x != target.layout]]
    convs = [conv] if conv else candidate_convs(applies)
    forms = [form_of(lay, c) for lay in layouts for c in convs]
    if len(forms) == 1:
        return forms[0], (f"TVM's ConvertLayout cannot convert it to NHWC: {problem}" if problem else "given")
    if index is not None and index.records:
        form, why = choose_layout(mod, target, precisions, index, forms)
        return form, (f"TVM's ConvertLayout cannot convert it to NHWC: {problem}; " + why) if problem else why
    if problem:
        return forms[0], f"TVM's ConvertLayout cannot convert it to NHWC: {problem}"
    return forms[0], "given" if given or conv else "the target's"


def candidate_convs(applies: dict[str, int]) -> list[str]:
    """The algorithms a build not told one chooses among, from `_winograd_convs`'s counts: direct,
    and each Winograd algorithm that applies; winograd-f2 only where it turns more convolutions into
    Winograd than winograd does (else the two build the same kernels)."""
    return ["direct", *[c for c in applies if applies[c] and (c == "winograd" or applies[c] != applies.get("winograd"))]]


def _winograd_convs(mod, precisions) -> dict[str, int]:
    """Winograd algorithm -> how many of the model's convolutions it turns into Winograd (0 for
    builds without fp32)."""
    from . import winograd

    fp32 = "fp32" in list(precisions)
    return {conv: winograd.count_eligible(mod, tiles) if fp32 else 0 for conv, tiles in winograd.TILES.items()}


def has_conv2d(mod) -> bool:
    """Whether `main` has a 2-D convolution (whose layout `relayout` would change)."""
    import tvm
    from tvm import relax

    found = []

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == "relax.nn.conv2d":
            found.append(expr)

    relax.analysis.post_order_visit(mod["main"].body, visit)
    return bool(found)


def relayout(mod, weights, target: Target, layout: str = "NCHW", precision: str = "fp32"):
    """Stage 0: the model with its 2-D convolutions in the build's form (`split_form`): in its
    layout (`ConvertLayout`; kernels OHWI for NHWC), and, for "+winograd" forms of fp32 builds, its
    3x3 stride-1 convolutions as Winograd (compile/winograd.py). The weights that it then takes: the
    weight transposes (and those of the biases broadcast along channels) and the Winograd kernel
    transforms are lifted out and run once here, on the host, so they are neither kernels of the
    deployed module nor tuning workloads. `weights=None` (tuning: shapes only) skips running them.
    Returns (module, weights)."""
    layout, conv = split_form(layout)
    if layout is None or not has_conv2d(mod):  # None: a model without any
        return mod, weights
    check_layout(layout)
    if layout != "NCHW":
        mod, weights = _lift_weight_ops(_convert_layout(mod, layout), weights, target)
    if conv != "direct" and precision == "fp32":
        from . import winograd

        mod, _ = winograd.rewrite(mod, winograd.TILES[conv])
        mod, weights = _lift_weight_ops(mod, weights, target)
    return mod, weights


def _lift_weight_ops(mod, weights, target: Target):
    """`mod` without its weight-only computations, and the weights they make (run here, on the
    host; `weights=None`: shapes only)."""
    lifted = lift(mod, target)
    if weights is not None:
        weights = transform_weights(lifted, weights)
    return main_only(lifted), weights


def prepare(mod, target: Target, precision: str = "fp32"):
    """Stage 1: lower and fuse; the PrimFuncs of the result are the tuning workloads."""
    import tvm
    from tvm import relax

    check_precision(target, precision)
    passes = []
    if precision == "fp16":
        mod = mixed_precision(mod)
    if target.device == "cpu":
        # exp, erf and tanh as TVM's polynomial approximations (softmax as fast_softmax): LLVM has no
        # vector math library here and calls libm once per element, so a GELU or a softmax cost more
        # than the matrix product they follow (encoder fc1+GELU: 816 us, fc2 with the same FLOPs:
        # 332 us on a 2-core AVX-512 VM). ONNX Runtime and OpenVINO approximate them too.
        mod = fast_math(mod)
    passes += [
        relax.transform.DecomposeOpsForInference(),
        relax.transform.CanonicalizeBindings(),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ]
    if target.device == "cpu":
        passes.append(relax.transform.AttachAttrLayoutFreeBuffers())
    with tuning_target(target):
        return tvm.transform.Sequential(passes)(mod)


def fast_math(mod):
    """TVM's FastMathTransform for float32 tensors only. The fast forms are accurate to float32
    (fast_erf on float64 is off by about 1e-8), so float64 and other dtypes keep the exact functions."""
    from tvm import topi
    from tvm.relax import PyExprMutator, expr_functor

    fast = {"relax.exp": topi.fast_exp, "relax.erf": topi.fast_erf, "relax.tanh": topi.fast_tanh}

    @expr_functor.mutator
    class _FastMath(PyExprMutator):
        def visit_call_(self, call):
            name = getattr(call.op, "name", None)
            if name in fast or name == "relax.nn.softmax":
                if getattr(call.args[0].ty, "dtype", None) == "float32":
                    if name == "relax.nn.softmax":
                        return self.builder_.call_te(topi.nn.fast_softmax, call.args[0], call.attrs.axis)
                    return self.builder_.call_te(fast[name], call.args[0])
            return super().visit_call_(call)

    import tvm

    mutator = _FastMath(mod)
    for gv, func in mod.functions_items():
        if isinstance(func, tvm.relax.Function):
            mutator.builder_.update_func(gv, mutator.visit_expr(func))
    return mutator.builder_.get()


def mixed_precision(mod):
    """fp16 with fp32 accumulation, weights declared fp16 (`float_weight_names`). Where Relax's
    ToMixedPrecision cannot follow fp16 values through the graph (it stops at `call_tir` of TE
    functions that some of TVM's ONNX converters emit), only the weights that convolutions and matrix
    products read become fp16, as ToMixedPrecision does by default: slower, but it builds."""
    import tvm
    from tvm import relax

    mod = relax.transform.ConvertToDataflow()(mod)
    try:
        return relax.transform.ToMixedPrecision(out_dtype="float32", fp16_input_names=float_weight_names(mod))(mod)
    except (tvm.error.InternalError, ValueError, TypeError):
        return relax.transform.ToMixedPrecision(out_dtype="float32")(mod)


# Normalisations keep their parameters, and so their arithmetic, in fp32 (as PyTorch's autocast does):
# ToMixedPrecision lets them follow their inputs' dtype, and fp16 variances lose too much.
_FP32_NORMS = ("relax.nn.layer_norm", "relax.nn.group_norm", "relax.nn.rms_norm", "relax.nn.batch_norm",
               "relax.nn.instance_norm")


def float_weight_names(mod) -> list[str]:
    """The float32 weights of `main` (its parameters after the `num_input` model inputs) that fp16
    builds store as fp16: all but the parameters of normalisations.

    ToMixedPrecision converts weights to fp16 only where an fp16 operator (convolution, matrix
    product) reads them; told nothing, it keeps biases fp32, so every add after a convolution runs in
    fp32 and activations travel between kernels as fp32, cast down and up again around each
    convolution. Naming the weights makes them fp16 too: activations stay fp16."""
    import tvm
    from tvm import relax

    main = mod["main"]
    n_input = int(main.attrs["num_input"]) if main.attrs and "num_input" in main.attrs else len(main.params)
    weights = [p for p in main.params[n_input:] if 'dtype="float32"' in str(p.ty)]
    keep_fp32: set = set()

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name in _FP32_NORMS:
            keep_fp32.update(a for a in expr.args if isinstance(a, relax.Var))

    relax.analysis.post_order_visit(main.body, visit)
    return [str(p.name) for p in weights if p not in keep_fp32]


def lift(prepared, target: Target):
    """GPU order, stage 2: weight-only computations lifted into `main_transform_params`."""
    import tvm
    from tvm import relax

    with tuning_target(target):
        return tvm.transform.Sequential([relax.transform.LiftTransformParams(), relax.transform.FoldConstant()])(prepared)


def workloads(mod, target: Target, precision: str = "fp32", layout: str = "NCHW"):
    """The module whose PrimFuncs are the tuning workloads of `mod` for `target`."""
    mod, _ = relayout(mod, None, target, layout, precision)
    prepared = prepare(mod, target, precision)
    if target.device == "cuda":
        return main_only(lift(prepared, target))
    return prepared


def workload_hash(task) -> str:
    """A tuning task's workload key: MetaSchedule's structural hash, as the store keeps it."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

    return ms.database.Workload(_normalize_mod(task.dispatched[0])).as_json()[0]


def choose_layout(mod, target: Target, precisions, index, forms=None) -> tuple[str, str]:
    """The form (layout, algorithm: see `split_form`) of a build that was not told one, and why,
    among `forms` (default: both layouts, direct convolutions; the first is the default). The
    store (`index`, a logstore.Index) decides where it covers the model in one form better than in
    the others: the form that leaves fewer of the model's kernels without records, or, where they
    leave out as many, the one whose stored best times add up to less (each kernel's time x its
    launches). Otherwise the default. So a model tuned before a target's layout changed keeps its
    records, and one tuned in several forms is built in the fastest."""
    precisions = list(precisions)
    forms = list(forms or (target.layout, *[x for x in LAYOUTS if x != target.layout]))
    seen: dict[str, tuple[int, int, float]] = {}
    for form in forms:
        covered, total, seconds = 0, 0, 0.0
        for p in precisions:
            for t in extract_tasks(workloads(mod, target, p, form), target):
                total += 1
                h = workload_hash(t)
                best, default = index.best(h), index.default_seconds(h)
                if best is not None or index.trials(h) > 0:
                    covered += 1
                    times = [x for x in (best.seconds if best else None, default) if x is not None]
                    seconds += int(t.weight) * min(times) if times else 0.0
        seen[form] = (covered, total, seconds)
    return prefer_layout(seen, forms[0])


def prefer_layout(seen: dict[str, tuple[int, int, float]], target_layout: str) -> tuple[str, str]:
    """`choose_layout`'s decision over each form's (kernels with records, kernels, stored seconds).
    The forms' kernel counts can differ (NHWC adds a transpose at each end of a model, NCHW a
    reshape), so the one with fewer kernels *without* records wins; where they leave out as many,
    the one whose stored times add up to less; else the default (`target_layout`)."""
    def missing(form):
        return seen[form][1] - seen[form][0]

    best = target_layout
    for form in seen:
        if form == best or not seen[form][0]:
            continue
        if missing(form) < missing(best) or (missing(form) == missing(best) and 0 < seen[form][2] < seen[best][2]):
            best = form
    own = seen[target_layout]
    runner = min((f for f in seen if f != best), key=lambda f: (missing(f), seen[f][2] or float("inf")))
    if best != target_layout:
        why = (f"the store's: records for {seen[best][0]} of its {seen[best][1]} kernels in {describe_form(best)}, "
               f"{own[0]} of {own[1]} in {describe_form(target_layout)}, the target's")
        if missing(best) == missing(target_layout):
            why += f"; stored times add up to {seen[best][2] * 1e3:.3g} ms against {own[2] * 1e3:.3g} ms"
        elif runner != target_layout and missing(runner) == missing(best) and seen[runner][0]:
            why += (f"; {describe_form(runner)}: stored times add up to {seen[runner][2] * 1e3:.3g} ms "
                    f"against {seen[best][2] * 1e3:.3g} ms")
        return best, why
    why = f"the target's; records for {own[0]} of its {own[1]} kernels"
    other = seen[runner]
    if own[0] and other[0] and missing(target_layout) == missing(runner):
        why += (f", {other[0]} of {other[1]} in {describe_form(runner)}; stored times add up to "
                f"{own[2] * 1e3:.3g} ms against {other[2] * 1e3:.3g} ms")
    return target_layout, why


def extract_tasks(prepared, target: Target):
    """MetaSchedule's tuning tasks of a prepared module."""
    from tvm.s_tir import meta_schedule as ms

    return ms.relax_integration.extract_tasks(prepared, tuning_target(target))


def coverage(prepared, target: Target, database, db_label: str = "",
             default_faster: frozenset[str] = frozenset(), machine_of: dict | None = None,
             pinned: frozenset[str] = frozenset()) -> Coverage:
    """How many of the prepared module's workloads `database` has a record for. `default_faster`:
    the workload hashes whose records the database leaves out because the default schedule
    measured faster; `machine_of`: workload hash -> the machine that measured its best record;
    `pinned`: the workload hashes whose applied record calibrate pinned."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

    cov = Coverage(database=db_label, records=len(database) if database is not None else 0)
    tasks = extract_tasks(prepared, target)
    tvm_target = tuning_target(target)
    cov.tasks = len(tasks)
    for task in tasks:
        rec = None
        if database is not None:
            rec = database.query_tuning_record(task.dispatched[0], tvm_target, task.task_name)
        (cov.covered if rec is not None else cov.missing).append(task.task_name)
        if (rec is None and default_faster) or (rec is not None and (machine_of or pinned)):
            wl = ms.database.Workload(_normalize_mod(task.dispatched[0])).as_json()[0]
            if rec is not None and wl in pinned:
                cov.in_model.append(task.task_name)
            if rec is None and wl in default_faster:
                cov.default_faster.append(task.task_name)
            if rec is not None and machine_of:
                m = machine_of.get(wl) or ""
                cov.machines[m] = cov.machines.get(m, 0) + 1
    return cov


def default_schedule(mod, tvm_target, device: str):
    """A workload as a build schedules it when no record applies: on GPUs the dlight rules that
    `tvm.compile`'s CUDA pipeline runs (see the module docstring), on CPUs TVM's plain lowering (the
    module as it is). What `tune` times as a workload's baseline; None if the rules fail on it."""
    if device != "cuda":
        return mod
    from tvm.s_tir import dlight as dl

    try:
        with tvm_target:
            return dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(),
                                           dl.gpu.GeneralReduction(), dl.gpu.Fallback())(mod)
    except Exception:  # noqa: BLE001 - no baseline for this workload
        return None


def apply_records(prepared, target: Target, database):
    """Stage 2: the best stored schedule for every covered PrimFunc."""
    from tvm import relax

    if database is None or len(database) == 0:
        return prepared
    with tuning_target(target), database:
        return relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(prepared)


def finish(mod, target: Target, tuned: bool = True):
    """Stage 3: weight-only computations lifted into `main_transform_params`. The layout-rewrite
    split runs only when tuned schedules were applied (only they rewrite layouts); it fails on a
    kernel that is one opaque block (TVM's scatter_elements, MaxUnpool) even when there is nothing
    to split."""
    import tvm
    from tvm import relax

    passes = [relax.transform.SplitLayoutRewritePreproc()] if tuned else []
    with tuning_target(target):
        return tvm.transform.Sequential(
            [*passes, relax.transform.LiftTransformParams(), relax.transform.FoldConstant()]
        )(mod)


def transform_weights(mod, weights: list) -> list:
    """Run `main_transform_params` on the host CPU (generic x86/ARM code, whatever the target) and
    return the weights that the finished `main` takes."""
    import tvm
    from tvm import relax

    if TRANSFORM not in [gv.name_hint for gv in mod.functions]:
        return weights
    attrs = mod["main"].attrs
    num_input = int(attrs["num_input"]) if attrs is not None and "num_input" in attrs else None
    if not weights and num_input == len(mod["main"].params):
        return []  # `main` takes no weights: skip the transform's own build (~0.3 s a model)
    tp = relax.transform.DeadCodeElimination(entry_functions=[TRANSFORM])(mod)
    tp = tvm.IRModule({gv: f for gv, f in tp.functions.items() if gv.name_hint != "main"})
    tp = relax.transform.DeadCodeElimination(entry_functions=[TRANSFORM])(tp)
    exe = tvm.compile(tp, target=tvm.target.Target("llvm"))
    vm = relax.VirtualMachine(exe, tvm.cpu())
    out = vm[TRANSFORM](list(weights))
    return [out[i] for i in range(len(out))]


def _weights_as_declared(mod, weights: list) -> list:
    """The weights converted to the dtypes that `main` now declares for them (fp16 builds declare
    the weights fp16, see `float_weight_names`)."""
    import tvm

    main = mod["main"]
    params = main.params[len(main.params) - len(weights):] if weights else []
    out = []
    for p, w in zip(params, weights):
        want = getattr(p.ty, "dtype", None)
        if want is not None and str(want) != str(w.dtype):
            w = tvm.runtime.tensor(w.numpy().astype(str(want)))
        out.append(w)
    return out


def main_only(mod):
    """The module without `main_transform_params` (and the kernels only it used)."""
    import tvm
    from tvm import relax

    if TRANSFORM not in [gv.name_hint for gv in mod.functions]:
        return mod
    mod = tvm.IRModule({gv: f for gv, f in mod.functions.items() if gv.name_hint != TRANSFORM})
    return relax.transform.DeadCodeElimination(entry_functions=["main"])(mod)


@dataclass
class Built:
    executable: object
    weights: list
    coverage: Coverage | None


def build(mod, weights: list, target: Target, database=None, db_label: str = "", precision: str = "fp32",
          cuda_graph: bool = True, default_faster: frozenset[str] = frozenset(), layout: str = "NCHW",
          machine_of: dict | None = None, pinned: frozenset[str] = frozenset()) -> Built:
    """All stages and `tvm.compile`; returns the executable and the weights it takes. `cuda_graph=False`
    launches every kernel from the host (what a per-kernel profile of the VM needs)."""
    import tvm

    mod, weights = relayout(mod, weights, target, layout, precision)
    prepared = prepare(mod, target, precision)
    weights = _weights_as_declared(prepared, weights)
    if target.device == "cuda":
        from ..tuning.intrinsics import load_tensor_intrinsics

        # dlight's tensor-core Matmul rule imports TVM's tensor intrinsics: 4 minutes the stock way
        # (every backend's, see tuning/intrinsics.py), seconds for the CUDA family alone.
        load_tensor_intrinsics("cuda")
        lifted = lift(prepared, target)
        new_weights = transform_weights(lifted, weights)
        kernels = main_only(lifted)
        cov = coverage(kernels, target, database, db_label, default_faster, machine_of, pinned) if database is not None else None
        scheduled = apply_records(kernels, target, database)
        with tvm.transform.PassContext(opt_level=3, config={"relax.backend.use_cuda_graph": cuda_graph}):
            executable = tvm.compile(scheduled, target=target.tvm_target())
        return Built(executable, new_weights, cov)
    cov = coverage(prepared, target, database, db_label, default_faster, machine_of, pinned) if database is not None else None
    scheduled = apply_records(prepared, target, database)
    finished = finish(scheduled, target, tuned=bool(cov and cov.covered))
    new_weights = transform_weights(finished, weights)
    executable = tvm.compile(main_only(finished), target=target.tvm_target())
    return Built(executable, new_weights, cov)
