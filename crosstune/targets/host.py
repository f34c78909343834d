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
    "amx-int8": "amx_int8", "amx-bf16": "amx_bf16", "amx-fp16": "amx_fp16", "amx-complex": "amx_complex",
    "avx512vp2intersect": "avx512_vp2intersect",
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


# -- the machine that measures ----------------------------------------------------------------------
# Tuning records hold times, and a time is a fact about the machine that measured it: schedules tuned
# on one CPU of an instruction-set level are often far from best on another of the same level (the
# x86-avx512 store's Intel-tuned records made ResNet-50 1.6x slower on a Zen 4 than records tuned on
# the Zen 4). So every record names the kind of machine it was measured on, and compile prefers the
# records of the machine it builds for.
_VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd", "HygonGenuine": "hygon", "CentaurHauls": "centaur"}


@dataclass(frozen=True)
class Machine:
    """A kind of machine, as tuning records name it: `id` is stable and compact (CPU vendor, family
    and model: `intel-6-143`, `amd-25-17`; ARM implementer and part: `arm-0x41-0xd08`; a GPU:
    `cuda-nvidia-h200`), `name` is for people."""

    id: str
    name: str

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name}


def slug(text: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "-" for c in text.strip())
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-") or "unknown"


def this_machine(cpuinfo_path: str = "/proc/cpuinfo") -> Machine:
    """This machine's CPU kind, from /proc/cpuinfo (no TVM)."""
    fields: dict[str, str] = {}
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                key = key.strip()
                if sep and key and key not in fields:
                    fields[key] = value.strip()
                if not line.strip() and "processor" in fields and len(fields) > 4:
                    break  # the first CPU's block is enough
    except OSError:
        pass
    arch = platform.machine() or "unknown"
    vendor = fields.get("vendor_id")
    if vendor and "cpu family" in fields and "model" in fields:
        name = fields.get("model name") or vendor
        return Machine(f"{_VENDORS.get(vendor, slug(vendor))}-{fields['cpu family']}-{fields['model']}", name)
    if "CPU implementer" in fields and "CPU part" in fields:
        impl, part = fields["CPU implementer"].lower(), fields["CPU part"].lower()
        name = _device_tree_model() or fields.get("model name") or f"{arch} CPU (implementer {impl}, part {part})"
        return Machine(f"arm-{impl}-{part}", name)
    return Machine(f"{slug(arch)}-unknown", fields.get("model name") or arch)


def _device_tree_model() -> str | None:
    try:
        with open("/proc/device-tree/model", encoding="utf-8", errors="replace") as f:
            return f.read().strip("\x00\n ") or None
    except OSError:
        return None
