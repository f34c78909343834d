"""Tensor descriptions shared by import, packaging and running: names, shapes, dtypes, and the
seeded random inputs that verification and timing use when the user gives none."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output. `shape` entries are ints, or strings for symbolic dimensions.

    `high` bounds random integer inputs to [0, high): an input that indexes a table (token ids into
    an embedding) must stay inside it, or the run reads out of bounds."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str
    high: int | None = None
    # An ONNX sequence of tensors (kind "sequence"): `elems` holds each element's shape once pinned
    # (`--input-shape seq=2x3+4x3`), None while unknown; `shape` is unused.
    kind: str = "tensor"
    elems: tuple[tuple[int | str, ...], ...] | None = None

    @property
    def is_sequence(self) -> bool:
        return self.kind == "sequence"

    @property
    def static(self) -> bool:
        if self.is_sequence:
            return self.elems is not None and all(isinstance(d, int) and d >= 0 for e in self.elems for d in e)
        return all(isinstance(d, int) and d >= 0 for d in self.shape)

    def describe(self) -> str:
        if self.is_sequence:
            shapes = "?" if self.elems is None else ", ".join(format_shape(e) for e in self.elems)
            return f"sequence [{shapes}] {self.dtype}"
        return f"{format_shape(self.shape)} {self.dtype}"

    def to_json(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        if d["high"] is None:
            del d["high"]
        if self.is_sequence:
            d["elems"] = None if self.elems is None else [list(e) for e in self.elems]
        else:
            del d["kind"], d["elems"]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TensorSpec":
        elems = d.get("elems")
        return cls(d["name"], tuple(d["shape"]), d["dtype"], d.get("high"), d.get("kind", "tensor"),
                   None if elems is None else tuple(tuple(e) for e in elems))


class SequenceShape(tuple):
    """The element shapes given for a sequence input: `--input-shape seq=2x3+4x3`."""


def format_shape(shape) -> str:
    if len(shape) == 0:
        return "scalar"
    return "x".join(str(d) if d not in (None, -1) else "?" for d in shape)


def parse_shape(text: str) -> tuple[int, ...]:
    """'1x3x224x224' (or '1,3,224,224', or '[]' for a scalar) -> (1, 3, 224, 224)."""
    t = text.strip().strip("[]()")
    if not t:
        return ()
    parts = t.replace(",", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise UserError(f"bad shape '{text}': expected dimensions like 1x3x224x224") from None
    if any(d < 0 for d in dims):
        raise UserError(f"bad shape '{text}': dimensions must be >= 0")
    return dims


def parse_input_shape(text: str):
    """A tensor shape ('1x3x224x224'), or element shapes joined by '+' for a sequence input
    ('2x3+4x3': a sequence of a 2x3 and a 4x3 tensor)."""
    if "+" in text:
        return SequenceShape(parse_shape(t) for t in text.split("+"))
    return parse_shape(text)


def parse_assignments(items: list[str] | None, what: str) -> dict[str, str]:
    """['a=1x2', 'b=3'] -> {'a': '1x2', 'b': '3'}; `what` names the flag in errors."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.rpartition("=")
        if not sep or not name or not value:
            raise UserError(f"{what} expects NAME=VALUE, got '{item}'")
        out[name] = value
    return out


def numpy_dtype(dtype: str) -> np.dtype:
    import numpy as np

    try:
        return np.dtype(dtype)
    except TypeError:
        import ml_dtypes  # bfloat16, float8 variants

        return np.dtype(getattr(ml_dtypes, dtype))


def random_inputs(specs: list[TensorSpec], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for every spec: normal floats, bools, integers in [0, high) (default [0, 2))."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = {}
    for s in specs:
        if not s.static:
            raise UserError(f"input '{s.name}' has dynamic shape {format_shape(s.shape)}")
        dt = numpy_dtype(s.dtype)

        def draw(shape):
            if dt == np.bool_:
                arr = rng.random(shape) < 0.5
            elif np.issubdtype(dt, np.integer):
                arr = rng.integers(0, s.high or 2, size=shape).astype(dt)
            else:
                arr = rng.standard_normal(shape).astype(dt)
            return np.asarray(arr, order="C")

        out[s.name] = [draw(e) for e in s.elems] if s.is_sequence else draw(s.shape)
    return out


def load_inputs(files: dict[str, str]) -> dict[str, np.ndarray]:
    """Read name=file.npy assignments."""
    import numpy as np

    out = {}
    for name, path in files.items():
        p = Path(path)
        if not p.is_file():
            raise UserError(f"input '{name}': no such file {path}")
        try:
            out[name] = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise UserError(f"input '{name}': {path} is not a readable .npy file ({err})") from None
    return out


def check_inputs(specs: list[TensorSpec], given: dict[str, np.ndarray]) -> None:
    """One-line errors for unknown names, wrong shapes and wrong dtypes."""
    import numpy as np

    known = {s.name: s for s in specs}
    for name, arr in given.items():
        if name not in known:
            raise UserError(f"model has no input '{name}'; its inputs are: {', '.join(known)}")
        s = known[name]
        if s.is_sequence:
            items = list(arr) if isinstance(arr, (list, tuple)) else None
            if items is None or len(items) != len(s.elems) or any(
                    tuple(np.shape(a)) != tuple(e) or np.asarray(a).dtype != numpy_dtype(s.dtype) for a, e in zip(items, s.elems)):
                got = (f"a {type(arr).__name__}" if items is None else
                       "sequence [" + ", ".join(f"{format_shape(np.shape(a))} {np.asarray(a).dtype}" for a in items) + "]")
                raise UserError(f"input '{name}' expects {s.describe()}, got {got}")
            continue
        if tuple(arr.shape) != tuple(s.shape) or arr.dtype != numpy_dtype(s.dtype):
            raise UserError(
                f"input '{name}' expects {s.describe()}, got {format_shape(arr.shape)} {arr.dtype}"
            )
