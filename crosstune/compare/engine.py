"""The one small interface every engine implements (crosstune itself and the reference engines),
so a comparison treats them alike: prepare from the ONNX model, run on given inputs, time.

An engine is made for one device ("cpu" or "cuda") and one precision ("fp32", "fp16"). One that
cannot do that here raises `Unavailable` with a one-line reason when it is made; `bench` lists it
with that reason instead of dropping it."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..runtime.timing import LatencyStats

DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "fp16")


class Unavailable(Exception):
    """The engine cannot run here; the message is the one-line reason."""


def check_device_precision(device: str, precision: str) -> None:
    """The rules every engine shares: a known device and precision, and fp16 only on GPU targets."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {device!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "fp16" and device == "cpu":
        raise Unavailable("fp16 is measured on GPU targets; on a CPU target every engine runs fp32")


class Engine(ABC):
    name: str = "engine"
    device: str = "cpu"
    precision: str = "fp32"

    @abstractmethod
    def version(self) -> str:
        """The engine's version string, recorded with every result."""

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name for one set of inputs (host numpy arrays; float outputs as float32
        whatever the precision computed in)."""

    @abstractmethod
    def benchmark(
        self, inputs: dict[str, np.ndarray], *, warmup: int, repeat: int, max_seconds: float | None
    ) -> LatencyStats:
        """Latency of one run, inputs already placed where the engine wants them."""


class CrosstuneEngine(Engine):
    """A loaded crosstune package, as an engine."""

    name = "crosstune"

    def __init__(self, compiled, precision: str = "fp32"):
        self.compiled = compiled
        self.device = str(compiled.info.target.get("device") or "cpu")
        self.precision = precision

    def version(self) -> str:
        return f"crosstune {self.compiled.info.crosstune_version}, TVM {self.compiled.info.tvm_version}"

    def run(self, inputs):
        return self.compiled.run(inputs)

    def benchmark(self, inputs, *, warmup, repeat, max_seconds):
        return self.compiled.benchmark(inputs, warmup=warmup, repeat=repeat, max_seconds=max_seconds)
