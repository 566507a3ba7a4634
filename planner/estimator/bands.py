"""The estimator's error band, from its measured error on published rows it was not calibrated on.

The band is a pair of ratios (measured / predicted) that bound peak memory: the 10th and 90th percentiles of
the leave-one-source-out ratios that benchmarks/estimator_accuracy.py writes into planner/data/accuracy.json
(`band`), widened to include 1 (the point estimate is always inside). `fits` is then three-valued
(planner.estimator.memory.fit_call) and limits use the high end.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Sequence

ACCURACY_PATH = Path(__file__).resolve().parents[1] / "data" / "accuracy.json"
# Before any benchmark run: the issue 9 measurement of the v1 estimator on unseen published rows (mean
# absolute error ~26%, nearly always an underestimate).
FALLBACK = (0.9, 1.26)
QUANTILES = (0.1, 0.9)


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default 'linear' method), pure Python."""
    xs = sorted(values)
    if not xs:
        raise ValueError("no values")
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def band_from_ratios(ratios: Sequence[float], quantiles: tuple[float, float] = QUANTILES) -> tuple[float, float]:
    """(low, high) multipliers on a prediction from measured/predicted ratios; always low <= 1 <= high."""
    good = [r for r in ratios if math.isfinite(r) and r > 0]
    if not good:
        return FALLBACK
    return (round(min(1.0, quantile(good, quantiles[0])), 4), round(max(1.0, quantile(good, quantiles[1])), 4))


@lru_cache(maxsize=1)
def default_band_ratios() -> tuple[float, float]:
    """The band written by the last benchmark run (accuracy.json `band`), else FALLBACK."""
    try:
        data = json.loads(ACCURACY_PATH.read_text(encoding="utf-8"))
        band = data["band"]
        lo, hi = float(band["low_ratio"]), float(band["high_ratio"])
    except (OSError, ValueError, KeyError, TypeError):
        return FALLBACK
    if not (0 < lo <= 1 <= hi < 10):
        return FALLBACK
    return lo, hi
