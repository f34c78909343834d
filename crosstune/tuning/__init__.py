"""Tuning: MetaSchedule search driven by crosstune's loop, with persistent worker pools, and the
tuning-log store that keeps every record (`logstore`). See `tuner.py` for how a run proceeds."""

from .tuner import Progress, TuneOptions, TuneResult, tune_model

__all__ = ["Progress", "TuneOptions", "TuneResult", "tune_model"]
