"""TensorRT through its Python API (TensorRT 10): the ONNX parser, the builder with an FP32 or FP16
config and a timing cache, the serialized engine cached on disk, the runtime, buffers as torch CUDA
tensors, `execute_async_v3` on a torch stream, CUDA-event timing (gpu_timing.py).

UNTESTED HERE: TensorRT cannot be installed on the machines this was written on (no TensorRT wheel
for the development machine, no package index reachable from the GPU machine, and TensorRT's wheels
are far larger than what may be carried there). The build/run path (`TensorRTEngine` past its
checks) follows TensorRT 10's documented Python API and has never run. What is tested: the reasons
it is unavailable, and the pure helpers (cache key, file names, builder flags, parser error line).

Engine cache: `$CROSSTUNE_TRT_CACHE`, else `~/.cache/crosstune/tensorrt/`. An engine file is named
by `cache_key`: sha256 of the ONNX bytes given to the parser, TensorRT's version, the GPU's name, the
precision, the input shapes and `CACHE_FORMAT`; a change in any of them builds a new engine. The
timing cache (kernel timings the builder reuses) is one file per TensorRT version and GPU.

Precision: fp32 builds with TF32 cleared (fp32 means fp32, as for the other engines); fp16 sets the
FP16 flag, letting TensorRT pick fp16 kernels where it finds them faster (TensorRT 10's "weakly
typed" mode). TensorRT 11 removed that flag: there fp16 is unavailable, with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path

from ..errors import UserError
from .engine import Engine, Unavailable, check_device_precision
from .gpu_timing import measure_cuda_events

CACHE_FORMAT = 1  # raise when the builder settings below change what a cached engine holds
NOT_IMPORTABLE = ("tensorrt is not importable here: install TensorRT's Python package (pip install tensorrt) "
                  "on a machine with an NVIDIA GPU")
WORKSPACE_BYTES = 4 << 30


# ------------------------------------------------------------------------- pure helpers (tested)
def cache_dir(env: dict[str, str] | None = None) -> Path:
    """Where engines and timing caches are kept: $CROSSTUNE_TRT_CACHE, else ~/.cache/crosstune/tensorrt."""
    env = os.environ if env is None else env
    given = env.get("CROSSTUNE_TRT_CACHE")
    return Path(given).expanduser() if given else Path.home() / ".cache" / "crosstune" / "tensorrt"


def cache_key(model_sha256: str, trt_version: str, gpu_name: str, precision: str,
              input_shapes: dict[str, tuple[int, ...]]) -> str:
    """sha256 (hex) of everything that decides what engine the builder makes. Input order does not
    matter; the GPU name is taken as nvidia-smi and torch print it, surrounding spaces ignored."""
    record = {
        "format": CACHE_FORMAT,
        "model": model_sha256,
        "tensorrt": trt_version,
        "gpu": gpu_name.strip(),
        "precision": precision,
        "inputs": {name: [int(d) for d in shape] for name, shape in sorted(input_shapes.items())},
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _slug(text: str, limit: int = 40) -> str:
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-") or "model")[:limit]


def engine_file_name(model_name: str, precision: str, key: str) -> str:
    """`<model>-<precision>-<key prefix>.engine`: readable in a listing, unique by the key."""
    return f"{_slug(model_name)}-{precision}-{key[:24]}.engine"


def timing_cache_file_name(trt_version: str, gpu_name: str) -> str:
    digest = hashlib.sha256(f"{trt_version}\0{gpu_name.strip()}".encode()).hexdigest()[:16]
    return f"timing-{_slug(trt_version, 20)}-{digest}.cache"


def builder_flags(precision: str, available: set[str]) -> tuple[list[str], list[str]]:
    """(flags to set, flags to clear) on the builder config, by `trt.BuilderFlag` member name."""
    clear = ["TF32"] if precision == "fp32" and "TF32" in available else []
    if precision == "fp32":
        return [], clear
    if "FP16" not in available:
        raise Unavailable("this TensorRT has no FP16 builder flag (TensorRT 11 builds only strongly "
                          "typed networks): fp16 needs an ONNX model converted to fp16 first")
    return ["FP16"], clear


def parser_error_line(errors: list[tuple[int, str, str]]) -> str:
    """One line from the ONNX parser's errors, each (node index, operator, description): the first."""
    if not errors:
        return "TensorRT's ONNX parser rejects the model (it gave no reason)"
    node, op, desc = errors[0]
    desc = " ".join(str(desc).split())
    where = f"node {node}" + (f" ({op})" if op else "") if node is not None and node >= 0 else "the model"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"TensorRT's ONNX parser rejects {where}: {desc}{more}"


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------- the engine (untested)
class TensorRTEngine(Engine):
    name = "tensorrt"

    def __init__(self, model_bytes: bytes, input_shapes: dict[str, tuple[int, ...]], model_name: str, *,
                 device: str = "cuda", precision: str = "fp32", cache: Path | None = None):
        check_device_precision(device, precision)
        try:
            import tensorrt as trt
        except ImportError:
            raise Unavailable(NOT_IMPORTABLE) from None
        if device != "cuda":
            raise Unavailable(f"tensorrt runs only on NVIDIA GPU targets; this target is a {device} one")
        try:
            import torch
        except ImportError:
            raise Unavailable("the tensorrt engine keeps its buffers in torch CUDA tensors: install torch") from None
        if not torch.cuda.is_available():
            raise Unavailable(f"no CUDA GPU visible to torch (torch {torch.__version__}), which holds TensorRT's buffers")
        set_flags, clear_flags = builder_flags(precision, set(trt.BuilderFlag.__members__))
        self.trt, self.torch = trt, torch
        self.device, self.precision = device, precision
        self.logger = trt.Logger(trt.Logger.VERBOSE if os.environ.get("CROSSTUNE_TRT_VERBOSE") else trt.Logger.ERROR)
        self.gpu = torch.cuda.get_device_name()
        folder = cache or cache_dir()
        key = cache_key(hashlib.sha256(model_bytes).hexdigest(), trt.__version__, self.gpu, precision, input_shapes)
        self.engine_path = folder / engine_file_name(model_name, precision, key)
        self.timing_path = folder / timing_cache_file_name(trt.__version__, self.gpu)
        runtime = self.runtime = trt.Runtime(self.logger)  # kept: it must outlive the engines it made
        engine = None
        self.from_cache = self.engine_path.is_file()
        if self.from_cache:
            engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            self.from_cache = engine is not None  # a stale or corrupt file: build again
        if engine is None:
            plan = self._build(model_bytes, set_flags, clear_flags)
            _write_bytes_atomic(self.engine_path, plan)
            engine = runtime.deserialize_cuda_engine(plan)
            if engine is None:
                raise RuntimeError("TensorRT cannot deserialize the engine it has just built")
        self.engine = engine
        self.context = engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.inputs: dict[str, object] = {}
        self.outputs: dict[str, object] = {}
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        for name in names:
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                shape = tuple(input_shapes.get(name, tuple(engine.get_tensor_shape(name))))
                self.context.set_input_shape(name, shape)
                self.inputs[name] = torch.empty(shape, dtype=self._dtype(engine.get_tensor_dtype(name)), device="cuda")
        for name in names:
            if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                shape = tuple(self.context.get_tensor_shape(name))
                self.outputs[name] = torch.empty(shape, dtype=self._dtype(engine.get_tensor_dtype(name)), device="cuda")
        for name, tensor in {**self.inputs, **self.outputs}.items():
            self.context.set_tensor_address(name, tensor.data_ptr())

    def _build(self, model_bytes: bytes, set_flags: list[str], clear_flags: list[str]) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only kind
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(model_bytes):
            errors = []
            for i in range(parser.num_errors):
                e = parser.get_error(i)
                op = e.node_operator() if hasattr(e, "node_operator") else ""
                errors.append((e.node(), op, e.desc()))
            raise UserError(parser_error_line(errors))
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        for flag in set_flags:
            config.set_flag(getattr(trt.BuilderFlag, flag))
        for flag in clear_flags:
            config.clear_flag(getattr(trt.BuilderFlag, flag))
        timing = config.create_timing_cache(self.timing_path.read_bytes() if self.timing_path.is_file() else b"")
        config.set_timing_cache(timing, ignore_mismatch=False)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError("TensorRT's builder could not build the model (CROSSTUNE_TRT_VERBOSE=1 shows its log)")
        _write_bytes_atomic(self.timing_path, bytes(memoryview(config.get_timing_cache().serialize())))
        return bytes(memoryview(plan))

    def _dtype(self, trt_dtype):
        torch = self.torch
        table = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT8": torch.int8,
                 "UINT8": torch.uint8, "INT32": torch.int32, "INT64": torch.int64, "BOOL": torch.bool}
        if trt_dtype.name not in table:
            raise RuntimeError(f"TensorRT engine tensor of type {trt_dtype.name}, which crosstune cannot bind")
        return table[trt_dtype.name]

    def version(self):
        return (f"tensorrt {self.trt.__version__} on {self.gpu}"
                + (", TF32 off" if self.precision == "fp32" else ", FP16 flag")
                + (" (cached engine)" if self.from_cache else ""))

    def _place(self, inputs):
        with self.torch.cuda.stream(self.stream):
            for name, tensor in self.inputs.items():
                tensor.copy_(self.torch.from_numpy(inputs[name]).to(tensor.dtype))

    def _enqueue(self):
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT's execute_async_v3 failed")

    def run(self, inputs):
        import numpy as np

        self._place({k: np.asarray(v, order="C") for k, v in inputs.items()})
        with self.torch.cuda.stream(self.stream):
            self._enqueue()
        self.stream.synchronize()
        return {name: (t.float() if t.is_floating_point() else t).cpu().numpy() for name, t in self.outputs.items()}

    def benchmark(self, inputs, *, warmup, repeat, max_seconds):
        import numpy as np

        self._place({k: np.asarray(v, order="C") for k, v in inputs.items()})
        with self.torch.cuda.stream(self.stream):  # events are recorded on the engine's stream
            return measure_cuda_events(self._enqueue, warmup=warmup, repeat=repeat, max_seconds=max_seconds)
