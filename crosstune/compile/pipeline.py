"""The build pipeline: Relax module -> executable for a target.

The passes before `tvm.compile` are the ones MetaSchedule's tuning pipeline runs before it extracts
tasks (`relax.pipeline.static_shape_tuning_pipeline`), so the fused kernels built here are the same
workloads that tuning records will key on.
"""

from __future__ import annotations

from ..targets import Target


def build(mod, target: Target):
    """Lower and build `mod` for `target`; returns TVM's VMExecutable."""
    import tvm
    from tvm import relax

    tvm_target = target.tvm_target()
    with tvm_target:
        mod = tvm.transform.Sequential(
            [
                relax.transform.DecomposeOpsForInference(),
                relax.transform.CanonicalizeBindings(),
                relax.transform.LegalizeOps(),
                relax.transform.AnnotateTIROpPattern(),
                relax.transform.FoldConstant(),
                relax.transform.FuseOps(),
                relax.transform.FuseTIR(),
            ]
        )(mod)
    return tvm.compile(mod, target=tvm_target)
