"""The one small interface every engine implements (crosstune itself and the reference engines),
so a comparison treats them alike: prepare from the ONNX model, run on given inputs, time."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..runtime.timing import LatencyStats


class Engine(ABC):
    name: str = "engine"

    @abstractmethod
    def version(self) -> str:
        """The engine's version string, recorded with every result."""

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name for one set of inputs."""

    @abstractmethod
    def benchmark(
        self, inputs: dict[str, np.ndarray], *, warmup: int, repeat: int, max_seconds: float | None
    ) -> LatencyStats:
        """Latency of one run, inputs already placed where the engine wants them."""


class CrosstuneEngine(Engine):
    """A loaded crosstune package, as an engine."""

    name = "crosstune"

    def __init__(self, compiled):
        self.compiled = compiled

    def version(self) -> str:
        return f"crosstune {self.compiled.info.crosstune_version}, TVM {self.compiled.info.tvm_version}"

    def run(self, inputs):
        return self.compiled.run(inputs)

    def benchmark(self, inputs, *, warmup, repeat, max_seconds):
        return self.compiled.benchmark(inputs, warmup=warmup, repeat=repeat, max_seconds=max_seconds)
