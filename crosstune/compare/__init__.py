"""Reference engines behind one interface, and numerical agreement between engines.

Each engine module imports its heavy library only inside itself: crosstune's own packages
(engine.py), ONNX Runtime (the CPU reference), and the peers of `crosstune bench` (peers.py:
OpenVINO, PyTorch eager and torch.compile for zoo models, TensorRT where it can run). bench.py runs
them all on one model.
"""

from .agreement import TOLERANCES, Agreement, OutputAgreement, compare
from .engine import CrosstuneEngine, Engine

__all__ = ["TOLERANCES", "Agreement", "CrosstuneEngine", "Engine", "OutputAgreement", "compare"]
