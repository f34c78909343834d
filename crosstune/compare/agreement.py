"""Numerical agreement between two engines' outputs: plain data, no printing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

# Default tolerances per precision, (rtol, atol): |actual - expected| <= atol + rtol * |expected|,
# elementwise, plus the scale term below. fp32 engines differ only in summation order and fused
# operations: on an H100, 2e-7 of the output's scale; with TF32 on, elements were off by up to
# 1.2e-3 of themselves, which is why the GPU engines run fp32 with TF32 off. fp16's atol is only a
# floor for outputs that are all near zero; SCALE_ATOL does the work.
TOLERANCES = {"fp32": (1e-3, 1e-4), "fp16": (1e-2, 1e-4)}

# A further absolute allowance, as a fraction of each output's scale (its largest |expected|):
# |actual - expected| <= atol + scale_atol * max|expected| + rtol * |expected|.
# fp16 keeps 11 significant bits and rounds every activation it stores, so its error is a fraction
# of the size of the values flowing through the network, not of each output element: logits are
# sums of thousands of terms, many cancel to near zero, and a relative test fails there while the
# logit is as right as its neighbours. A fixed atol cannot stand in for it: the zoo's random-weight
# CNNs give logits of scale 0.2-0.5, the encoder 4-5. Measured on an H100 against float64 (zoo
# models, seeded weights and inputs): torch autocast fp16 is off by at most 4.6e-4 of the scale,
# a network run wholly in fp16 (.half()) by 1.8e-3; elements above a tenth of the scale by at most
# 5.5e-3 of themselves. So 1e-2 of the scale (5x the worst whole-fp16 error) and rtol 1e-2, which
# still catch a wrong kernel: its error is of the order of the scale itself. fp32 gets none.
SCALE_ATOL = {"fp32": 0.0, "fp16": 1e-2}


def tolerance(precision: str) -> tuple[float, float, float]:
    """(rtol, atol, scale_atol) for `precision` (fp32's for unknown ones)."""
    rtol, atol = TOLERANCES.get(precision, TOLERANCES["fp32"])
    return rtol, atol, SCALE_ATOL.get(precision, 0.0)


@dataclass
class OutputAgreement:
    name: str
    max_abs: float
    max_rel: float  # over elements with |expected| > atol, so near-zero values do not dominate
    mismatches: int  # elements outside atol + rtol * |expected|
    total: int
    note: str = ""
    atol: float | None = None  # the absolute tolerance applied: atol + scale_atol * max|expected|

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
    scale_atol: float = 0.0

    @property
    def applied_atol(self) -> float:
        """The largest absolute tolerance applied to an output (atol itself without scale_atol)."""
        used = [o.atol for o in self.outputs if o.atol is not None]
        return max(used) if used else self.atol

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
    scale_atol: float = 0.0,
    actual_name: str = "crosstune",
    expected_name: str = "onnxruntime",
) -> Agreement:
    """Every output of `expected` against the same one of `actual`. With `scale_atol`, each float
    output's absolute tolerance grows by scale_atol * its largest finite |expected| (see SCALE_ATOL)."""
    result = Agreement(actual_name, expected_name, rtol, atol, scale_atol=scale_atol)
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
        result.outputs.append(_one(name, act, exp, rtol, atol, scale_atol))
    return result


def compare_at(actual, expected, precision: str, *, actual_name: str, expected_name: str) -> Agreement:
    """`compare` with the default tolerances of `precision` (the lower precision of the two engines)."""
    rtol, atol, scale_atol = tolerance(precision)
    return compare(actual, expected, rtol=rtol, atol=atol, scale_atol=scale_atol,
                   actual_name=actual_name, expected_name=expected_name)


def _scale(e: np.ndarray) -> float:
    finite = np.abs(e[np.isfinite(e)])
    return float(finite.max()) if finite.size else 0.0


def _one(name, act, exp, rtol, atol, scale_atol=0.0) -> OutputAgreement:
    if exp.size == 0:
        return OutputAgreement(name, 0.0, 0.0, 0, 0)
    if exp.dtype.kind in "biuU" or exp.dtype == np.bool_:
        diff = act != exp
        mism = int(np.count_nonzero(diff))
        absd = np.abs(act.astype(np.float64) - exp.astype(np.float64)) if exp.dtype.kind != "U" else diff
        return OutputAgreement(name, float(np.max(absd)), float(mism > 0), mism, int(exp.size))
    a = act.astype(np.float64)
    e = exp.astype(np.float64)
    atol = atol + scale_atol * _scale(e) if scale_atol else atol
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
    return OutputAgreement(name, max_abs, max_rel, int(np.count_nonzero(~close)), int(exp.size), atol=atol)
