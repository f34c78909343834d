"""The design spaces crosstune's tuner searches: MetaSchedule's defaults, with one fix for CUDA.

CUDA targets from sm_75 get MetaSchedule's tensor-core rules (`ScheduleRule.create("cuda-tensorcore")`).
In TVM 0.27 those stage an fp32 accumulator (f32 += f16 * f16, what fp16 builds do: fp32
accumulation as autocast and TensorRT do) through *dynamic* shared memory, next to the fp16 operand
tiles. Lowering merges all dynamic shared buffers of a kernel into one, typed as the fp16 tiles, and
the accumulator's `wmma_store_16x16x16_f32_shared_dyn` then fails TVM's `tvm_access_ptr` check
("element type must match the source buffer (float16 vs float32)"): nearly every tensor-core
candidate of an fp16 convolution or matmul failed to build, so fp16 tuning found only slow SIMT
schedules. crosstune's rule set is the default one with the fp32-accumulation groups storing their
accumulator through *static* shared memory (`wmma_store_16x16x16_f32_shared`), which is not merged;
the operand tiles stay in dynamic shared memory as before. Everything else is TVM's default: the
fp16- and int8-accumulation groups, the mma rule, then the CUDA rules (SIMT tiling, inlining,
cross-thread reduction, unrolling, binding).
"""

from __future__ import annotations

# (init, load_a, load_b, compute, store). fp32 accumulation: the accumulator goes through static
# shared memory (`..._f32_shared`, not `..._f32_shared_dyn`), see the module doc.
_WMMA_F32 = [
    ("wmma_fill_16x16x16_f32", "wmma_load_16x16x16_f16_a_shared_dyn", "wmma_load_16x16x16_f16_b_shared_dyn",
     "wmma_sync_16x16x16_f16f16f32", "wmma_store_16x16x16_f32_shared"),
    ("wmma_fill_16x16x16_f32", "wmma_load_16x16x16_f16_a_shared_dyn", "wmma_load_16x16x16_f16_b_trans_shared_dyn",
     "wmma_sync_16x16x16_f16f16f32_trans", "wmma_store_16x16x16_f32_shared"),
]
# fp16 and int8 accumulation: TVM's own groups, which build as they are.
_WMMA_OTHER = [
    ("wmma_fill_16x16x16_f16", "wmma_load_16x16x16_f16_a_shared_dyn", "wmma_load_16x16x16_f16_b_shared_dyn",
     "wmma_sync_16x16x16_f16f16f16", "wmma_store_16x16x16_f16_shared_dyn"),
    ("wmma_fill_16x16x16_f16", "wmma_load_16x16x16_f16_a_shared_dyn", "wmma_load_16x16x16_f16_b_trans_shared_dyn",
     "wmma_sync_16x16x16_f16f16f16_trans", "wmma_store_16x16x16_f16_shared_dyn"),
    ("wmma_fill_16x16x16_s32", "wmma_load_16x16x16_s8_a_shared_dyn", "wmma_load_16x16x16_s8_b_shared_dyn",
     "wmma_sync_16x16x16_s8s8s32", "wmma_store_16x16x16_s32_shared_dyn"),
    ("wmma_fill_16x16x16_s32", "wmma_load_16x16x16_s8_a_shared_dyn", "wmma_load_16x16x16_s8_b_trans_shared_dyn",
     "wmma_sync_16x16x16_s8s8s32_trans", "wmma_store_16x16x16_s32_shared_dyn"),
]
_MMA = [
    ("mma_init_m16n8k8_f16", "mma_load_m16n8k8_f16_A_shared_dyn", "mma_load_m16n8k8_f16_B_shared_dyn",
     "mma_sync_m16n8k8_f16f16f16", "mma_store_m16n8k8_f16_global"),
    ("mma_init_m16n8k8_f32", "mma_load_m16n8k8_f16_A_shared_dyn", "mma_load_m16n8k8_f16_B_shared_dyn",
     "mma_sync_m16n8k8_f16f16f32", "mma_store_m16n8k8_f32_global"),
]


def _group(init: str, load_a: str, load_b: str, compute: str, store: str) -> dict:
    return {"init": init, "load_a": load_a, "load_b": load_b, "compute": compute, "store": store}


def tensor_core_rules():
    """TVM's `cuda-tensorcore` schedule rules with the fp32-accumulator store fixed (module doc)."""
    from tvm.s_tir.meta_schedule.schedule_rule import MultiLevelTilingTensorCore, ReuseType, ScheduleRule

    def tiling(groups, write_scope: str, write_req: str, pipeline: bool):
        return MultiLevelTilingTensorCore(
            intrin_groups=groups,
            structure="SSSRRSRS",
            tile_binds=["blockIdx.y", "blockIdx.x", "threadIdx.y"],
            max_innermost_factor=4,
            vector_load_lens=[1, 2, 3, 4, 8, 16],
            reuse_read=ReuseType(req="must", levels=[4], scope="shared.dyn"),
            reuse_write=ReuseType(req=write_req, levels=[2], scope=write_scope),
            use_software_pipeline=pipeline,
        )

    cuda = list(ScheduleRule.create("cuda"))
    return [
        cuda[0],  # ApplyCustomRule
        tiling([_group(*g) for g in _WMMA_F32], "shared", "must", False),
        tiling([_group(*g) for g in _WMMA_OTHER], "shared.dyn", "must", False),
        tiling([_group(*g) for g in _MMA], "shared.dyn", "no", True),
        *cuda[1:],
    ]


def uses_tensor_cores(tvm_target) -> bool:
    """True for CUDA targets whose architecture has tensor cores MetaSchedule can use (sm_75+)."""
    if tvm_target.kind.name != "cuda":
        return False
    arch = str(tvm_target.attrs.get("arch", ""))
    return arch.startswith("sm_") and arch[3:].isdigit() and int(arch[3:]) >= 75


def space_generator(tvm_target):
    """The design-space generator for one task on `tvm_target`."""
    if not uses_tensor_cores(tvm_target):
        return "post-order-apply"
    from tvm.s_tir.meta_schedule.space_generator import PostOrderApply

    return PostOrderApply(sch_rules=tensor_core_rules(), postprocs="cuda-tensorcore",
                          mutator_probs="cuda-tensorcore")
