"""ONNX Runtime, the CPU reference: the model as ORT runs it, with the providers present here."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..runtime.timing import LatencyStats, measure
from .engine import Engine


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def __init__(self, model_bytes: bytes, providers: list[str] | None = None, threads: int | None = None):
        import onnxruntime as ort

        self._ort = ort
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only; ORT's warnings are not the user's problem
        if threads:
            opts.intra_op_num_threads = threads
        self.providers = providers or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(model_bytes, opts, providers=self.providers)
        except Exception as err:  # ORT raises its own Fail/InvalidGraph/NotImplemented types
            line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"ONNX Runtime cannot load the model: {line}") from None
        self.output_names = [o.name for o in self.session.get_outputs()]

    def version(self) -> str:
        return f"onnxruntime {self._ort.__version__} ({', '.join(self.session.get_providers())})"

    def run(self, inputs):
        outs = self.session.run(self.output_names, inputs)
        return dict(zip(self.output_names, outs))

    def benchmark(self, inputs, *, warmup=5, repeat=50, max_seconds=None) -> LatencyStats:
        # IOBinding keeps inputs bound across runs, as crosstune's timing keeps them on the device.
        binding = self.session.io_binding()
        for name, arr in inputs.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(arr))
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        return measure(
            lambda: self.session.run_with_iobinding(binding),
            warmup=warmup,
            repeat=repeat,
            max_seconds=max_seconds,
        )
