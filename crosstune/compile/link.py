"""Linking the compiled objects into a shared library with the target's C compiler.

TVM's own `create_shared` raises a RuntimeError with the output folded into the message; this one
keeps the command, exit code and output apart (a `ToolError`), so a failed link can be re-run by hand.
"""

from __future__ import annotations

import subprocess

from ..errors import ToolError
from ..targets import Target


def link_command(cc: str, output: str, objects: list[str], options: list[str] | None = None) -> list[str]:
    """The command that links `objects` into the shared library `output` (a pure function)."""
    return [cc, "-shared", "-fPIC", "-o", output, *(options or []), *objects]


def fcompile_for(target: Target):
    """An `fcompile` for `Executable.export_library` that links with the target's compiler."""
    cc = target.check_compiler()

    def fcompile(output: str, objects, options=None):
        objs = [objects] if isinstance(objects, str) else list(objects)
        cmd = link_command(cc, output, objs, options)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            raise ToolError(target.cc, cmd, proc.returncode, proc.stdout.decode(errors="replace"))

    fcompile.output_format = "so"
    return fcompile
