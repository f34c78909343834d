"""Registering TVM's tensor intrinsics in seconds instead of half a minute.

MetaSchedule imports `tvm.s_tir.tensor_intrin` before tuning and in every build worker. That package
parses about 250 TVMScript functions for every backend (CUDA, x86, ARM, ROCm, Hexagon, RISC-V), and
each `@T.prim_func` calls `inspect.stack()`, which resolves the source file of every frame on the
stack: 23 s on this project's 2-core machines. Two things make it fast without changing a result:
- load only the families the target can use (x86 0.2 s, ARM 0.5 s, CUDA 5 s), by importing the
  submodules under a package object that skips the package's own `__init__`;
- while they load, `inspect.stack()` resolves source context only for the innermost frames, the only
  ones the TVMScript parser reads (`is_defined_in_class` looks at frame 2).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types

FAMILIES = {"cpu": ("x86", "arm_cpu"), "cuda": ("cuda",)}
_PKG = "tvm.s_tir.tensor_intrin"


def _fast_stack(context: int = 1):
    frame = sys._getframe(1)
    out = []
    depth = 0
    while frame is not None:
        if depth < 4:
            info = inspect.getframeinfo(frame, context)
            out.append(inspect.FrameInfo(frame, *info, positions=info.positions))
        else:
            code = frame.f_code
            out.append(inspect.FrameInfo(frame, code.co_filename, frame.f_lineno, code.co_name, None, None,
                                         positions=None))
        frame = frame.f_back
        depth += 1
    return out


def load_tensor_intrinsics(device: str) -> None:
    """Register the tensor intrinsics for `device` ("cpu" or "cuda"); idempotent."""
    import tvm.s_tir

    pkg = sys.modules.get(_PKG)
    if pkg is None:
        pkg = types.ModuleType(_PKG)
        pkg.__path__ = [tvm.s_tir.__path__[0] + "/tensor_intrin"]  # type: ignore[attr-defined]
        pkg.__package__ = _PKG
        pkg.__doc__ = "crosstune: tensor intrinsics loaded per target family"
        sys.modules[_PKG] = pkg
        tvm.s_tir.tensor_intrin = pkg  # type: ignore[attr-defined]
    original = inspect.stack
    inspect.stack = _fast_stack
    try:
        for family in FAMILIES.get(device, ()):
            importlib.import_module(f"{_PKG}.{family}")
    finally:
        inspect.stack = original
