"""An emulated aarch64 board: a Debian arm64 userland with Python and TVM, run under qemu-user, serving
TVM RPC like a real board would.

Emulation cannot time a board (qemu translates every instruction), but it runs the very artifact a
board runs, over the same RPC protocol and tracker, so everything short of real timings is exercised.
Every number it produces is labelled emulated.

    setup(): once, about a minute, cached under ~/.cache/crosstune/ (or $CROSSTUNE_BOARDS):
      sysroot/   `mmdebstrap --variant=extract --arch=arm64`: python3.11 and the C++ runtime (no
                 emulation needed to unpack it)
      site/      aarch64 wheels of the host's exact TVM and tvm-ffi versions, installed by the host's
                 pip (`--platform manylinux..._aarch64 --only-binary=:all:`), plus sitecustomize.py
      python3    a launcher: `qemu-aarch64-static -cpu $CROSSTUNE_QEMU_CPU -L sysroot python3.11`
    command(): the command line of an RPC server on that userland for one target preset.

Without binfmt_misc (containers, CI), an aarch64 process cannot exec another aarch64 binary, and the
RPC server starts workers with `sys.executable`: sitecustomize.py points it at the launcher. The
preset's qemu CPU model is always passed, because qemu's default CPU (`max`) accepts every
instruction, and code built with a wrong `-mattr` would pass unnoticed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError, UserError
from ..targets import Target

SUITE = "bookworm"
PYTHON = "python3.11"
PY_TAG = "3.11"
PACKAGES = ("python3.11", "libpython3.11-stdlib", "libstdc++6", "libgcc-s1")
PLATFORMS = ("manylinux_2_28_aarch64", "manylinux2014_aarch64")
# What the board's Python needs besides TVM: TVM's runtime imports and the RPC server's.
BOARD_WHEELS = ("numpy", "ml_dtypes", "typing_extensions", "psutil", "cloudpickle", "tornado")
TOOLS = {"qemu-aarch64-static": "qemu-user-static", "mmdebstrap": "mmdebstrap"}

SITECUSTOMIZE = '''\
# Written by crosstune: inside qemu-user without binfmt, child processes must be started through the
# launcher, not the aarch64 python binary (which the x86 kernel cannot exec).
import os, sys
_launcher = os.environ.get("CROSSTUNE_BOARD_PYTHON")
if _launcher:
    sys.executable = _launcher
'''

LAUNCHER = '''\
#!/bin/sh
# Written by crosstune: python3.11 of an arm64 Debian userland under qemu-user.
here="$(cd "$(dirname "$0")" && pwd)"
exec qemu-aarch64-static -cpu "${{CROSSTUNE_QEMU_CPU:?set CROSSTUNE_QEMU_CPU to the preset qemu CPU model}}" \\
    -L "$here/sysroot" "$here/sysroot/usr/bin/{python}" "$@"
'''


@dataclass(frozen=True)
class Userland:
    root: Path

    @property
    def sysroot(self) -> Path:
        return self.root / "sysroot"

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def launcher(self) -> Path:
        return self.root / "python3"

    @property
    def stamp(self) -> Path:
        return self.root / "ready.json"

    def ready(self) -> dict | None:
        try:
            return json.loads(self.stamp.read_text())
        except (OSError, ValueError):
            return None


def versions() -> dict[str, str]:
    """The host's TVM and tvm-ffi versions: the board must run the same ones."""
    from importlib.metadata import version

    return {"apache-tvm": version("apache-tvm"), "apache-tvm-ffi": version("apache-tvm-ffi")}


def default_root() -> Path:
    base = os.environ.get("CROSSTUNE_BOARDS") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "crosstune", "boards"
    )
    v = versions()
    return Path(base) / f"aarch64-py{PY_TAG}-tvm{v['apache-tvm']}-ffi{v['apache-tvm-ffi']}"


def check_tools() -> None:
    missing = [f"{tool} (Debian/Ubuntu package: {pkg})" for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    if missing:
        raise UserError(f"an emulated board needs {', '.join(missing)}, which is not installed")


def setup(root: Path | None = None, say=print) -> Userland:
    """Create the userland if it is missing or was made for other TVM versions; returns it."""
    check_tools()
    land = Userland(Path(root) if root else default_root())
    want = {**versions(), "suite": SUITE, "python": PYTHON}
    if land.ready() == want:
        return land
    land.root.mkdir(parents=True, exist_ok=True)
    land.stamp.unlink(missing_ok=True)
    if not (land.sysroot / "usr" / "bin" / PYTHON).is_file():
        say(f"  unpacking an arm64 Debian {SUITE} userland with {PYTHON} (mmdebstrap) ...")
        tmp = land.root / "sysroot.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        _run(["mmdebstrap", "--variant=extract", "--arch=arm64", f"--include={','.join(PACKAGES)}",
              "--quiet", SUITE, str(tmp)], "mmdebstrap")
        shutil.rmtree(land.sysroot, ignore_errors=True)
        tmp.rename(land.sysroot)
    say(f"  installing aarch64 wheels of apache-tvm {want['apache-tvm']} (pip --platform) ...")
    tmp = land.root / "site.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    plats = [a for p in PLATFORMS for a in ("--platform", p)]
    pins = [f"apache-tvm=={want['apache-tvm']}", f"apache-tvm-ffi=={want['apache-tvm-ffi']}", *BOARD_WHEELS]
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
          "--target", str(tmp), *plats, "--only-binary=:all:", "--python-version", PY_TAG,
          "--implementation", "cp", *pins], "pip")
    (tmp / "sitecustomize.py").write_text(SITECUSTOMIZE)
    shutil.rmtree(land.site, ignore_errors=True)
    tmp.rename(land.site)
    land.launcher.write_text(LAUNCHER.format(python=PYTHON))
    land.launcher.chmod(0o755)
    land.stamp.write_text(json.dumps(want))
    return land


def environment(land: Userland, target: Target) -> dict[str, str]:
    """Environment of a process on the emulated board of `target`."""
    if not target.qemu_cpu:
        raise UserError(f"target '{target.name}' names no qemu CPU model ([board] qemu-cpu); it cannot be emulated")
    if target.arch != "aarch64":
        raise UserError(f"target '{target.name}' is {target.arch}; emulated boards are aarch64")
    src = str(Path(__file__).resolve().parents[2])  # crosstune itself is pure Python: shared as is
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        PYTHONPATH=f"{land.site}{os.pathsep}{src}",
        PYTHONNOUSERSITE="1",
        CROSSTUNE_QEMU_CPU=target.qemu_cpu,
        CROSSTUNE_BOARD_PYTHON=str(land.launcher),
        CROSSTUNE_BOARD_EMULATED=json.dumps({"preset": target.name, "qemu_cpu": target.qemu_cpu}),
        # Emulated cores are host threads: one each keeps several boards on a small machine responsive.
        TVM_NUM_THREADS="1",
    )
    return env


def _run(cmd: list[str], tool: str) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if proc.returncode != 0:
        raise ToolError(tool, cmd, proc.returncode, proc.stdout)
