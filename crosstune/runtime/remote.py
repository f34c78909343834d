"""A `.ctm` package on a board: uploaded through an RPC session from the tracker, run and timed there.

The library is checked against its digest (package.read) before it is uploaded; the weights are
copied to the board once. Latency is measured by the board's own clock (`time_evaluator` runs the
model there and sends back the times), so network round trips are not in the figures.
"""

from __future__ import annotations

import platform
import time

import numpy as np

from ..compile import package
from ..errors import UserError
from ..rpc import Address, BoardError, BoardInfo, board_info, request
from .session import PackageModel
from .timing import LatencyStats


def _lost(err: BaseException, info: BoardInfo) -> BoardError:
    text = (str(err).strip().splitlines() or [type(err).__name__])[-1]
    if "kShutdown" in text:  # the session's process on the board died (or the board went away)
        text = ("the session on the board ended abruptly: the board went away, or the code crashed there "
                "(for example instructions this board's CPU lacks: check the package's target)")
    return BoardError(f"{info.describe()} failed or disconnected during the run: {text}")


class RemoteModel(PackageModel):
    """`run` and `benchmark` as for a local `CompiledModel`, on a board of `key` behind a tracker."""

    def __init__(self, path, addr: Address, key: str, wait_s: float = 300.0):
        import tvm
        from tvm import relax

        info, lib_bytes, weight_bytes = self._read(path)
        self.session = request(addr, key, wait_s=wait_s)
        self.board = board_info(self.session, addr, key)
        arch = info.target.get("arch")
        if self.board.machine and arch and self.board.machine != arch:
            raise UserError(f"{path} is built for {arch}; the '{key}' board is {self.board.machine}")
        try:
            self.device = self.session.cpu(0)
            name = f"crosstune-{info.digests.get(package.LIBRARY, 'lib')[:16]}.so"
            self.session.upload(bytearray(lib_bytes), name)
            lib = self.session.load_module(name)
            self._vm = relax.VirtualMachine(lib, self.device)
            params = tvm.runtime.load_param_dict(weight_bytes)
            count = int(info.weights.get("count", len(params)))
            self._weights = [tvm.runtime.tensor(params[str(i)].numpy(), self.device) for i in range(count)]
        except (RuntimeError, OSError) as err:  # tvm.error.* are RuntimeErrors
            raise _lost(err, self.board) from None

    def run(self, inputs=None) -> dict[str, np.ndarray]:
        try:
            return self._outputs(self._vm["main"](*self._args(inputs)))
        except (RuntimeError, OSError) as err:  # tvm.error.* are RuntimeErrors
            raise _lost(err, self.board) from None

    def benchmark(self, inputs=None, *, warmup: int = 5, repeat: int = 50, max_seconds: float | None = None) -> LatencyStats:
        """One sample per call of the board's `time_evaluator` (one run each, timed on the board)."""
        try:
            args = self._args(inputs)
            evaluator = self._vm.time_evaluator("main", self.device, number=1, repeat=1)
            for _ in range(warmup):
                evaluator(*args)
            samples: list[float] = []
            truncated = False
            started = time.perf_counter()
            for i in range(repeat):
                samples.append(float(evaluator(*args).results[0]) * 1e3)
                spent = time.perf_counter() - started
                if max_seconds is not None and spent >= max_seconds and i + 1 >= 3 and i + 1 < repeat:
                    truncated = True
                    break
        except (RuntimeError, OSError) as err:  # tvm.error.* are RuntimeErrors
            raise _lost(err, self.board) from None
        return LatencyStats.from_samples(samples, warmup, truncated)


def arch_mismatch(info: package.PackageInfo) -> str | None:
    """Why this machine cannot run the package itself (built for another architecture), or None."""
    arch = info.target.get("arch")
    if arch and arch != platform.machine():
        return arch
    return None
