"""Latency on an NVIDIA GPU with CUDA events, the same way for every engine that runs through torch's
CUDA runtime (PyTorch itself, TensorRT on a torch stream). Imports torch when called."""

from __future__ import annotations

from typing import Callable

from ..runtime.timing import LatencyStats


def measure_cuda_events(
    run: Callable[[], object],
    *,
    warmup: int = 5,
    repeat: int = 50,
    max_seconds: float | None = None,
    min_runs: int = 3,
) -> LatencyStats:
    """Time `run` `repeat` times after `warmup` untimed runs. Each sample: an event recorded on the
    current CUDA stream, the run (which must enqueue its work on that stream), a second event, a
    wait for it, and the time between the two events. Host launch gaps inside the run count, as
    they do for a user of the engine; the wait after it does not. With `max_seconds`, stop early
    once that much time has gone into timed runs and at least `min_runs` samples exist."""
    import torch

    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    for _ in range(warmup):
        run()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples: list[float] = []
    spent = 0.0
    truncated = False
    for i in range(repeat):
        start.record()
        run()
        end.record()
        end.synchronize()
        dt = float(start.elapsed_time(end))  # milliseconds
        samples.append(dt)
        spent += dt / 1e3
        if max_seconds is not None and spent >= max_seconds and i + 1 >= min_runs and i + 1 < repeat:
            truncated = True
            break
    return LatencyStats.from_samples(samples, warmup, truncated)
