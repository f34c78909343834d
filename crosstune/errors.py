"""The three kinds of failure crosstune distinguishes (see DESIGN.md).

- `UserError`: the input is wrong (a missing file, an unknown target, a dynamic dimension with no
  shape). The CLI prints its message as one line and exits 2.
- `ToolError`: an external tool failed (a C compiler, nvcc, a board). It keeps the command, the exit
  code and the tool's output, so the failure can be reproduced outside crosstune.
- Anything else is a bug in crosstune or TVM: the CLI shows the traceback.
"""

from __future__ import annotations

import shlex


class CrosstuneError(Exception):
    """Base class of the errors crosstune raises on purpose."""


class UserError(CrosstuneError):
    """Bad input from the user: reported as one line, exit code 2."""


class ToolError(CrosstuneError):
    """An external tool (compiler, linker, board) failed."""

    def __init__(self, tool: str, cmd: list[str], returncode: int, output: str, hint: str = ""):
        self.tool = tool
        self.cmd = list(cmd)
        self.returncode = returncode
        self.output = output
        self.hint = hint
        super().__init__(f"{tool} failed with exit code {returncode}")

    def details(self) -> str:
        lines = [
            f"{self.tool} failed with exit code {self.returncode}",
            f"command: {shlex.join(self.cmd)}",
        ]
        out = self.output.strip()
        if out:
            tail = out.splitlines()[-40:]
            lines.append("output (last lines):")
            lines.extend("  " + line for line in tail)
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


class VerificationFailed(CrosstuneError):
    """Outputs disagree with the reference beyond tolerance (exit code 1, not a crash)."""
