"""crosstune's ONNX converter table: operators TVM's Relax frontend lacks or gets wrong.

A converter is a function `fn(ctx, inputs, attrs) -> relax.Expr | relax.Tuple`, registered for one
operator over a range of opset versions:

    @converter("Celu", since=12)
    def celu(ctx, inputs, attrs): ...

`inputs` is TVM's list of Relax expressions (None where an optional input is left out), `attrs`
the node's attributes as TVM's importer parses them (strings as bytes), `ctx` a `Ctx` (the block
builder, the node, the opset, constant lookup, subgraph conversion). A converter that returns
several outputs returns a `relax.Tuple`.

Lookup picks, for a model's opset, the entry with the largest `since` that is <= the opset (and
whose `until`, if given, is >= it). An operator crosstune does not register, or whose opset is
outside every entry, goes to TVM's own table unchanged: crosstune never copies a TVM converter,
it registers beside it, so upstream fixes keep arriving with each TVM release.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

STANDARD_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class Converter:
    op: str
    domain: str  # "" for the standard domain
    since: int  # first opset this entry converts
    until: int | None  # last opset, None for "and later"
    fn: Callable
    family: str  # the ops module it lives in: "rnn", "attention", ...
    note: str = ""  # what it fixes over TVM's converter, when TVM has one

    def covers(self, opset: int) -> bool:
        return self.since <= opset and (self.until is None or opset <= self.until)

    @property
    def versions(self) -> str:
        return f"{self.since}+" if self.until is None else f"{self.since}-{self.until}"


_TABLE: dict[tuple[str, str], list[Converter]] = {}
_loaded = [False]


def _domain(domain: str) -> str:
    return "" if domain in STANDARD_DOMAINS else domain


def converter(op: str, since: int = 1, until: int | None = None, domain: str = "", note: str = ""):
    """Register the decorated function as the converter of `op` for opsets since..until."""

    def register(fn):
        family = fn.__module__.rsplit(".", 1)[-1]
        entry = Converter(op, _domain(domain), since, until, fn, family, note)
        entries = _TABLE.setdefault((entry.domain, op), [])
        for other in entries:
            lo, hi = max(other.since, since), min(other.until or 10**9, until or 10**9)
            if lo <= hi:
                raise ValueError(f"{op}: opsets {entry.versions} overlap {other.versions} ({other.fn.__module__})")
        entries.append(entry)
        return fn

    return register


def load_all() -> None:
    """Import every module of crosstune.frontend.ops (each registers its converters)."""
    if _loaded[0]:
        return
    from . import ops

    for info in pkgutil.iter_modules(ops.__path__):
        importlib.import_module(f"{ops.__name__}.{info.name}")
    _loaded[0] = True


def lookup(op: str, opset: int, domain: str = "") -> Converter | None:
    load_all()
    for entry in sorted(_TABLE.get((_domain(domain), op), ()), key=lambda e: -e.since):
        if entry.covers(opset):
            return entry
    return None


def entries() -> list[Converter]:
    load_all()
    return sorted((e for es in _TABLE.values() for e in es), key=lambda e: (e.domain, e.op, e.since))


def tvm_ops() -> frozenset[str]:
    """Operator types TVM's Relax ONNX frontend converts (its table plus what its importer handles
    itself). TVM's table has no domains and no opset ranges: it converts any opset it lists."""
    from tvm.relax.frontend.onnx import onnx_frontend

    return frozenset(onnx_frontend._get_convert_map()) | {"If", "Constant"}


def coverage(op: str, opset: int, domain: str = "") -> str:
    """Who converts `op` at `opset`: "crosstune", "tvm" or "none". Ops outside the standard domain
    are never TVM's: its table ignores domains and would convert a same-named standard op."""
    if lookup(op, opset, domain) is not None:
        return "crosstune"
    if _domain(domain) == "" and op in tvm_ops():
        return "tvm"
    return "none"
