"""Latency measurement, done the same way for every engine: warm-up runs excluded, each sample
timed with a monotonic clock around one run plus the device synchronisation, summarised as
median / p90 / min / max."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
from dataclasses import replace as dataclasses_replace


@dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float
    count: int
    warmup: int
    truncated: bool = False  # stopped by the time limit before `repeat` runs
    rounds: int = 1  # timed in this many rounds, taking turns with other engines (`merge`)
    samples_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)  # not in the JSON

    def to_json(self) -> dict:
        d = asdict(self)
        del d["samples_ms"]
        return d

    @classmethod
    def merge(cls, parts: "list[LatencyStats]") -> "LatencyStats":
        """One engine's rounds as one set of samples (warm-ups add up; truncated if any round was)."""
        samples = [x for p in parts for x in p.samples_ms]
        if not samples:
            raise ValueError("no samples to merge")
        merged = cls.from_samples(samples, sum(p.warmup for p in parts), any(p.truncated for p in parts))
        return dataclasses_replace(merged, rounds=len(parts))

    @classmethod
    def from_samples(cls, samples_ms: list[float], warmup: int, truncated: bool = False) -> "LatencyStats":
        a = np.asarray(samples_ms, dtype=np.float64)
        return cls(
            median_ms=float(np.median(a)),
            p90_ms=float(np.percentile(a, 90)),
            min_ms=float(a.min()),
            max_ms=float(a.max()),
            mean_ms=float(a.mean()),
            count=int(a.size),
            warmup=warmup,
            truncated=truncated,
            samples_ms=tuple(float(x) for x in a),
        )


def measure(
    run: Callable[[], object],
    sync: Callable[[], object] | None = None,
    *,
    warmup: int = 5,
    repeat: int = 50,
    max_seconds: float | None = None,
    min_runs: int = 3,
) -> LatencyStats:
    """Time `run` `repeat` times after `warmup` untimed runs. With `max_seconds`, stop early once
    that much time has gone into timed runs and at least `min_runs` samples exist."""
    sync = sync or (lambda: None)

    def one() -> float:
        t0 = time.perf_counter_ns()
        run()
        sync()
        return (time.perf_counter_ns() - t0) / 1e6

    return sampled(run, sync, one, warmup=warmup, repeat=repeat, max_seconds=max_seconds, min_runs=min_runs)


def sampled(run: Callable[[], object], sync: Callable[[], object], one: Callable[[], float], *, warmup: int,
            repeat: int, max_seconds: float | None, min_runs: int = 3) -> LatencyStats:
    """The sampling loop every timer shares: `warmup` untimed runs, a `sync`, then `repeat` samples of
    `one()` (one timed run, in ms); with `max_seconds`, stop once that much time has gone into timed
    runs and at least `min_runs` samples exist."""
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    for _ in range(warmup):
        run()
    sync()
    samples: list[float] = []
    spent = 0.0
    truncated = False
    for i in range(repeat):
        dt = one()
        samples.append(dt)
        spent += dt / 1e3
        if max_seconds is not None and spent >= max_seconds and i + 1 >= min_runs and i + 1 < repeat:
            truncated = True
            break
    return LatencyStats.from_samples(samples, warmup, truncated)


def measure_device(vm, name: str, device, fn, *, warmup: int = 5, repeat: int = 50,
                   max_seconds: float | None = None, min_runs: int = 3) -> LatencyStats:
    """GPU latency with the device's own timer (TVM's `time_evaluator`: CUDA events around each
    call, so host launch gaps count, as with torch's CUDA events). One sample per call; with
    `max_seconds`, the count is cut to what fits, judged from the warm-up."""
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    t0 = time.perf_counter()
    for _ in range(max(1, warmup)):
        fn()
    device.sync()
    per_call = (time.perf_counter() - t0) / max(1, warmup)
    count = repeat
    if max_seconds is not None and per_call * repeat > max_seconds:
        count = min(repeat, max(min_runs, int(max_seconds / max(per_call, 1e-9))))
    truncated = count < repeat
    evaluator = vm.time_evaluator(name, device, number=1, repeat=count, min_repeat_ms=0)
    result = evaluator()
    return LatencyStats.from_samples([float(r) * 1e3 for r in result.results], warmup, truncated)
