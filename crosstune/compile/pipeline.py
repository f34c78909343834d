"""The build pipeline: Relax module -> executable for a target, with stored tuning records applied.

Three stages, shared by `compile` and `tune` so both see the same kernels:
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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..targets import Target

TRANSFORM = "main_transform_params"


@dataclass
class Coverage:
    """Which tuning workloads of a model the database had records for."""

    tasks: int = 0
    covered: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    database: str = ""
    records: int = 0

    def to_json(self) -> dict:
        return {
            "database": self.database,
            "tasks": self.tasks,
            "covered": len(self.covered),
            "default_schedules": len(self.missing),
            "records_in_database": self.records,
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


def prepare(mod, target: Target):
    """Stage 1: lower and fuse; the PrimFuncs of the result are the tuning workloads."""
    import tvm
    from tvm import relax

    passes = [
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


def extract_tasks(prepared, target: Target):
    """MetaSchedule's tuning tasks of a prepared module."""
    from tvm.s_tir import meta_schedule as ms

    return ms.relax_integration.extract_tasks(prepared, tuning_target(target))


def coverage(prepared, target: Target, database, db_label: str = "") -> Coverage:
    """How many of the prepared module's workloads `database` has a record for."""
    cov = Coverage(database=db_label, records=len(database) if database is not None else 0)
    tasks = extract_tasks(prepared, target)
    tvm_target = tuning_target(target)
    cov.tasks = len(tasks)
    for task in tasks:
        rec = None
        if database is not None:
            rec = database.query_tuning_record(task.dispatched[0], tvm_target, task.task_name)
        (cov.covered if rec is not None else cov.missing).append(task.task_name)
    return cov


def apply_records(prepared, target: Target, database):
    """Stage 2: the best stored schedule for every covered PrimFunc."""
    from tvm import relax

    if database is None or len(database) == 0:
        return prepared
    with tuning_target(target), database:
        return relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(prepared)


def finish(mod, target: Target):
    """Stage 3: weight-only computations lifted into `main_transform_params`."""
    import tvm
    from tvm import relax

    with tuning_target(target):
        return tvm.transform.Sequential(
            [
                relax.transform.SplitLayoutRewritePreproc(),
                relax.transform.LiftTransformParams(),
                relax.transform.FoldConstant(),
            ]
        )(mod)


def transform_weights(mod, weights: list) -> list:
    """Run `main_transform_params` on the host CPU (generic x86/ARM code, whatever the target) and
    return the weights that the finished `main` takes."""
    import tvm
    from tvm import relax

    if TRANSFORM not in [gv.name_hint for gv in mod.functions]:
        return weights
    tp = relax.transform.DeadCodeElimination(entry_functions=[TRANSFORM])(mod)
    tp = tvm.IRModule({gv: f for gv, f in tp.functions.items() if gv.name_hint != "main"})
    tp = relax.transform.DeadCodeElimination(entry_functions=[TRANSFORM])(tp)
    exe = tvm.compile(tp, target=tvm.target.Target("llvm"))
    vm = relax.VirtualMachine(exe, tvm.cpu())
    out = vm[TRANSFORM](list(weights))
    return [out[i] for i in range(len(out))]


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


def build(mod, weights: list, target: Target, database=None, db_label: str = "") -> Built:
    """All three stages and `tvm.compile`; returns the executable and the weights it takes."""
    import tvm

    prepared = prepare(mod, target)
    cov = coverage(prepared, target, database, db_label) if database is not None else None
    scheduled = apply_records(prepared, target, database)
    finished = finish(scheduled, target)
    new_weights = transform_weights(finished, weights)
    executable = tvm.compile(main_only(finished), target=target.tvm_target())
    return Built(executable, new_weights, cov)
