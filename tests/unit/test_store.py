"""The Store contract, run on every backend (``store`` is parametrized: sqlite, postgres).

Expected rollup values are computed by hand in the comments next to them, from the rules in
``gpufleet.store.rollup``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpufleet.model import (
    Alert,
    Attribution,
    DiskUsage,
    GpuProcess,
    GpuSample,
    NetRate,
    Snapshot,
    SystemSample,
)
from gpufleet.store import (
    GpuUsage,
    Resolution,
    Retention,
    SeriesPoint,
    Store,
    StoreError,
    open_store,
)
from gpufleet.store.schema import LATEST_VERSION

GIB = 1 << 30
T0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600  # an hour boundary (1699999200)


def proc(
    pid: int,
    workload: str = "job",
    *,
    namespace: str = "team",
    user: str = "alice",
    mem: int | None = None,
    kind: str = "compute",
    workload_kind: str | None = None,
) -> GpuProcess:
    return GpuProcess(
        pid=pid,
        used_memory_bytes=mem,
        kind=kind,
        attribution=Attribution(
            namespace=namespace, user=user, workload=workload, workload_kind=workload_kind
        ),
    )


def gpu(
    uuid: str = "GPU-a",
    util: float | None = None,
    *,
    index: int = 0,
    temp: float | None = None,
    mem_used: int | None = None,
    procs: Sequence[GpuProcess] = (),
    throttle: tuple[str, ...] | None = None,
    lost: bool = False,
    name: str | None = "H100",
) -> GpuSample:
    return GpuSample(
        uuid=uuid,
        index=index,
        name=name,
        lost=lost,
        util_gpu_pct=util,
        temp_c=temp,
        mem_total_bytes=None if lost else 80 * GIB,
        mem_used_bytes=mem_used,
        throttle_reasons=throttle,
        processes=tuple(procs),
    )


def host(
    cpu: float, *, rx: Sequence[float | None] = (), disks: Sequence[float] = ()
) -> SystemSample:
    return SystemSample(
        cpu_pct=cpu,
        cpu_per_core_pct=(),
        cpu_count=8,
        load_1=1.0,
        load_5=1.0,
        load_15=1.0,
        mem_total_bytes=64 * GIB,
        mem_used_bytes=16 * GIB,
        mem_available_bytes=48 * GIB,
        mem_pct=25.0,
        swap_total_bytes=0,
        swap_used_bytes=0,
        swap_pct=0.0,
        disks=tuple(
            DiskUsage(f"/d{i}", None, None, 100, int(p), 100 - int(p), p)
            for i, p in enumerate(disks)
        ),
        net=tuple(NetRate(f"eth{i}", r, r, None, None, 0, 0) for i, r in enumerate(rx)),
    )


def snap(
    ts: float,
    *gpus: GpuSample,
    dt: float = 60.0,
    node: str = "n1",
    cluster: str = "c1",
    system: SystemSample | None = None,
) -> Snapshot:
    return Snapshot(ts_s=ts, cluster=cluster, node=node, gpus=gpus, system=system, interval_s=dt)


def points(store: Store, res: Resolution, start: float, end: float, **f: str) -> list[SeriesPoint]:
    (series,) = store.gpu_series(
        metric="util_gpu_pct", start_s=start, end_s=end, resolution=res, **f
    )
    return series.points


def hist(**bins: float) -> tuple[float, ...]:
    """A 20-bin histogram from ``b<index>=seconds``."""
    out = [0.0] * 20
    for name, seconds in bins.items():
        out[int(name[1:])] = seconds
    return tuple(out)


# Four samples of one GPU: three in minute T0, one in minute T0+60, all in hour T0.
HAND = [
    snap(
        T0 + 5,
        gpu(util=2.0, temp=40.0, mem_used=1 * GIB, procs=[proc(1)]),
        dt=10,
    ),
    snap(
        T0 + 15,
        gpu(
            util=None,
            temp=50.0,
            mem_used=2 * GIB,
            procs=[proc(1)],
            throttle=("hw_thermal_slowdown",),
        ),
        dt=20,
    ),
    snap(T0 + 35, gpu(util=100.0, temp=None, throttle=("sw_power_cap",)), dt=30),
    snap(T0 + 65, gpu(util=50.0, temp=60.0, mem_used=3 * GIB, throttle=("gpu_idle",)), dt=60),
]


def assert_hand_rollups(store: Store) -> None:
    minute = points(store, Resolution.MINUTE, T0, T0 + 119)
    # util: sum 2*10 + 100*30 = 3020 over the 40 s with a reading; s2 (unknown) adds nothing.
    assert minute == [
        SeriesPoint(T0, pytest.approx(75.5), 2.0, 100.0, 3),
        SeriesPoint(T0 + 60, pytest.approx(50.0), 50.0, 50.0, 1),
    ]
    (temp,) = store.gpu_series(
        metric="temp_c", start_s=T0, end_s=T0 + 119, resolution=Resolution.HOUR
    )
    # temp: (40*10 + 50*20 + 60*60) / (10 + 20 + 60) = 5000 / 90; s3 has no reading.
    assert temp.points == [SeriesPoint(T0, pytest.approx(5000 / 90), 40.0, 60.0, 4)]
    usage_1m = store.gpu_usage(start_s=T0, end_s=T0 + 59, resolution=Resolution.MINUTE)
    assert usage_1m == [
        GpuUsage(
            cluster="c1",
            node="n1",
            uuid="GPU-a",
            bucket_s=T0,
            seconds=60.0,
            allocated_s=30.0,  # s1 + s2 hold a compute process
            idle_s=10.0,  # only s1 (2 % < 5 %); unknown util is not idle
            idle_allocated_s=10.0,
            util_sum=pytest.approx(3020.0),
            util_hist_s=hist(b0=10.0, b19=30.0),  # 100 % lands in the last bin
            util_max_pct=100.0,
            mem_used_max_bytes=2 * GIB,
            mem_total_bytes=80 * GIB,
            throttled_s=50.0,  # thermal (s2) + power (s3); "gpu_idle" is neither
        )
    ]
    (hour,) = store.gpu_usage(start_s=T0, end_s=T0 + 3599)
    assert (hour.bucket_s, hour.seconds, hour.allocated_s, hour.idle_s) == (T0, 120, 30, 10)
    assert hour.util_sum == pytest.approx(6020.0)
    assert hour.util_hist_s == hist(b0=10.0, b10=60.0, b19=30.0)
    assert (hour.mem_used_max_bytes, hour.throttled_s) == (3 * GIB, 50.0)


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
    assert [p.ts_s for p in points(store, Resolution.RAW, T0 + 15, T0 + 35)] == [T0 + 15, T0 + 35]


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
        out = store.gpu_series(metric="util_gpu_pct", start_s=T0, end_s=T0, resolution=res, **f)
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
    assert [u.uuid for u in store.gpu_usage(start_s=T0, end_s=T0, node="n1", cluster="c1")] == [
        "GPU-a",
        "GPU-b",
    ]


def test_window_edges_include_overlapping_buckets(store: Store) -> None:
    store.write_snapshots([snap(T0 + 30, gpu(util=10.0)), snap(T0 + 90, gpu(util=20.0))])
    # The 1m bucket T0 spans [T0, T0+60): a window starting at T0+59 still overlaps it.
    assert [p.ts_s for p in points(store, Resolution.MINUTE, T0 + 59, T0 + 60)] == [T0, T0 + 60]
    assert [p.ts_s for p in points(store, Resolution.MINUTE, T0 + 60, T0 + 61)] == [T0 + 60]
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
        metric="disk_max_used_pct", start_s=T0, end_s=T0, resolution=Resolution.HOUR
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
        (u.namespace, u.user, u.workload): u for u in store.workload_usage(start_s=T0, end_s=T0)
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
    assert [u.workload for u in store.workload_usage(start_s=T0, end_s=T0, user="bob")] == ["job2"]
    assert store.workload_usage(start_s=T0, end_s=T0, namespace="none") == []
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


def alert(
    *, fired: float, resolved: float | None = None, rule: str = "gpu_temp", node: str = "n1"
) -> Alert:
    return Alert(
        rule=rule,
        severity="warning",
        node=node,
        subject="GPU-a",
        message="hot",
        value=91.0,
        threshold=85.0,
        started_s=fired - 60,
        fired_s=fired,
        resolved_s=resolved,
        cluster="c1",
    )


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
    assert store.alerts(start_s=T0 + 50, end_s=T0 + 150) == [resolved]
    assert store.alerts(limit=1) == [a3]
    # An alert saved with an id of its own must not collide with generated ones later.
    explicit = store.save_alert(dataclasses.replace(alert(fired=T0 + 300), id=1000))
    generated = store.save_alert(alert(fired=T0 + 400))
    assert explicit.id == 1000
    assert generated.id is not None
    assert generated.id > 1000
    assert [a.id for a in store.alerts(limit=2)] == [generated.id, 1000]


def test_reads_run_while_a_writer_thread_writes(store: Store) -> None:
    batches = [
        [
            snap(T0 + m * 60, *(gpu(f"GPU-{i}", float(m % 100), index=i) for i in range(8)))
            for m in range(b * 30, (b + 1) * 30)
        ]
        for b in range(10)
    ]
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for batch in batches:
                store.write_snapshots(batch)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    seen: list[int] = []
    while thread.is_alive() or reads == 0:
        series = store.gpu_series(
            metric="util_gpu_pct", start_s=T0, end_s=T0 + 86_400, resolution=Resolution.MINUTE
        )
        # Each batch commits whole: a reader sees every GPU at the same number of minutes.
        counts = {len(s.points) for s in series}
        assert len(counts) <= 1
        seen.append(counts.pop() if counts else 0)
        reads += 1
    thread.join()
    assert errors == []
    assert seen == sorted(seen)  # never goes back
    assert reads >= 1
    assert {
        len(s.points)
        for s in store.gpu_series(
            metric="util_gpu_pct", start_s=T0, end_s=T0 + 86_400, resolution=Resolution.MINUTE
        )
    } == {300}


_cluster_ids = itertools.count()

SAMPLE = st.tuples(
    st.integers(0, 2 * 3600 - 1),  # offset from T0: spans two hours and many minutes
    st.sampled_from([None, 0.0, 4.5, 5.0, 37.5, 99.5, 100.0]),  # util, incl. both edges
    st.sampled_from([None, 30.0, 81.5]),  # temp
    st.sampled_from([1.0, 10.0, 60.0]),  # dt
    st.booleans(),  # allocated
    st.sampled_from(["GPU-x", "GPU-y"]),
)


def _samples_to_snaps(samples: Sequence[tuple], cluster: str) -> list[Snapshot]:  # type: ignore[type-arg]
    return [
        snap(
            T0 + off,
            gpu(uuid, util, temp=temp, procs=[proc(1)] if alloc else []),
            dt=dt,
            cluster=cluster,
        )
        for off, util, temp, dt, alloc, uuid in samples
    ]


def _view(store: Store, cluster: str) -> list[object]:
    """Everything read back about ``cluster``, with the cluster name blanked out."""
    out: list[object] = []
    for res in (Resolution.MINUTE, Resolution.HOUR):
        for u in store.gpu_usage(start_s=T0, end_s=T0 + 7200, resolution=res, cluster=cluster):
            out.append(dataclasses.astuple(dataclasses.replace(u, cluster="")))
        for metric in ("util_gpu_pct", "temp_c"):
            for s in store.gpu_series(
                metric=metric, start_s=T0, end_s=T0 + 7200, resolution=res, cluster=cluster
            ):
                out.append((s.subject, metric, res, [dataclasses.astuple(p) for p in s.points]))
    return out


def assert_close(got: object, want: object, path: str = "") -> None:
    """Structural equality; floats within 1e-9 relative (sums are added in other orders)."""
    if isinstance(want, float) and isinstance(got, float | int):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), f"{path}: {got} != {want}"
    elif isinstance(want, list | tuple):
        assert isinstance(got, list | tuple), f"{path}: {got!r} is not a sequence"
        assert len(got) == len(want), f"{path}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"{path}[{i}]")
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(samples=st.lists(SAMPLE, min_size=1, max_size=25), cut=st.integers(0, 25))
def test_merge_across_batches_is_exact(store: Store, samples: list[tuple], cut: int) -> None:  # type: ignore[type-arg]
    n = next(_cluster_ids)
    once, twice = f"once-{n}", f"twice-{n}"
    store.write_snapshots(_samples_to_snaps(samples, once))
    store.write_snapshots(_samples_to_snaps(samples[:cut], twice))
    store.write_snapshots(_samples_to_snaps(samples[cut:], twice))
    expected = _view(store, once)
    assert expected  # the comparison covers something
    assert_close(_view(store, twice), expected)


def test_open_store_rejects_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        open_store(tmp_path)


def test_open_store_rejects_foreign_files(tmp_path: Path) -> None:
    junk = tmp_path / "notes.db"
    junk.write_bytes(b"definitely not sqlite " * 100)
    with pytest.raises(StoreError, match="not a gpufleet database"):
        open_store(junk)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE recipes (name TEXT)")
    with pytest.raises(StoreError, match="another program"):
        open_store(other)


def test_open_store_rejects_bad_urls() -> None:
    with pytest.raises(StoreError, match="unsupported store URL scheme 'mysql'"):
        open_store("mysql://localhost/db")
    with pytest.raises(StoreError, match="invalid PostgreSQL URL"):
        open_store("postgresql://127.0.0.1:5432/test?bogus_option=1")
    with pytest.raises(
        StoreError, match="cannot connect to PostgreSQL at postgresql://u:\\*\\*\\*@"
    ):
        open_store("postgresql://u:secret@127.0.0.1:1/test")


def test_sqlite_url_and_nested_path(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "x.db"
    with open_store(f"sqlite://{target}") as store:
        assert store.backend == "sqlite"
    assert target.exists()


def test_newer_schema_is_refused(store_target: str) -> None:
    with open_store(store_target) as store:
        store.save_alert(alert(fired=T0))
        # A database upgraded by a later gpufleet records a migration this one lacks.
        with store._writing() as tx:  # type: ignore[attr-defined]
            tx.execute("INSERT INTO gpufleet_schema VALUES (?, ?, ?)", (99, "future", 0.0))
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(store_target)


def test_reopen_keeps_data(store_target: str) -> None:
    with open_store(store_target) as store:
        store.write_snapshots(HAND)
    with open_store(store_target) as store:
        assert_hand_rollups(store)
        assert store.health().writable
