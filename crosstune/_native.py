"""Keep TVM's C++ log lines (written straight to file descriptor 2) off the user's terminal while
a computation runs; the captured text is returned for whoever wants it (`--debug` prints it)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def native_stderr_captured(sink: list[str]):
    """Redirect fd 2 into a temporary file for the duration; append its text to `sink`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield sink
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", errors="replace")
            if text:
                sink.append(text)
            if text and os.environ.get("CROSSTUNE_DEBUG"):
                sys.stderr.write(text)
