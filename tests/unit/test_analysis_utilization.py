"""Utilization analysis on a hand-written two-GPU, two-hour fleet, every number hand-computed.

The fleet (``write_hand_fleet``), one snapshot per minute from ``T0`` (an hour boundary):

* GPU A (``GPU-a``, H100, 80 GiB): held by ml-team/alice/train for both hours. Hour 1 at 80 %,
  hour 2 at 40 % for 30 min then 90 % for 30 min with a thermal throttle. Memory 40 GiB, and
  78 GiB (97.5 %) in the throttled half hour.
* GPU B (``GPU-b``, a model no price table knows): held by cv-team/bob/notebook for hour 1 at
  0 % with 20 GiB; hour 2 nobody holds it, 0 % for 30 min then 12 %, 0 bytes used.

Minutes of utilization: 60 @ 80, 30 @ 40, 30 @ 90 (A); 90 @ 0, 30 @ 12 (B) -- 240 GPU-minutes.
"""

from __future__ import annotations

import pytest

from gpufleet.analysis.history import HistoryQueryError, UnknownSubjectError
from gpufleet.analysis.scope import GROUP_KEYS, Scope, Window, hist_idle_s, hist_percentile
from gpufleet.analysis.utilization import analyze_utilization
from gpufleet.model import Attribution, GpuProcess, GpuSample, Snapshot
from gpufleet.store import Store

GIB = 1 << 30
T0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600
H100 = "NVIDIA H100 80GB HBM3"
ODD_MODEL = "Mystery GPU X"
TOTAL = 80 * GIB
HAND_WINDOW = Window(T0, T0 + 7200)


def _proc(namespace: str, user: str, workload: str, mem: int) -> GpuProcess:
    who = Attribution(namespace=namespace, user=user, workload=workload)
    return GpuProcess(pid=100, used_memory_bytes=mem, attribution=who)


def _gpu_a(minute: int) -> GpuSample:
    hot = minute >= 90
    util = 80.0 if minute < 60 else 40.0 if minute < 90 else 90.0
    mem = 78 * GIB if hot else 40 * GIB
    return GpuSample(
        uuid="GPU-a",
        index=0,
        name=H100,
        util_gpu_pct=util,
        mem_total_bytes=TOTAL,
        mem_used_bytes=mem,
        throttle_reasons=("hw_thermal_slowdown",) if hot else (),
        processes=(_proc("ml-team", "alice", "train", mem),),
    )


def _gpu_b(minute: int) -> GpuSample:
    held = minute < 60
    return GpuSample(
        uuid="GPU-b",
        index=1,
        name=ODD_MODEL,
        util_gpu_pct=0.0 if minute < 90 else 12.0,
        mem_total_bytes=TOTAL,
        mem_used_bytes=20 * GIB if held else 0,
        throttle_reasons=(),
        processes=(_proc("cv-team", "bob", "notebook", 20 * GIB),) if held else (),
    )


def write_hand_fleet(store: Store) -> None:
    """Write the fleet of the module docstring (120 one-minute snapshots of node ``n1``)."""
    store.write_snapshots(
        [
            Snapshot(
                ts_s=T0 + 60.0 * m,
                cluster="c1",
                node="n1",
                gpus=(_gpu_a(m), _gpu_b(m)),
                system=None,
                interval_s=60.0,
            )
            for m in range(120)
        ]
    )


@pytest.fixture
def fleet(store: Store) -> Store:
    write_hand_fleet(store)
    return store


def test_totals_of_the_hand_fleet(fleet: Store) -> None:
    r = analyze_utilization(fleet, HAND_WINDOW)
    assert (r.source, r.resolution, r.idle_method) == ("gpu_usage", "1m", "stored")
    assert r.gpus == 2
    assert r.gpu_hours == pytest.approx(4.0)
    assert r.allocated_gpu_hours == pytest.approx(3.0)
    assert r.unallocated_gpu_hours == pytest.approx(1.0)
    assert r.allocation_rate == pytest.approx(0.75)
    # Idle: B's 90 minutes at 0 %; idle allocated: the 60 of them bob held.
    assert r.idle_gpu_hours == pytest.approx(1.5)
    assert r.idle_allocated_gpu_hours == pytest.approx(1.0)
    assert r.idle_fraction == pytest.approx(90 / 240)
    # (60*80 + 30*40 + 30*90 + 90*0 + 30*12) / 240 minutes
    assert r.mean_gpu_util_pct == pytest.approx(9060 / 240)
    assert (r.samples, r.samples_basis) == (240, "gpu_samples")


def test_percentiles_come_from_the_histogram_within_a_bin(fleet: Store) -> None:
    r = analyze_utilization(fleet, HAND_WINDOW)
    assert r.p50_gpu_util_pct is not None
    assert r.p95_gpu_util_pct is not None
    # Bins (minutes): [0,5) 90, [10,15) 30, [40,45) 30, [80,85) 60, [90,95) 30.
    # p50: the 120th minute ends bin [10,15) -> 15; nearest-rank p50 of the readings is 12.
    assert r.p50_gpu_util_pct == pytest.approx(15.0)
    assert abs(r.p50_gpu_util_pct - 12.0) <= 5.0
    # p95: 228th minute is 18 of 30 into [90,95) -> 93, but no reading was above 90 (the
    # highest): capped there, which is also the nearest-rank p95.
    assert r.p95_gpu_util_pct == pytest.approx(90.0)


def test_memory_use_and_bottleneck_signs(fleet: Store) -> None:
    r = analyze_utilization(fleet, HAND_WINDOW)
    # A: 90 min at 50 %, 30 min at 97.5 %; B: 60 min at 25 %, 60 min at 0 %.
    assert r.mean_mem_used_pct == pytest.approx((90 * 50 + 30 * 97.5 + 60 * 25) / 240)
    assert r.p95_mem_used_pct == pytest.approx(97.5)
    assert r.peak_mem_used_pct == pytest.approx(97.5)
    b = r.bottlenecks
    assert b.throttled_fraction == pytest.approx(30 / 240)
    assert [(f.uuid, f.label, f.value) for f in b.throttled_gpus] == [
        ("GPU-a", "n1 GPU 0", pytest.approx(0.25))
    ]
    assert [(f.uuid, f.value) for f in b.mem_saturated_gpus] == [("GPU-a", pytest.approx(97.5))]
    assert b.mem_saturated_pct == 95.0


def test_under_and_over_utilized_gpus_with_their_thresholds(fleet: Store) -> None:
    r = analyze_utilization(fleet, HAND_WINDOW, under_pct=20.0, over_pct=70.0)
    assert (r.under_pct, r.over_pct) == (20.0, 70.0)
    (under,) = r.under_utilized
    assert (under.kind, under.key, under.label) == ("gpu", "GPU-b", "n1 GPU 1")
    assert under.mean_gpu_util_pct == pytest.approx(360 / 120)
    assert under.idle_fraction == pytest.approx(0.75)
    assert under.allocation_rate == pytest.approx(0.5)
    (over,) = r.over_utilized
    assert over.key == "GPU-a"
    assert over.mean_gpu_util_pct == pytest.approx(8700 / 120)
    assert analyze_utilization(fleet, HAND_WINDOW).over_utilized == ()


def test_group_by_namespace_uses_workload_rows(fleet: Store) -> None:
    r = analyze_utilization(fleet, HAND_WINDOW, by="namespace")
    rows = {g.key: g for g in r.groups}
    assert list(rows) == ["ml-team", "cv-team"]  # most GPU-hours first
    ml, cv = rows["ml-team"], rows["cv-team"]
    assert (ml.gpu_hours, ml.idle_gpu_hours, ml.allocation_rate) == (
        pytest.approx(2.0),
        pytest.approx(0.0),
        pytest.approx(1.0),
    )
    assert ml.mean_gpu_util_pct == pytest.approx(72.5)
    assert ml.p95_gpu_util_pct is None
    assert (cv.gpu_hours, cv.idle_gpu_hours, cv.idle_fraction) == (
        pytest.approx(1.0),
        pytest.approx(1.0),
        pytest.approx(1.0),
    )
    assert cv.mean_gpu_util_pct == pytest.approx(0.0)


def test_group_by_gpu_level_keys(fleet: Store) -> None:
    (node,) = analyze_utilization(fleet, HAND_WINDOW, by="node").groups
    assert (node.key, node.gpus, node.gpu_hours) == ("n1", 2, pytest.approx(4.0))
    assert node.idle_allocated_gpu_hours == pytest.approx(1.0)
    assert node.unallocated_gpu_hours == pytest.approx(1.0)
    models = {g.key: g for g in analyze_utilization(fleet, HAND_WINDOW, by="gpu_model").groups}
    assert set(models) == {H100, ODD_MODEL}
    assert models[H100].mean_gpu_util_pct == pytest.approx(72.5)
    # The 114th minute is 24/30 into [90,95) -> 94, capped at the highest reading, 90.
    assert models[H100].p95_gpu_util_pct == pytest.approx(90.0)
    assert models[ODD_MODEL].idle_fraction == pytest.approx(0.75)


def test_other_idle_threshold_reads_the_histogram(fleet: Store) -> None:
    at15 = analyze_utilization(fleet, HAND_WINDOW, idle_threshold_pct=15.0)
    assert at15.idle_method == "histogram"
    # Below 15 %: B's 90 min at 0 % and 30 min at 12 %; B held only the 0 % hour.
    assert at15.idle_gpu_hours == pytest.approx(2.0)
    assert at15.idle_allocated_gpu_hours == pytest.approx(1.0)
    # 12.5 % falls half-way into bin [10,15): half its 30 minutes are counted (interpolated).
    at12 = analyze_utilization(fleet, HAND_WINDOW, idle_threshold_pct=12.5)
    assert at12.idle_gpu_hours == pytest.approx(1.75)


def test_histogram_idle_time_and_percentiles_interpolate_inside_a_bin() -> None:
    hist = (10.0, 20.0) + (0.0,) * 18
    assert hist_idle_s(hist, 7.5) == pytest.approx(20.0)
    assert hist_percentile(hist, 0.5) == pytest.approx(6.25)  # 5 of bin [5,10)'s 20 s
    assert hist_percentile((0.0,) * 20, 0.5) is None


def test_long_window_reads_the_cut_hour_by_the_minute(fleet: Store) -> None:
    # 6.5 h ending half-way through hour 2: hourly buckets, the cut hour from its minutes.
    r = analyze_utilization(fleet, Window(T0 - 5 * 3600, T0 + 5400))
    assert r.resolution == "1h"
    assert r.gpu_hours == pytest.approx(3.0)
    # B: 3600 s idle in hour 1 and the first 30 minutes of hour 2, all at 0 %.
    assert r.idle_gpu_hours == pytest.approx(5400 / 3600)
    # Readings: hour 1 whole (60 a GPU), hour 2 prorated to its half (30 a GPU).
    assert (r.samples, r.samples_basis) == (180, "gpu_samples")


def _util_c(minute: int) -> float:
    """GPU C's utilization in minute ``minute``: uneven inside every hour (0 % .. 97 %)."""
    return float(minute * 37 % 98)


def test_windows_cut_mid_hour_add_up_to_what_the_samples_give(store: Store) -> None:
    """History that starts and ends mid-hour, read through windows cut mid-hour.

    GPU C is sampled every minute from T0 + 10 min to T0 + 7 h 20 min (the last sample is at
    that time), held by a process in its first 200 minutes. Windows of 6 hours or more read
    hourly buckets; a window that cuts an hour must count the samples of that hour in it,
    not the hour's samples scaled by the share of the hour inside the window (the last hour
    holds 20 minutes of samples, a window ending there would count a third of them).
    """
    first, last = 10, 440  # minutes after T0 of the first and the last sample
    store.write_snapshots(
        [
            Snapshot(
                ts_s=T0 + 60.0 * m,
                cluster="c1",
                node="n1",
                gpus=(
                    GpuSample(
                        uuid="GPU-c",
                        index=0,
                        name=H100,
                        util_gpu_pct=_util_c(m),
                        mem_total_bytes=TOTAL,
                        mem_used_bytes=GIB,
                        processes=(_proc("ml-team", "alice", "train", GIB),) if m < 210 else (),
                    ),
                ),
                system=None,
                interval_s=60.0,
            )
            for m in range(first, last + 1)
        ]
    )

    def from_samples(lo_min: float, hi_min: float) -> tuple[float, float, float]:
        """(GPU-hours, mean utilization %, idle GPU-hours) of the samples in the window."""
        ms = [m for m in range(first, last + 1) if lo_min <= m < hi_min]
        utils = [_util_c(m) for m in ms]
        idle = sum(1 for u in utils if u < 5.0)
        return len(ms) / 60, sum(utils) / len(ms), idle / 60

    def at(lo_min: float, hi_min: float, threshold: float) -> tuple[float, float, float]:
        r = analyze_utilization(
            store, Window(T0 + 60 * lo_min, T0 + 60 * hi_min), idle_threshold_pct=threshold
        )
        assert r.mean_gpu_util_pct is not None
        return r.gpu_hours, r.mean_gpu_util_pct, r.idle_gpu_hours

    end = last  # mid-hour, at the last sample (which it leaves out)
    for threshold in (5.0, 10.0):  # the stored idle seconds (summed rows), the histogram
        whole = at(0, end, threshold)
        assert analyze_utilization(store, Window(T0, T0 + 60 * end)).resolution == "1h"
        if threshold == 5.0:
            assert whole == pytest.approx(from_samples(0, end))
        # A window starting at the first sample, mid-hour, is the one starting on the hour.
        assert at(first, end, threshold) == pytest.approx(whole)
        # Past the last sample, mid-hour: every sample.
        assert at(0, last + 5, threshold)[0] == pytest.approx((last - first + 1) / 60)
        for mid in (390, 390 + 1 / 3, 250):  # mid-hour: on a minute, inside one
            (h1, u1, i1), (h2, u2, i2) = at(0, mid, threshold), at(mid, end, threshold)
            assert h1 + h2 == pytest.approx(whole[0])
            assert (h1 * u1 + h2 * u2) / (h1 + h2) == pytest.approx(whole[1])
            assert i1 + i2 == pytest.approx(whole[2])
            if threshold == 5.0 and mid == int(mid):
                assert (h1, u1, i1) == pytest.approx(from_samples(0, mid))
                assert (h2, u2, i2) == pytest.approx(from_samples(mid, end))
    # Workload rows exist only by the hour: the last one, cut where its history ends, counts
    # whole; alice held the GPU from minute 10 to minute 209.
    alice = analyze_utilization(
        store, Window(T0 + 60 * first, T0 + 60 * end), scope=Scope(user="alice")
    )
    assert alice.gpu_hours == pytest.approx(200 / 60)


def test_workload_scope_uses_workload_rows_and_prorates_hours(fleet: Store) -> None:
    r = analyze_utilization(fleet, HAND_WINDOW, scope=Scope(namespace="cv-team"))
    assert (r.source, r.idle_method, r.samples_basis) == (
        "workload_usage",
        "workload_rows",
        "workload_samples",
    )
    assert (r.gpu_hours, r.idle_gpu_hours, r.allocation_rate) == (
        pytest.approx(1.0),
        pytest.approx(1.0),
        pytest.approx(1.0),
    )
    assert r.samples == 60
    assert r.peak_mem_used_pct == pytest.approx(25.0)
    assert [e.key for e in r.under_utilized] == ["cv-team/bob/notebook"]
    # Half of each hourly row of alice: hour 1 at 80 %, hour 2 at a mean of 65 %.
    half = analyze_utilization(fleet, Window(T0 + 1800, T0 + 5400), scope=Scope(user="alice"))
    assert half.gpu_hours == pytest.approx(1.0)
    assert half.mean_gpu_util_pct == pytest.approx(72.5)


def test_gpu_level_scopes(fleet: Store) -> None:
    r = analyze_utilization(fleet, HAND_WINDOW, scope=Scope(gpu="GPU-b"))
    assert (r.gpus, r.gpu_hours, r.idle_fraction) == (1, pytest.approx(2.0), pytest.approx(0.75))
    by_index = analyze_utilization(fleet, HAND_WINDOW, scope=Scope(node="n1", gpu="1"))
    assert by_index.gpu_hours == pytest.approx(2.0)
    h100 = analyze_utilization(fleet, HAND_WINDOW, scope=Scope(gpu_model="h100"))
    assert h100.mean_gpu_util_pct == pytest.approx(72.5)


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        (
            Scope(namespace="ml-teem"),
            "no namespace 'ml-teem' in 2023-11-14 22:00..2023-11-15 "
            "00:00; namespaces: cv-team, ml-team",
        ),
        (Scope(node="n9"), "no node 'n9' in 2023-11-14 22:00..2023-11-15 00:00; nodes: n1"),
        (Scope(cluster="c9"), "clusters: c1"),
        (Scope(gpu_model="A100"), f"GPU models: {ODD_MODEL}, {H100}"),
        (Scope(namespace="ml-team", user="bob"), "no user 'bob' in"),
        (Scope(gpu="GPU-zz"), "known GPUs: n1:0, n1:1"),
    ],
)
def test_unknown_scope_values_list_what_exists(fleet: Store, scope: Scope, message: str) -> None:
    with pytest.raises(UnknownSubjectError, match=r"^no |known GPUs") as err:
        analyze_utilization(fleet, HAND_WINDOW, scope=scope)
    assert message in str(err.value)


def test_bad_requests_are_422_errors(fleet: Store) -> None:
    with pytest.raises(HistoryQueryError, match="unknown group-by key 'team'; use one of: "):
        analyze_utilization(fleet, HAND_WINDOW, by="team")
    with pytest.raises(HistoryQueryError, match="idle_threshold_pct must be between 0 and 100"):
        analyze_utilization(fleet, HAND_WINDOW, idle_threshold_pct=120.0)
    with pytest.raises(HistoryQueryError, match="must be after its start"):
        Window(T0, T0)
    assert "gpu_model" in GROUP_KEYS
    assert Window(T0 - T0 % 86_400, T0 - T0 % 86_400 + 7 * 86_400).label() == (
        "2023-11-14..2023-11-21"
    )


def test_empty_window_gives_zeros_and_nones(fleet: Store) -> None:
    r = analyze_utilization(fleet, Window(T0 + 7200, T0 + 9000))
    assert (r.gpu_hours, r.allocation_rate, r.mean_gpu_util_pct) == (0.0, None, None)
    assert (r.p50_gpu_util_pct, r.mean_mem_used_pct, r.groups) == (None, None, ())
