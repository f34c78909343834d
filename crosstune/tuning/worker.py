"""What runs inside crosstune's build and measure worker processes.

The workers are forked from a forkserver that imported this module once (`pools.py`), so each new
worker starts with TVM already imported: no 1-3 s `import tvm` (torch is kept out, see below) and no
per-round pool start-up, which is what makes stock MetaSchedule's `LocalBuilder` slow. Functions here
take and return plain data (JSON strings, paths, floats) so nothing TVM-specific crosses a pipe.
"""

from __future__ import annotations

import os
import json
import uuid

# tvm_ffi imports torch when it is installed (+2 s per process, and the forkserver would carry it
# into every worker); the workers never need it.
from .._torchblock import block_torch  # noqa: E402

block_torch()

import numpy as np  # noqa: E402
import tvm  # noqa: E402

from .intrinsics import load_tensor_intrinsics  # noqa: E402

_loaded_modules: dict[str, object] = {}


def warm(device: str) -> int:
    """Make the worker ready for `device`'s schedules (tensor intrinsics); returns the pid.

    Ctrl-C reaches the whole process group: workers ignore it and let the tuner stop them, so an
    interrupted build is not recorded as a failed candidate. They also die with the forkserver,
    which exits when the tuner does, so a killed tuner leaves no workers behind."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    load_tensor_intrinsics(device)
    return os.getpid()


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except OSError:  # not glibc/Linux: workers exit when their call queue closes instead
        pass


def build(mod_json: str, target_json: str, out_dir: str, cc: str | None) -> str:
    """Build one scheduled TIR module and link it into a shared library; returns its path."""
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = tvm.ir.load_json(mod_json)
    target = tvm.target.Target(json.loads(target_json))
    # Measure the kernel without the weight-layout rewrite, which runs once ahead of time in the
    # compiled model (as MetaSchedule's default builder does).
    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    rt_mod = tvm.driver.build(mod, target=target)
    path = os.path.join(out_dir, f"{uuid.uuid4().hex}.so")
    if cc:
        from tvm.support import cc as _cc

        rt_mod.export_library(path, fcompile=_cc.cross_compiler(cc))
    else:
        rt_mod.export_library(path)
    return path


def measure(path: str, args_info: list, device: str, number: int, repeat: int, min_repeat_ms: int,
            threads: int | None, cache_flush: bool = False) -> list[float]:
    """Time one built kernel on fresh arguments; returns seconds per repeat. With `cache_flush`
    (CPU), every argument but the first is flushed from the caches before each of 10 one-call runs."""
    if threads:  # the target's num-cores, whatever the parent process's pool uses
        os.environ["TVM_NUM_THREADS"] = str(threads)
    dev = tvm.device(device, 0)
    rt_mod = tvm.runtime.load_module(path)
    args = [_alloc(info, dev) for info in args_info]
    if cache_flush and device == "cpu":
        evaluator = rt_mod.time_evaluator(rt_mod.entry_name, dev, number=1, repeat=max(10, repeat),
                                          f_preproc="cache_flush_cpu_non_first_arg")
    else:
        evaluator = rt_mod.time_evaluator(rt_mod.entry_name, dev, number=number, repeat=repeat,
                                          min_repeat_ms=min_repeat_ms)
    dev.sync()
    costs = [float(c) for c in evaluator(*args).results]
    try:
        os.unlink(path)
    except OSError:
        pass
    return costs


def _alloc(info, dev):
    """Arguments for measuring: random floats; integer tensors are zeros, because integer inputs are
    often indices (`take`, gather) and random ones would read out of bounds and crash the worker."""
    kind, dtype, shape = info[0], str(info[1]), [int(s) for s in info[2]]
    if kind != "TENSOR":
        raise NotImplementedError(f"argument kind {kind}")
    if dtype.startswith(("int", "uint", "bool")):
        arr = np.zeros(shape, dtype="bool" if dtype == "bool" else dtype)
        return tvm.runtime.tensor(arr, dev)
    t = tvm.runtime.empty(shape, dtype=dtype, device=dev)
    fill = tvm.get_global_func("tvm.contrib.random.random_fill_for_measure", allow_missing=True)
    if fill is not None:
        fill(t)
    else:  # pragma: no cover - the function ships with TVM
        t.copyfrom(np.random.default_rng(0).standard_normal(shape).astype(dtype))
    return t
