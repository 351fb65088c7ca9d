"""Statistics over seeds (docs/evidence.md): mean ± sample std, and the paired difference
to a baseline with its 95% Student-t confidence interval."""

from __future__ import annotations

import math
import statistics


def mean_std(xs: list[float]) -> tuple[float, float | None]:
    """(mean, sample standard deviation with n - 1 in the denominator); std is None for n < 2."""
    if not xs:
        raise ValueError("mean_std of no values")
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def paired_difference(a: list[float], b: list[float],
                      level: float = 0.95) -> tuple[float, float | None, float | None]:
    """Mean of d_i = a_i - b_i (pairs share a seed) and its t-interval
    mean ± t_{(1+level)/2, n-1} · sd(d) / sqrt(n); the bounds are None for n < 2."""
    from scipy import stats

    d = [x - y for x, y in zip(a, b, strict=True)]
    m = statistics.mean(d)
    if len(d) < 2:
        return m, None, None
    h = float(stats.t.ppf((1 + level) / 2, len(d) - 1)) * statistics.stdev(d) / math.sqrt(len(d))
    return m, m - h, m + h


def format_mean_std(xs: list[float], scale: float = 100.0, digits: int = 1) -> str:
    """"mean ± std" in points (scale 100); the std part is left out for one value."""
    m, s = mean_std(xs)
    return f"{scale * m:.{digits}f}" + ("" if s is None else f" ± {scale * s:.{digits}f}")


def format_paired(a: list[float], b: list[float], scale: float = 100.0, digits: int = 1) -> str:
    """"+d [+lo, +hi]": the paired difference a - b with its 95% CI, in points."""
    m, lo, hi = paired_difference(a, b)
    if lo is None:
        return f"{scale * m:+.{digits}f}"
    return f"{scale * m:+.{digits}f} [{scale * lo:+.{digits}f}, {scale * hi:+.{digits}f}]"
