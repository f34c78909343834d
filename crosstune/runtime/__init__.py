"""Loading packages on a device, running them, and timing them."""

from .session import CompiledModel, load
from .timing import LatencyStats, measure

__all__ = ["CompiledModel", "LatencyStats", "load", "measure"]
