"""Numbers into words: mean ± sd over seeds, the verdict on paired differences, and small formatters.

Honesty rule: every difference is reported with its seeds' spread and a verdict from `verdict()` -
"agrees", "disagrees at this scale" or "inconclusive at this scale".
"""
from __future__ import annotations

import math

import numpy as np


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value); None values are skipped."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def verdict(diffs, sign: int = 1) -> str:
    """Do paired differences (the paper's choice minus the alternative) back the paper's direction?

    'agrees' when the mean lies beyond 2 standard errors in the paper's direction, 'disagrees at
    this scale' when beyond 2 the other way, otherwise 'inconclusive at this scale'. Two or three
    seeds make the standard error itself rough, which is why the words say "at this scale".
    """
    d = np.asarray([x for x in diffs if x is not None], dtype=np.float64) * sign
    if d.size < 2:
        return "inconclusive at this scale (fewer than 2 seeds)"
    se = d.std(ddof=1) / math.sqrt(d.size)
    if d.mean() > 2 * se and d.mean() > 0:
        return "agrees"
    if d.mean() < -2 * se and d.mean() < 0:
        return "disagrees at this scale"
    return "inconclusive at this scale"


def epochs_to_error(history: list[dict], target: float, start_error: float) -> float | None:
    """First (fractional) epoch at which the training error reaches `target`, linearly interpolated
    between epoch ends (epoch 0 = `start_error`, chance); None when it never does."""
    prev_e, prev = 0.0, start_error
    for row in history:
        err = 1.0 - row["train_acc"]
        if err <= target:
            if prev <= target:
                return prev_e
            return prev_e + (prev - target) / (prev - err) * (row["epoch"] - prev_e)
        prev_e, prev = float(row["epoch"]), err
    return None


def pm(values, scale: float = 100.0, digits: int = 1, unit: str = "") -> str:
    """'49.5 ± 4.6' (percent by default), or 'n/a' for no values."""
    m, s = mean_sd(values)
    if math.isnan(m):
        return "n/a"
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}{unit}"


def plural(count, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def secs(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
