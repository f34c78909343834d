"""Keeping PyTorch out of processes that do not use it.

`import tvm` imports torch through tvm_ffi whenever torch is installed (+2 s per process, and every
tuning worker would carry it). The usual trick, `sys.modules["torch"] = None`, breaks libraries that
look torch up in `sys.modules` to test arrays: scipy's array-API helpers (imported by scikit-learn,
which xgboost imports when present) do `getattr(sys.modules["torch"], "Tensor")` and crash on None.
A meta-path finder that refuses the import leaves `sys.modules` untouched, so `"torch" in
sys.modules` stays False and `import torch` raises ImportError as if it were not installed.
"""

from __future__ import annotations

import sys


class _Blocker:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"crosstune keeps {name} out of this process (not needed here)")
        return None


def block_torch() -> None:
    """Make `import torch` fail in this process, unless torch is already imported."""
    if "torch" in sys.modules or any(isinstance(f, _Blocker) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Blocker())
