"""What every CPU benchmark script shares: run the zoo models one after another in a scratch
folder, and describe the run (command, date, machine) in its results JSON."""

from __future__ import annotations

import datetime
import platform
import sys
import tempfile
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).parent / "results"


def run_models(models: str, bench_model: Callable[[str, Path], dict]) -> list[dict]:
    """`bench_model(name, workdir)` for each comma-separated model, in one scratch folder."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models.split(","):
            print(f"{name} ...", flush=True)
            rows.append(bench_model(name, Path(tmp)))
    return rows


def results_doc(benchmark: str, rows: list[dict], **extra) -> dict:
    from crosstune.targets import host

    cpu = host.detect()
    return {
        "benchmark": benchmark,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu.model, "cores": cpu.cores, "preset": cpu.preset, "platform": platform.platform()},
        **extra,
        "results": rows,
    }
