"""Reference engines behind one interface, and numerical agreement between engines.

Each engine module imports its heavy library only inside itself. Today: ONNX Runtime (the CPU
reference) and crosstune's own packages; TensorRT and PyTorch arrive with the GPU work.
"""

from .agreement import TOLERANCES, Agreement, OutputAgreement, compare
from .engine import CrosstuneEngine, Engine

__all__ = ["TOLERANCES", "Agreement", "CrosstuneEngine", "Engine", "OutputAgreement", "compare"]
