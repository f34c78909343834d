"""Load a `.ctm` package onto a device and run it."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..compile import package
from ..errors import UserError
from ..targets import host
from ..tensors import TensorSpec, check_inputs, numpy_dtype, random_inputs
from .timing import LatencyStats, measure, measure_device


def _device(kind: str, path, target: dict):
    import tvm

    if kind == "cpu":
        return tvm.cpu(0)
    if kind == "cuda":
        return _cuda_device(path, target)
    raise UserError(f"{path}: packages for '{kind}' devices cannot run here (this crosstune runs cpu and cuda)")


def _cuda_device(path, target: dict):
    """The first CUDA GPU, checked against the architecture the package was built for: older GPUs
    cannot run newer architectures' code, which would fail at the first kernel launch."""
    import tvm

    from ..targets.cuda import arch_capability

    built = str(target.get("gpu_arch") or (target.get("tvm") or {}).get("arch") or "")
    preset = target.get("preset")
    dev = tvm.cuda(0)
    if not dev.exist:
        raise UserError(f"{path} is built for an NVIDIA GPU (target '{preset}', {built}) and no CUDA GPU is "
                        "visible here (no driver, no device, or CUDA_VISIBLE_DEVICES hides it)")
    have = str(dev.compute_version)  # "9.0"
    major, minor = (int(x) for x in have.split("."))
    if built and (major, minor) < arch_capability(built):
        raise UserError(f"{path} is built for {built} (target '{preset}') and this GPU, {dev.device_name}, is "
                        f"sm_{major}{minor}, an older architecture that cannot run it: recompile with --target cuda")
    return dev


class PackageModel:
    """What a loaded package offers wherever it runs (here or on a board): its inputs and outputs,
    seeded example inputs, and the conversion of inputs to arguments and of results to arrays.
    Subclasses set `info`, `device` and `_weights`."""

    def _read(self, path) -> tuple[package.PackageInfo, bytes, bytes]:
        """The package's files (digests checked), refused when another TVM built it."""
        import tvm

        self.path = str(path)
        info, lib_bytes, weight_bytes = package.read(path)
        if info.tvm_version != tvm.__version__:
            raise UserError(
                f"{path} was built with TVM {info.tvm_version}, this is TVM {tvm.__version__}: "
                "recompile it with `crosstune compile`"
            )
        self.info = info
        return info, lib_bytes, weight_bytes

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.info.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.info.outputs

    def example_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        return random_inputs(self.inputs, seed)

    def _args(self, inputs: dict[str, np.ndarray] | None):
        import tvm

        given = dict(inputs or {})
        check_inputs(self.inputs, given)
        missing = [s for s in self.inputs if s.name not in given]
        if missing:
            raise UserError(f"missing input(s): {', '.join(s.name for s in missing)}")
        def arg(spec, value):
            if spec.is_sequence:  # a Relax tuple parameter
                return [tvm.runtime.tensor(np.asarray(v, order="C"), self.device) for v in value]
            return tvm.runtime.tensor(np.asarray(value, order="C"), self.device)

        args = [arg(s, given[s.name]) for s in self.inputs]
        return args + self._weights

    def _outputs(self, result) -> dict[str, np.ndarray]:
        # One output comes back as itself (a tensor, or an Array for a sequence), several as an Array.
        items = [result] if hasattr(result, "numpy") or len(self.outputs) == 1 else list(result)
        if len(items) != len(self.outputs):
            raise RuntimeError(f"module returned {len(items)} outputs, metadata lists {len(self.outputs)}")
        out = {}
        for spec, value in zip(self.outputs, items):
            want = numpy_dtype(spec.dtype)
            arrs = [v.numpy() for v in value] if spec.is_sequence else [value.numpy()]
            arrs = [a if a.dtype == want else a.astype(want) for a in arrs]
            out[spec.name] = arrs if spec.is_sequence else arrs[0]
        return out


def default_cpu_threads(threads: int | None = None) -> int:
    """Size TVM's CPU thread pool: `threads`, else what the user set (TVM_NUM_THREADS or
    OMP_NUM_THREADS), else every physical core this process may use. Left alone, TVM takes half of
    `hardware_concurrency` on x86 (it assumes two hyper-threads a core): one thread on a 2-core VM,
    where tuned modules then ran at half speed (ResNet-50: 118 ms against 65 ms with 2 threads).
    TVM reads the variable when its pool starts, at the first parallel kernel: call this before."""
    if threads is not None:
        os.environ["TVM_NUM_THREADS"] = str(threads)
    elif not (os.environ.get("TVM_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")):
        os.environ["TVM_NUM_THREADS"] = str(host.physical_cores())
    return int(os.environ.get("TVM_NUM_THREADS") or os.environ["OMP_NUM_THREADS"])


class CompiledModel(PackageModel):
    """A package loaded on a device: `run` for outputs, `benchmark` for latency. `threads` sizes
    the CPU thread pool (see `default_cpu_threads`)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import tvm
        from tvm import relax

        self.threads = default_cpu_threads(threads)

        info, lib_bytes, weight_bytes = self._read(path)
        arch = info.target.get("arch")
        if arch and arch != platform.machine():
            board = info.target.get("board_key") or "KEY"
            raise UserError(
                f"{path} is built for {arch} (target '{info.target.get('preset')}') and this machine is "
                f"{platform.machine()}: run it on a board with --rpc TRACKER_HOST:PORT --key {board}"
            )
        self.device = _device(info.target.get("device", "cpu"), path, info.target)
        lacking = host.missing(list(info.target.get("cpu_flags", [])))
        if lacking:
            raise UserError(
                f"{path} was built for target '{info.target.get('preset')}', whose code needs CPU "
                f"features this CPU lacks ({', '.join(lacking)}): recompile it with --target host"
            )
        # load_module needs a file; once loaded, the file can go.
        with tempfile.TemporaryDirectory(prefix="crosstune-") as tmp:
            lib_path = os.path.join(tmp, package.LIBRARY)
            with open(lib_path, "wb") as f:
                f.write(lib_bytes)
            try:
                lib = tvm.runtime.load_module(lib_path)
            except Exception as err:  # wrong architecture, corrupt ELF
                raise UserError(f"{path}: cannot load its library on this machine ({err})") from None
        self._vm = relax.VirtualMachine(lib, self.device)
        params = tvm.runtime.load_param_dict(weight_bytes)
        count = int(info.weights.get("count", len(params)))
        if len(params) != count:
            raise UserError(f"{path}: weights hold {len(params)} tensors, metadata says {count}")
        self._weights = [params[str(i)].copyto(self.device) for i in range(count)]

    def run(self, inputs: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Outputs by name, as numpy arrays. Every input must be given (see `example_inputs`)."""
        return self._outputs(self._vm["main"](*self._args(inputs)))

    def benchmark(
        self,
        inputs: dict[str, np.ndarray] | None = None,
        *,
        warmup: int = 5,
        repeat: int = 50,
        max_seconds: float | None = None,
    ) -> LatencyStats:
        """Latency of one call of the model with inputs already on the device."""
        # A saved closure holds the arguments, so the timed call does no argument conversion.
        self._vm.save_function("main", "__crosstune_bench", *self._args(inputs), include_return=False)
        fn = self._vm.module["__crosstune_bench"]
        if self.device.dlpack_device_type() == 2:  # kDLCUDA
            return measure_device(self._vm, "__crosstune_bench", self.device, fn,
                                  warmup=warmup, repeat=repeat, max_seconds=max_seconds)
        return measure(fn, self.device.sync, warmup=warmup, repeat=repeat, max_seconds=max_seconds)


    def profile(self, inputs: dict[str, np.ndarray] | None = None, *, runs: int = 20,
                warmup: int = 3) -> "Profile":
        """Where one call's time goes: every call the VM makes (the kernels, and its own builtins
        such as allocations), timed around the call (a GPU synchronised before and after), over `runs`
        calls. The hook costs a few microseconds a call, so the calls add up to more than the latency."""
        import tvm

        args = self._args(inputs)
        fn = self._vm["main"]
        for _ in range(warmup):
            fn(*args)
        self.device.sync()
        totals: dict[str, list] = {}
        started: list[int] = []
        clock = time.perf_counter_ns
        # CPU kernels return when done; a GPU's are waited for around each call.
        sync = self.device.sync if self.device.dlpack_device_type() != 1 else (lambda: None)

        def hook(func, symbol, before, ret, *call_args):
            if before:
                sync()
                started.append(clock())
            else:
                sync()
                dt = clock() - started.pop()
                entry = totals.setdefault(str(symbol), [0, 0])
                entry[0] += dt
                entry[1] += 1
            return 0

        self._vm.set_instrument(tvm.runtime.convert(hook))
        try:
            t0 = clock()
            for _ in range(runs):
                fn(*args)
            sync()
            wall = clock() - t0
        finally:
            self._vm.set_instrument(None)
        tuning = (self.info.build or {}).get("tuning") or {}
        defaults = set(tuning.get("missing") or []) if tuning else None
        def tuned(name: str) -> bool | None:
            if defaults is None or name.startswith("vm."):
                return None
            # TVM suffixes a kernel whose weights a record's layout rewrite prepacks
            return name.removesuffix("_prepacked") not in defaults

        calls = [ProfiledCall(name, ns / runs / 1e3, n // runs, tuned(name)) for name, (ns, n) in totals.items()]
        calls.sort(key=lambda c: -c.us_per_run)
        return Profile(calls, runs, wall / runs / 1e3)


@dataclass
class ProfiledCall:
    name: str
    us_per_run: float
    calls_per_run: int
    tuned: bool | None  # scheduled by a tuning record; None: a VM builtin, or the package has no tuning state

    @property
    def kind(self) -> str:
        if self.name.startswith("vm."):
            return "builtin"
        return {True: "record", False: "default", None: "-"}[self.tuned]


@dataclass
class Profile:
    calls: list[ProfiledCall]
    runs: int
    us_per_run: float  # wall time of a profiled call (hooks included)


def load(path: str | Path, threads: int | None = None) -> CompiledModel:
    """Load a package for running: `crosstune.load("model.ctm").run(inputs)`. CPU kernels run on
    `threads` threads (default: every physical core, or TVM_NUM_THREADS when set)."""
    return CompiledModel(path, threads)
