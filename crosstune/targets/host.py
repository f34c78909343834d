"""Detect the host CPU's x86 instruction-set level from /proc/cpuinfo, without importing TVM."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

# Features each level's LLVM CPU (skylake-avx512, core-avx2) lets the code generator use. A level is
# chosen only when /proc/cpuinfo lists all of them: virtual machines sometimes hide one, and code built
# for a feature the CPU lacks dies with SIGILL instead of an error.
_AVX2 = frozenset({"avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "movbe", "popcnt", "sse4_2"})
_AVX512 = _AVX2 | {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}

LEVELS = (("x86-avx512", _AVX512), ("x86-avx2", _AVX2))


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
