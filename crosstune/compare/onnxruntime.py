"""ONNX Runtime, the correctness reference: the model as ORT runs it, with the providers present here.

On a CUDA target it runs on ORT's CUDA provider when this onnxruntime has one (onnxruntime-gpu),
with TF32 off so fp32 means fp32, else on the CPU; `version()` names the providers the session
really got, the first being the one that ran (and was timed)."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..runtime.timing import LatencyStats, measure
from .engine import Engine, Unavailable, check_device_precision


def providers_for(device: str, available: list[str]) -> list:
    """The execution providers to ask for: CUDA first on a CUDA target when ORT has it, CPU always."""
    if device == "cuda" and "CUDAExecutionProvider" in available:
        return [("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def __init__(self, model_bytes: bytes, providers: list | None = None, threads: int | None = None, *,
                 device: str = "cpu", precision: str = "fp32"):
        check_device_precision(device, precision)
        if precision != "fp32":
            raise Unavailable(f"ONNX Runtime runs the fp32 ONNX model as it is: it has no {precision} path "
                              "without converting the model")
        import onnxruntime as ort

        self._ort = ort
        self.device, self.precision = device, precision
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only; ORT's warnings are not the user's problem
        if threads:
            opts.intra_op_num_threads = threads
        self.providers = providers or providers_for(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(model_bytes, opts, providers=self.providers)
        except Exception as err:  # ORT raises its own Fail/InvalidGraph/NotImplemented types
            line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"ONNX Runtime cannot load the model: {line}") from None
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.on_gpu = self.session.get_providers()[0] == "CUDAExecutionProvider"

    def version(self) -> str:
        return f"onnxruntime {self._ort.__version__} ({', '.join(self.session.get_providers())})"

    def run(self, inputs):
        outs = self.session.run(self.output_names, inputs)
        return dict(zip(self.output_names, outs))

    def benchmark(self, inputs, *, warmup=5, repeat=50, max_seconds=None) -> LatencyStats:
        # IOBinding keeps inputs bound across runs, as crosstune's timing keeps them on the device:
        # in GPU memory on the CUDA provider, so the timed run has no host copies. A run returns
        # once the provider's stream is synchronised, so the host clock times it whole.
        binding = self.session.io_binding()
        where = "cuda" if self.on_gpu else "cpu"
        # The OrtValues (and the arrays a CPU OrtValue wraps) must outlive the timed runs.
        values = {name: self._ort.OrtValue.ortvalue_from_numpy(np.asarray(arr, order="C"), where, 0)
                  for name, arr in inputs.items()}
        for name, value in values.items():
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, where)
        return measure(
            lambda: (values, self.session.run_with_iobinding(binding)),
            warmup=warmup,
            repeat=repeat,
            max_seconds=max_seconds,
        )
