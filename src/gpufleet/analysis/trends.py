"""Trends of utilization over time: series, robust slope, comparisons, change points, forecast.

Definitions are DESIGN.md's, as in :mod:`gpufleet.analysis.utilization`, applied per bucket:

* ``utilization``: time-weighted NVML ``utilization.gpu`` (``util_sum / seconds with a reading``);
* ``allocation_rate``: allocated GPU-time / GPU-time, in percent;
* ``idle_fraction``: GPU-time below ``idle_threshold_pct`` / GPU-time, in percent;
* ``gpu_hours``: GPU-time in the bucket (for a namespace/user/workload scope: GPU-time held).

Rates are reported in percent (0..100) so that their changes read as percentage points.
GPU-level scopes read per-GPU rollups, workload-level scopes per-workload hourly rows (whose
idle time was classified at the store's threshold and whose allocation rate is 1 by
definition). Buckets are UTC hours, UTC days, or weeks starting Monday 00:00 UTC; a bucket the
window cuts, or the scope's history starts inside, is ``partial`` and covers only its part. A
bucket without data has value None, except ``gpu_hours`` of a workload-level scope, which is
0 (the scope held nothing).

Comparisons (:class:`Comparison`): ``change`` is ``b - a`` in the metric's unit, so
percentage points for rates, and ``change_pct`` is relative to ``a``; ``summary`` gives the
change in points for rates (the relative change second) and in percent for ``gpu_hours``.
A comparison of two windows is made only when history covers at least
:data:`MIN_HISTORY_COVERAGE` of the earlier window's span: otherwise ``change`` and
``change_pct`` are None and ``note`` says why (``only 2 minutes of history in the 30 days
before ...; not compared``). Coverage is judged from the inventory
(:func:`history_coverage`): the part of the window after the first GPU of the scope was first
seen. The GPUs are those the scope's GPU-level keys select (a namespace, user or workload
scope takes its cluster's, or the fleet's), so a namespace that is new in the later window is
still a change from nothing; gaps inside the history are not judged here (reports note them).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from gpufleet.analysis.forecast import Forecast, forecast
from gpufleet.analysis.history import HistoryQueryError, UnknownSubjectError
from gpufleet.analysis.robust import ChangePoint, Slope, change_points, robust_slope
from gpufleet.analysis.scope import (
    Scope,
    Window,
    check_group_key,
    idle_at,
    model_name,
    read_scope,
    stored_idle_threshold,
)
from gpufleet.analysis.utilization import Usage
from gpufleet.store._gc import gc_paused
from gpufleet.store.base import DAY_S, Store

__all__ = [
    "ChangePoint",
    "Comparison",
    "Slope",
    "TrendPoint",
    "TrendResult",
    "TrendSeries",
    "analyze_trends",
    "bucket_start",
    "change_points",
    "compare_entities",
    "compare_windows",
    "duration_text",
    "history_coverage",
    "robust_slope",
    "scope_label",
    "utilization_series",
]

Granularity = Literal["hour", "day", "week"]
Metric = Literal["utilization", "allocation_rate", "gpu_hours", "idle_fraction"]
GRANULARITIES: tuple[str, ...] = get_args(Granularity)
METRICS: tuple[str, ...] = get_args(Metric)
STEP_S = {"hour": 3600.0, "day": DAY_S, "week": 7 * DAY_S}
_MONDAY_S = 4 * DAY_S
"""1970-01-01 was a Thursday; weeks are aligned to the Monday after it."""
HORIZON = {"hour": 24, "day": 7, "week": 4}
"""Buckets :func:`analyze_trends` forecasts by default."""
MIN_HISTORY_COVERAGE = 0.5
"""A window compared with a later one must be covered by history for at least this share of
its span, or the comparison is not made (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One bucket of a series."""

    start_s: float
    end_s: float
    value: float | None
    gpu_hours: float
    """GPU-time behind the value (the weight to give it when merging buckets)."""
    partial: bool
    """The window cuts the bucket, so it covers less than a whole hour/day/week."""

    @property
    def mid_s(self) -> float:
        """Middle of the bucket (what a slope uses as its time)."""
        return (self.start_s + self.end_s) / 2.0


@dataclass(frozen=True, slots=True)
class TrendSeries:
    """A metric of a scope bucket by bucket over a window."""

    window: Window
    scope: Scope
    granularity: str
    metric: str
    unit: str
    """``pct`` (rates, 0..100) or ``gpu_hours``."""
    source: str
    """``gpu_usage`` or ``workload_usage`` (see the module docstring)."""
    idle_threshold_pct: float
    points: tuple[TrendPoint, ...]

    def pairs(self, at: Literal["mid", "start"] = "mid") -> list[tuple[float, float]]:
        """``(bucket middle or start, value)`` of the buckets that have a value."""
        return [
            (p.mid_s if at == "mid" else p.start_s, p.value)
            for p in self.points
            if p.value is not None
        ]


@dataclass(frozen=True, slots=True)
class Comparison:
    """A metric in two windows or for two subjects; changes are ``b - a``."""

    metric: str
    unit: str
    subject_a: str
    subject_b: str
    window_a: Window
    window_b: Window
    value_a: float | None
    value_b: float | None
    gpu_hours_a: float
    gpu_hours_b: float
    change: float | None
    """``value_b - value_a`` in the metric's unit: percentage points for rates (None when a
    value is missing or the comparison was not made, see ``note``)."""
    change_pct: float | None
    """Relative change in percent of ``value_a`` (None when ``value_a`` is 0 or missing, or
    the comparison was not made)."""
    history_coverage: float | None
    """Share (0..1) of the earlier window's span that history covers (see the module
    docstring); None for two subjects in one window."""
    note: str
    """Why the comparison was not made (``only 2 minutes of history in the 30 days before
    ...; not compared``); empty when it was."""
    summary: str
    """The comparison in words: ``33.38 % -> 30.67 % (-2.71 pp, -8.1 % relative)`` for a rate,
    ``1700.00 -> 2060.18 GPU-h (+21.2 %, +360.18 GPU-h)`` for GPU-hours, or the values and
    ``note``."""


@dataclass(frozen=True, slots=True)
class TrendResult:
    """Everything :func:`analyze_trends` finds about one metric of one scope."""

    series: TrendSeries
    slope: Slope | None
    """None with fewer than two buckets of data."""
    comparison: Comparison
    """This window (``b``) against the equally long window right before it (``a``)."""
    change_points: tuple[ChangePoint, ...]
    """Found in the deseasonalized values when the forecast fitted a season (their means
    are then levels net of the seasonal pattern); for hourly series, in daily means."""
    forecast: Forecast | None
    """None without any bucket of data."""
    shifts_deseasonalized: bool = False
    """Whether the change points' means are net of a seasonal pattern (see above), so they
    are not the plain means of the buckets."""


def _unit(metric: str) -> str:
    return "gpu_hours" if metric == "gpu_hours" else "pct"


def _check(metric: str, idle_threshold_pct: float, granularity: str = "day") -> None:
    if metric not in METRICS:
        raise HistoryQueryError(f"unknown metric {metric!r}; use one of: {', '.join(METRICS)}")
    if granularity not in GRANULARITIES:
        raise HistoryQueryError(
            f"unknown granularity {granularity!r}; use one of: {', '.join(GRANULARITIES)}"
        )
    if not 0.0 <= idle_threshold_pct <= 100.0:
        raise HistoryQueryError(
            f"idle_threshold_pct must be between 0 and 100; got {idle_threshold_pct}"
        )


def bucket_start(ts_s: float, granularity: str) -> float:
    """Start of the UTC hour, UTC day or Monday-based week containing ``ts_s``."""
    step = STEP_S[granularity]
    offset = _MONDAY_S if granularity == "week" else 0.0
    return math.floor((ts_s - offset) / step) * step + offset


def _value(u: Usage, metric: str) -> float | None:
    if metric == "gpu_hours":
        return u.seconds / 3600.0
    if metric == "utilization":
        return u.mean_util_pct
    share = u.share(u.allocated_s if metric == "allocation_rate" else u.idle_s)
    return None if share is None else 100.0 * share


def _usage_by_bucket(
    store: Store, window: Window, scope: Scope, granularity: str | None, threshold: float
) -> tuple[dict[float, Usage], Usage, str]:
    """Usage per bucket start (none when ``granularity`` is None), the window's total, and
    the source they were read from. Rows are added in row order, to the total as to their
    bucket, so each is what a pass of its own would give."""
    wl = scope.workload_level
    # At the store's threshold the rows are only added up per bucket: SQL sums each GPU's
    # hour, day or week (or whole window) into one row. Workload rows are summed for a
    # window's total only (their series stay per hour).
    summed = threshold == stored_idle_threshold(store) and (not wl or granularity is None)
    per_s = None if granularity is None else STEP_S[granularity]
    offset = _MONDAY_S if granularity == "week" else 0.0
    scoped = read_scope(
        store,
        window,
        scope,
        need_workloads=wl,
        need_gpu_rows=not wl,
        summed=summed,
        per_s=per_s,
        offset_s=offset,
        # A series adds every GPU of the scope into each bucket: SQL can, unless the scope
        # picks GPUs the store's filters cannot (one GPU, a model).
        per_gpu=scope.gpu is not None or scope.gpu_model is not None or scope.nodes is not None,
    )
    out: dict[float, Usage] = {}
    # No trend metric is a percentile: the histograms are not summed.
    total = Usage(keep_hist=False)
    start_s = window.start_s

    def key(row_start: float, granularity: str) -> float:
        # A row cut by the window edge was prorated to its part inside the window.
        return bucket_start(max(row_start, start_s), granularity)

    if scope.workload_level:
        for w in scoped.workload_rows:
            total.add_workload(w)
            if granularity is not None:
                out.setdefault(key(w.hour_s, granularity), Usage()).add_workload(w)
        return out, total, "workload_usage"
    stored = scoped.stored_idle_threshold_pct
    for r in scoped.gpu_rows:
        idle, idle_alloc = idle_at(r, threshold, stored)
        util_s = sum(r.util_hist_s)
        total.add_gpu(r, idle, idle_alloc, util_s)
        if granularity is not None:
            k = key(r.bucket_s, granularity)
            u = out.get(k)
            if u is None:
                u = out[k] = Usage(keep_hist=False)
            u.add_gpu(r, idle, idle_alloc, util_s)
    return out, total, "gpu_usage"


@gc_paused()
def utilization_series(
    store: Store,
    window: Window,
    *,
    scope: Scope = Scope(),  # noqa: B008 - Scope is frozen, a shared default is safe
    granularity: Granularity = "day",
    metric: Metric = "utilization",
    idle_threshold_pct: float = 5.0,
) -> TrendSeries:
    """``metric`` of ``scope`` per ``granularity`` bucket over ``window`` (oldest first).

    Raises:
        HistoryQueryError: an unknown metric or granularity, or a threshold outside 0..100.
        UnknownSubjectError: a scope value with no data in the window.
        StoreError: the store cannot answer.
    """
    return _series(store, window, scope, granularity, metric, idle_threshold_pct)[0]


def _series(
    store: Store,
    window: Window,
    scope: Scope,
    granularity: Granularity,
    metric: Metric,
    idle_threshold_pct: float,
) -> tuple[TrendSeries, Usage]:
    """:func:`utilization_series` and the window's total usage, from one read."""
    _check(metric, idle_threshold_pct, granularity)
    per, total, source = _usage_by_bucket(store, window, scope, granularity, idle_threshold_pct)
    step = STEP_S[granularity]
    points = []
    start = bucket_start(window.start_s, granularity)
    # A bucket the scope's history starts inside is partial too: it holds less than a whole
    # hour/day/week of data, like one the window cuts.
    history = _history_start(store, scope)
    begins = window.start_s if history is None else max(window.start_s, history)
    while start < window.end_s:
        b = min(start + step, window.end_s)
        a = max(start, begins) if begins < b else start
        usage = per.get(start)
        if usage is not None:
            value = _value(usage, metric)
        else:
            value = 0.0 if metric == "gpu_hours" and scope.workload_level else None
        hours = usage.seconds / 3600.0 if usage is not None else 0.0
        points.append(TrendPoint(a, b, value, hours, partial=b - a < step))
        start += step
    series = TrendSeries(
        window=window,
        scope=scope,
        granularity=granularity,
        metric=metric,
        unit=_unit(metric),
        source=source,
        idle_threshold_pct=idle_threshold_pct,
        points=tuple(points),
    )
    return series, total


def scope_label(scope: Scope) -> str:
    """The scope's named values joined by ``/`` (``all`` for the whole history)."""
    names = [
        getattr(scope, k)
        for k in ("cluster", "node", "gpu", "gpu_model", "namespace", "user", "workload")
    ]
    return "/".join(v for v in names if v is not None) or "all"


def _utc(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, tz=UTC).strftime("%Y-%m-%d %H:%M")


def duration_text(seconds: float) -> str:
    """``40 seconds``, ``2 minutes``, ``5 hours``, ``30 days``: the largest unit that gives 2
    or more (seconds below two minutes)."""
    for unit, size in (("day", 86_400.0), ("hour", 3600.0), ("minute", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}s"
    n = max(round(seconds), 0)
    return f"{n} second{'' if n == 1 else 's'}"


def _history_start(store: Store, scope: Scope) -> float | None:
    """The earliest ``first_seen_s`` of the GPUs the GPU-level keys of ``scope`` select."""
    gpus = [
        g
        for g in store.inventory()
        if (scope.cluster is None or g.cluster == scope.cluster)
        and (scope.node is None or g.node == scope.node)
        and (scope.nodes is None or f"{g.cluster}/{g.node}" in scope.nodes.split(","))
    ]
    if scope.gpu is not None:
        # A UUID, or an index (on the scope's node); an index on several nodes takes them all.
        gpu = scope.gpu
        gpus = [g for g in gpus if g.uuid == gpu or (gpu.isdigit() and g.index == int(gpu))]
    if scope.gpu_model is not None:
        model = scope.gpu_model.casefold()
        gpus = [g for g in gpus if model in model_name(g).casefold()]
    return min((g.first_seen_s for g in gpus), default=None)


def history_coverage(store: Store, window: Window, scope: Scope) -> tuple[float, str]:
    """Share (0..1) of ``window`` that the history of ``scope``'s GPUs covers, and, below
    :data:`MIN_HISTORY_COVERAGE`, why a comparison with it is not made (else ``""``).

    The history starts when the first of the GPUs the scope's GPU-level keys select was first
    seen (see the module docstring).
    """
    start = _history_start(store, scope)
    covered_s = 0.0 if start is None else window.end_s - max(window.start_s, start)
    coverage = min(max(covered_s / window.span_s, 0.0), 1.0)
    if coverage >= MIN_HISTORY_COVERAGE:
        return coverage, ""
    span = f"the {duration_text(window.span_s)} before {_utc(window.end_s)}"
    if covered_s <= 0.0:
        return coverage, f"no history in {span}; not compared"
    return coverage, f"only {duration_text(covered_s)} of history in {span}; not compared"


def _summary(
    unit: str,
    value_a: float | None,
    value_b: float | None,
    change: float | None,
    change_pct: float | None,
    note: str,
) -> str:
    def v(x: float | None, suffix: str = "") -> str:
        return "n/a" if x is None else f"{x:.2f}{suffix}"

    if unit == "pct":
        text = f"{v(value_a, ' %')} -> {v(value_b, ' %')}"
        parts = [] if change is None else [f"{change:+.2f} pp"]
        if change_pct is not None:
            parts.append(f"{change_pct:+.1f} % relative")
    else:
        text = f"{v(value_a)} -> {v(value_b)} GPU-h"
        parts = [] if change_pct is None else [f"{change_pct:+.1f} %"]
        if change is not None:
            parts.append(f"{change:+.2f} GPU-h")
    if note:
        return f"{text}: {note}"
    return f"{text} ({', '.join(parts)})" if parts else text


def _total(
    store: Store, window: Window, scope: Scope, threshold: float
) -> tuple[Usage | None, UnknownSubjectError | None]:
    try:
        _, total, _ = _usage_by_bucket(store, window, scope, None, threshold)
    except UnknownSubjectError as exc:
        return None, exc
    return total, None


def _compare(
    store: Store,
    subjects: tuple[tuple[str, Scope, Window], tuple[str, Scope, Window]],
    metric: str,
    threshold: float,
    *,
    known_b: Usage | None = None,
    check_history: bool = True,
    require_both: bool = False,
) -> Comparison:
    """``metric`` of two (name, scope, window) subjects; ``known_b`` is ``b``'s total when
    the caller has read it already (with the same scope, window and threshold). With
    ``check_history``, the earlier window must be covered by history (see the module
    docstring)."""
    (name_a, scope_a, win_a), (name_b, scope_b, win_b) = subjects
    usage_a, err_a = _total(store, win_a, scope_a, threshold)
    usage_b: Usage | None
    err_b: UnknownSubjectError | None
    if known_b is not None:
        usage_b, err_b = known_b, None
    else:
        usage_b, err_b = _total(store, win_b, scope_b, threshold)
    # A subject absent from one side is a change to or from nothing; absent from both, a
    # mistake the caller should hear about.
    if err_a is not None and (err_b is not None or require_both):
        raise err_a
    if err_b is not None and require_both:
        raise err_b
    empty = 0.0 if metric == "gpu_hours" else None
    value_a = _value(usage_a, metric) if usage_a is not None else empty
    value_b = _value(usage_b, metric) if usage_b is not None else empty
    coverage: float | None = None
    note = ""
    if check_history:
        earlier, scope = (win_a, scope_a) if win_a.start_s <= win_b.start_s else (win_b, scope_b)
        coverage, note = history_coverage(store, earlier, scope)
    change = value_b - value_a if value_a is not None and value_b is not None else None
    if note:
        change = None
    change_pct = 100.0 * change / abs(value_a) if change is not None and value_a else None
    return Comparison(
        metric=metric,
        unit=_unit(metric),
        subject_a=name_a,
        subject_b=name_b,
        window_a=win_a,
        window_b=win_b,
        value_a=value_a,
        value_b=value_b,
        gpu_hours_a=usage_a.seconds / 3600.0 if usage_a is not None else 0.0,
        gpu_hours_b=usage_b.seconds / 3600.0 if usage_b is not None else 0.0,
        change=change,
        change_pct=change_pct,
        history_coverage=coverage,
        note=note,
        summary=_summary(_unit(metric), value_a, value_b, change, change_pct, note),
    )


@gc_paused()
def compare_windows(
    store: Store,
    a: Window,
    b: Window,
    *,
    scope: Scope = Scope(),  # noqa: B008 - Scope is frozen, a shared default is safe
    metric: Metric = "utilization",
    idle_threshold_pct: float = 5.0,
) -> Comparison:
    """``metric`` of ``scope`` in window ``a`` and in window ``b`` (changes are ``b - a``).

    When history covers less than :data:`MIN_HISTORY_COVERAGE` of the earlier window, no
    change is given and ``note`` says why.

    Raises:
        HistoryQueryError: an unknown metric or a threshold outside 0..100.
        UnknownSubjectError: the scope has data in neither window.
    """
    _check(metric, idle_threshold_pct)
    label = scope_label(scope)
    return _compare(store, ((label, scope, a), (label, scope, b)), metric, idle_threshold_pct)


@gc_paused()
def compare_entities(
    store: Store,
    window: Window,
    key: str,
    a: str,
    b: str,
    *,
    scope: Scope = Scope(),  # noqa: B008 - Scope is frozen, a shared default is safe
    metric: Metric = "utilization",
    idle_threshold_pct: float = 5.0,
) -> Comparison:
    """``metric`` of ``key=a`` against ``key=b`` (e.g. two namespaces) within ``scope``.

    Raises:
        HistoryQueryError: an unknown key or metric, or a threshold outside 0..100.
        UnknownSubjectError: either value has no data in the window (in one window, a name
            without data is a mistake, not a change from nothing); the message lists the
            values that have data.
    """
    _check(metric, idle_threshold_pct)
    if check_group_key(key) is None:
        raise HistoryQueryError("compare_entities needs a key such as namespace or user")
    scope_a = dataclasses.replace(scope, **{key: a})
    scope_b = dataclasses.replace(scope, **{key: b})
    return _compare(
        store,
        ((a, scope_a, window), (b, scope_b, window)),
        metric,
        idle_threshold_pct,
        check_history=False,
        require_both=True,
    )


def _regular(usable: list[TrendPoint], granularity: str) -> tuple[list[float], list[int]]:
    """Values one per bucket from the first to the last of ``usable``, gaps filled by linear
    interpolation, and the position of each of ``usable`` among them."""
    step = STEP_S[granularity]
    first = bucket_start(usable[0].start_s, granularity)
    positions = [round((bucket_start(p.start_s, granularity) - first) / step) for p in usable]
    values: list[float] = []
    for pos, p in zip(positions, usable, strict=True):
        value = p.value if p.value is not None else 0.0
        if values and pos > len(values):  # a gap: draw a line from the last value to this one
            prev, gap = values[-1], pos - len(values) + 1
            values += [prev + (value - prev) * k / gap for k in range(1, gap)]
        values.append(value)
    return values, positions


@gc_paused()
def analyze_trends(
    store: Store,
    window: Window,
    *,
    scope: Scope = Scope(),  # noqa: B008 - Scope is frozen, a shared default is safe
    granularity: Granularity = "day",
    metric: Metric = "utilization",
    idle_threshold_pct: float = 5.0,
    horizon: int | None = None,
) -> TrendResult:
    """Series, slope, change against the previous window, change points and forecast.

    The previous window has the same length and ends where ``window`` starts; it is compared
    only when history covers at least half of it (see the module docstring). Partial
    buckets (cut by the window's edges, or where the scope's history starts) are left out of
    the slope, change points and forecast:
    a part of a day holds fewer GPU-hours than a day, and a rate over half a day is of its
    busy or its quiet half, not of the day (the daily cycle). A rate keeps them when fewer than
    two whole buckets remain. The forecast uses a weekly season for
    hourly buckets when there are four weeks of them (daily otherwise) and a weekly one for
    daily buckets; ``horizon`` defaults to a day, a week or four weeks of buckets. It starts
    at the bucket after the series' last one (buckets left out at the end, such as a partial
    last bucket of ``gpu_hours``, are skipped, not forecast). Without a fitted season and
    with a flat slope (its interval contains 0), it forecasts the level, not the slope
    (``level`` in :mod:`gpufleet.analysis.forecast`). Gaps between buckets with data are
    filled by linear interpolation for the forecast only.

    Raises:
        HistoryQueryError: as :func:`utilization_series`, or a horizon below 1.
        UnknownSubjectError: a scope value with no data in the window.
    """
    series, total = _series(store, window, scope, granularity, metric, idle_threshold_pct)
    steps = HORIZON[granularity] if horizon is None else horizon
    if steps < 1:
        raise HistoryQueryError(f"horizon must be at least 1 bucket; got {steps}")
    usable = [p for p in series.points if p.value is not None and not p.partial]
    if metric != "gpu_hours" and len(usable) < 2:
        # Fewer than two whole buckets (a window of a day and a half): a rate's partial
        # ones count; with two whole ones the partial ones would only pull the slope to
        # the busy or quiet part of a day they happen to hold.
        usable = [p for p in series.points if p.value is not None]
    pairs = [(p.mid_s, p.value) for p in usable if p.value is not None]
    previous = Window(window.start_s - window.span_s, window.start_s)
    # As compare_windows(store, previous, window, ...), with this window's total from the
    # read the series came from.
    label = scope_label(scope)
    comparison = _compare(
        store,
        ((label, scope, previous), (label, scope, window)),
        metric,
        idle_threshold_pct,
        known_b=total,
    )
    if not usable:
        return TrendResult(series, None, comparison, (), None)
    values, positions = _regular(usable, granularity)
    slope = robust_slope(pairs) if len(pairs) >= 2 else None
    # A weekly season from two or three weeks of hours would be fitted to single readings.
    season = {"hour": 168 if len(values) >= 4 * 168 else 24, "day": 7}.get(granularity)
    step = STEP_S[granularity]
    # The forecast starts after the series' last bucket, even when the fit ends earlier.
    after_fit = bucket_start(usable[-1].start_s, granularity) + step
    first = bucket_start(series.points[-1].start_s, granularity) + step
    fc = forecast(
        values,
        horizon=steps,
        season=season,
        bounds=(0.0, 100.0) if series.unit == "pct" else (0.0, math.inf),
        start_s=first,
        step_s=step,
        skip=max(round((first - after_fit) / step), 0),
        flat_trend=None if slope is None else slope.direction == "flat",
    )
    # Shifts are looked for in the deseasonalized values: a daily cycle is not a change.
    # Two seasons fit the profile to the data almost exactly; the leftovers would look like
    # noise-free shifts, so deseasonalize only with a profile from three seasons or more.
    profile, m = fc.seasonal_profile, fc.season
    m = m if m and len(values) >= 3 * m else None
    shifted = [
        (p.start_s, v - (profile[pos % m] if m else 0.0))
        for p, pos, (_, v) in zip(usable, positions, pairs, strict=True)
    ]
    if granularity == "hour":
        # A burst of a few hours is not a change of level: hourly series are searched as
        # daily means, so a shift has to last min_size days to count.
        days: dict[float, list[float]] = {}
        for t, v in shifted:
            days.setdefault(bucket_start(t, "day"), []).append(v)
        shifted = [(d, sum(vs) / len(vs)) for d, vs in sorted(days.items())]
    return TrendResult(
        series=series,
        slope=slope,
        comparison=comparison,
        change_points=tuple(change_points(shifted)),
        forecast=fc,
        shifts_deseasonalized=m is not None,
    )
