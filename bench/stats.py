"""Every statistic of the benchmark, once: medians, percentiles, maxima, ratios, rates.

Standard library only: the client processes import it too (``percentile`` for the feeder's
lag), and they must import nothing but the plugin under test and what it needs. ``NAN`` stands
for "no figure" throughout (no sample, a client that did not run); the table prints it as
``-``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

NAN = float("nan")


def is_nan(x: float) -> bool:
    """True for NaN (no figure)."""
    return x != x


def median(values: Iterable[float], empty: float = NAN) -> float:
    """Median, or ``empty`` when there are no values."""
    vals = list(values)
    return statistics.median(vals) if vals else empty


def percentile(values: Sequence[float], q: float, empty: float = NAN) -> float:
    """Nearest-rank percentile ``q`` (0-100), or ``empty`` when there are no values."""
    if not values:
        return empty
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))]


def maximum(values: Iterable[float], empty: float = NAN) -> float:
    """Largest value, or ``empty`` when there are none."""
    return max(values, default=empty)


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Count, p50, p95 and max of latency samples (seconds), as one run records them."""
    return {
        "n": len(samples),
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "max": maximum(samples),
    }


def ratio(a: float, b: float) -> float:
    """``a / b``; NaN when either is NaN or ``b`` is 0."""
    if is_nan(a) or is_nan(b) or b == 0:
        return NAN
    return a / b


def cost_ratio(a: float, b: float) -> float:
    """``a / b`` of two costs; NaN also when ``b <= 0`` or ``a < 0``: a difference of costs
    that came out negative is lost in the run-to-run noise, not a ratio."""
    if is_nan(a) or is_nan(b) or b <= 0 or a < 0:
        return NAN
    return a / b


def net_ratio(a: float, b: float, base: float) -> float:
    """:func:`cost_ratio` of ``a`` and ``b`` once a shared ``base`` cost is taken out of both."""
    return cost_ratio(a - base, b - base)


def fraction(part: float, whole: float) -> float:
    """``part / whole``, 0 when ``whole`` is 0 (nothing happened)."""
    return part / whole if whole else 0.0


def per_stream_second(total: float, streams: int, seconds: float) -> float:
    """A run's total over its streams and the audio's duration: per stream per audio second."""
    return total / (streams * seconds)


def marginal(a: float, n0: int, b: float, n1: int) -> float:
    """Per-item growth from ``n0`` items at ``a`` each to ``n1`` items at ``b`` each: what one
    more item costs, with the fixed part that all of them share cancelled out."""
    return (b * n1 - a * n0) / (n1 - n0)
