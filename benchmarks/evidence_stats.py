"""Statistics shared by the evidence scripts (../shared/EVIDENCE.md): mean ± std over seeds and
the paired difference to a baseline with its 95% t-interval, both in points."""

from __future__ import annotations

import statistics


def mean_std(xs: list[float]) -> str:
    return f"{100 * statistics.mean(xs):.1f} ± {100 * statistics.stdev(xs):.1f}"


def paired_ci(a: list[float], b: list[float]) -> str:
    """Mean paired difference a - b with its 95% t-interval, in points."""
    from scipy import stats

    d = [x - y for x, y in zip(a, b, strict=True)]
    m = statistics.mean(d)
    h = stats.t.ppf(0.975, len(d) - 1) * statistics.stdev(d) / len(d) ** 0.5
    return f"{100 * m:+.1f} [{100 * (m - h):+.1f}, {100 * (m + h):+.1f}]"
