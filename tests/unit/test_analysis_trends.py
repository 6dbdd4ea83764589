"""Trends: series, slope, comparisons and change points, hand-computed on tiny inputs.

The fleet (``write_days``): node ``n1`` with two GPUs, one snapshot every 10 minutes over three
UTC days from ``D0`` (a Wednesday 00:00 UTC).

* GPU A: day 0 at 20 % held by ml-team/alice/train; day 1 at 50 % held by nobody; day 2 at
  80 % held by ml-team/alice/train2.
* GPU B: 0 % all the time; held by cv-team/bob/nb on day 2 only.

Per day (48 GPU-hours each): utilization 10, 25, 40 %; allocation rate 50, 0, 100 %; idle
fraction 50 % every day (B is always idle).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gpufleet.analysis.history import HistoryQueryError, UnknownSubjectError
from gpufleet.analysis.scope import Scope, Window
from gpufleet.analysis.trends import (
    analyze_trends,
    bucket_start,
    change_points,
    compare_entities,
    compare_windows,
    duration_text,
    robust_slope,
    utilization_series,
)
from gpufleet.analysis.wire import iso, to_wire
from gpufleet.model import Attribution, GpuProcess, GpuSample, Snapshot
from gpufleet.store import Store

DAY = 86_400.0
H = 3600.0
D0 = 1_700_006_400.0  # 2023-11-15 00:00 UTC, a Wednesday
STEP = 600.0
THREE_DAYS = Window(D0, D0 + 3 * DAY)


def _held(namespace: str, user: str, workload: str) -> tuple[GpuProcess, ...]:
    who = Attribution(namespace=namespace, user=user, workload=workload)
    return (GpuProcess(pid=7, used_memory_bytes=1 << 30, attribution=who),)


def _gpus(day: int) -> tuple[GpuSample, GpuSample]:
    procs_a = {0: _held("ml-team", "alice", "train"), 2: _held("ml-team", "alice", "train2")}
    a = GpuSample(
        uuid="GPU-a",
        index=0,
        name="H100",
        util_gpu_pct=(20.0, 50.0, 80.0)[day],
        mem_total_bytes=80 << 30,
        mem_used_bytes=1 << 30,
        processes=procs_a.get(day, ()),
    )
    b = GpuSample(
        uuid="GPU-b",
        index=1,
        name="H100",
        util_gpu_pct=0.0,
        mem_total_bytes=80 << 30,
        mem_used_bytes=1 << 30,
        processes=_held("cv-team", "bob", "nb") if day == 2 else (),
    )
    return a, b


def write_days(store: Store) -> None:
    """Write the fleet of the module docstring."""
    per_day = int(DAY / STEP)
    store.write_snapshots(
        [
            Snapshot(
                ts_s=D0 + k * STEP,
                cluster="c1",
                node="n1",
                gpus=_gpus(k // per_day),
                system=None,
                interval_s=STEP,
            )
            for k in range(3 * per_day)
        ]
    )


@pytest.fixture
def fleet(store: Store) -> Store:
    write_days(store)
    return store


def _values(store: Store, **kw: object) -> list[float | None]:
    series = utilization_series(store, THREE_DAYS, **kw)  # type: ignore[arg-type]
    return [p.value for p in series.points]


def test_daily_series_of_each_metric(fleet: Store) -> None:
    assert _values(fleet) == pytest.approx([10.0, 25.0, 40.0])
    assert _values(fleet, metric="allocation_rate") == pytest.approx([50.0, 0.0, 100.0])
    assert _values(fleet, metric="idle_fraction") == pytest.approx([50.0, 50.0, 50.0])
    assert _values(fleet, metric="gpu_hours") == pytest.approx([48.0, 48.0, 48.0])
    series = utilization_series(fleet, THREE_DAYS)
    assert (series.unit, series.source) == ("pct", "gpu_usage")
    assert [p.start_s for p in series.points] == [D0, D0 + DAY, D0 + 2 * DAY]
    assert [p.gpu_hours for p in series.points] == pytest.approx([48.0] * 3)
    assert not any(p.partial for p in series.points)


def test_workload_scope_reads_workload_rows(fleet: Store) -> None:
    ml = Scope(namespace="ml-team")
    # Day 1 nobody in ml-team held a GPU: no utilization, and zero GPU-hours held.
    assert _values(fleet, scope=ml) == [pytest.approx(20.0), None, pytest.approx(80.0)]
    assert _values(fleet, scope=ml, metric="gpu_hours") == pytest.approx([24.0, 0.0, 24.0])
    assert utilization_series(fleet, THREE_DAYS, scope=ml).source == "workload_usage"


def test_hourly_buckets_cut_by_the_window_are_partial(fleet: Store) -> None:
    window = Window(D0 + 5400, D0 + 4 * 3600)
    series = utilization_series(fleet, window, granularity="hour", metric="gpu_hours")
    assert [(p.start_s - D0, p.end_s - D0, p.partial) for p in series.points] == [
        (5400, 7200, True),
        (7200, 10800, False),
        (10800, 14400, False),
    ]
    # Two GPUs for half an hour, then for whole hours.
    assert [p.value for p in series.points] == pytest.approx([1.0, 2.0, 2.0])


def test_weeks_start_on_monday() -> None:
    monday = D0 - 2 * DAY
    assert bucket_start(D0 + 3 * DAY, "week") == monday
    assert bucket_start(monday - 1, "week") == monday - 7 * DAY
    assert bucket_start(D0 + 3700, "hour") == D0 + 3600
    assert bucket_start(D0 + DAY - 1, "day") == D0


def test_compare_windows_reports_points_and_relative_change(fleet: Store) -> None:
    day0, day2 = Window(D0, D0 + DAY), Window(D0 + 2 * DAY, D0 + 3 * DAY)
    c = compare_windows(fleet, day0, day2)
    assert (c.value_a, c.value_b) == (pytest.approx(10.0), pytest.approx(40.0))
    assert c.change == pytest.approx(30.0)  # percentage points
    assert c.change_pct == pytest.approx(300.0)
    assert (c.gpu_hours_a, c.gpu_hours_b) == (pytest.approx(48.0), pytest.approx(48.0))
    assert (c.subject_a, c.unit) == ("all", "pct")
    # A rate's change reads in points first; the relative change is secondary.
    assert c.summary == "10.00 % -> 40.00 % (+30.00 pp, +300.0 % relative)"
    assert (c.history_coverage, c.note) == (1.0, "")
    hours = compare_windows(fleet, day0, day2, metric="gpu_hours")
    assert hours.summary == "48.00 -> 48.00 GPU-h (+0.0 %, +0.00 GPU-h)"


def test_a_scope_absent_from_one_window_changes_from_nothing(fleet: Store) -> None:
    day1, day2 = Window(D0 + DAY, D0 + 2 * DAY), Window(D0 + 2 * DAY, D0 + 3 * DAY)
    cv = Scope(namespace="cv-team")
    c = compare_windows(fleet, day1, day2, scope=cv, metric="gpu_hours")
    assert (c.value_a, c.value_b, c.change, c.change_pct) == (0.0, 24.0, 24.0, None)
    # The fleet's history covers day 1: a namespace new on day 2 is a change from nothing.
    assert (c.history_coverage, c.note, c.summary) == (
        1.0,
        "",
        "0.00 -> 24.00 GPU-h (+24.00 GPU-h)",
    )
    util = compare_windows(fleet, day1, day2, scope=cv)
    assert (util.value_a, util.value_b, util.change) == (None, 0.0, None)
    with pytest.raises(UnknownSubjectError, match="no namespace 'nope'"):
        compare_windows(fleet, day1, day2, scope=Scope(namespace="nope"))


def test_a_window_history_barely_covers_is_not_compared(fleet: Store) -> None:
    # The history starts at D0: the day before D0 + 2 h holds only its last 2 hours (4 of
    # the 48 GPU-hours), which would read as a 1100 % rise.
    a, b = Window(D0 + 2 * H - DAY, D0 + 2 * H), Window(D0 + 2 * H, D0 + 2 * H + DAY)
    c = compare_windows(fleet, a, b, metric="gpu_hours")
    assert (c.value_a, c.value_b) == (pytest.approx(4.0), pytest.approx(48.0))
    assert (c.change, c.change_pct) == (None, None)
    assert c.history_coverage == pytest.approx(2 / 24)
    note = "only 2 hours of history in the 24 hours before 2023-11-15 02:00; not compared"
    assert c.note == note
    assert c.summary == f"4.00 -> 48.00 GPU-h: {note}"
    # Which window is the earlier one does not depend on the order they are given in.
    assert compare_windows(fleet, b, a, metric="gpu_hours").note == note
    # A namespace scope is judged by its GPUs' history, not by what it held.
    ml = compare_windows(fleet, a, b, scope=Scope(namespace="ml-team"))
    assert (ml.change, ml.note) == (None, note)
    # Covered for exactly half its span: compared.
    half = compare_windows(
        fleet, Window(D0 - 12 * H, D0 + 12 * H), Window(D0 + 12 * H, D0 + 36 * H)
    )
    assert (half.history_coverage, half.note) == (0.5, "")
    assert half.change is not None


def test_duration_text() -> None:
    assert [duration_text(s) for s in (1, 90, 120, 3599, 7200, 86_400, 30 * DAY)] == [
        "1 second",
        "90 seconds",
        "2 minutes",
        "60 minutes",
        "2 hours",
        "24 hours",
        "30 days",
    ]


def test_compare_entities(fleet: Store) -> None:
    c = compare_entities(fleet, THREE_DAYS, "namespace", "ml-team", "cv-team")
    # ml-team: 24 h at 20 % and 24 h at 80 %; cv-team: 24 h at 0 %.
    assert (c.subject_a, c.subject_b) == ("ml-team", "cv-team")
    assert (c.value_a, c.value_b) == (pytest.approx(50.0), pytest.approx(0.0))
    assert (c.change, c.change_pct) == (pytest.approx(-50.0), pytest.approx(-100.0))
    with pytest.raises(HistoryQueryError, match="unknown group-by key"):
        compare_entities(fleet, THREE_DAYS, "team", "a", "b")


def test_bad_requests_say_what_to_fix(fleet: Store) -> None:
    with pytest.raises(HistoryQueryError, match="unknown metric 'busy'"):
        utilization_series(fleet, THREE_DAYS, metric="busy")  # type: ignore[arg-type]
    with pytest.raises(HistoryQueryError, match="unknown granularity 'month'"):
        utilization_series(fleet, THREE_DAYS, granularity="month")  # type: ignore[arg-type]
    with pytest.raises(HistoryQueryError, match="idle_threshold_pct"):
        compare_windows(fleet, THREE_DAYS, THREE_DAYS, idle_threshold_pct=120)
    with pytest.raises(HistoryQueryError, match="horizon"):
        analyze_trends(fleet, THREE_DAYS, horizon=0)


def test_analyze_trends_on_the_hand_fleet(fleet: Store) -> None:
    r = analyze_trends(fleet, THREE_DAYS)
    assert r.slope is not None
    # 10, 25, 40 at the middles of three days: 15 points a day; all three pairwise slopes
    # are 15, so Sen's interval is [15, 15] and the trend is rising.
    assert r.slope.per_day == pytest.approx(15.0)
    assert (r.slope.ci_low_per_day, r.slope.ci_high_per_day) == (
        pytest.approx(15.0),
        pytest.approx(15.0),
    )
    assert r.slope.direction == "rising"
    assert r.slope.at(D0 + 1.5 * DAY) == pytest.approx(25.0)
    # Nothing was recorded in the three days before: not compared, and the summary says so.
    assert (r.comparison.value_a, r.comparison.value_b) == (None, pytest.approx(25.0))
    assert (r.comparison.change, r.comparison.history_coverage) == (None, 0.0)
    assert r.comparison.summary == (
        "n/a -> 25.00 %: no history in the 3 days before 2023-11-15 00:00; not compared"
    )
    assert r.change_points == ()
    assert r.forecast is not None
    # Fewer than two weekly seasons: the straight line goes on, 55 and 70, then up to 100.
    assert r.forecast.method == "trend"
    assert "fewer than two seasons" in r.forecast.note
    assert [p.value for p in r.forecast.points[:3]] == pytest.approx([55.0, 70.0, 85.0])
    assert r.forecast.points[0].start_s == D0 + 3 * DAY
    assert max(p.hi95 for p in r.forecast.points) <= 100.0


def test_a_flat_slope_forecasts_the_level(fleet: Store) -> None:
    # Allocation 50, 0, 100 %: Sen's slope is 25 points a day, but its 95 % interval
    # (-50 .. +100) contains 0. Without a season the forecast stays at the median level (50)
    # instead of climbing to 100 %.
    r = analyze_trends(fleet, THREE_DAYS, metric="allocation_rate")
    assert r.slope is not None
    assert (r.slope.per_day, r.slope.direction) == (pytest.approx(25.0), "flat")
    assert r.forecast is not None
    assert (r.forecast.method, r.forecast.trend_per_step) == ("level", 0.0)
    assert "flat trend" in r.forecast.note
    assert [p.value for p in r.forecast.points] == [pytest.approx(50.0)] * 7
    # Residuals -50, 0, +50 around the median: three points give +- t(2) x 50 x sqrt(4/3)
    # (2 degrees of freedom for the one level fitted), 109 points at 80 %: the whole range.
    first = r.forecast.points[0]
    assert 1.886 * 50.0 * math.sqrt(4 / 3) > 100.0
    assert (first.lo80, first.hi80) == (0.0, 100.0)
    assert (first.lo95, first.hi95) == (0.0, 100.0)


def test_the_forecast_starts_after_the_last_bucket(fleet: Store) -> None:
    # Five whole hours of 2 GPU-hours and a partial sixth: the partial one is not fitted
    # (GPU-hours), and the forecast starts at the bucket after it, not on it.
    r = analyze_trends(fleet, Window(D0, D0 + 5.5 * H), granularity="hour", metric="gpu_hours")
    assert [p.partial for p in r.series.points] == [False] * 5 + [True]
    assert r.forecast is not None
    assert (r.forecast.n, r.forecast.skipped) == (5, 1)
    assert [p.start_s for p in r.forecast.points[:2]] == [D0 + 6 * H, D0 + 7 * H]
    assert r.forecast.points[0].step == 1
    # The same for days: two whole days and half of the third, forecast from the fourth.
    daily = analyze_trends(fleet, Window(D0, D0 + 2.5 * DAY), metric="gpu_hours")
    assert daily.forecast is not None
    assert daily.forecast.points[0].start_s == D0 + 3 * DAY


def test_times_on_the_wire_are_whole_seconds(fleet: Store) -> None:
    assert iso(D0 + 0.999) == "2023-11-15T00:00:00Z"
    assert iso(D0 + 59.5) == "2023-11-15T00:00:59Z"
    assert iso(math.nan) is None
    # A window that starts mid-second: its first (partial) bucket and its edges.
    window = Window(D0 + 3600.127590, D0 + DAY + 0.5)
    wire = to_wire(utilization_series(fleet, window, granularity="hour"))
    assert wire["points"][0]["start"] == "2023-11-15T01:00:00Z"
    assert wire["points"][-1]["end"] == "2023-11-16T00:00:00Z"
    assert wire["window"]["start"] == "2023-11-15T01:00:00Z"
    assert all("." not in p["start"] and "." not in p["end"] for p in wire["points"])


def test_robust_slope_by_hand() -> None:
    # Pairwise slopes: six of 1, then 25, 33, 49, 97; the median is 1. Sen's 95 % interval
    # with n=5 (var 16.67, z*sigma 8.0) takes order statistics 0 and 9: [1, 97].
    pts = [(D0 + i * DAY, y) for i, y in enumerate([0.0, 1.0, 2.0, 3.0, 100.0])]
    s = robust_slope(pts)
    assert s.per_day == pytest.approx(1.0)
    assert (s.ci_low_per_day, s.ci_high_per_day) == (pytest.approx(1.0), pytest.approx(97.0))
    assert (s.direction, s.n) == ("rising", 5)
    assert s.at(D0 + 2 * DAY) == pytest.approx(2.0)  # through (median x, median y)
    wobble = [(D0 + i * DAY, y) for i, y in enumerate([5.0, 7.0, 5.0, 7.0, 5.0, 7.0])]
    assert robust_slope(wobble).direction == "flat"
    down = [(D0 + i * 3600, 50.0 - i) for i in range(10)]
    assert robust_slope(down).per_day == pytest.approx(-24.0)
    assert robust_slope(down).direction == "falling"


def test_robust_slope_needs_two_times() -> None:
    with pytest.raises(HistoryQueryError, match="at least two buckets"):
        robust_slope([(D0, 1.0), (D0, 2.0)])
    two = robust_slope([(D0, 1.0), (D0 + DAY, 3.0)])
    # No interval from two points, so no direction can be claimed.
    assert (two.per_day, two.ci_low_per_day, two.direction) == (2.0, None, "flat")


@given(
    n=st.integers(min_value=8, max_value=40),
    a=st.integers(min_value=-50, max_value=50),
    b=st.integers(min_value=-5, max_value=5),
    frac=st.floats(min_value=0.0, max_value=0.28),
    junk=st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=40, max_size=40),
    where=st.randoms(use_true_random=False),
)
def test_theil_sen_ignores_a_minority_of_outliers(
    n: int, a: int, b: int, frac: float, junk: list[float], where: object
) -> None:
    k = math.floor(frac * n)
    clean_pairs, all_pairs = (n - k) * (n - k - 1) // 2, n * (n - 1) // 2
    # Below the 29 % breakdown point the clean pairs are a majority of all pairs.
    assume(clean_pairs > all_pairs // 2 + 1)
    ys = [float(a + b * i) for i in range(n)]
    for j, i in enumerate(where.sample(range(n), k)):  # type: ignore[attr-defined]
        ys[i] = junk[j]
    s = robust_slope([(D0 + i * DAY, y) for i, y in enumerate(ys)])
    assert s.per_day == pytest.approx(b, abs=1e-9)


def test_change_points_by_hand() -> None:
    step = [(float(i), v) for i, v in enumerate([0.0] * 4 + [10.0] * 4)]
    (cp,) = change_points(step)
    # SSE 200 falls to 0. Noise variance from the differences [0,0,0,10,0,0,0] (MAD 0, so
    # their standard deviation): 14.29 / 2 = 7.14, so the score is 200 / 7.14 = 28.
    assert (cp.index, cp.ts_s, cp.before_mean, cp.after_mean) == (4, 4.0, 0.0, 10.0)
    assert cp.change == 10.0
    assert cp.score == pytest.approx(28.0)
    assert change_points(step, penalty=30.0) == []
    assert change_points([(float(i), 5.0) for i in range(12)]) == []
    alternating = [(float(i), (-1.0) ** i) for i in range(30)]
    assert change_points(alternating) == []


def test_change_points_finds_two_shifts_in_noise() -> None:
    noise = [0.3, -0.2, 0.1, -0.4, 0.2]
    values = [v + noise[i % 5] for i, v in enumerate([0.0] * 10 + [10.0] * 10 + [4.0] * 10)]
    cps = change_points([(D0 + i * DAY, v) for i, v in enumerate(values)])
    assert [c.index for c in cps] == [10, 20]
    assert cps[0].before_mean == pytest.approx(0.0, abs=0.1)
    assert cps[0].after_mean == pytest.approx(10.0, abs=0.1)
    assert cps[1].after_mean == pytest.approx(4.0, abs=0.1)
    assert cps[1].ts_s == D0 + 20 * DAY
    # A shift two points from the end: min_size 3 keeps segments of 3, so the split lands
    # one point early (index 7), with a mean of 6 after it; min_size 2 puts it at 8.
    short = [(float(i), v) for i, v in enumerate([0.0] * 8 + [9.0, 9.0])]
    (early,) = change_points(short)
    assert (early.index, early.after_mean) == (7, 6.0)
    (exact,) = change_points(short, min_size=2)
    assert (exact.index, exact.after_mean) == (8, 9.0)
