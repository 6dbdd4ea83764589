"""Each strategy's behaviour on scripted readings (no threads: check_once drives the manager)."""

from __future__ import annotations

import pytest
from tests.unit.resources_script import T0, ScriptedReader, ramp

from gpufleet.resources import (
    AdaptiveStrategy,
    DynamicStrategy,
    PredictiveStrategy,
    ResourceLimits,
    ResourceManager,
)
from gpufleet.resources.strategies import fit_trend


def _manager(readings, limits, strategy="dynamic", **kw):
    reader = ScriptedReader(readings, step_s=kw.pop("step_s", 1.0))
    return ResourceManager(limits=limits, strategy=strategy, reader=reader, **kw), reader


def _run(manager, checks):
    out = []
    for _ in range(checks):
        out.extend(manager.check_once())
    return out


def test_dynamic_warns_near_a_limit_then_reports_excess_duration_and_recovery():
    memory = [850, 920, 1100, 1150, 1200, 800]
    m, _ = _manager([{"memory_used_mb": v} for v in memory], ResourceLimits(max_memory_mb=1000))
    reports = _run(m, len(memory))
    kinds = [(r.kind, r.value) for r in reports]
    assert kinds == [
        ("approaching", 920.0),
        ("exceeded", 1100.0),
        ("recovered", 800.0),
    ]
    exceeded = reports[1]
    assert exceeded.limit == "max_memory_mb"
    assert exceeded.metric == "memory_used_mb"
    assert exceeded.excess == pytest.approx(100.0)
    assert exceeded.excess_pct == pytest.approx(10.0)
    assert exceeded.duration_s == 0.0
    assert "over max_memory_mb 1000.0 MB by 100.0 MB" in exceeded.message
    # Over from the 3rd reading (T0+2) to the 6th (T0+5), when it was back under.
    assert reports[2].started_s == T0 + 2
    assert reports[2].duration_s == pytest.approx(3.0)
    assert "after 3.0 s" in reports[2].message
    assert m.get_violations() == reports


def test_sustain_ignores_short_spikes_and_repeat_reports_a_lasting_excess():
    cpu = [95, 50, 95, 95, 95, 95, 95, 95]
    limits = ResourceLimits(max_cpu_percent=80, sustain_s=2, repeat_s=3)
    m, _ = _manager([{"cpu_percent": v} for v in cpu], limits)
    reports = [r for r in _run(m, len(cpu)) if r.kind == "exceeded"]
    # The 1-reading spike never lasted 2 s; the run from T0+2 counts at T0+4, again at T0+7.
    assert [r.at_s - T0 for r in reports] == [4.0, 7.0]
    assert [r.duration_s for r in reports] == [2.0, 5.0]
    assert "by 15.0 points" in reports[0].message


def test_predictive_warns_with_the_time_the_trend_reaches_the_limit():
    # +20 MB/s from 500 MB: 1000 MB is reached 25 s after the first reading.
    m, _ = _manager(
        ramp("memory_used_mb", 500, 20, 8), ResourceLimits(max_memory_mb=1000), "predictive"
    )
    reports = _run(m, 8)
    predicted = [r for r in reports if r.kind == "predicted"]
    assert predicted, reports
    first = predicted[0]
    # Five readings are needed for a fit; the 5th is at T0+4 and the line hits 1000 at T0+25.
    assert first.at_s == T0 + 4
    assert first.predicted_at_s == pytest.approx(T0 + 25)
    assert "in 21 s" in first.message
    assert m.forecast("memory_used_mb", 10) == pytest.approx(500 + 20 * 17)


def test_predictive_stays_quiet_on_noise_falling_readings_and_far_crossings():
    noisy = [{"memory_used_mb": v} for v in (600, 640, 590, 655, 585, 650, 600, 645)]
    m, _ = _manager(noisy, ResourceLimits(max_memory_mb=1000), "predictive")
    assert _run(m, 8) == []
    falling = ramp("memory_used_mb", 900, -10, 8)
    m, _ = _manager(falling, ResourceLimits(max_memory_mb=1000), "predictive")
    assert _run(m, 8) == []
    slow = ramp("memory_used_mb", 100, 1, 8)  # 1 MB/s: 1000 MB is 15 minutes away
    m, _ = _manager(slow, ResourceLimits(max_memory_mb=1000), "predictive")
    assert _run(m, 8) == []


def test_adaptive_stretches_the_interval_while_steady_and_shortens_it_on_change():
    steady = [{"cpu_percent": 20.0}] * 8
    jump = [{"cpu_percent": 20.0}, {"cpu_percent": 60.0}]
    m, _ = _manager(steady + jump, ResourceLimits(), "adaptive", monitoring_interval=1.0)
    intervals = []
    for _ in range(10):
        m.check_once()
        intervals.append(m.interval_s)
    # Steady readings: 1.5x per check up to 4x the configured interval.
    assert intervals[:5] == pytest.approx([1.0, 1.5, 2.25, 3.375, 4.0])
    assert intervals[7] == 4.0
    # A 40-point jump halves it.
    assert intervals[9] == pytest.approx(2.0)


def test_adaptive_checks_as_often_as_allowed_near_a_limit():
    readings = [{"memory_used_mb": 500.0}] * 3 + [{"memory_used_mb": 850.0}]
    m, _ = _manager(
        readings, ResourceLimits(max_memory_mb=1000), AdaptiveStrategy(min_interval_s=0.2)
    )
    _run(m, 3)
    assert m.interval_s > 1.0
    m.check_once()
    assert m.interval_s == 0.2


def test_fit_trend_reads_slope_and_fit_quality():
    reader = ScriptedReader(ramp("gpu_memory_mb", 0, 5, 4))
    readings = [reader.read() for _ in range(4)]
    trend = fit_trend(readings, "gpu_memory_mb")
    assert trend is not None
    assert trend.slope_per_s == pytest.approx(5.0)
    assert trend.r2 == pytest.approx(1.0)
    assert fit_trend(readings[:1], "gpu_memory_mb") is None
    assert fit_trend(readings, "power_watts") is None  # never read: None, not 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DynamicStrategy(warn_fraction=1.5), "warn_fraction"),
        (lambda: PredictiveStrategy(window=3, min_points=5), "min_points"),
        (lambda: PredictiveStrategy(horizon_s=0), "horizon_s"),
        (lambda: AdaptiveStrategy(fast_change=0.01, slow_change=0.05), "slow_change"),
    ],
)
def test_strategy_options_are_checked(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_unknown_strategy_names_the_choices():
    with pytest.raises(ValueError, match="dynamic, predictive, adaptive, cooperative"):
        ResourceManager(strategy="greedy", reader=ScriptedReader([{}]))


def test_none_readings_never_count_as_over_or_zero():
    m, _ = _manager([{"gpu_memory_mb": None}] * 3, ResourceLimits(max_gpu_memory_mb=10))
    assert _run(m, 3) == []
    assert m.headroom() == {}
    assert "gpu_memory_mb" not in m.summary()
