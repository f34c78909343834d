"""The peer engines a benchmark compares crosstune with, each behind `Engine`, each importing its
library only when built. A peer that cannot run here raises `Unavailable` with the reason, and the
benchmark lists it with that reason instead of dropping it.

    onnxruntime     the model as ONNX Runtime runs it (all graph optimisations), CPU provider here
    openvino        OpenVINO on the CPU, f32 inference precision, latency mode
    torch           PyTorch eager, the zoo's torch definition with the same seeded weights
    torch-compile   the same module through torch.compile (inductor)
    tensorrt        TensorRT's ONNX parser and builder (NVIDIA GPUs only)
"""

from __future__ import annotations

import numpy as np

from ..runtime.timing import measure
from .engine import Engine

PEERS = ("onnxruntime", "openvino", "torch", "torch-compile", "tensorrt")


class Unavailable(Exception):
    """The engine cannot run here; the message is the one-line reason."""


class OpenVinoEngine(Engine):
    name = "openvino"

    def __init__(self, onnx_path: str, threads: int):
        try:
            import openvino as ov
        except ImportError:
            raise Unavailable("openvino is not installed (pip install 'crosstune[bench]')") from None
        self.ov = ov
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", {
            "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
        })
        self.request = self.compiled.create_infer_request()
        self.outputs = [o.get_any_name() for o in self.compiled.outputs]

    def version(self):
        return f"openvino {self.ov.__version__}"

    def run(self, inputs):
        res = self.request.infer(inputs)
        return {name: np.asarray(res[self.compiled.output(name)]) for name in self.outputs}

    def benchmark(self, inputs, *, warmup, repeat, max_seconds):
        for k, v in inputs.items():
            self.request.set_tensor(k, self.ov.Tensor(np.ascontiguousarray(v)))
        return measure(self.request.infer, None, warmup=warmup, repeat=repeat, max_seconds=max_seconds)


class TorchEngine(Engine):
    """A torch zoo model, eager or through torch.compile (`compiled=True`)."""

    def __init__(self, zoo_name: str | None, seed: int, input_names: list[str], threads: int, compiled: bool = False):
        self.name = "torch-compile" if compiled else "torch"
        if zoo_name is None:
            raise Unavailable("PyTorch engines need the torch definition of the model: this ONNX file is not "
                              "a crosstune zoo export (`crosstune zoo export`)")
        try:
            import torch
        except ImportError:
            raise Unavailable("torch is not installed (pip install 'crosstune[torch]')") from None
        from ..zoo import torch_models

        torch.set_num_threads(threads)
        self.torch = torch
        module, _, self.output_names = torch_models.build(zoo_name, seed=seed)
        self.module = torch.compile(module) if compiled else module
        self.compiled = compiled
        self.input_names = input_names

    def version(self):
        return f"torch {self.torch.__version__} " + ("torch.compile (inductor)" if self.compiled else "eager")

    def _args(self, inputs):
        return [self.torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.input_names]

    def run(self, inputs):
        with self.torch.inference_mode():
            out = self.module(*self._args(inputs))
        outs = out if isinstance(out, (tuple, list)) else [out]
        return {n: o.detach().numpy() for n, o in zip(self.output_names, outs)}

    def benchmark(self, inputs, *, warmup, repeat, max_seconds):
        args = self._args(inputs)

        def call():
            with self.torch.inference_mode():
                self.module(*args)

        return measure(call, None, warmup=warmup, repeat=repeat, max_seconds=max_seconds)


def tensorrt_engine(device: str):
    """TensorRT needs its Python package and an NVIDIA GPU target; says which is missing."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise Unavailable("tensorrt is not importable here (TensorRT's Python package and an NVIDIA GPU "
                          "are needed)") from None
    raise Unavailable(f"TensorRT runs on NVIDIA GPUs; this benchmark's target is a {device}")
