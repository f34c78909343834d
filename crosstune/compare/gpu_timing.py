"""Latency on an NVIDIA GPU with CUDA events, the same way for every engine that runs through torch's
CUDA runtime (PyTorch itself, TensorRT on a torch stream). Imports torch when called."""

from __future__ import annotations

from typing import Callable

from ..runtime.timing import LatencyStats, sampled


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

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def one() -> float:
        start.record()
        run()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))  # milliseconds

    return sampled(run, torch.cuda.synchronize, one, warmup=warmup, repeat=repeat, max_seconds=max_seconds,
                   min_runs=min_runs)
