"""Forecast a regular series (hourly, daily or weekly buckets) a few buckets ahead.

Method (stdlib only, deterministic), chosen by how much history there is:

* ``seasonal_trend`` (at least two full seasons): classical additive decomposition. A
  centred moving average of one season's length (a 2 x m average for even m) estimates the
  level; the seasonal index of phase ``p`` is the median of ``y_t - MA_t`` over the ``t`` of
  that phase, centred to sum to zero. The trend is the Theil–Sen line through the
  deseasonalized values ``y_t - s_(t mod m)``. Forecast: ``a + b t + s_(t mod m)``.
* ``trend`` (no season asked for, or fewer than two full seasons): the Theil–Sen line alone.
* ``level`` (no season fitted and a flat trend: the slope's 95 % confidence interval contains
  0, as the caller judged it or, by default, Sen's interval of the fitted line): the slope is
  not extrapolated. The series is split where its mean shifts
  (:func:`~gpufleet.analysis.robust.binary_segmentation`, segments of at least 3 points); the
  forecast is the median of the last segment (of the whole series without a shift), the same
  for every step, and the residuals are each point's distance from its segment's median.
* ``flat`` (fewer than 3 points): the mean, with a deliberately wide interval: the 95 %
  interval is ``mean +- max(range, |mean|)`` (the whole of ``bounds`` when given) and the 80 %
  one half as wide.

Prediction intervals (80 % and 95 %) come from the in-sample residuals ``y_t - fitted_t``:
with at least 30 of them, their empirical quantiles inflated by ``sqrt(n / (n - parameters))``
because the fit has seen those points; with fewer, a symmetric Student's t interval on their
root mean square (a handful of residuals' extreme quantiles are chance, and made intervals
that ended at the forecast itself). To that comes the uncertainty of extrapolating the trend:
``h`` steps past the data
the bounds move out by ``h x`` the distance from the slope to its Sen confidence bound at the
same level (a ``level`` forecast has no trend term: its intervals are the residuals' alone, with
``2 segments - 1`` parameters for the levels and shifts fitted). ``h`` counts
from the last value: when the caller skips buckets (a partial last bucket it left out of the
fit), the first forecast point is ``h = skip + 1``. Fit residuals are not one-step-ahead
errors, so with strongly autocorrelated noise the intervals are optimistic for the first
steps; the trend term widens them with ``h``.
Everything is clamped to ``bounds`` (``(0, 100)`` for percentages) when given.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from gpufleet.analysis.robust import Line, binary_segmentation, quantile, theil_sen

LEVELS = (0.8, 0.95)
"""Prediction interval levels reported for every forecast point."""
MAX_TREND_POINTS = 720
"""The trend is fitted to at most this many most recent points (Theil–Sen is O(n^2))."""


@dataclass(frozen=True, slots=True)
class ForecastPoint:
    """One forecast bucket with its 80 % and 95 % prediction intervals."""

    step: int
    """1 for the first bucket forecast (the one after the series, or after the buckets the
    caller skipped), 2 for the next, ..."""
    start_s: float | None
    """Start of the bucket (epoch seconds) when the caller gave the series' timing."""
    value: float
    lo80: float
    hi80: float
    lo95: float
    hi95: float


@dataclass(frozen=True, slots=True)
class Forecast:
    """What :func:`forecast` predicts and how."""

    method: str
    """``seasonal_trend``, ``trend``, ``level`` or ``flat`` (see the module docstring)."""
    season: int | None
    """Season length used (in buckets); None when no season was fitted."""
    season_requested: int | None
    note: str
    """Why a simpler method than asked for was used; empty otherwise."""
    n: int
    """Points the forecast was fitted to."""
    horizon: int
    trend_per_step: float
    """Slope of the fitted trend per bucket (0 for ``level`` and ``flat``)."""
    seasonal_profile: tuple[float, ...]
    """Seasonal index by phase: entry ``k`` applies to input positions ``t`` with
    ``t % season == k`` (empty without a season)."""
    residual_sd: float | None
    """Standard deviation of the in-sample residuals (None for ``flat``)."""
    bounds: tuple[float, float] | None
    skipped: int
    """Buckets between the last value and the first point (see :func:`forecast`)."""
    points: tuple[ForecastPoint, ...]


def _clamp(v: float, bounds: tuple[float, float] | None) -> float:
    return v if bounds is None else min(max(v, bounds[0]), bounds[1])


def _centred_ma(y: Sequence[float], m: int) -> dict[int, float]:
    """Centred moving average of length ``m`` (2 x m for even ``m``), where it is defined."""
    prefix = [0.0]
    for v in y:
        prefix.append(prefix[-1] + v)
    half = m // 2
    out: dict[int, float] = {}
    for t in range(half, len(y) - half):
        if m % 2:
            out[t] = (prefix[t + half + 1] - prefix[t - half]) / m
        else:
            # Two adjacent m-averages, averaged, centre an even window on t itself.
            first = prefix[t + half] - prefix[t - half]
            second = prefix[t + half + 1] - prefix[t - half + 1]
            out[t] = (first + second) / (2.0 * m)
    return out


def _seasonal_profile(y: Sequence[float], m: int) -> list[float]:
    ma = _centred_ma(y, m)
    by_phase: list[list[float]] = [[] for _ in range(m)]
    for t, level in ma.items():
        by_phase[t % m].append(y[t] - level)
    profile = [statistics.median(d) for d in by_phase]
    centre = sum(profile) / m
    return [s - centre for s in profile]


def _fit_trend(d: Sequence[float]) -> Line:
    first = max(len(d) - MAX_TREND_POINTS, 0)
    xs = [float(t) for t in range(first, len(d))]
    return theil_sen(xs, d[first:], LEVELS)


def _start(times: tuple[float, float] | None, step: int) -> float | None:
    return None if times is None else times[0] + (step - 1) * times[1]


SMALL_SAMPLE = 30
"""Below this many residuals the intervals are symmetric, from Student's t (see
:func:`_spread`); from it on, the residuals' own quantiles."""

_T90 = (3.078, 1.886, 1.638, 1.533, 1.476, 1.440, 1.415, 1.397, 1.383, 1.372,
        1.363, 1.356, 1.350, 1.345, 1.341, 1.337, 1.333, 1.330, 1.328, 1.325,
        1.323, 1.321, 1.319, 1.318, 1.316, 1.315, 1.314, 1.313, 1.311, 1.310)  # fmt: skip
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip
"""Student's t quantiles 0.90 and 0.975 for 1..30 degrees of freedom (80 % and 95 %
two-sided)."""


def t_quantile(level: float, df: int) -> float:
    """The two-sided ``level`` (0.8 or 0.95) quantile of Student's t with ``df`` degrees of
    freedom (the normal's beyond 30)."""
    table = {0.8: _T90, 0.95: _T975}[level]
    if df <= len(table):
        return table[max(df, 1) - 1]
    return statistics.NormalDist().inv_cdf((1.0 + level) / 2.0)


def _spread(residuals: Sequence[float], params: int) -> dict[float, tuple[float, float]]:
    """Offsets of the interval at each of :data:`LEVELS` around a fitted value.

    From :data:`SMALL_SAMPLE` residuals on: their own quantiles, inflated by
    ``sqrt(n / (n - params))`` for the values fitted (skew in the data shows as a lopsided
    interval, which enough points can support). Fewer: a few residuals' extreme quantiles
    are mostly chance (five points put the 2.5 % and 97.5 % quantiles at their smallest and
    largest), so the interval is symmetric, ``+- t(df) x s x sqrt(1 + 1/n)`` with ``s`` the
    residuals' root mean square over ``df = n - params`` degrees of freedom, as for a
    regression's prediction interval.
    """
    n = len(residuals)
    df = max(n - params, 1)
    if n < SMALL_SAMPLE:
        s = math.sqrt(sum(r * r for r in residuals) / df)
        out = {}
        for c in LEVELS:
            half = t_quantile(c, df) * s * math.sqrt(1.0 + 1.0 / n)
            out[c] = (-half, half)
        return out
    inflate = math.sqrt(n / df)
    return {
        c: (
            inflate * quantile(residuals, (1.0 - c) / 2.0),
            inflate * quantile(residuals, (1.0 + c) / 2.0),
        )
        for c in LEVELS
    }


def _sd(residuals: Sequence[float]) -> float:
    n = len(residuals)
    mean_r = sum(residuals) / n
    return math.sqrt(sum((r - mean_r) ** 2 for r in residuals) / max(n - 1, 1))


def _flat(
    y: Sequence[float],
    horizon: int,
    bounds: tuple[float, float] | None,
    times: tuple[float, float] | None,
    season: int | None,
    skip: int,
) -> Forecast:
    mean = sum(y) / len(y)
    half95 = max(max(y) - min(y), abs(mean))
    points = []
    for h in range(1, horizon + 1):
        lo95, hi95 = bounds if bounds is not None else (mean - half95, mean + half95)
        points.append(
            ForecastPoint(
                step=h,
                start_s=_start(times, h),
                value=_clamp(mean, bounds),
                lo80=_clamp(mean - half95 / 2.0, bounds),
                hi80=_clamp(mean + half95 / 2.0, bounds),
                lo95=lo95,
                hi95=hi95,
            )
        )
    return Forecast(
        method="flat",
        season=None,
        season_requested=season,
        note=f"only {len(y)} point(s): a flat forecast with a wide interval",
        n=len(y),
        horizon=horizon,
        trend_per_step=0.0,
        seasonal_profile=(),
        residual_sd=None,
        bounds=bounds,
        skipped=skip,
        points=tuple(points),
    )


def _level(
    y: Sequence[float],
    horizon: int,
    bounds: tuple[float, float] | None,
    times: tuple[float, float] | None,
    season: int | None,
    skip: int,
    note: str,
) -> Forecast:
    """The median since the last shift in the mean, with residual intervals (no trend)."""
    n = len(y)
    edges = [0, *(k for k, _ in binary_segmentation(y)), n]
    residuals: list[float] = []
    level = 0.0
    for a, b in itertools.pairwise(edges):
        level = statistics.median(y[a:b])
        residuals += [v - level for v in y[a:b]]
    segments = len(edges) - 1
    # A level per segment and a position per shift.
    spread = _spread(residuals, 2 * segments - 1)
    since = (
        f"the median of the {n - edges[-2]} points since the last shift in the mean"
        if segments > 1
        else f"the median of the {n} points"
    )
    why = f"flat trend (its 95 % interval contains 0): forecasting {since}, not the slope"
    points = [
        ForecastPoint(
            step=h,
            start_s=_start(times, h),
            value=_clamp(level, bounds),
            lo80=_clamp(level + spread[0.8][0], bounds),
            hi80=_clamp(level + spread[0.8][1], bounds),
            lo95=_clamp(level + spread[0.95][0], bounds),
            hi95=_clamp(level + spread[0.95][1], bounds),
        )
        for h in range(1, horizon + 1)
    ]
    return Forecast(
        method="level",
        season=None,
        season_requested=season,
        note=f"{note}; {why}" if note else why,
        n=n,
        horizon=horizon,
        trend_per_step=0.0,
        seasonal_profile=(),
        residual_sd=_sd(residuals),
        bounds=bounds,
        skipped=skip,
        points=tuple(points),
    )


def _flat_line(line: Line) -> bool:
    """Whether the line's 95 % slope interval contains 0 (or there is none)."""
    lo, hi = line.bounds.get(0.95, (0.0, 0.0))
    return lo <= 0.0 <= hi


def forecast(
    values: Sequence[float],
    *,
    horizon: int,
    season: int | None = None,
    bounds: tuple[float, float] | None = None,
    start_s: float | None = None,
    step_s: float | None = None,
    skip: int = 0,
    flat_trend: bool | None = None,
) -> Forecast:
    """Forecast ``horizon`` buckets after ``values`` (equally spaced, oldest first).

    Args:
        values: the series, one value per bucket, no gaps.
        horizon: how many buckets to forecast (at least 1).
        season: season length in buckets (24 or 168 for hourly buckets, 7 for daily), or None.
        bounds: clamp values and intervals to ``(low, high)``, e.g. ``(0, 100)`` for percent.
        start_s: start of the first forecast bucket, to timestamp the points.
        step_s: bucket width in seconds, to timestamp the points.
        skip: buckets between the last value and the first forecast bucket (buckets the
            caller has but did not fit, e.g. a partial last one): the points forecast
            ``skip + 1`` to ``skip + horizon`` buckets after the last value.
        flat_trend: whether the series' trend is flat (its slope's 95 % interval contains
            0), as the caller judged it; None judges it from the fitted line. A flat trend
            without a fitted season gives a ``level`` forecast.

    Raises:
        ValueError: no values, a non-finite value, a horizon below 1, a season below 2 or a
            negative ``skip``.
    """
    y = [float(v) for v in values]
    if not y:
        raise ValueError("nothing to forecast: the series is empty")
    if not all(math.isfinite(v) for v in y):
        raise ValueError("the series has a non-finite value")
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1; got {horizon}")
    if season is not None and season < 2:
        raise ValueError(f"season must be at least 2 buckets; got {season}")
    if skip < 0:
        raise ValueError(f"skip must not be negative; got {skip}")
    times = (start_s, step_s) if start_s is not None and step_s is not None else None
    n = len(y)
    if n < 3:
        return _flat(y, horizon, bounds, times, season, skip)
    note = ""
    use_season = season
    if season is not None and n < 2 * season:
        note = f"{n} points are fewer than two seasons of {season}: no seasonal pattern fitted"
        use_season = None
    profile = _seasonal_profile(y, use_season) if use_season else []
    desea = [v - profile[t % use_season] for t, v in enumerate(y)] if use_season else y
    line = _fit_trend(desea)
    if not use_season and (_flat_line(line) if flat_trend is None else flat_trend):
        return _level(y, horizon, bounds, times, season, skip, note)

    def fitted(t: int) -> float:
        seasonal = profile[t % use_season] if use_season else 0.0
        return line.intercept + line.slope * t + seasonal

    residuals = [v - fitted(t) for t, v in enumerate(y)]
    spread = _spread(residuals, 2 + (use_season or 0))
    points = []
    for step in range(1, horizon + 1):
        h = skip + step
        point = fitted(n - 1 + h)
        band: dict[float, tuple[float, float]] = {}
        for c in LEVELS:
            s_lo, s_hi = line.bounds.get(c, (line.slope, line.slope))
            lo = point + spread[c][0] - h * max(line.slope - s_lo, 0.0)
            hi = point + spread[c][1] + h * max(s_hi - line.slope, 0.0)
            band[c] = (_clamp(lo, bounds), _clamp(hi, bounds))
        points.append(
            ForecastPoint(
                step=step,
                start_s=_start(times, step),
                value=_clamp(point, bounds),
                lo80=band[0.8][0],
                hi80=band[0.8][1],
                lo95=band[0.95][0],
                hi95=band[0.95][1],
            )
        )
    return Forecast(
        method="seasonal_trend" if use_season else "trend",
        season=use_season,
        season_requested=season,
        note=note,
        n=n,
        horizon=horizon,
        trend_per_step=line.slope,
        seasonal_profile=tuple(profile),
        residual_sd=_sd(residuals),
        bounds=bounds,
        skipped=skip,
        points=tuple(points),
    )
