"""Numerical agreement between two engines' outputs: plain data, no printing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

# Default tolerances per precision: |actual - expected| <= atol + rtol * |expected|, elementwise.
TOLERANCES = {"fp32": (1e-3, 1e-4), "fp16": (1e-2, 1e-2)}


@dataclass
class OutputAgreement:
    name: str
    max_abs: float
    max_rel: float  # over elements with |expected| > atol, so near-zero values do not dominate
    mismatches: int  # elements outside atol + rtol * |expected|
    total: int
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.mismatches == 0 and not self.note


@dataclass
class Agreement:
    actual: str
    expected: str
    rtol: float
    atol: float
    outputs: list[OutputAgreement] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def to_json(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        for o, od in zip(self.outputs, d["outputs"]):
            od["passed"] = o.passed
        return d


def compare(
    actual: dict[str, np.ndarray],
    expected: dict[str, np.ndarray],
    *,
    rtol: float,
    atol: float,
    actual_name: str = "crosstune",
    expected_name: str = "onnxruntime",
) -> Agreement:
    result = Agreement(actual_name, expected_name, rtol, atol)
    for name, exp in expected.items():
        exp = np.asarray(exp)
        if name not in actual:
            result.outputs.append(OutputAgreement(name, np.inf, np.inf, exp.size, exp.size, "missing"))
            continue
        act = np.asarray(actual[name])
        if act.shape != exp.shape:
            note = f"shape {act.shape} != {exp.shape}"
            result.outputs.append(OutputAgreement(name, np.inf, np.inf, exp.size, exp.size, note))
            continue
        result.outputs.append(_one(name, act, exp, rtol, atol))
    return result


def _one(name, act, exp, rtol, atol) -> OutputAgreement:
    if exp.size == 0:
        return OutputAgreement(name, 0.0, 0.0, 0, 0)
    if exp.dtype.kind in "biuU" or exp.dtype == np.bool_:
        diff = act != exp
        mism = int(np.count_nonzero(diff))
        absd = np.abs(act.astype(np.float64) - exp.astype(np.float64)) if exp.dtype.kind != "U" else diff
        return OutputAgreement(name, float(np.max(absd)), float(mism > 0), mism, int(exp.size))
    a = act.astype(np.float64)
    e = exp.astype(np.float64)
    close = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    with np.errstate(invalid="ignore"):
        absd = np.abs(a - e)
    both_nan = np.isnan(a) & np.isnan(e)
    absd = np.where(both_nan, 0.0, absd)
    big = np.abs(e) > atol
    max_rel = float(np.max(absd[big] / np.abs(e[big]))) if big.any() else 0.0
    max_abs = float(np.nanmax(absd)) if not np.isnan(absd).all() else float("nan")
    if np.isnan(absd).any():
        max_abs = float("nan")
    return OutputAgreement(name, max_abs, max_rel, int(np.count_nonzero(~close)), int(exp.size))
