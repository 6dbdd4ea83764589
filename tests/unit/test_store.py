"""The Store contract, run on every backend (``store`` is parametrized: sqlite, postgres).

Expected rollup values are computed by hand in the comments next to them, from the rules in
``gpufleet.store.rollup``.
"""

from __future__ import annotations

import dataclasses

import pytest
from tests.unit.store_samples import (
    GIB,
    HAND,
    T0,
    alert,
    assert_hand_rollups,
    gpu,
    host,
    points,
    proc,
    snap,
)

from gpufleet.model import Snapshot
from gpufleet.store import (
    QueryTooLargeError,
    Resolution,
    Retention,
    SeriesPoint,
    Store,
    StoreError,
    open_store,
    pick_resolution,
)
from gpufleet.store.schema import LATEST_VERSION


def test_public_api_is_locked() -> None:
    import gpufleet.store

    assert sorted(gpufleet.store.__all__) == sorted(
        [
            "GPU_METRICS",
            "SYSTEM_METRICS",
            "SYSTEM_STORED_METRICS",
            "UTIL_HIST_BINS",
            "GpuInventory",
            "GpuUsage",
            "PostgresStore",
            "QueryTooLargeError",
            "Resolution",
            "Retention",
            "SQLiteStore",
            "Series",
            "SeriesPoint",
            "Store",
            "StoreError",
            "StoreHealth",
            "StoreUnavailable",
            "WorkloadUsage",
            "open_store",
            "pick_resolution",
        ]
    )


def test_open_creates_current_schema(store: Store) -> None:
    assert isinstance(store, Store)  # the runtime-checkable protocol
    assert store.schema_version() == LATEST_VERSION  # type: ignore[attr-defined]
    assert store.health().writable
    assert store.health().readable
    assert store.inventory() == []


def test_hand_computed_rollups(store: Store) -> None:
    store.write_snapshots(HAND)
    assert_hand_rollups(store)


def test_same_rollups_when_written_sample_by_sample(store: Store) -> None:
    for s in reversed(HAND):  # out of order too: merges do not depend on arrival order
        store.write_snapshots([s])
    assert_hand_rollups(store)


def test_raw_series_is_samples(store: Store) -> None:
    store.write_snapshots(HAND)
    raw = points(store, Resolution.RAW, T0, T0 + 3600)
    assert [(p.ts_s, p.mean, p.min, p.max, p.count) for p in raw] == [
        (T0 + 5, 2.0, 2.0, 2.0, 1),
        (T0 + 15, None, None, None, 1),
        (T0 + 35, 100.0, 100.0, 100.0, 1),
        (T0 + 65, 50.0, 50.0, 50.0, 1),
    ]
    # Half-open: a sample at the window's end belongs to the next window.
    assert [p.ts_s for p in points(store, Resolution.RAW, T0 + 15, T0 + 35)] == [T0 + 15]
    assert [p.ts_s for p in points(store, Resolution.RAW, T0 + 15, T0 + 36)] == [T0 + 15, T0 + 35]


def test_auto_resolution_follows_span_and_retention(store_target: str) -> None:
    now = T0 + 7200
    with open_store(store_target, retention=Retention(raw_s=3600), clock=lambda: now) as store:
        store.write_snapshots([*HAND, snap(T0 + 5000, gpu(util=1.0))])

        def auto(start: float, end: float) -> Resolution:
            (s,) = store.gpu_series(
                metric="util_gpu_pct", start_s=start, end_s=end, resolution=Resolution.AUTO
            )
            return s.resolution

        assert auto(T0 + 4000, now) is Resolution.RAW  # recent and short
        assert auto(T0, now) is Resolution.MINUTE  # raw no longer reaches back to T0
        assert auto(T0 - 86_400, now) is Resolution.MINUTE  # 1 day: too long for raw
        assert auto(T0 - 3 * 86_400, now) is Resolution.HOUR  # 3 days: too long for 1m


def test_filters_select_gpus_nodes_and_clusters(store: Store) -> None:
    store.write_snapshots(
        [
            snap(T0, gpu("GPU-b", 10.0, index=1), gpu("GPU-a", 20.0, index=0)),
            snap(T0, gpu("GPU-c", 30.0), node="n2"),
            snap(T0, gpu("GPU-d", 40.0), cluster="c2"),
        ]
    )

    def subjects(res: Resolution, **f: str) -> list[tuple[str, str, str]]:
        out = store.gpu_series(metric="util_gpu_pct", start_s=T0, end_s=T0 + 1, resolution=res, **f)
        return [(s.cluster, s.node, s.subject) for s in out]

    for res in (Resolution.RAW, Resolution.MINUTE, Resolution.HOUR):
        assert subjects(res) == [
            ("c1", "n1", "GPU-a"),  # inventory order: cluster, node, index
            ("c1", "n1", "GPU-b"),
            ("c1", "n2", "GPU-c"),
            ("c2", "n1", "GPU-d"),
        ]
        assert subjects(res, cluster="c1", node="n2") == [("c1", "n2", "GPU-c")]
        assert subjects(res, uuid="GPU-b") == [("c1", "n1", "GPU-b")]
        assert subjects(res, cluster="nope") == []
    usage = store.gpu_usage(start_s=T0, end_s=T0 + 1, node="n1", cluster="c1")
    assert [u.uuid for u in usage] == [
        "GPU-a",
        "GPU-b",
    ]


def test_window_edges_include_overlapping_buckets(store: Store) -> None:
    store.write_snapshots([snap(T0 + 30, gpu(util=10.0)), snap(T0 + 90, gpu(util=20.0))])
    # The 1m bucket T0 spans [T0, T0+60): a window starting at T0+59 still overlaps it, and
    # the window [T0+59, T0+60) ends where bucket T0+60 starts, so that one is out.
    assert [p.ts_s for p in points(store, Resolution.MINUTE, T0 + 59, T0 + 60)] == [T0]
    assert [p.ts_s for p in points(store, Resolution.MINUTE, T0 + 59, T0 + 61)] == [T0, T0 + 60]
    assert [p.ts_s for p in points(store, Resolution.MINUTE, T0 + 60, T0 + 61)] == [T0 + 60]
    assert [p.ts_s for p in points(store, Resolution.RAW, T0 + 30, T0 + 90)] == [T0 + 30]
    for res in (Resolution.RAW, Resolution.MINUTE, Resolution.HOUR):  # empty windows
        for start, end in ((T0 + 30, T0 + 30), (T0 + 90, T0 + 30)):
            series = store.gpu_series(
                metric="util_gpu_pct", start_s=start, end_s=end, resolution=res
            )
            assert series == [], (res, start, end)
    assert store.gpu_usage(start_s=T0 + 30, end_s=T0 + 30) == []
    assert (
        store.gpu_series(
            metric="util_gpu_pct", start_s=T0 + 100, end_s=T0 + 200, resolution=Resolution.RAW
        )
        == []
    )


def test_system_series_sums_network_and_keeps_fullest_disk(store: Store) -> None:
    store.write_snapshots(
        [
            snap(T0, system=host(10.0, rx=[100.0, 200.0, None], disks=[30.0, 80.0])),
            snap(T0 + 30, system=host(30.0, rx=[None], disks=[]), dt=30),
            snap(T0, system=host(99.0), node="n2"),
        ]
    )
    (rx,) = store.system_series(
        metric="net_rx_bytes_per_s", start_s=T0, end_s=T0 + 60, resolution=Resolution.RAW, node="n1"
    )
    assert rx.subject == "host"
    assert [(p.ts_s, p.mean) for p in rx.points] == [(T0, 300.0), (T0 + 30, None)]
    (cpu,) = store.system_series(
        metric="cpu_pct", start_s=T0, end_s=T0 + 60, resolution=Resolution.MINUTE, node="n1"
    )
    # (10*60 + 30*30) / 90
    assert cpu.points == [SeriesPoint(T0, pytest.approx(1500 / 90), 10.0, 30.0, 2)]
    disk = store.system_series(
        metric="disk_max_used_pct", start_s=T0, end_s=T0 + 1, resolution=Resolution.HOUR
    )
    assert [(s.node, s.points[0].max) for s in disk] == [("n1", 80.0), ("n2", None)]


def test_unknown_metric_and_raw_usage_are_errors(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown GPU metric"):
        store.gpu_series(metric="util", start_s=0, end_s=1, resolution=Resolution.RAW)
    with pytest.raises(StoreError, match="unknown system metric"):
        store.system_series(metric="gpu", start_s=0, end_s=1, resolution=Resolution.RAW)
    with pytest.raises(StoreError, match="rollups"):
        store.gpu_usage(start_s=0, end_s=1, resolution=Resolution.RAW)


def test_workloads_share_a_gpu_equally(store: Store) -> None:
    holders = [
        proc(1, "job1", mem=1 * GIB, workload_kind="training"),
        proc(2, "job1", mem=2 * GIB),  # same workload: memory adds up, time does not split
        proc(3, "job2", namespace="other", user="bob", mem=4 * GIB),
        proc(4, "xorg", mem=8 * GIB, kind="graphics"),  # not a compute holder
    ]
    store.write_snapshots(
        [
            snap(T0 + 10, gpu(util=80.0, procs=holders)),
            snap(T0 + 70, gpu(util=1.0, procs=holders)),  # idle: busy time stays
        ]
    )
    rows = {
        (u.namespace, u.user, u.workload): u
        for u in store.workload_usage(start_s=T0, end_s=T0 + 3600)
    }
    assert sorted(rows) == [("other", "bob", "job2"), ("team", "alice", "job1")]
    job1, job2 = rows[("team", "alice", "job1")], rows[("other", "bob", "job2")]
    # Each of two workloads gets 30 of every 60 s; busy only in the first sample.
    assert (job1.gpu_s, job1.busy_gpu_s, job2.gpu_s, job2.busy_gpu_s) == (60, 30, 60, 30)
    assert job1.util_sum == pytest.approx(80 * 30 + 1 * 30)
    assert job1.mem_bytes_s == 3 * GIB * 60 * 2
    assert job2.mem_bytes_s == 4 * GIB * 60 * 2
    assert (job1.mem_peak_bytes, job1.util_peak_pct, job1.samples) == (3 * GIB, 80.0, 2)
    assert (job1.workload_kind, job2.workload_kind) == ("training", None)
    assert (job1.hour_s, job1.uuid, job1.node, job1.cluster) == (T0, "GPU-a", "n1", "c1")
    hour = {"start_s": T0, "end_s": T0 + 3600}
    assert [u.workload for u in store.workload_usage(**hour, user="bob")] == ["job2"]
    assert store.workload_usage(**hour, namespace="none") == []
    assert store.workload_usage(start_s=T0, end_s=T0) == []
    assert store.workload_usage(start_s=T0 + 3600, end_s=T0 + 7200) == []


def test_lost_gpu_moves_last_seen_only(store: Store) -> None:
    store.write_snapshots([snap(T0 + 5, gpu(util=50.0, procs=[proc(1)]))])
    store.write_snapshots([snap(T0 + 3605, gpu(lost=True, name=None, procs=[proc(1)]))])
    (inv,) = store.inventory()
    assert (inv.first_seen_s, inv.last_seen_s, inv.name, inv.mem_total_bytes) == (
        T0 + 5,
        T0 + 3605,
        "H100",  # a lost sample has no name; the known one stays
        80 * GIB,
    )
    assert [u.bucket_s for u in store.gpu_usage(start_s=T0, end_s=T0 + 7200)] == [T0]
    assert [p.ts_s for p in points(store, Resolution.RAW, T0, T0 + 7200)] == [T0 + 5]
    assert [w.hour_s for w in store.workload_usage(start_s=T0, end_s=T0 + 7200)] == [T0]


def test_keep_raw_false_writes_rollups_only(store: Store) -> None:
    store.write_snapshots(HAND, keep_raw=False)
    assert (
        store.gpu_series(
            metric="util_gpu_pct", start_s=T0, end_s=T0 + 3600, resolution=Resolution.RAW
        )
        == []
    )
    assert_hand_rollups(store)
    assert store.inventory()[0].last_seen_s == T0 + 65


def test_inventory_first_and_last_seen_across_batches(store: Store) -> None:
    store.write_snapshots([snap(T0 + 100, gpu(index=3, name="new name"))])
    store.write_snapshots([snap(T0 + 50, gpu(index=1, name="old name"))])  # a late backfill
    store.write_snapshots([snap(T0 + 200, gpu(index=3, name=None))])
    (inv,) = store.inventory()
    assert (inv.first_seen_s, inv.last_seen_s) == (T0 + 50, T0 + 200)
    assert (inv.index, inv.name) == (3, "new name")  # the newest sample's facts win
    store.write_snapshots([snap(T0, gpu("GPU-z", 1.0), cluster="c0")])
    assert [i.cluster for i in store.inventory()] == ["c0", "c1"]
    assert [i.uuid for i in store.inventory(cluster="c0")] == ["GPU-z"]


def test_retention_deletes_only_what_is_older_than_each_resolution_keeps(
    store_target: str,
) -> None:
    hour = 3600.0
    ret = Retention(raw_s=1 * hour, minute_s=2 * hour, hour_s=4 * hour)
    with open_store(store_target, retention=ret) as store:
        store.write_snapshots(
            [
                snap(T0 + k * hour + 30, gpu(util=50.0, procs=[proc(1)]), system=host(5.0))
                for k in range(6)
            ]
        )
        old = store.save_alert(alert(fired=T0, resolved=T0 + hour))
        recent = store.save_alert(alert(fired=T0, resolved=T0 + 3 * hour))
        active = store.save_alert(alert(fired=T0))
        now = T0 + 6 * hour
        deleted = store.apply_retention(now)
        # raw keeps ts >= now - 1 h (only k=5); 1m keeps buckets >= now - 2 h (k=4, 5);
        # 1h and workload keep hours >= now - 4 h (k=2..5); the alert resolved at T0+1h goes.
        assert deleted == {
            "gpu_raw": 5,
            "gpu_1m": 4,
            "gpu_1h": 2,
            "system_raw": 5,
            "system_1m": 4,
            "system_1h": 2,
            "workload_1h": 2,
            "alerts": 1,
            "gpus": 0,
            "nodes": 0,
        }
        span = (T0, now)
        assert [p.ts_s for p in points(store, Resolution.RAW, *span)] == [T0 + 5 * hour + 30]
        assert [p.ts_s for p in points(store, Resolution.MINUTE, *span)] == [
            T0 + 4 * hour,
            T0 + 5 * hour,
        ]
        assert [p.ts_s for p in points(store, Resolution.HOUR, *span)] == [
            T0 + k * hour for k in range(2, 6)
        ]
        assert {a.id for a in store.alerts()} == {recent.id, active.id}
        assert old.id not in {a.id for a in store.alerts()}
        assert store.apply_retention(now) == dict.fromkeys(deleted, 0)


def test_alerts_round_trip_newest_first(store: Store) -> None:
    a1 = store.save_alert(alert(fired=T0))
    a2 = store.save_alert(alert(fired=T0 + 100, rule="idle_allocated"))
    a3 = store.save_alert(alert(fired=T0 + 200, node="n2"))
    assert len({a1.id, a2.id, a3.id}) == 3
    assert None not in {a1.id, a2.id, a3.id}
    assert store.alerts() == [a3, a2, a1]
    resolved = store.save_alert(dataclasses.replace(a2, resolved_s=T0 + 150))
    assert resolved.id == a2.id
    assert store.alerts(active_only=True) == [a3, a1]
    # a1 fired before the window but is still active in it; a3 fires after it.
    assert store.alerts(start_s=T0 + 50, end_s=T0 + 150) == [resolved, a1]
    assert store.alerts(limit=1) == [a3]
    # An alert saved with an id of its own must not collide with generated ones later.
    explicit = store.save_alert(dataclasses.replace(alert(fired=T0 + 300), id=1000))
    generated = store.save_alert(alert(fired=T0 + 400))
    assert explicit.id == 1000
    assert generated.id is not None
    assert generated.id > 1000
    assert [a.id for a in store.alerts(limit=2)] == [generated.id, 1000]


# ---- time windows are half-open -------------------------------------------------------


def _three_hours(store: Store) -> None:
    """Two GPUs and a host at one sample a minute for three hours from T0, held by a job."""
    store.write_snapshots(
        [
            snap(
                T0 + m * 60 + 7,
                gpu("GPU-a", float(m % 100), mem_used=GIB, procs=[proc(1, mem=GIB)]),
                gpu("GPU-b", 1.0, index=1, procs=[proc(2, "other")]),
                system=host(float(m % 50)),
            )
            for m in range(180)
        ]
    )


def _usage_seconds(store: Store, start: float, end: float, res: Resolution) -> float:
    return sum(u.seconds for u in store.gpu_usage(start_s=start, end_s=end, resolution=res))


def _workload_seconds(store: Store, start: float, end: float) -> float:
    return sum(w.gpu_s for w in store.workload_usage(start_s=start, end_s=end))


def _count(store: Store, kind: str, res: Resolution, start: float, end: float) -> int:
    read = store.gpu_series if kind == "gpu" else store.system_series
    metric = "util_gpu_pct" if kind == "gpu" else "cpu_pct"
    return sum(len(s.points) for s in read(metric=metric, start_s=start, end_s=end, resolution=res))


def test_a_one_hour_window_counts_one_hour(store: Store) -> None:
    _three_hours(store)
    hour = T0 + 3600
    # The review's case: [H, H+1h) used to return buckets H and H+1h (7200 s per GPU).
    assert _usage_seconds(store, hour, hour + 3600, Resolution.HOUR) == 2 * 3600.0
    assert [u.bucket_s for u in store.gpu_usage(start_s=hour, end_s=hour + 3600)] == [hour] * 2
    assert _workload_seconds(store, hour, hour + 3600) == 2 * 3600.0
    assert _count(store, "gpu", Resolution.RAW, hour, hour + 3600) == 2 * 60


@pytest.mark.parametrize(
    ("res", "split"),
    [
        (Resolution.RAW, T0 + 5_000.5),  # raw rows split anywhere
        (Resolution.RAW, T0 + 3_667),  # exactly on a sample: it goes to the later window
        (Resolution.MINUTE, T0 + 120 * 60),  # buckets split on their edges
        (Resolution.HOUR, T0 + 2 * 3600),
    ],
)
def test_adjacent_windows_add_up_to_their_union(
    store: Store, res: Resolution, split: float
) -> None:
    _three_hours(store)
    start, end = T0, T0 + 3 * 3600
    for kind in ("gpu", "system"):
        whole = _count(store, kind, res, start, end)
        assert whole > 0
        assert (
            _count(store, kind, res, start, split) + _count(store, kind, res, split, end) == whole
        )
    if res is not Resolution.RAW:
        whole_s = _usage_seconds(store, start, end, res)
        assert whole_s == 2 * 3 * 3600.0
        parts = _usage_seconds(store, start, split, res) + _usage_seconds(store, split, end, res)
        assert parts == whole_s
    if res is Resolution.HOUR:
        parts = _workload_seconds(store, start, split) + _workload_seconds(store, split, end)
        assert parts == _workload_seconds(store, start, end) == 2 * 3 * 3600.0


# ---- readings that are not numbers ----------------------------------------------------


def test_nan_and_infinite_readings_are_stored_as_unknown(store: Store) -> None:
    nan, inf = float("nan"), float("inf")
    bad = [nan, inf, -inf]

    def sample(i: int, value: float) -> Snapshot:
        g = dataclasses.replace(
            gpu(util=value, temp=40.0, procs=[proc(1, mem=GIB)]),
            power_w=value,
            mem_used_bytes=value,  # type: ignore[arg-type]
        )
        return snap(T0 + 60 * i, g, system=dataclasses.replace(host(value), load_1=value))

    store.write_snapshots([sample(i, v) for i, v in enumerate(bad)])  # one batch
    for i, v in enumerate(bad):  # and one sample per batch (the one-sample rows)
        store.write_snapshots([dataclasses.replace(sample(i, v), node="n2")])
    for node in ("n1", "n2"):
        for metric in ("util_gpu_pct", "power_w", "mem_used_bytes"):
            for res in (Resolution.RAW, Resolution.MINUTE, Resolution.HOUR):
                (s,) = store.gpu_series(
                    metric=metric, start_s=T0, end_s=T0 + 3600, resolution=res, node=node
                )
                assert {(p.mean, p.min, p.max) for p in s.points} == {(None, None, None)}
        (temp,) = store.gpu_series(
            metric="temp_c", start_s=T0, end_s=T0 + 3600, resolution=Resolution.HOUR, node=node
        )
        assert temp.points[0].mean == 40.0  # the readings that are numbers are kept
        (cpu,) = store.system_series(
            metric="cpu_pct", start_s=T0, end_s=T0 + 3600, resolution=Resolution.HOUR, node=node
        )
        assert (cpu.points[0].mean, cpu.points[0].count) == (None, 3)
        (usage,) = store.gpu_usage(start_s=T0, end_s=T0 + 3600, node=node)
        # Counted as time, but unknown utilization is neither idle nor in any bin.
        assert (usage.seconds, usage.allocated_s, usage.idle_s) == (180.0, 180.0, 0.0)
        assert (usage.util_sum, sum(usage.util_hist_s), usage.util_max_pct) == (0.0, 0.0, None)
        assert usage.mem_used_max_bytes is None
    (n1, n2) = sorted(store.workload_usage(start_s=T0, end_s=T0 + 3600), key=lambda w: w.node)
    for w in (n1, n2):
        assert (w.gpu_s, w.busy_gpu_s, w.util_sum, w.util_peak_pct) == (180.0, 0.0, 0.0, None)
        assert (w.mem_bytes_s, w.mem_peak_bytes) == (GIB * 180.0, GIB)


# ---- alerts ---------------------------------------------------------------------------


def test_alerts_are_those_active_in_the_window(store: Store) -> None:
    before = store.save_alert(alert(fired=T0 - 500, resolved=T0 - 100))  # over before it
    ongoing = store.save_alert(alert(fired=T0 - 500))  # fired before, still firing
    ends_in = store.save_alert(alert(fired=T0 - 500, resolved=T0 + 100))  # resolved inside
    inside = store.save_alert(alert(fired=T0 + 50, resolved=T0 + 60, node="n2"))
    at_end = store.save_alert(alert(fired=T0 + 200))  # fires as the window ends
    ended_at_start = store.save_alert(alert(fired=T0 - 50, resolved=T0))
    other = store.save_alert(
        dataclasses.replace(alert(fired=T0 + 10, rule="gpu_idle"), cluster="c2")
    )
    window = {"start_s": T0, "end_s": T0 + 200}
    # Newest first: by fired, then by id.
    assert store.alerts(**window) == [inside, other, ends_in, ongoing]
    assert store.alerts(**window, active_only=True) == [other, ongoing]
    assert store.alerts(**window, node="n2") == [inside]
    assert store.alerts(**window, cluster="c2") == [other]
    assert store.alerts(**window, cluster="c1", node="n1") == [ends_in, ongoing]
    assert store.alerts(start_s=T0 + 200) == [at_end, other, ongoing]
    assert store.alerts(end_s=T0 - 50) == [ends_in, ongoing, before]
    # What the alert engine loads at start-up: one node's unresolved alerts.
    assert store.alerts(active_only=True, node="n1", cluster="c1") == [at_end, ongoing]
    assert ended_at_start not in store.alerts(**window)


# ---- resolution and the size of raw reads ---------------------------------------------


def test_pick_resolution_aims_at_2000_points_per_series() -> None:
    ret = Retention()
    now = T0

    def pick(span: float, interval: float = 2.0) -> Resolution:
        return pick_resolution(now - span, now, now, ret, raw_interval_s=interval)

    assert pick(4_000) is Resolution.RAW  # 2000 points at 2 s
    assert pick(4_001) is Resolution.MINUTE
    assert pick(6 * 3600) is Resolution.MINUTE  # raw would be 10,800 points at 2 s
    assert pick(6 * 3600, interval=15.0) is Resolution.RAW  # 1,440 points at 15 s
    assert pick(2000 * 60) is Resolution.MINUTE
    assert pick(2000 * 60 + 1) is Resolution.HOUR
    assert pick(400 * 86_400) is Resolution.HOUR  # beyond 2000 hours: still 1h
    assert pick_resolution(now - 60, now, now, ret) is Resolution.RAW  # the default 2 s
    # Retention still decides: raw is gone after 7 days, 1m after 90.
    assert pick_resolution(now - 60, now, now + 8 * 86_400, ret) is Resolution.MINUTE
    assert pick_resolution(now - 60, now, now + 91 * 86_400, ret) is Resolution.HOUR


def test_raw_reads_too_large_are_refused_with_what_to_ask_instead(store_target: str) -> None:
    with open_store(store_target, clock=lambda: T0 + 7200) as store:
        store.max_raw_points = 100  # type: ignore[attr-defined]
        store.write_snapshots(
            [snap(T0 + s, gpu(util=1.0), system=host(2.0), dt=2.0) for s in range(0, 3600, 2)]
        )
        with pytest.raises(QueryTooLargeError) as refused:
            store.gpu_series(
                metric="util_gpu_pct", start_s=T0, end_s=T0 + 3600, resolution=Resolution.RAW
            )
        message = str(refused.value)
        assert "raw resolution over 60 minutes would return ~1,800 points per GPU" in message
        assert "use resolution 1m or 1h, or a shorter window" in message
        assert isinstance(refused.value, StoreError)  # still a StoreError for old callers
        with pytest.raises(QueryTooLargeError, match="points per host"):
            store.system_series(
                metric="cpu_pct", start_s=T0, end_s=T0 + 3600, resolution=Resolution.RAW
            )
        # Under the cap: answered. Past the data: sized by what is there, not the window.
        assert _count(store, "gpu", Resolution.RAW, T0, T0 + 180) == 90
        assert _count(store, "gpu", Resolution.RAW, T0 + 3500, T0 + 86_400) == 50
        # AUTO never refuses: it asked for raw assuming 2 s samples, got 1m instead.
        (auto,) = store.gpu_series(
            metric="util_gpu_pct", start_s=T0, end_s=T0 + 1200, resolution=Resolution.AUTO
        )
        assert auto.resolution is Resolution.MINUTE
