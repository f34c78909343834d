"""Verification: a package's outputs against ONNX Runtime's on the same seeded inputs."""

from __future__ import annotations

from pathlib import Path

from ..runtime import load
from .agreement import SCALE_ATOL, Agreement, compare
from .onnxruntime import OnnxRuntimeEngine


def verify_package(package_path: str | Path, model, *, seed: int = 0, rtol: float, atol: float,
                   board=None, scale_atol: float | None = None, bound: dict | None = None) -> Agreement:
    """`model` is the shape-pinned `OnnxModel` the package was built from. `board`, an
    (rpc.Address, key) pair, runs the package on a board of that key instead of here.
    `scale_atol` (see agreement.SCALE_ATOL) defaults to that of the package's precision: 0 for
    fp32, a fraction of each output's scale for an fp16 package. `bound` holds the values of inputs
    the package was built with as constants (`--bind`): ONNX Runtime, which runs the original
    model, gets them as inputs."""
    if board is not None:
        from ..runtime.remote import RemoteModel

        compiled = RemoteModel(package_path, *board)
    else:
        compiled = load(package_path)
    inputs = compiled.example_inputs(seed)
    ours = compiled.run(inputs)
    ref = OnnxRuntimeEngine(model.proto.SerializeToString()).run({**inputs, **(bound or {})})
    if scale_atol is None:
        from ..report.results import precision_of

        scale_atol = SCALE_ATOL.get(precision_of(compiled.info), 0.0)
    return compare(ours, ref, rtol=rtol, atol=atol, scale_atol=scale_atol)
