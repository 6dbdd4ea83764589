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

from gpufleet.store import (
    Resolution,
    Retention,
    SeriesPoint,
    Store,
    StoreError,
    open_store,
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
