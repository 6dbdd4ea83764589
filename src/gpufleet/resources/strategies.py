"""What a resource manager does at each check, beyond comparing readings with limits.

Every strategy gets the same :class:`Check` (the reading, recent history, the limits) and
answers with :class:`Advice`: when to check next, warnings to pass to the handlers, and for
the cooperative strategy the share of a budget each limit stands for now.

- ``dynamic``: reacts to the current reading. A reading at ``warn_fraction`` (90 %) of a
  limit or more is reported as ``approaching``; the interval stays as configured.
- ``predictive``: fits a straight line to the last ``window`` readings of each limited metric
  and, when it rises towards a limit it would reach within ``horizon_s``, reports
  ``predicted`` with the time it gets there. Only fits that explain the readings well
  (R² >= ``min_r2``) count, so noise does not raise alarms.
- ``adaptive``: changes the sampling interval to how fast readings move: halves it when a
  reading moved more than ``fast_change`` of its scale since the last check (or sits within
  ``near_fraction`` of a limit), stretches it by 1.5 when it moved less than ``slow_change``,
  between ``min_interval_s`` and ``max_interval_s``.
- ``cooperative``: see ``gpufleet.resources.cooperative``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gpufleet.resources.limits import LIMIT_METRICS
from gpufleet.resources.metrics import METRIC_FIELDS, ResourceMetrics

# The scale a change is measured against when a metric has no limit.
PERCENT_METRICS = frozenset({"memory_percent", "cpu_percent", "gpu_utilization"})


@dataclass(frozen=True)
class Check:
    """What a strategy sees at one check.

    Attributes:
        metrics: The reading just taken.
        history: Recent readings, oldest first, ending with ``metrics``.
        limits: The set limits: limit name -> value.
        interval_s: The interval that led to this check.
        base_interval_s: The interval the manager was configured with.
    """

    metrics: ResourceMetrics
    history: Sequence[ResourceMetrics]
    limits: Mapping[str, float]
    interval_s: float
    base_interval_s: float


@dataclass(frozen=True)
class Signal:
    """A warning a strategy raises about one limit (the manager times and reports it)."""

    kind: str
    limit: str
    value: float
    threshold: float
    predicted_at_s: float | None = None


@dataclass(frozen=True)
class Advice:
    """What the manager should do after a check.

    Attributes:
        next_interval_s: Seconds until the next check.
        signals: ``approaching``/``predicted`` warnings.
        thresholds: Limits to hold readings against instead of the configured ones (the
            cooperative strategy's shares).
        shared: The names in ``thresholds`` that are shares of a budget.
    """

    next_interval_s: float
    signals: tuple[Signal, ...] = ()
    thresholds: Mapping[str, float] = field(default_factory=dict)
    shared: frozenset[str] = frozenset()


class Strategy(Protocol):
    """A way of managing resources; pick one by name with :func:`make_strategy`."""

    name: str

    def advise(self, check: Check) -> Advice:
        """Look at one check and say what to do."""
        ...

    def close(self) -> None:
        """Leave whatever the strategy joined (cooperative budgets)."""
        ...


def _value(metrics: ResourceMetrics, limit: str) -> float | None:
    return metrics.value(LIMIT_METRICS[limit][0])


class DynamicStrategy:
    """React to the current reading: warn at ``warn_fraction`` of a limit."""

    name = "dynamic"

    def __init__(self, warn_fraction: float = 0.9) -> None:
        if not 0 < warn_fraction < 1:
            raise ValueError("warn_fraction must be between 0 and 1")
        self.warn_fraction = warn_fraction

    def advise(self, check: Check) -> Advice:
        signals = []
        for limit, threshold in check.limits.items():
            value = _value(check.metrics, limit)
            if value is not None and self.warn_fraction * threshold <= value <= threshold:
                signals.append(Signal("approaching", limit, value, threshold))
        return Advice(check.base_interval_s, tuple(signals))

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class Trend:
    """A least-squares line through recent readings of one metric.

    Attributes:
        slope_per_s: Change per second.
        value_now: The line's value at the latest reading.
        at_s: Epoch seconds of the latest reading.
        r2: Share of the readings' variance the line explains (1 for a perfect line).
        points: Readings used.
    """

    slope_per_s: float
    value_now: float
    at_s: float
    r2: float
    points: int

    def value_at(self, t_s: float) -> float:
        """The line's value at epoch seconds ``t_s``."""
        return self.value_now + self.slope_per_s * (t_s - self.at_s)


def fit_trend(history: Sequence[ResourceMetrics], metric: str) -> Trend | None:
    """Fit a line to ``metric`` over ``history``; None with fewer than 2 readings of it."""
    points = [(m.timestamp_s, v) for m in history if (v := m.value(metric)) is not None]
    n = len(points)
    if n < 2:
        return None
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    stt = sum((t - mean_t) ** 2 for t, _ in points)
    if stt == 0:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / stt
    svv = sum((v - mean_v) ** 2 for _, v in points)
    sse = sum((v - (mean_v + slope * (t - mean_t))) ** 2 for t, v in points)
    r2 = 1.0 if svv == 0 else max(0.0, 1.0 - sse / svv)
    last_t = points[-1][0]
    return Trend(slope, mean_v + slope * (last_t - mean_t), last_t, r2, n)


class PredictiveStrategy:
    """Warn before a limit is crossed, with the time the trend reaches it."""

    name = "predictive"

    def __init__(
        self,
        *,
        window: int = 20,
        min_points: int = 5,
        horizon_s: float = 60.0,
        min_r2: float = 0.6,
    ) -> None:
        if window < 2 or min_points < 2 or min_points > window:
            raise ValueError("need 2 <= min_points <= window")
        if horizon_s <= 0:
            raise ValueError("horizon_s must be positive")
        self.window, self.min_points = window, min_points
        self.horizon_s, self.min_r2 = horizon_s, min_r2
        self.trends: dict[str, Trend] = {}

    def advise(self, check: Check) -> Advice:
        recent = check.history[-self.window :]
        signals = []
        metrics = {LIMIT_METRICS[limit][0] for limit in check.limits} or set(METRIC_FIELDS)
        for metric in metrics:
            trend = fit_trend(recent, metric)
            if trend is not None:
                self.trends[metric] = trend
            else:
                self.trends.pop(metric, None)
        for limit, threshold in check.limits.items():
            trend = self.trends.get(LIMIT_METRICS[limit][0])
            if (
                trend is None
                or trend.points < self.min_points
                or trend.slope_per_s <= 0
                or trend.r2 < self.min_r2
                or trend.value_now >= threshold
            ):
                continue
            eta_s = (threshold - trend.value_now) / trend.slope_per_s
            if eta_s <= self.horizon_s:
                signals.append(
                    Signal("predicted", limit, trend.value_now, threshold, trend.at_s + eta_s)
                )
        return Advice(check.base_interval_s, tuple(signals))

    def forecast(self, metric: str, at_s: float) -> float | None:
        """The trend's value of ``metric`` at epoch seconds ``at_s``; None without a fit."""
        trend = self.trends.get(metric)
        return None if trend is None else trend.value_at(at_s)

    def close(self) -> None:
        return None


class AdaptiveStrategy:
    """Check more often while readings move or near a limit, less often while they hold."""

    name = "adaptive"

    def __init__(
        self,
        *,
        min_interval_s: float | None = None,
        max_interval_s: float | None = None,
        fast_change: float = 0.05,
        slow_change: float = 0.01,
        near_fraction: float = 0.8,
    ) -> None:
        if not 0 <= slow_change < fast_change:
            raise ValueError("need 0 <= slow_change < fast_change")
        self.min_interval_s, self.max_interval_s = min_interval_s, max_interval_s
        self.fast_change, self.slow_change = fast_change, slow_change
        self.near_fraction = near_fraction
        self.last_change: float | None = None

    def bounds(self, base_s: float) -> tuple[float, float]:
        """The interval's range: by default a quarter (at least 0.1 s) to four times base."""
        low = self.min_interval_s if self.min_interval_s is not None else max(0.1, base_s / 4)
        high = self.max_interval_s if self.max_interval_s is not None else base_s * 4
        return low, max(low, high)

    def advise(self, check: Check) -> Advice:
        low, high = self.bounds(check.base_interval_s)
        if len(check.history) < 2:
            return Advice(min(max(check.interval_s, low), high))
        prev, cur = check.history[-2], check.metrics
        change = 0.0
        near = False
        scales = {LIMIT_METRICS[limit][0]: value for limit, value in check.limits.items()}
        for metric in scales or METRIC_FIELDS:
            before, now = prev.value(metric), cur.value(metric)
            if before is None or now is None:
                continue
            scale = scales.get(metric) or (
                100.0 if metric in PERCENT_METRICS else max(abs(before), abs(now), 1.0)
            )
            change = max(change, abs(now - before) / scale)
            if metric in scales and now >= self.near_fraction * scales[metric]:
                near = True
        self.last_change = change
        interval = check.interval_s
        if near or change > self.fast_change:
            interval = interval / 2
        elif change < self.slow_change:
            interval = interval * 1.5
        return Advice(low if near else min(max(interval, low), high))

    def close(self) -> None:
        return None


STRATEGIES = ("dynamic", "predictive", "adaptive", "cooperative")
