"""OpenVINO on the CPU: f32 inference precision, latency mode. It has no NVIDIA GPU plugin, so on a
CUDA target it is unavailable."""

from __future__ import annotations

import numpy as np

from ..runtime.timing import measure
from .engine import Engine, Unavailable, check_device_precision


class OpenVinoEngine(Engine):
    name = "openvino"

    def __init__(self, onnx_path: str, threads: int, *, device: str = "cpu", precision: str = "fp32",
                 output_names: list[str] | None = None):
        check_device_precision(device, precision)
        if device != "cpu":
            raise Unavailable(f"openvino runs on CPUs (and Intel GPUs); it has no plugin for this {device} target's "
                              "NVIDIA GPU")
        try:
            import openvino as ov
        except ImportError:
            raise Unavailable("openvino is not installed (pip install 'crosstune[bench]')") from None
        self.ov = ov
        self.device, self.precision = device, precision
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", {
            "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
        })
        self.request = self.compiled.create_infer_request()
        # An output tensor may carry several names (a Cast folded away leaves its input's name too):
        # use the ONNX graph's output name where it is one of them.
        wanted = set(output_names or [])
        self.outputs = [next((n for n in sorted(o.get_names()) if n in wanted), o.get_any_name())
                        for o in self.compiled.outputs]

    def version(self):
        return f"openvino {self.ov.__version__}"

    def run(self, inputs):
        res = self.request.infer(inputs)
        return {name: np.asarray(res[out]) for name, out in zip(self.outputs, self.compiled.outputs)}

    def benchmark(self, inputs, *, warmup, repeat, max_seconds):
        for k, v in inputs.items():
            self.request.set_tensor(k, self.ov.Tensor(np.asarray(v, order="C")))
        return measure(self.request.infer, None, warmup=warmup, repeat=repeat, max_seconds=max_seconds)
