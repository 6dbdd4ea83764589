"""Robust statistics shared by trends, forecasts and drill-down (stdlib only).

* :func:`theil_sen`: the Theil–Sen line (median of pairwise slopes) with Sen's (1968)
  rank-based confidence interval, computed as ``scipy.stats.theilslopes`` does.
* :func:`quantile`: linearly interpolated quantile (Hyndman & Fan type 7, numpy's default).
* :func:`noise_sd`: a robust noise scale from first differences, insensitive to level shifts.
* :func:`binary_segmentation`: change points in the mean of a sequence, BIC-style penalty.
* :func:`robust_slope` and :func:`change_points`: the two above over a time series
  (``(epoch seconds, value)`` pairs or a ``TrendSeries``), in the units trends report.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import sub, truediv
from typing import Literal, Protocol

from gpufleet.analysis.history import HistoryQueryError
from gpufleet.store.base import DAY_S

_MAD_TO_SD = 1.482602218505602
"""Consistency constant: ``MAD * 1.4826`` estimates the standard deviation of normal data."""


@dataclass(frozen=True, slots=True)
class Line:
    """A Theil–Sen fit ``y = intercept + slope * x`` and confidence bounds on the slope."""

    slope: float
    intercept: float
    n: int
    bounds: dict[float, tuple[float, float]]
    """Confidence level (e.g. 0.95) -> (low, high) slope; empty with fewer than 3 points."""


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values``, linearly interpolated between order statistics.

    Raises:
        ValueError: ``values`` is empty.
    """
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    pos = min(max(q, 0.0), 1.0) * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _tie_term(values: Sequence[float]) -> float:
    """Sum of ``t (t-1) (2t+5)`` over groups of ``t`` equal values (Kendall's tie correction)."""
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return float(sum(t * (t - 1) * (2 * t + 5) for t in counts.values() if t > 1))


def _pairwise_slopes(xs: Sequence[float], ys: Sequence[float]) -> list[float]:
    """``(ys[j] - ys[i]) / (xs[j] - xs[i])`` for ``i < j`` with ``xs[i] != xs[j]``, in that
    order. When no two x are equal (a time series) each row of pairs is one C-level map."""
    n = len(xs)
    if len(set(xs)) < n:
        return [
            (ys[j] - ys[i]) / (xs[j] - xs[i])
            for i in range(n)
            for j in range(i + 1, n)
            if xs[j] != xs[i]
        ]
    xl, yl = list(xs), list(ys)
    slopes: list[float] = []
    for i in range(n - 1):
        dy = map(sub, yl[i + 1 :], repeat(yl[i]))
        dx = map(sub, xl[i + 1 :], repeat(xl[i]))
        slopes += map(truediv, dy, dx)
    return slopes


def theil_sen(
    xs: Sequence[float], ys: Sequence[float], confidences: Sequence[float] = (0.95,)
) -> Line:
    """Theil–Sen line through ``(xs, ys)`` with Sen's rank-based slope confidence intervals.

    The slope is the median of ``(y_j - y_i) / (x_j - x_i)`` over pairs with ``x_i != x_j``;
    the intercept is ``median(y) - slope * median(x)``. For confidence ``c`` with
    ``z = Phi^-1((1 + c) / 2)`` and Kendall's variance
    ``var = [n(n-1)(2n+5) - sum_ties_x - sum_ties_y] / 18``, the bounds are the order
    statistics of the ``N`` sorted slopes at (0-based) ``round((N - z sqrt(var)) / 2) - 1`` and
    ``round((N + z sqrt(var)) / 2)``, clipped to the range, as in ``scipy.stats.theilslopes``.
    O(n^2) time and memory in the number of points.

    Raises:
        ValueError: lengths differ, or no two points have distinct x.
    """
    if len(xs) != len(ys):
        raise ValueError("xs and ys must have the same length")
    n = len(xs)
    slopes = _pairwise_slopes(xs, ys)
    if not slopes:
        raise ValueError("a slope needs at least two points at distinct x")
    count = len(slopes)
    # Positions (0-based, in the sorted slopes) of the median and of each bound.
    mid = [count // 2] if count % 2 else [count // 2 - 1, count // 2]
    wanted: dict[float, tuple[int, int]] = {}
    if n >= 3:
        var = (n * (n - 1) * (2 * n + 5) - _tie_term(xs) - _tie_term(ys)) / 18.0
        sigma = math.sqrt(max(var, 0.0))
        for c in confidences:
            z = statistics.NormalDist().inv_cdf((1.0 + c) / 2.0)
            lo = max(round((count - z * sigma) / 2.0) - 1, 0)
            hi = min(round((count + z * sigma) / 2.0), count - 1)
            wanted[c] = (min(lo, count - 1), max(hi, 0))
    ranks = [*mid, *(r for pair in wanted.values() for r in pair)]
    finite = all(math.isfinite(v) and abs(v) < _SAFE_MAGNITUDE for v in (*xs, *ys))
    at = _order_statistics(slopes, ranks) if finite else _sorted_at(slopes, ranks)
    # statistics.median of the sorted slopes: the middle one, or the mean of the two.
    slope = at[mid[0]] if len(mid) == 1 else (at[mid[0]] + at[mid[1]]) / 2
    intercept = statistics.median(ys) - slope * statistics.median(xs)
    bounds = {c: (at[lo], at[hi]) for c, (lo, hi) in wanted.items()}
    return Line(slope=slope, intercept=intercept, n=n, bounds=bounds)


_SAFE_MAGNITUDE = 1e150
"""Inputs below this size give finite slopes (no NaN), which :func:`_order_statistics`
needs to bracket them by comparison."""
_SELECT_MIN = 20_000
"""Below this many values a plain sort is as fast as selecting."""


def _sorted_at(values: list[float], ranks: Sequence[int]) -> dict[int, float]:
    """``sorted(values)[r]`` for each ``r`` of ``ranks``."""
    ordered = sorted(values)
    return {r: ordered[r] for r in ranks}


def _order_statistics(values: list[float], ranks: Sequence[int]) -> dict[int, float]:
    """``sorted(values)[r]`` for each ``r`` of ``ranks``, without sorting all of ``values``.

    Theil–Sen needs a few order statistics (the median and the bounds, all near the middle)
    of ``n (n - 1) / 2`` slopes. A regular sample of the values gives two values ``a <= b``
    that should enclose those ranks; the values in ``[a, b]`` are then sorted alone, and
    the count of values below ``a`` places them. Values below ``a`` all sort before the
    enclosed ones and values above ``b`` after, and both sorts are stable, so the enclosed
    values come out exactly as that stretch of the full sort (equal values included). When
    the sample misses (the ranks are not between ``a`` and ``b``), or selecting would not
    pay, the values are sorted whole. ``values`` must hold no NaN.
    """
    n = len(values)
    first, last = min(ranks), max(ranks)
    if n < _SELECT_MIN or last - first > n // 4:
        return _sorted_at(values, ranks)
    step = n // 2_048
    sample = sorted(values[::step])
    m = len(sample)
    # A sample quantile strays from the true one by about sqrt(m) / 2 sample positions;
    # four times that and a constant keep a miss (and the full sort it costs) rare.
    pad = 2 * math.isqrt(m) + 16
    lo_i, hi_i = first * m // n - pad, last * m // n + pad
    if lo_i < 0 or hi_i >= m:
        return _sorted_at(values, ranks)
    a, b = sample[lo_i], sample[hi_i]
    below = len([v for v in values if v < a])
    inside = [v for v in values if a <= v <= b]
    if not below <= first or not last < below + len(inside):
        return _sorted_at(values, ranks)
    inside.sort()
    return {r: inside[r - below] for r in ranks}


def noise_sd(values: Sequence[float]) -> float:
    """Robust noise standard deviation of ``values`` from their first differences.

    Differences cancel the level, so one step in the mean adds a single outlying difference
    that the median absolute deviation ignores: ``sd = 1.4826 * MAD(diff) / sqrt(2)``. When
    more than half the differences are equal (a piecewise-constant series) the MAD is 0 and
    the plain standard deviation of the differences is used instead; 0 for a constant series.
    """
    diffs = [b - a for a, b in itertools.pairwise(values)]
    if len(diffs) < 2:
        return 0.0
    mid = statistics.median(diffs)
    mad = statistics.median(abs(d - mid) for d in diffs)
    if mad > 0:
        return _MAD_TO_SD * mad / math.sqrt(2.0)
    return statistics.stdev(diffs) / math.sqrt(2.0)


def _sse(prefix: Sequence[float], prefix_sq: Sequence[float], a: int, b: int) -> float:
    """Sum of squared deviations from the mean of ``values[a:b]`` via prefix sums."""
    s = prefix[b] - prefix[a]
    return max(prefix_sq[b] - prefix_sq[a] - s * s / (b - a), 0.0)


def binary_segmentation(
    values: Sequence[float], *, min_size: int = 3, penalty: float | None = None
) -> list[tuple[int, float]]:
    """Indices where the mean of ``values`` changes, with the score of each split.

    Binary segmentation: the segment's best split (the one that lowers the sum of squared
    deviations most, leaving at least ``min_size`` points each side) is kept when its gain,
    scaled by the noise variance (:func:`noise_sd` squared), exceeds ``penalty``; both halves
    are then searched the same way. The scaled gain is a Gaussian log-likelihood ratio
    (``-2 log L`` units), so the default penalty ``2 ln n`` is BIC's charge for the two
    parameters a change adds (its position and the new mean).

    Returns:
        ``(index, score)`` sorted by index; ``index`` is the first point after the change.
    """
    n = len(values)
    min_size = max(int(min_size), 1)
    pen = 2.0 * math.log(n) if penalty is None and n > 1 else (penalty or 0.0)
    sd = noise_sd(values)
    if n < 2 * min_size or sd <= 0.0:
        return []
    var = sd * sd
    prefix, prefix_sq = [0.0], [0.0]
    for v in values:
        prefix.append(prefix[-1] + v)
        prefix_sq.append(prefix_sq[-1] + v * v)
    found: list[tuple[int, float]] = []
    stack = [(0, n)]
    while stack:
        a, b = stack.pop()
        if b - a < 2 * min_size:
            continue
        whole = _sse(prefix, prefix_sq, a, b)
        best_k, best_gain = -1, 0.0
        for k in range(a + min_size, b - min_size + 1):
            gain = whole - _sse(prefix, prefix_sq, a, k) - _sse(prefix, prefix_sq, k, b)
            if gain > best_gain:
                best_k, best_gain = k, gain
        score = best_gain / var
        if best_k >= 0 and score > pen:
            found.append((best_k, score))
            stack += [(a, best_k), (best_k, b)]
    return sorted(found)


@dataclass(frozen=True, slots=True)
class Slope:
    """Theil–Sen trend of a series, per day, with Sen's rank-based confidence interval."""

    per_day: float
    ci_low_per_day: float | None
    ci_high_per_day: float | None
    """None with fewer than 3 points (no interval can be given)."""
    confidence: float
    direction: Literal["rising", "falling", "flat"]
    """``flat`` whenever the interval contains 0 (or there is no interval)."""
    n: int
    ref_s: float
    ref_value: float
    """The line passes through ``(ref_s, ref_value)`` (the medians of time and value)."""

    def at(self, ts_s: float) -> float:
        """Value of the trend line at ``ts_s``."""
        return self.ref_value + self.per_day * (ts_s - self.ref_s) / DAY_S


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """A shift in a series' mean."""

    index: int
    """Position in the series' valued points of the first point after the shift."""
    ts_s: float
    """Start of that bucket (or its time, for plain ``(time, value)`` pairs)."""
    before_mean: float
    after_mean: float
    """Means of the segments on either side (between neighbouring change points)."""
    change: float
    score: float
    """Gain in fit over the noise variance; compared with the penalty."""


class HasPairs(Protocol):
    """A series that can list its ``(time, value)`` points (``TrendSeries`` is one)."""

    def pairs(self, at: Literal["mid", "start"] = "mid") -> list[tuple[float, float]]:
        """``(time, value)`` of the points with a value; time is a bucket's middle or start."""
        ...


def _as_pairs(
    series: HasPairs | Sequence[tuple[float, float]], at: Literal["mid", "start"]
) -> list[tuple[float, float]]:
    return list(series) if isinstance(series, Sequence) else series.pairs(at)


def robust_slope(
    points: HasPairs | Sequence[tuple[float, float]], *, confidence: float = 0.95
) -> Slope:
    """Theil–Sen slope of ``(epoch seconds, value)`` points, per day, with its interval.

    The interval is Sen's (1968) rank-based one (see :func:`gpufleet.analysis.robust.theil_sen`),
    exact in its order statistics and normal-approximated in Kendall's variance. The slope
    ignores up to ~29 % of arbitrarily wrong points (its breakdown point).

    Raises:
        HistoryQueryError: fewer than two points at distinct times, or a confidence not in
            (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise HistoryQueryError(f"confidence must be between 0 and 1; got {confidence}")
    pairs = _as_pairs(points, "mid")
    if len({x for x, _ in pairs}) < 2:
        raise HistoryQueryError(
            "a trend needs at least two buckets with data; widen the window or use a finer "
            "granularity"
        )
    t0 = pairs[0][0]
    # Days since the first point keep the arithmetic in a well-conditioned range.
    line = theil_sen([(x - t0) / DAY_S for x, _ in pairs], [y for _, y in pairs], (confidence,))
    ci = line.bounds.get(confidence)
    direction: Literal["rising", "falling", "flat"] = "flat"
    if ci is not None and ci[0] > 0:
        direction = "rising"
    elif ci is not None and ci[1] < 0:
        direction = "falling"
    ref_days = sorted((x - t0) / DAY_S for x, _ in pairs)
    mid = (ref_days[(len(ref_days) - 1) // 2] + ref_days[len(ref_days) // 2]) / 2.0
    return Slope(
        per_day=line.slope,
        ci_low_per_day=None if ci is None else ci[0],
        ci_high_per_day=None if ci is None else ci[1],
        confidence=confidence,
        direction=direction,
        n=len(pairs),
        ref_s=t0 + mid * DAY_S,
        ref_value=line.intercept + line.slope * mid,
    )


def change_points(
    series: HasPairs | Sequence[tuple[float, float]],
    *,
    min_size: int = 3,
    penalty: float | None = None,
) -> list[ChangePoint]:
    """Shifts in the mean of a series, by binary segmentation with a BIC-style penalty.

    ``penalty`` is in units of the noise variance (``-2 log L``); the default ``2 ln n``
    charges each change for its position and its new mean (see
    :func:`gpufleet.analysis.robust.binary_segmentation`). Each segment has at least
    ``min_size`` points.
    """
    pairs = _as_pairs(series, "start")
    times = [x for x, _ in pairs]
    values = [y for _, y in pairs]
    cuts = binary_segmentation(values, min_size=min_size, penalty=penalty)
    edges = [0, *(k for k, _ in cuts), len(values)]
    means = [sum(values[a:b]) / (b - a) for a, b in itertools.pairwise(edges)]
    return [
        ChangePoint(
            index=k,
            ts_s=times[k],
            before_mean=means[i],
            after_mean=means[i + 1],
            change=means[i + 1] - means[i],
            score=score,
        )
        for i, (k, score) in enumerate(cuts)
    ]
