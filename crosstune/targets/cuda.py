"""NVIDIA GPUs: which one is here, what code it runs, and how crosstune compiles CUDA.

Nothing here imports TVM: `nvidia-smi` answers which GPU is present (name, compute capability,
driver), which is all `--target cuda`, `crosstune targets` and the load-time checks need.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from ..errors import UserError

# compute capability -> the preset whose records a detected GPU of that architecture uses
PRESET_FOR_ARCH = {"sm_90": "h200", "sm_80": "a100", "sm_87": "jetson-orin"}


@dataclass(frozen=True)
class Gpu:
    name: str
    arch: str  # "sm_90"
    driver: str
    memory_mib: int

    @property
    def capability(self) -> tuple[int, int]:
        return arch_capability(self.arch)


def arch_capability(arch: str) -> tuple[int, int]:
    """"sm_90" -> (9, 0), "sm_87" -> (8, 7)."""
    digits = arch.removeprefix("sm_").rstrip("a")
    if not digits.isdigit() or len(digits) < 2:
        raise ValueError(f"not a CUDA architecture: {arch!r}")
    return int(digits[:-1]), int(digits[-1])


@lru_cache(maxsize=1)
def local_gpus() -> tuple[Gpu, ...]:
    """The NVIDIA GPUs the driver reports (empty without a driver or a GPU)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,compute_cap,driver_version,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4:
            continue
        name, cap, driver, mem = parts[:4]
        try:
            major, minor = cap.split(".")
            gpus.append(Gpu(name, f"sm_{int(major)}{int(minor)}", driver, int(float(mem))))
        except ValueError:
            continue
    return tuple(gpus)


def require_gpu(why: str) -> Gpu:
    """The first local GPU, or a one-line error saying there is none and what needed one."""
    gpus = local_gpus()
    if not gpus:
        raise UserError(f"no NVIDIA GPU here (nvidia-smi reports none): {why}")
    return gpus[0]


def compile_mode() -> str:
    """How TVM turns generated CUDA C into GPU code: NVRTC (in-process, fast) where the `cuda-bindings`
    package is installed, else the `nvcc` executable. TVM defaults to NVRTC and fails without the
    package, so crosstune sets TVM_CUDA_COMPILE_MODE unless the user did."""
    mode = os.environ.get("TVM_CUDA_COMPILE_MODE")
    if mode:
        return mode.lower()
    mode = "nvrtc" if _has_nvrtc_bindings() else "nvcc"
    os.environ["TVM_CUDA_COMPILE_MODE"] = mode  # read by TVM's compile callback, here and in workers
    return mode


def _has_nvrtc_bindings() -> bool:
    try:
        return importlib.util.find_spec("cuda.bindings") is not None
    except (ImportError, ValueError):
        return False


def check_cuda_compiler(target_name: str) -> str:
    """The CUDA compile mode, after checking its compiler exists (one line naming what is missing)."""
    mode = compile_mode()
    if mode == "nvcc" and shutil.which("nvcc") is None and not os.path.exists(_cuda_home_nvcc()):
        raise UserError(
            f"target '{target_name}' compiles CUDA kernels with nvcc, which is not installed: install the "
            "CUDA toolkit (nvcc on PATH or CUDA_HOME), or `pip install cuda-bindings` to compile with NVRTC"
        )
    return mode


def _cuda_home_nvcc() -> str:
    return os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc")
