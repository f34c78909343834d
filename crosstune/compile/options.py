"""Options and result of a compile: plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..tensors import SequenceShape, parse_input_shape


@dataclass
class CompileOptions:
    """What `crosstune compile` takes.

    target: preset name (see `crosstune targets`) or path to a preset TOML file.
    output: package path; default `<model>.<target>.ctm` in the current directory.
    input_shapes: static shapes for inputs with dynamic dimensions, {name: (1, 3, 224, 224)} or
        {name: "1x3x224x224"}.
    verify: run the package against ONNX Runtime on seeded random inputs after building.
    use_logs: apply the target's stored tuning records (default: yes).
    db: the tuning-log folder to use instead of `logs/<target's preset>/`.
    tuned_on: whose tuning records to prefer, a machine id as `crosstune logs show` lists them
        (`intel-6-143`, `amd-25-17`, `cuda-nvidia-h200`), or "any" (every machine's: the fastest
        stored time wins); None: this machine's where the code runs here (a CPU target of this
        architecture, a GPU target with a local GPU), else any. A workload without records of that
        machine uses the other machines' records.
    rpc, key: verify on a board of `key` behind the tracker at `rpc` ("HOST:PORT"); needed to verify
        a package for another architecture (a cross-compiled one).
    precision: "fp32", or "fp16" (GPU targets: `ToMixedPrecision`, fp16 weights and arithmetic; inputs
        and outputs keep the model's dtypes).
    layout: data layout of the 2-D convolutions, "NCHW" (as imported) or "NHWC" (channels-last);
        None: the layout the store's records cover the model better in, else the target preset's
        (`layout` key, NHWC where it has none); see `pipeline.resolve_layout`.
    conv: how 3x3 stride-1 convolutions are computed, "direct", "winograd" (F(4x4, 3x3), fp32) or
        "winograd-f2" (F(4x4, 3x3) and, on smaller maps, F(2x2, 3x3)); see compile/winograd.py;
        None: the one the store's records cover the model better in (with `layout`), else direct.
    bindings: {input name: numpy value}: these model inputs become constants of the given values
        (`--bind NAME=FILE.npy`), for inputs TVM needs as constants (axes, sizes, k, ...); the
        package no longer takes them.
    """

    target: str = "host"
    output: str | None = None
    input_shapes: dict[str, Any] = field(default_factory=dict)
    verify: bool = False
    seed: int = 0
    rtol: float = 1e-3
    atol: float = 1e-4
    use_logs: bool = True
    db: str | None = None
    tuned_on: str | None = None
    rpc: str | None = None
    key: str | None = None
    precision: str = "fp32"
    bindings: dict[str, Any] = field(default_factory=dict)
    layout: str | None = None
    conv: str | None = None

    def __post_init__(self):
        self.input_shapes = {
            k: parse_input_shape(v) if isinstance(v, str) else v if isinstance(v, SequenceShape) else tuple(int(d) for d in v)
            for k, v in self.input_shapes.items()
        }


@dataclass
class CompileResult:
    package: str
    info: Any  # package.PackageInfo
    seconds: dict[str, float]
    verification: Any = None  # compare.Agreement when verify=True
    warnings: list[str] = field(default_factory=list)
