"""Verification: a package's outputs against ONNX Runtime's on the same seeded inputs."""

from __future__ import annotations

from pathlib import Path

from ..runtime import load
from .agreement import Agreement, compare
from .onnxruntime import OnnxRuntimeEngine


def verify_package(package_path: str | Path, model, *, seed: int = 0, rtol: float, atol: float,
                   board=None) -> Agreement:
    """`model` is the shape-pinned `OnnxModel` the package was built from. `board`, an
    (rpc.Address, key) pair, runs the package on a board of that key instead of here."""
    if board is not None:
        from ..runtime.remote import RemoteModel

        compiled = RemoteModel(package_path, *board)
    else:
        compiled = load(package_path)
    inputs = compiled.example_inputs(seed)
    ours = compiled.run(inputs)
    ref = OnnxRuntimeEngine(model.proto.SerializeToString()).run(inputs)
    return compare(ours, ref, rtol=rtol, atol=atol)
