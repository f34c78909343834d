"""The one small interface every engine implements (crosstune itself and the reference engines),
so a comparison treats them alike: prepare from the ONNX model, run on given inputs, time.

An engine is made for one device ("cpu" or "cuda") and one precision ("fp32", "fp16"). One that
cannot do that here raises `Unavailable` with a one-line reason when it is made; `bench` lists it
with that reason instead of dropping it."""

from __future__ import annotations

import time
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


# `settle`: this process counts as idle when its threads used less than IDLE_CORES of a core over one
# WINDOW_S window; it waits at most SETTLE_MAX_S.
WINDOW_S = 0.01
IDLE_CORES = 0.1
SETTLE_MAX_S = 1.0


def settle(max_seconds: float = SETTLE_MAX_S) -> float:
    """Wait until this process's other threads are idle; return the seconds waited.

    Engines keep their worker threads spinning for a while after a run, so that the next run starts
    without a wake-up: measured after a MobileNetV2 run on the 2-core Xeon VM, TVM's thread pool kept one
    core busy for ~45 ms and ONNX Runtime's for ~25 ms (OpenVINO and PyTorch under 10 ms). An engine timed
    right after another then shares the cores with the spinning threads for its first runs, which at a
    few ms a run and a handful of runs a turn is its whole turn. This waits, in WINDOW_S steps, until
    the process's CPU time (all its threads) grows by less than IDLE_CORES of a core in a step."""
    start = time.perf_counter()
    while True:
        cpu0 = time.process_time()
        time.sleep(WINDOW_S)
        if time.process_time() - cpu0 < IDLE_CORES * WINDOW_S:
            return time.perf_counter() - start
        if time.perf_counter() - start >= max_seconds:
            return time.perf_counter() - start


def benchmark_rounds(engines: list[Engine], inputs: dict[str, np.ndarray], *, rounds: int, warmup: int,
                     repeat: int, max_seconds: float | None) -> list:
    """Time `engines` taking turns: `rounds` rounds, each engine timed for its share of `repeat` (and
    of `max_seconds`) in every round, its samples then pooled into one `LatencyStats`. On a shared
    machine whose speed drifts over minutes (the 2-core CI VMs: the same build measured 5.7 and
    10.3 ms a minute apart), every engine then meets the same drift, so ratios between them hold
    where one block per engine would compare a fast minute with a slow one. The first round warms
    each engine up `warmup` runs, later rounds once (another engine has had the caches meanwhile).
    Before each turn it waits for the previous engine's worker threads to stop spinning (`settle`).
    One result per engine, in order: its stats, or the exception that stopped it (it is not timed
    in later rounds)."""
    if rounds < 1 or repeat < 1:
        raise ValueError("rounds and repeat must be >= 1")
    rounds = min(rounds, repeat)  # `repeat` timed runs in all, split as evenly as they go
    shares = [repeat // rounds + (1 if r < repeat % rounds else 0) for r in range(rounds)]
    budget = None if max_seconds is None else max_seconds / rounds
    parts: list[list[LatencyStats]] = [[] for _ in engines]
    failed: list[BaseException | None] = [None] * len(engines)
    for r, share in enumerate(shares):
        for i, e in enumerate(engines):
            if failed[i] is not None:
                continue
            settle()
            try:
                parts[i].append(e.benchmark(inputs, warmup=warmup if r == 0 else 1, repeat=share,
                                            max_seconds=budget))
            except Exception as err:  # noqa: BLE001 - reported by the caller
                failed[i] = err
    return [failed[i] if failed[i] is not None else LatencyStats.merge(parts[i]) for i in range(len(engines))]
