"""Which machine a tuning record was measured on, and whose records a build uses.

A tuning record's time is a fact about the machine that measured it. One preset's store gathers
records from several kinds of machine (`x86-avx512` covers Intel Xeons and AMD Zen 4; `h200`'s
records also serve the `h100` preset), and a schedule tuned on one is often far from best on another.
So the tuner tags every record with the machine that timed it (`targets.host.Machine`), and compile
reads the store for the machine it builds for (`logstore.Index.view`).
"""

from __future__ import annotations

from ..targets import Target
from ..targets.host import Machine, slug, this_machine

ANY = "any"


def gpu_machine(device_id: int = 0) -> Machine | None:
    """The local NVIDIA GPU as a machine (imports TVM); None when there is none."""
    import tvm

    dev = tvm.cuda(device_id)
    if not dev.exist:
        return None
    name = str(dev.device_name)
    return Machine(f"cuda-{slug(name)}", name)


def board_machine(board: dict) -> Machine:
    """The machine behind an RPC key, from what the board said about itself (`rpc.BoardInfo`)."""
    key = str(board.get("key") or "board")
    if board.get("emulated"):
        cpu = str(board.get("qemu_cpu") or "max")
        return Machine(f"qemu-{slug(cpu)}", f"qemu-user, CPU model {cpu} (emulated '{key}' board)")
    if board.get("cpu_id"):
        return Machine(str(board["cpu_id"]), str(board.get("cpu") or board["cpu_id"]))
    return Machine(f"board-{slug(key)}", f"'{key}' board (a plain TVM RPC server: its CPU is not known)")


def measuring_machine(target: Target, board: dict | None = None) -> Machine:
    """The machine whose times a tuning job records: the board's, the local GPU's, or this CPU's."""
    if board is not None:
        return board_machine(board)
    if target.device == "cuda":
        gpu = gpu_machine()
        if gpu is not None:
            return gpu
    return this_machine()


def records_machine(target: Target, tuned_on: str | None = None) -> str | None:
    """Whose records a build for `target` prefers: `tuned_on` when given (`any`: every machine's,
    the fastest time wins), else the machine the code would run on when that is this one (a CPU
    target of this architecture, a GPU target with a local GPU); None (every machine's) otherwise,
    as when cross-compiling for a board."""
    if tuned_on:
        return None if tuned_on == ANY else tuned_on
    if target.device == "cpu":
        return None if target.cross else this_machine().id
    gpu = gpu_machine()
    return gpu.id if gpu is not None else None
