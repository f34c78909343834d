"""crosstune: ONNX models compiled, tuned and compared across CUDA GPUs, x86 servers and ARM boards,
over Apache TVM.

    import crosstune
    result = crosstune.compile("model.onnx", target="host", output="model.ctm", verify=True)
    model = crosstune.load("model.ctm")
    outputs = model.run(model.example_inputs())
    print(model.benchmark(repeat=100).median_ms)

Importing crosstune is cheap: TVM, ONNX and ONNX Runtime are imported when first needed.
"""

from __future__ import annotations

__version__ = "0.1.0"


# `compile` is the subpackage, and calling it compiles: crosstune.compile("m.onnx", target="host").
from . import compile  # noqa: E402,A004


def load(path, threads=None):
    """Load a `.ctm` package on its device; returns a `CompiledModel` (`run`, `benchmark`). CPU
    kernels run on `threads` threads (default: TVM_NUM_THREADS when set, else every physical core)."""
    from .runtime import load as _load

    return _load(path, threads)


def inspect(model, input_shapes=None):
    """What an ONNX model holds and which of its operators TVM can convert (an `InspectReport`)."""
    from .compile.inspect import inspect_model

    return inspect_model(model, input_shapes or {})


__all__ = ["__version__", "compile", "inspect", "load"]
