"""ONNX's own node tests for every operator crosstune's converter layer touches.

Each module of `crosstune.frontend.ops` declares `CASES` (a regex over ONNX's node test case names,
e.g. `test_lstm_defaults`) and `KNOWN_FAILURES` ({case: why}). This runs every matching case
through `bench/onnx_conformance.py` (import, build for x86-64, run, compare with the expected
outputs at rtol 1e-3 / atol 1e-5 for floats, exactly otherwise, dtypes and shapes included) and
requires each to pass, except the known failures, which must still fail (a fixed one is taken off
the list). The `*_expanded` cases are left to the benchmark: they test the operator's function body,
built from other operators, not crosstune's converter.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
import sys

import pytest
from conftest import ROOT

from crosstune.frontend import ops as ops_pkg

MODULES = sorted(info.name for info in pkgutil.iter_modules(ops_pkg.__path__))


def _module(name):
    return importlib.import_module(f"crosstune.frontend.ops.{name}")


def _all_cases() -> list[str]:
    sys.path.insert(0, str(ROOT / "bench"))
    import onnx_conformance

    return sorted(onnx_conformance.materialise(onnx_conformance.default_cases_dir()))


@pytest.fixture(scope="session")
def node_results(tmp_path_factory) -> dict:
    """Every selected case of every module, in one run of the conformance script (2 at a time)."""
    names = _all_cases()
    chosen = set()
    for m in MODULES:
        mod = _module(m)
        chosen |= {n for n in names if re.search(mod.CASES, n) and "_expanded" not in n}
    out = tmp_path_factory.mktemp("conformance") / "node"
    only = "^(" + "|".join(re.escape(n) for n in sorted(chosen)) + ")$"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "onnx_conformance.py"), "--engines", "crosstune", "--jobs", "2",
         "--timeout", "120", "--only", only, "--out", str(out)],
        capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cases = json.loads(out.with_suffix(".json").read_text())["cases"]
    assert set(cases) == chosen
    return {n: r["crosstune"] for n, r in cases.items()}


@pytest.mark.parametrize("module", MODULES)
def test_module_declares_its_cases(module):
    mod = _module(module)
    names = _all_cases()
    matched = [n for n in names if re.search(mod.CASES, n)]
    assert matched, f"{module}.CASES matches no ONNX node case"
    stale = set(mod.KNOWN_FAILURES) - set(matched)
    assert not stale, f"{module}.KNOWN_FAILURES names cases CASES does not select: {sorted(stale)}"
    for why in mod.KNOWN_FAILURES.values():
        assert why.strip(), f"{module}: a known failure without a reason"


@pytest.mark.parametrize("module", MODULES)
def test_node_cases_pass(module, node_results):
    mod = _module(module)
    mine = {n: r for n, r in node_results.items() if re.search(mod.CASES, n)}
    failing = {n: f"{r['status']}: {r['error'][:200]}" for n, r in mine.items()
               if r["status"] != "pass" and n not in mod.KNOWN_FAILURES}
    fixed = [n for n in mod.KNOWN_FAILURES if n in mine and mine[n]["status"] == "pass"]
    assert not failing, f"{len(failing)} of {len(mine)} cases fail:\n" + "\n".join(f"{k}: {v}" for k, v in sorted(failing.items()))
    assert not fixed, f"known failures that pass now (take them off KNOWN_FAILURES): {fixed}"


def test_every_converter_has_its_cases_run():
    """Each operator crosstune's layer registers has node cases, and its module's CASES selects all
    of them (the non-expanded ones), so `test_node_cases_pass` covers every converter."""
    import json

    from crosstune.frontend import registry

    registry.load_all()
    sys.path.insert(0, str(ROOT / "bench"))
    import onnx_conformance

    _all_cases()  # writes the cases and their index once
    index = json.loads((onnx_conformance.default_cases_dir() / "index.json").read_text())
    by_op: dict[str, list[str]] = {}
    for name, op in index.items():
        if "_expanded" not in name:
            by_op.setdefault(op, []).append(name)
    for entry in registry.entries():
        cases = by_op.get(entry.op, [])
        pattern = importlib.import_module(entry.fn.__module__).CASES
        assert cases, f"{entry.op}: ONNX has no node case for it"
        missed = [c for c in cases if not re.search(pattern, c)]
        assert not missed, f"{entry.op}: {entry.fn.__module__}.CASES leaves out {missed}"
