"""Target presets: named, data-file descriptions of where a model will run.

Every part of crosstune asks a `Target` for the TVM target, the host target, the device kind, the C
compiler that links the library, and the tuning-log folder; nothing else builds TVM target dicts.
Presets live in `presets/<name>.toml`; a path to a TOML file of the same shape works as a target too.
"""

from __future__ import annotations

import json
import platform
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import host as _host

PRESET_DIR = Path(__file__).with_name("presets")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Target:
    """A resolved preset. `tvm` is the target dict TVM 0.27 takes; `host` the host-side dict."""

    name: str
    description: str
    device: str
    tvm: dict[str, Any]
    host: dict[str, Any] | None = None
    cc: str = "cc"
    cc_package: str = ""
    logs: str = ""  # folder under logs/ whose tuning records this target uses
    detected: str = ""  # for `host`: what was detected and which preset it resolved to
    source: str = ""  # the TOML file it came from
    board_key: str = ""  # default RPC key of boards of this kind ([board] key)
    qemu_cpu: str = ""  # qemu-user CPU model that emulates this target faithfully ([board] qemu-cpu)
    # data layout of its 2-D convolutions where neither --layout nor the store says (`layout` key)
    layout: str = "NHWC"

    @property
    def arch(self) -> str:
        """The CPU architecture the code runs on (`aarch64`, `x86_64`), from the LLVM triple (the
        host's, for a GPU target: its host code runs on that CPU)."""
        cpu = self.tvm if self.device == "cpu" else (self.host or {})
        triple = str(cpu.get("mtriple", "") or platform.machine())
        return triple.split("-", 1)[0]

    @property
    def gpu_arch(self) -> str:
        """The CUDA architecture (`sm_90`) of a GPU target; "" for a CPU target."""
        return str(self.tvm.get("arch", "")) if self.device == "cuda" else ""

    @property
    def cross(self) -> bool:
        """True when this machine cannot run the code (another architecture): run it on a board."""
        return self.arch != platform.machine()

    def tvm_target(self):
        """The `tvm.target.Target` (imports TVM)."""
        import tvm

        if self.host is None:
            return tvm.target.Target(self.tvm)
        return tvm.target.Target(self.tvm, host=self.host)

    def cpu_flags(self) -> list[str]:
        """The /proc/cpuinfo flags a CPU needs to run code built for this target (x86 only; imports
        TVM to ask LLVM which features the target's mcpu/mattr enable)."""
        cpu = self.tvm if self.device == "cpu" else self.host
        if cpu is None or not str(cpu.get("mtriple", "x86_64")).startswith("x86_64"):
            return []
        import tvm
        from tvm.target import codegen

        return _host.cpuinfo_flags_for(str(f) for f in codegen.llvm_get_cpu_features(tvm.target.Target(cpu)))

    def check_compiler(self) -> str:
        """Path of the linker, or a one-line error naming the package that provides it."""
        path = shutil.which(self.cc)
        if path is None:
            pkg = f" (Debian/Ubuntu package: {self.cc_package})" if self.cc_package else ""
            raise UserError(f"target '{self.name}' links with '{self.cc}', which is not installed{pkg}")
        if self.device == "cuda":
            from .cuda import check_cuda_compiler

            check_cuda_compiler(self.name)
        return path

    def to_json(self) -> dict[str, Any]:
        return {
            "preset": self.name,
            "device": self.device,
            "tvm": self.tvm,
            "host": self.host,
            "cc": self.cc,
            "logs": self.logs,
            "detected": self.detected,
            "arch": self.arch,
            "gpu_arch": self.gpu_arch,
            "board_key": self.board_key,
            "layout": self.layout,
        }

    def describe_tvm(self) -> str:
        return json.dumps(self.tvm, separators=(",", ":"))


def names() -> list[str]:
    """Names of the shipped presets, `host` first."""
    found = sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
    return sorted(found, key=lambda n: n != "host")


def get(name: str) -> Target:
    """The preset called `name` (or the TOML file at that path)."""
    if name.endswith(".toml") and Path(name).is_file():
        return _from_file(Path(name))
    path = PRESET_DIR / f"{name}.toml"
    if not path.is_file():
        raise UserError(f"unknown target '{name}'; known targets: {', '.join(names())}")
    return _from_file(path)


def all_targets() -> list[Target]:
    return [get(n) for n in names()]


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise UserError(f"cannot read target file {path}: {err}") from None


def _from_file(path: Path) -> Target:
    data = _read(path)
    name = path.stem
    if data.get("detect") == "x86":
        return _resolve_host(name, data, path)
    if data.get("detect") == "cuda":
        return _resolve_cuda(name, data, path)
    try:
        device = data["device"]
        tvm_target = dict(data["target"])
        tvm_target["kind"]  # noqa: B018 - required key
    except KeyError as err:
        raise UserError(f"target file {path} lacks the key {err}") from None
    if device not in DEVICES:
        raise UserError(f"target file {path}: device '{device}' is not one of {', '.join(DEVICES)}")
    compiler = data.get("compiler", {})
    board = data.get("board", {})
    return Target(
        name=name,
        description=data.get("description", ""),
        device=device,
        tvm=tvm_target,
        host=dict(data["host"]) if "host" in data else None,
        cc=compiler.get("cc", "cc"),
        cc_package=compiler.get("package", ""),
        logs=data.get("logs", name),
        source=str(path),
        board_key=board.get("key", ""),
        qemu_cpu=board.get("qemu-cpu", ""),
        layout=_layout(data, path),
    )


def _layout(data: dict[str, Any], path: Path) -> str:
    layout = str(data.get("layout", "NHWC"))
    if layout not in ("NCHW", "NHWC"):
        raise UserError(f"target file {path}: layout '{layout}' is not one of NCHW, NHWC")
    return layout


def _resolve_host(name: str, data: dict[str, Any], path: Path) -> Target:
    cpu = _host.detect()
    preset = cpu.preset
    if preset is None:
        raise UserError(
            f"target 'host' detects x86-64 CPUs only; this is {cpu.machine}: name a preset instead "
            f"({', '.join(n for n in names() if n != 'host')})"
        )
    base = _from_file(PRESET_DIR / f"{preset}.toml")
    tvm_target = dict(base.tvm, **{"num-cores": cpu.cores})
    return Target(
        name=name,
        description=data.get("description", base.description),
        device=base.device,
        tvm=tvm_target,
        host=base.host,
        cc=base.cc,
        cc_package=base.cc_package,
        logs=base.logs,
        detected=f"{preset}, {cpu.cores} cores ({cpu.model})",
        source=str(path),
        layout=base.layout,
    )


def _resolve_cuda(name: str, data: dict[str, Any], path: Path) -> Target:
    """`cuda`: the preset of the local GPU's architecture (its tuning records included)."""
    from .cuda import PRESET_FOR_ARCH, require_gpu

    gpu = require_gpu(f"target '{name}' detects the local GPU; name a GPU preset instead "
                      f"({', '.join(sorted(set(PRESET_FOR_ARCH.values()) | {'h100'}))})")
    preset = PRESET_FOR_ARCH.get(gpu.arch)
    if preset is not None:
        base = _from_file(PRESET_DIR / f"{preset}.toml")
        tvm_target, logs = base.tvm, base.logs
    else:  # an architecture without a preset: the limits every CUDA GPU since Volta shares
        base = _from_file(PRESET_DIR / "h200.toml")
        tvm_target, logs = dict(base.tvm, arch=gpu.arch), f"cuda-{gpu.arch}"
    return Target(
        name=name,
        description=data.get("description", ""),
        device="cuda",
        tvm=tvm_target,
        host=base.host,
        cc=base.cc,
        cc_package=base.cc_package,
        logs=logs,
        detected=f"{gpu.name} ({gpu.arch}, driver {gpu.driver}) -> {preset or 'generic ' + gpu.arch}",
        source=str(path),
        board_key=base.board_key,
        layout=base.layout,
    )
