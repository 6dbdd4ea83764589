"""Forecasts on hand-made series: exact patterns, hand-computed intervals, and fallbacks."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpufleet.analysis.forecast import forecast


@given(
    pattern=st.lists(st.floats(min_value=0.0, max_value=100.0), min_size=2, max_size=12),
    cycles=st.integers(min_value=2, max_value=5),
    extra=st.integers(min_value=0, max_value=11),
)
def test_a_pure_seasonal_pattern_is_reproduced(
    pattern: list[float], cycles: int, extra: int
) -> None:
    m = len(pattern)
    n = cycles * m + extra % m  # may end part-way through a season
    values = [pattern[t % m] for t in range(n)]
    f = forecast(values, horizon=2 * m, season=m, bounds=(0.0, 100.0))
    assert (f.method, f.season) == ("seasonal_trend", m)
    for p in f.points:
        expected = pattern[(n - 1 + p.step) % m]
        assert p.value == pytest.approx(expected, abs=1e-6)
        # No noise and no trend: the intervals collapse onto the pattern.
        assert p.lo95 == pytest.approx(expected, abs=1e-6)
        assert p.hi95 == pytest.approx(expected, abs=1e-6)


def test_seasonal_pattern_on_a_trend_is_extrapolated() -> None:
    pattern = [0.0, 6.0, 2.0, -8.0]
    values = [10.0 + 0.5 * t + pattern[t % 4] for t in range(12)]
    f = forecast(values, horizon=4, season=4)
    assert f.trend_per_step == pytest.approx(0.5)
    assert list(f.seasonal_profile) == pytest.approx(pattern)
    assert [p.value for p in f.points] == pytest.approx(
        [10.0 + 0.5 * t + pattern[t % 4] for t in range(12, 16)]
    )


def test_intervals_by_hand() -> None:
    # Theil-Sen through 0,1,2,3,10: slope 1 (median of 1,1,1,1,1,1,2.5,3,4,7), intercept
    # median(y) - 1 * median(t) = 0, residuals 0,0,0,0,6. Five residuals are too few for
    # their quantiles: the interval is +- t(3) x s x sqrt(1 + 1/5), s = sqrt(36 / 3).
    f = forecast([0.0, 1.0, 2.0, 3.0, 10.0], horizon=2)
    assert (f.method, f.season, f.note) == ("trend", None, "")
    one, two = f.points
    assert one.value == pytest.approx(5.0)
    scale = math.sqrt(12.0) * math.sqrt(1.2)
    # 80 %: t 1.638; Sen's 80 % slope bounds are slopes[1] = 1 and slopes[8] = 4, so h
    # steps out the upper bound moves by 3 h (the lower one not at all).
    assert (one.lo80, one.hi80) == (
        pytest.approx(5.0 - 1.638 * scale),
        pytest.approx(5.0 + 1.638 * scale + 3),
    )
    # 95 %: t 3.182; slope bounds slopes[0] = 1 and slopes[9] = 7.
    assert (one.lo95, one.hi95) == (
        pytest.approx(5.0 - 3.182 * scale),
        pytest.approx(5.0 + 3.182 * scale + 6),
    )
    assert two.value == pytest.approx(6.0)
    assert two.hi95 == pytest.approx(6 + 3.182 * scale + 12)


def test_many_residuals_give_their_own_quantiles() -> None:
    # 40 points on a line with one residual of +8 every 10th point: from 30 residuals on,
    # the intervals are the residuals' quantiles (inflated), lopsided as the data are.
    values = [float(t) + (8.0 if t % 10 == 9 else 0.0) for t in range(40)]
    f = forecast(values, horizon=1)
    p = f.points[0]
    assert f.n == 40
    # Every residual is one value or 8 above it: the interval reaches far up, little down.
    assert p.hi95 - p.value > 5.0
    assert p.value - p.lo95 < 2.0


def test_intervals_nest_and_widen_with_the_horizon() -> None:
    wiggle = [3.0, -1.0, 4.0, -2.0, 0.5, -3.5, 2.0]
    values = [50.0 + 0.2 * t + wiggle[t % 7] * (1 + t % 3) for t in range(60)]
    f = forecast(values, horizon=10)
    widths = []
    for p in f.points:
        assert p.lo95 <= p.lo80 <= p.value <= p.hi80 <= p.hi95
        widths.append(p.hi95 - p.lo95)
    assert widths == sorted(widths)
    assert f.residual_sd is not None
    assert f.residual_sd > 0


def test_bounds_clamp_values_and_intervals() -> None:
    f = forecast([60.0, 70.0, 80.0, 90.0], horizon=3, bounds=(0.0, 100.0))
    assert [p.value for p in f.points] == [100.0, 100.0, 100.0]
    assert all(p.hi95 == 100.0 for p in f.points)


def test_too_short_for_a_season_falls_back_to_the_trend() -> None:
    f = forecast([1.0, 2.0, 3.0, 4.0, 5.0], horizon=1, season=7)
    assert (f.method, f.season, f.season_requested) == ("trend", None, 7)
    assert "fewer than two seasons of 7" in f.note
    assert f.points[0].value == pytest.approx(6.0)


def test_a_flat_slope_forecasts_the_level_with_residual_intervals() -> None:
    # No shift and a slope interval around 0: the median 10.5 goes on, with intervals from
    # the residuals -1.5, -0.5, 0.5, 1.5 (each twice): +- t(7) x s x sqrt(1 + 1/8), with
    # s = sqrt(10 / 7) over 7 degrees of freedom (one level fitted).
    f = forecast([10.0, 12.0, 9.0, 11.0, 10.0, 12.0, 9.0, 11.0], horizon=3)
    assert (f.method, f.season, f.trend_per_step) == ("level", None, 0.0)
    assert "median of the 8 points, not the slope" in f.note
    scale = math.sqrt(10 / 7) * math.sqrt(1 + 1 / 8)
    for p in f.points:
        assert p.value == pytest.approx(10.5)
        half = 1.415 * scale
        assert (p.lo80, p.hi80) == (pytest.approx(10.5 - half), pytest.approx(10.5 + half))
        # No trend term: the interval does not widen with the horizon.
        half = 2.365 * scale
        assert (p.lo95, p.hi95) == (pytest.approx(10.5 - half), pytest.approx(10.5 + half))


def test_a_flat_trend_after_a_shift_forecasts_the_recent_level() -> None:
    # As the demo's last week: a week's season cannot be fitted to 8 days, Sen's slope
    # (-4.8 a day) is flat by its interval, and the level fell on day 6. The forecast is the
    # median since the shift, not a line down to 0 % (the old ``trend`` forecast).
    values = [37.4, 39.9, 37.0, 37.9, 37.7, 11.1, 16.3, 5.7]
    f = forecast(values, horizon=7, season=7, bounds=(0.0, 100.0), flat_trend=True)
    assert (f.method, f.season, f.season_requested) == ("level", None, 7)
    assert "fewer than two seasons of 7" in f.note
    assert "median of the 3 points since the last shift" in f.note
    assert [p.value for p in f.points] == [pytest.approx(11.1)] * 7
    assert all(p.lo95 <= p.lo80 <= p.value <= p.hi80 <= p.hi95 for p in f.points)
    # Judged by the fitted line's own interval, the same.
    assert forecast(values, horizon=1, season=7).method == "level"
    # The caller's judgement wins: a rising trend is extrapolated even if the line is flat.
    assert forecast(values, horizon=1, season=7, flat_trend=False).method == "trend"


def test_a_season_is_kept_whatever_the_slope() -> None:
    pattern = [5.0, -5.0, 0.0, 2.0]
    f = forecast([50.0 + pattern[t % 4] for t in range(12)], horizon=4, season=4, flat_trend=True)
    assert (f.method, f.season) == ("seasonal_trend", 4)


def test_skipped_buckets_are_not_forecast() -> None:
    # The line 0, 1, 2, 3, 10 (slope 1, intercept 0) with one bucket skipped: the first
    # point is two steps past the last value, at 6, and is stamped with the given start.
    f = forecast([0.0, 1.0, 2.0, 3.0, 10.0], horizon=2, skip=1, start_s=500.0, step_s=100.0)
    assert f.skipped == 1
    assert [(p.step, p.start_s, p.value) for p in f.points] == [
        (1, 500.0, pytest.approx(6.0)),
        (2, 600.0, pytest.approx(7.0)),
    ]
    # Its interval is that of two steps ahead (see test_intervals_by_hand).
    assert f.points[0].hi95 == pytest.approx(6 + 3.182 * math.sqrt(12.0 * 1.2) + 12)
    with pytest.raises(ValueError, match="skip"):
        forecast([1.0, 2.0], horizon=1, skip=-1)


def test_two_points_give_a_flat_forecast_with_a_wide_interval() -> None:
    f = forecast([40.0, 60.0], horizon=2, start_s=1000.0, step_s=3600.0)
    assert f.method == "flat"
    assert "2 point(s)" in f.note
    # Mean 50; the 95 % half-width is max(range 20, |mean| 50) = 50, the 80 % one 25.
    p = f.points[1]
    assert (p.value, p.lo80, p.hi80, p.lo95, p.hi95) == (50.0, 25.0, 75.0, 0.0, 100.0)
    assert [q.start_s for q in f.points] == [1000.0, 4600.0]
    bounded = forecast([5.0], horizon=1, bounds=(0.0, 100.0))
    assert (bounded.points[0].lo95, bounded.points[0].hi95) == (0.0, 100.0)


@pytest.mark.parametrize(
    ("values", "kw", "match"),
    [
        ([], {"horizon": 1}, "empty"),
        ([1.0, math.nan], {"horizon": 1}, "non-finite"),
        ([1.0, 2.0], {"horizon": 0}, "horizon"),
        ([1.0, 2.0], {"horizon": 1, "season": 1}, "season"),
    ],
)
def test_bad_input_is_refused(values: list[float], kw: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        forecast(values, **kw)
