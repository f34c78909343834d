"""The peer engines a benchmark compares crosstune with: one module per engine, each importing its
library only when the engine is made (`make_peer`). A peer that cannot run here raises `Unavailable`
with the reason, and the benchmark lists it with that reason instead of dropping it.

    onnxruntime        the model as ONNX Runtime runs it; the correctness reference (onnxruntime.py)
    openvino           OpenVINO on the CPU, f32, latency mode (openvino_engine.py)
    torch              PyTorch eager, the zoo's torch definition with the same seeded weights
    torch-compile      the same module through torch.compile (inductor, default mode)
    torch-compile-ro   torch.compile(mode="reduce-overhead"): CUDA graphs, CUDA targets only
                       (the three torch engines: torch_engines.py)
    tensorrt           TensorRT's ONNX parser and builder, NVIDIA GPU targets (tensorrt_engine.py)
"""

from __future__ import annotations

from .engine import Engine, Unavailable, check_device_precision

PEERS = ("onnxruntime", "openvino", "torch", "torch-compile", "torch-compile-ro", "tensorrt")
TORCH_MODES = {"torch": "eager", "torch-compile": "default", "torch-compile-ro": "reduce-overhead"}

__all__ = ["PEERS", "Unavailable", "make_peer"]


def make_peer(name: str, src, origin: tuple[str, int] | None, input_names: list[str], threads: int,
              device: str, precision: str) -> Engine:
    """Peer `name` for the shape-pinned `OnnxModel` `src` on `device` ("cpu", "cuda") at `precision`.
    `origin` is (zoo name, seed) for models exported from the torch zoo, else None."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    check_device_precision(device, precision)
    if name == "onnxruntime":
        from .onnxruntime import OnnxRuntimeEngine

        return OnnxRuntimeEngine(src.proto.SerializeToString(), threads=threads, device=device, precision=precision)
    if name == "openvino":
        from .openvino_engine import OpenVinoEngine

        if src.path is None and device == "cpu":
            raise Unavailable("openvino reads the model from a file")
        return OpenVinoEngine(src.path, threads, device=device, precision=precision,
                              output_names=[o.name for o in src.outputs])
    if name in TORCH_MODES:
        from .torch_engines import TorchEngine

        zoo_name, seed = origin if origin else (None, 0)
        return TorchEngine(zoo_name, seed, input_names, threads, mode=TORCH_MODES[name], device=device,
                           precision=precision)
    from .tensorrt_engine import TensorRTEngine

    shapes = {s.name: tuple(int(d) for d in s.shape) for s in src.inputs}
    return TensorRTEngine(src.proto.SerializeToString(), shapes, src.name, device=device, precision=precision)


def __getattr__(name: str):
    """The engine classes under their old home (`from crosstune.compare.peers import TorchEngine`),
    imported only when asked for."""
    if name == "OpenVinoEngine":
        from .openvino_engine import OpenVinoEngine

        return OpenVinoEngine
    if name == "TorchEngine":
        from .torch_engines import TorchEngine

        return TorchEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
