"""Verification: a package's outputs against ONNX Runtime's on the same seeded inputs."""

from __future__ import annotations

from pathlib import Path

from ..runtime import load
from .agreement import Agreement, compare
from .onnxruntime import OnnxRuntimeEngine


def verify_package(package_path: str | Path, model, *, seed: int = 0, rtol: float, atol: float) -> Agreement:
    """`model` is the shape-pinned `OnnxModel` the package was built from."""
    compiled = load(package_path)
    inputs = compiled.example_inputs(seed)
    ours = compiled.run(inputs)
    ref = OnnxRuntimeEngine(model.proto.SerializeToString()).run(inputs)
    return compare(ours, ref, rtol=rtol, atol=atol)
