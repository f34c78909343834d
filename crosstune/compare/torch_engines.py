"""PyTorch engines for zoo models (the zoo is torch-defined): the exported model's own torch module,
rebuilt with the same seeded weights, run eagerly or through torch.compile.

    torch              eager
    torch-compile      torch.compile, inductor's default mode
    torch-compile-ro   torch.compile(mode="reduce-overhead"): inductor plus CUDA graphs (CUDA only)

On a CUDA target the module and the inputs live on the GPU and each sample is timed with CUDA events
(gpu_timing.py). fp32 there is IEEE fp32: TF32 is switched off for cuDNN convolutions and cuBLAS
matmuls (PyTorch's default lets cuDNN use TF32). fp16 is `torch.autocast("cuda", float16)` around
the call, as a PyTorch user would run it. Outputs come back as float32 numpy arrays either way."""

from __future__ import annotations

import contextlib

import numpy as np

from ..runtime.timing import measure
from .engine import Engine, Unavailable, check_device_precision
from .gpu_timing import measure_cuda_events

MODES = {"torch": "eager", "torch-compile": "default", "torch-compile-ro": "reduce-overhead"}
RO_WARMUP = 3  # cudagraph trees record the graph on the first calls; none of them may be timed


class TorchEngine(Engine):
    """A torch zoo model: `mode` "eager", "default" (torch.compile) or "reduce-overhead"."""

    def __init__(self, zoo_name: str | None, seed: int, input_names: list[str], threads: int, *,
                 mode: str = "eager", device: str = "cpu", precision: str = "fp32"):
        names = {m: n for n, m in MODES.items()}
        if mode not in names:
            raise ValueError(f"mode must be one of {', '.join(names)}, not {mode!r}")
        self.name, self.mode, self.device, self.precision = names[mode], mode, device, precision
        check_device_precision(device, precision)
        if mode == "reduce-overhead" and device != "cuda":
            raise Unavailable(f"torch.compile mode reduce-overhead replays CUDA graphs: it needs a CUDA target, "
                              f"not a {device} one")
        if zoo_name is None:
            raise Unavailable("PyTorch engines need the torch definition of the model: this ONNX file is not "
                              "a crosstune zoo export (`crosstune zoo export`)")
        try:
            import torch
        except ImportError:
            raise Unavailable("torch is not installed (pip install 'crosstune[torch]')") from None
        if device == "cuda" and not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise Unavailable(f"no CUDA GPU visible to torch (torch {torch.__version__}, {build})")
        from ..zoo import torch_models

        self.torch = torch
        if device == "cpu":
            torch.set_num_threads(threads)
        elif precision == "fp32":
            # The legacy flags, not the fp32_precision API: inductor reads the legacy ones, and
            # torch refuses to answer them once the two APIs were mixed.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        module, _, self.output_names = torch_models.build(zoo_name, seed=seed)
        module = module.to(device)
        if mode == "eager":
            self.module = module
        else:
            self.module = torch.compile(module, mode=None if mode == "default" else mode)
        self.input_names = input_names

    def version(self):
        what = "eager" if self.mode == "eager" else f"torch.compile (inductor, mode {self.mode})"
        extra = {"fp16": ", fp16 autocast", "fp32": ", TF32 off" if self.device == "cuda" else ""}[self.precision]
        return f"torch {self.torch.__version__} {what} on {self.device}{extra}"

    def _args(self, inputs):
        return [self.torch.from_numpy(np.asarray(inputs[n], order="C")).to(self.device) for n in self.input_names]

    def _context(self):
        """inference mode, and autocast for fp16."""
        stack = contextlib.ExitStack()
        stack.enter_context(self.torch.inference_mode())
        if self.precision == "fp16":
            stack.enter_context(self.torch.autocast(self.device, dtype=self.torch.float16))
        return stack

    def _call(self, args):
        if self.mode == "reduce-overhead":
            # A new step for cudagraph trees: the previous call's outputs may be overwritten.
            self.torch.compiler.cudagraph_mark_step_begin()
        return self.module(*args)

    def run(self, inputs):
        with self._context():
            out = self._call(self._args(inputs))
            outs = out if isinstance(out, (tuple, list)) else [out]
            arrays = [(o.float() if o.is_floating_point() else o).detach().cpu().numpy() for o in outs]
        return dict(zip(self.output_names, arrays))

    def benchmark(self, inputs, *, warmup, repeat, max_seconds):
        args = self._args(inputs)
        with self._context():
            if self.device == "cuda":
                warmup = max(warmup, RO_WARMUP) if self.mode == "reduce-overhead" else warmup
                return measure_cuda_events(lambda: self._call(args), warmup=warmup, repeat=repeat,
                                           max_seconds=max_seconds)
            return measure(lambda: self._call(args), None, warmup=warmup, repeat=repeat, max_seconds=max_seconds)
