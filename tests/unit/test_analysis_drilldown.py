"""Drill-down on a hand-written four-hour fleet, and on the demo history's planted findings.

The fleet (``write_shift``): node ``n1``, GPUs A, B, C, a snapshot every 10 minutes from
``T0``. ``before`` is hours 0-1, ``after`` hours 2-3.

* before: ml/ua runs j1 on A and j2 on B at 90 %; ml/ub runs k1 on C at 30 %.
* after: ml/ua runs j3 on A at 90 % for hour 2 only; ml/ub's k1 goes on; cv/uc runs m1 on B
  at 60 %.

GPU-hours held: 6 -> 5 (ml 6 -> 3: ua 4 -> 1, ub 2 -> 2; cv 0 -> 2). Utilization of held
time: (4 x 90 + 2 x 30) / 6 = 70 -> (90 + 2 x 30 + 2 x 60) / 5 = 54.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpufleet.agent.demo import DemoSummary, write_demo
from gpufleet.analysis.drilldown import DrillNode, drill_down
from gpufleet.analysis.history import HistoryQueryError, UnknownSubjectError
from gpufleet.analysis.scope import Scope, Window
from gpufleet.analysis.trends import analyze_trends, utilization_series
from gpufleet.model import Attribution, GpuProcess, GpuSample, Snapshot
from gpufleet.store import Store, open_store

T0 = 1_700_006_400.0
H = 3600.0
STEP = 600.0
BEFORE, AFTER = Window(T0, T0 + 2 * H), Window(T0 + 2 * H, T0 + 4 * H)


def _gpu(uuid: str, index: int, util: float, job: tuple[str, str, str] | None) -> GpuSample:
    procs = ()
    if job is not None:
        who = Attribution(namespace=job[0], user=job[1], workload=job[2])
        procs = (GpuProcess(pid=10 + index, used_memory_bytes=1 << 30, attribution=who),)
    return GpuSample(
        uuid=uuid,
        index=index,
        name="H100",
        util_gpu_pct=util,
        mem_total_bytes=80 << 30,
        mem_used_bytes=1 << 30,
        processes=procs,
    )


def _at(hour: int) -> tuple[GpuSample, ...]:
    if hour < 2:
        a, b = ("ml", "ua", "j1"), ("ml", "ua", "j2")
        return _gpu("A", 0, 90, a), _gpu("B", 1, 90, b), _gpu("C", 2, 30, ("ml", "ub", "k1"))
    a_job = ("ml", "ua", "j3") if hour == 2 else None
    return (
        _gpu("A", 0, 90 if a_job else 0, a_job),
        _gpu("B", 1, 60, ("cv", "uc", "m1")),
        _gpu("C", 2, 30, ("ml", "ub", "k1")),
    )


def write_shift(store: Store) -> None:
    """Write the fleet of the module docstring."""
    store.write_snapshots(
        [
            Snapshot(T0 + k * STEP, "c1", "n1", _at(int(k * STEP // H)), None, STEP)
            for k in range(int(4 * H / STEP))
        ]
    )


@pytest.fixture
def fleet(store: Store) -> Store:
    write_shift(store)
    return store


def _sums_hold(node: DrillNode) -> None:
    """Listed and unlisted children's contributions add up to the node's change."""
    if node.child_level is not None and node.change is not None:
        listed = sum(c.contribution for c in node.children)
        assert listed + node.other_contribution == pytest.approx(node.change)
    for c in node.children:
        _sums_hold(c)


def test_gpu_hours_are_attributed_down_to_the_jobs(fleet: Store) -> None:
    d = drill_down(fleet, BEFORE, AFTER)
    root = d.root
    assert (root.level, root.name, d.levels, d.unit) == (
        "cluster",
        "c1",
        ("namespace", "user", "workload"),
        "gpu_hours",
    )
    assert (root.before, root.after, root.change) == (
        pytest.approx(6.0),
        pytest.approx(5.0),
        pytest.approx(-1.0),
    )
    ml, cv = root.children
    assert (ml.name, ml.contribution, ml.share_of_total_change) == (
        "ml",
        pytest.approx(-3.0),
        pytest.approx(3.0),
    )
    assert (cv.name, cv.contribution, cv.before, cv.change_pct) == ("cv", 2.0, 0.0, None)
    ua, ub = ml.children
    assert (ua.name, ua.path, ua.contribution, ua.share_of_parent_change) == (
        "ua",
        "c1/ml/ua",
        pytest.approx(-3.0),
        pytest.approx(1.0),
    )
    assert (ub.contribution, ub.children, ub.child_level) == (0.0, (), None)
    assert (ua.jobs_before, ua.jobs_after) == (2, 1)
    assert (ua.jobs_started_before, ua.jobs_started_after) == (2, 1)
    # k1 ran in the hour before ``after`` began: running, but not started, in it.
    assert (ub.jobs_after, ub.jobs_started_after) == (1, 0)
    assert [(j.name, j.contribution) for j in ua.children] == [
        ("j1", -2.0),
        ("j2", -2.0),
        ("j3", 1.0),
    ]
    assert [n.name for n in d.path] == ["c1", "ml", "ua", "j1"]
    assert ml.summary == "ml GPU-hours fell 50 % (6 -> 3); ua: 2 -> 1 jobs"
    assert ua.summary.startswith("ua GPU-hours fell 75 % (4 -> 1); 2 -> 1 jobs started")
    _sums_hold(root)


def test_utilization_change_splits_into_mix_and_rate(fleet: Store) -> None:
    d = drill_down(fleet, BEFORE, AFTER, metric="utilization", levels=("namespace",))
    root = d.root
    assert (root.before, root.after, root.change) == (
        pytest.approx(70.0),
        pytest.approx(54.0),
        pytest.approx(-16.0),
    )
    ml, cv = root.children
    # ml: share 1 -> 0.6, 70 -> 50 %; midpoints: share 0.8, ml 60 %, fleet 62 %.
    assert ml.mix_effect == pytest.approx((0.6 - 1.0) * (60.0 - 62.0))
    assert ml.rate_effect == pytest.approx(0.8 * (50.0 - 70.0))
    assert ml.contribution == pytest.approx(-15.2)
    # cv is new: it keeps 60 % on both sides, and its 40 % share is below-average time.
    assert (cv.mix_effect, cv.rate_effect) == (pytest.approx(0.4 * (60.0 - 62.0)), 0.0)
    assert ml.contribution + cv.contribution == pytest.approx(root.change)
    assert cv.summary == "cv utilization had no GPU-time before (- -> 60.0 %)"


def test_a_before_window_history_barely_covers_is_not_compared(fleet: Store) -> None:
    # The history starts at T0: the two hours before T0 + 30 min hold only their last half
    # hour, so "GPU-hours rose 300 %" would compare 30 minutes with two hours.
    d = drill_down(fleet, Window(T0 - 1.5 * H, T0 + 0.5 * H), Window(T0 + 0.5 * H, T0 + 2.5 * H))
    note = "only 30 minutes of history in the 2 hours before 2023-11-15 00:30; not compared"
    assert (d.note, d.history_coverage) == (note, pytest.approx(0.25))
    assert (d.root.before, d.root.after) == (pytest.approx(1.5), pytest.approx(6.0))
    assert d.root.summary == f"c1 GPU-hours (2 -> 6): {note}"
    ml = d.root.children[0]
    assert ml.summary == "ml GPU-hours (2 -> 6): not compared"

    def no_relative_change(node: DrillNode) -> None:
        assert node.change_pct is None
        assert "%" not in node.summary
        for c in node.children:
            no_relative_change(c)

    no_relative_change(d.root)
    # The attribution's arithmetic is kept.
    _sums_hold(d.root)
    # Covered windows carry no note.
    covered = drill_down(fleet, BEFORE, AFTER)
    assert (covered.note, covered.history_coverage) == ("", 1.0)


def test_a_fixed_namespace_is_not_drilled_again(fleet: Store) -> None:
    d = drill_down(fleet, BEFORE, AFTER, scope=Scope(namespace="ml"), top=1)
    assert (d.root.level, d.root.name, d.levels) == ("namespace", "ml", ("user", "workload"))
    (ua,) = d.root.children
    assert (ua.name, d.root.other_children, d.root.other_contribution) == ("ua", 1, 0.0)
    assert [j.name for j in ua.children] == ["j1"]
    assert (ua.other_children, ua.other_contribution) == (2, pytest.approx(-1.0))
    _sums_hold(d.root)


def test_children_carry_their_share_of_the_parents_gpu_time(fleet: Store) -> None:
    d = drill_down(fleet, BEFORE, AFTER, metric="utilization", levels=("namespace",))
    ml, cv = d.root.children
    # The w of the mix term: ml held all GPU-time before and 60 % after, cv the other 40 %.
    assert (ml.weight_before, ml.weight_after) == (pytest.approx(1.0), pytest.approx(0.6))
    assert (cv.weight_before, cv.weight_after) == (pytest.approx(0.0), pytest.approx(0.4))
    assert (d.root.weight_before, d.root.weight_after) == (None, None)


def test_a_users_drill_down_walks_only_what_lies_below_it(fleet: Store) -> None:
    d = drill_down(fleet, BEFORE, AFTER, scope=Scope(user="ua"))
    assert (d.root.level, d.levels) == ("user", ("workload",))
    assert [c.name for c in d.root.children] == ["j1", "j2", "j3"]


def test_bad_requests_say_what_to_fix(fleet: Store) -> None:
    with pytest.raises(HistoryQueryError, match="unknown metric"):
        drill_down(fleet, BEFORE, AFTER, metric="idle")  # type: ignore[arg-type]
    with pytest.raises(HistoryQueryError, match="levels must be distinct"):
        drill_down(fleet, BEFORE, AFTER, levels=("node",))
    with pytest.raises(HistoryQueryError, match="at least 1"):
        drill_down(fleet, BEFORE, AFTER, top=0)
    with pytest.raises(UnknownSubjectError, match="no namespace 'nope'"):
        drill_down(fleet, BEFORE, AFTER, scope=Scope(namespace="nope"))


# The demo history: 2 nodes x 8 GPUs is the smallest demo in which user_a's jobs fit (on
# 2 x 4 GPUs no two-GPU job of hers is ever placed, so the planted drop is empty).
DEMO_END = 1_767_225_600.0  # 2026-01-01 00:00 UTC: the weeks start on hour boundaries


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[Store, DemoSummary]]:
    folder = Path(tempfile.mkdtemp(prefix="gpufleet-demo-"))
    store = open_store(str(folder / "demo.db"))
    try:
        summary = write_demo(
            store, days=15, nodes=2, gpus=8, seed=0, interval_s=600, end_s=DEMO_END
        )
        yield store, summary
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_demo_team_drop_is_traced_to_user_a(demo: tuple[Store, DemoSummary]) -> None:
    store, summary = demo
    truth = summary.truth.team_drop
    assert truth is not None
    before = Window(truth.previous_start_s, truth.last_start_s)
    after = Window(truth.last_start_s, truth.last_end_s)
    d = drill_down(store, before, after)
    team = d.root.children[0]
    assert team.name == truth.namespace
    assert team.change_pct is not None
    assert team.change_pct == pytest.approx(-truth.drop_pct, abs=3.0)
    user = team.children[0]
    assert user.name == truth.user
    assert (user.jobs_started_before, user.jobs_started_after) == (
        truth.previous_jobs,
        truth.last_jobs,
    )
    assert f"{truth.user}: {truth.previous_jobs} -> {truth.last_jobs} jobs" in team.summary
    for other in d.root.children[1:]:
        assert other.change_pct is not None
        assert abs(other.change_pct) < 10.0, other.summary
    _sums_hold(d.root)


@pytest.mark.slow
def test_demo_production_peaks_in_the_afternoon(demo: tuple[Store, DemoSummary]) -> None:
    store, summary = demo
    peak = summary.truth.diurnal.peak_hour_utc
    window = Window(DEMO_END - 14 * 86_400, DEMO_END)
    prod = Scope(namespace=summary.truth.diurnal.namespace)
    series = utilization_series(store, window, scope=prod, granularity="hour")
    by_hour: dict[int, list[float]] = {}
    for p in series.points:
        if p.value is not None:
            by_hour.setdefault(int(p.start_s % 86_400 // 3600), []).append(p.value)
    means = {h: sum(v) / len(v) for h, v in by_hour.items()}
    assert abs(max(means, key=means.__getitem__) - peak) <= 1
    r = analyze_trends(store, window, scope=prod, granularity="hour")
    assert r.forecast is not None
    # Two weeks of hours: a daily season (a weekly one needs four weeks).
    assert (r.forecast.method, r.forecast.season) == ("seasonal_trend", 24)
    profile = r.forecast.seasonal_profile  # phase 0 is the window's first hour, 00:00 UTC
    assert abs(max(range(24), key=profile.__getitem__) - peak) <= 1
    # The daily cycle is seasonality, not a series of shifts; what remains are a few level
    # shifts of daily means between working days and weekends.
    assert len(r.change_points) <= 4
