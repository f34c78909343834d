"""Reference engines behind one interface, and numerical agreement between engines.

Each engine is one module that imports its heavy library only inside itself: crosstune's own
packages (engine.py), ONNX Runtime, the correctness reference (onnxruntime.py), OpenVINO
(openvino_engine.py), PyTorch eager and torch.compile for zoo models (torch_engines.py), TensorRT
(tensorrt_engine.py). peers.py makes them by name for a device and precision, or says why it
cannot (`Unavailable`); gpu_timing.py times GPU engines with CUDA events; agreement.py holds the
tolerances per precision; bench.py runs them all on one model.
"""

from .agreement import SCALE_ATOL, TOLERANCES, Agreement, OutputAgreement, compare, compare_at, tolerance
from .engine import CrosstuneEngine, Engine, Unavailable

__all__ = ["SCALE_ATOL", "TOLERANCES", "Agreement", "CrosstuneEngine", "Engine", "OutputAgreement", "Unavailable",
           "compare", "compare_at", "tolerance"]
