"""Detect the host CPU's x86 instruction-set level from /proc/cpuinfo, without importing TVM."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

# Features each level's LLVM CPU (skylake-avx512, core-avx2) lets the code generator use. A level is
# chosen only when /proc/cpuinfo lists all of them: virtual machines sometimes hide one, and code built
# for a feature the CPU lacks dies with SIGILL instead of an error.
# (Kept equal to what LLVM enables for those CPUs: tests/test_targets.py checks it.)
_AVX2 = frozenset(
    {"pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "movbe", "abm"}
)
_AVX512 = _AVX2 | {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}

LEVELS = (("x86-avx512", _AVX512), ("x86-avx2", _AVX2))

# LLVM's x86 feature names -> /proc/cpuinfo flags, for the instruction-set extensions generated
# code may contain. A package records the ones its target enables; loading it on a CPU without
# one of them would end in SIGILL, so `missing` turns that into an error first.
LLVM_TO_CPUINFO = {
    "sse3": "pni", "ssse3": "ssse3", "sse4.1": "sse4_1", "sse4.2": "sse4_2", "popcnt": "popcnt",
    "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c", "bmi": "bmi1", "bmi2": "bmi2",
    "movbe": "movbe", "lzcnt": "abm", "avx512f": "avx512f", "avx512cd": "avx512cd",
    "avx512bw": "avx512bw", "avx512dq": "avx512dq", "avx512vl": "avx512vl",
    "avx512vnni": "avx512_vnni", "avx512bf16": "avx512_bf16", "avx512fp16": "avx512_fp16",
    "avx512vbmi": "avx512vbmi", "avxvnni": "avx_vnni", "amx-tile": "amx_tile",
    "amx-int8": "amx_int8", "amx-bf16": "amx_bf16",
}


def cpuinfo_flags_for(llvm_features) -> list[str]:
    """The /proc/cpuinfo flags matching a set of LLVM x86 features (only the mapped ones)."""
    return sorted({LLVM_TO_CPUINFO[f] for f in llvm_features if f in LLVM_TO_CPUINFO})


def missing(required: list[str], cpu: "HostCPU | None" = None) -> list[str]:
    """Required flags this CPU does not list (none when it is not x86, where flags do not apply)."""
    cpu = cpu or detect()
    if cpu.machine not in ("x86_64", "AMD64") or not cpu.flags:
        return []
    return sorted(set(required) - cpu.flags)


@dataclass(frozen=True)
class HostCPU:
    machine: str  # platform.machine(), e.g. x86_64
    model: str  # "model name" from /proc/cpuinfo
    flags: frozenset[str]
    cores: int  # CPUs this process may run on

    @property
    def preset(self) -> str | None:
        """The x86 preset this CPU can run, or None when it is not x86-64."""
        if self.machine not in ("x86_64", "AMD64"):
            return None
        for name, needed in LEVELS:
            if needed <= self.flags:
                return name
        return "x86-64"


def detect(cpuinfo_path: str = "/proc/cpuinfo") -> HostCPU:
    flags: frozenset[str] = frozenset()
    model = "unknown"
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "flags" and not flags:
                    flags = frozenset(value.split())
                elif key == "model name" and model == "unknown":
                    model = value.strip()
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return HostCPU(platform.machine(), model, flags, cores)


def physical_cores() -> int:
    """Cores (not hyper-threads) among the CPUs this process may run on: what a compute-bound thread
    pool should use. From /sys's thread-sibling lists; every CPU counts where they are missing."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
                cores.add(f.read().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))
