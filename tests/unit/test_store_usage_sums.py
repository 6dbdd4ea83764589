"""``UsageSumReads``: window sums of the usage rows and the rows of chosen GPUs or workloads,
in SQL, on both backends, against the same arithmetic over ``gpu_usage`` / ``workload_usage``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection

import pytest

from gpufleet.agent.demo import write_demo
from gpufleet.model import Attribution, GpuProcess, GpuSample, Snapshot
from gpufleet.store import Resolution, Store, StoreError
from gpufleet.store.base import (
    UTIL_HIST_BINS,
    GpuUsage,
    GpuUsageSums,
    UsageSumReads,
    WorkloadUsage,
    WorkloadUsageSums,
)

HOUR = 3600.0
DAY = 86_400.0
GIB = 1 << 30
END = 1_760_000_000.0 - 1_760_000_000.0 % DAY  # a UTC midnight
WINDOWS = ((END - 2 * DAY, END), (END - 2 * DAY + 1234.0, END - 1234.5))
"""On hour edges, and cutting an hour at both ends."""


@pytest.fixture
def demo(store: Store) -> Store:
    # Three days of a 2-node x 4-GPU cluster, a sample every 15 minutes (a write is ~1 s).
    write_demo(store, days=3, nodes=2, gpus=4, seed=1, end_s=END, interval_s=900.0)
    return store


def _sums(store: Store) -> UsageSumReads:
    """The store's UsageSumReads (both SQL backends offer them)."""
    assert isinstance(store, UsageSumReads)
    return store


def _frac(bucket: float, width: float, start: float, end: float) -> float:
    return max(0.0, min(end, bucket + width) - max(start, bucket)) / width


def _gpu_reference(
    rows: list[GpuUsage],
    key: Callable[[GpuUsage], object],
    window: tuple[float, float, float],
    uuids: Collection[str] | None = None,
) -> dict[object, tuple[float, ...]]:
    """Per-key prorated sums of ``rows`` (rows, seconds, allocated, util, hist, maxima)."""
    start, end, width = window
    out: dict[object, list[float]] = defaultdict(lambda: [0.0] * (6 + UTIL_HIST_BINS))
    for r in rows:
        f = _frac(r.bucket_s, width, start, end)
        if f <= 0 or (uuids is not None and r.uuid not in uuids):
            continue
        acc = out[key(r)]
        acc[0] += 1
        acc[1] += r.seconds * f
        acc[2] += r.allocated_s * f
        acc[3] += r.util_sum * f
        acc[4] = max(acc[4], float(r.mem_used_max_bytes or 0))
        acc[5] = max(acc[5], float(r.mem_total_bytes or 0))
        for b, s in enumerate(r.util_hist_s):
            acc[6 + b] += s * f
    return {k: tuple(v) for k, v in out.items()}


def _gpu_folded(
    sums: list[GpuUsageSums], key: Callable[[GpuUsageSums], object]
) -> dict[object, tuple[float, ...]]:
    out = {}
    for s in sums:
        hist = s.util_hist_s or (0.0,) * UTIL_HIST_BINS
        out[key(s)] = (
            float(s.rows),
            s.seconds,
            s.allocated_s,
            s.util_sum,
            float(s.mem_used_max_bytes or 0),
            float(s.mem_total_max_bytes or 0),
            *hist,
        )
    return out


def _close(got: dict[object, tuple[float, ...]], want: dict[object, tuple[float, ...]]) -> None:
    assert got.keys() == want.keys()
    for k, value in got.items():
        assert value == pytest.approx(want[k], rel=1e-9, abs=1e-6), k


def test_gpu_sums_per_gpu_and_per_bucket_equal_the_prorated_rows(demo: Store) -> None:
    store, demo_sums = demo, _sums(demo)
    inventory = store.inventory()
    order = [g.uuid for g in inventory]
    some = set(order[1:6])
    for start, end in WINDOWS:
        rows = store.gpu_usage(start_s=start, end_s=end)
        window = (start, end, HOUR)
        per_gpu = demo_sums.gpu_usage_sums(start_s=start, end_s=end, hist=True)
        assert [s.uuid for s in per_gpu] == order  # inventory order
        assert all(s.bucket_s is None for s in per_gpu)
        _close(
            _gpu_folded(per_gpu, lambda s: s.uuid), _gpu_reference(rows, lambda r: r.uuid, window)
        )
        # Without the histogram it is left empty; the rest is the same.
        light = demo_sums.gpu_usage_sums(start_s=start, end_s=end, uuids=some)
        assert {s.uuid for s in light} == some
        assert all(s.util_hist_s == () for s in light)
        want = _gpu_reference(rows, lambda r: r.uuid, window, some)
        got = _gpu_folded(light, lambda s: s.uuid)
        _close({k: v[:6] for k, v in got.items()}, {k: v[:6] for k, v in want.items()})
        # Per bucket over some GPUs: one row per bucket in time order, names empty.
        pooled = demo_sums.gpu_usage_sums(
            start_s=start, end_s=end, uuids=some, by="bucket", hist=True
        )
        buckets = [s.bucket_s or 0.0 for s in pooled]
        assert buckets == sorted(buckets)
        assert {(s.cluster, s.node, s.uuid) for s in pooled} == {("", "", "")}
        _close(
            _gpu_folded(pooled, lambda s: s.bucket_s),
            _gpu_reference(rows, lambda r: r.bucket_s, window, some),
        )
        assert all(s.rows == len(some) for s in pooled)


def test_gpu_sums_minutes_filters_and_refusals(demo: Store) -> None:
    store, demo_sums = demo, _sums(demo)
    # 1-minute rollups (a table keyed time first), edges cut.
    start, end = END - 5 * HOUR + 90.0, END - 30.0
    rows = store.gpu_usage(start_s=start, end_s=end, resolution=Resolution.MINUTE)
    assert rows
    minute = (start, end, 60.0)
    sums = demo_sums.gpu_usage_sums(
        start_s=start, end_s=end, resolution=Resolution.MINUTE, hist=True
    )
    _close(_gpu_folded(sums, lambda s: s.uuid), _gpu_reference(rows, lambda r: r.uuid, minute))
    sums = demo_sums.gpu_usage_sums(
        start_s=start, end_s=end, resolution=Resolution.MINUTE, by="bucket", hist=True
    )
    _close(
        _gpu_folded(sums, lambda s: s.bucket_s),
        _gpu_reference(rows, lambda r: r.bucket_s, minute),
    )
    # Inside one hour: every row is an edge row.
    one = demo_sums.gpu_usage_sums(start_s=END - HOUR + 60.0, end_s=END - 60.0)
    assert len(one) == 8
    assert all(s.rows == 1 for s in one)
    node = store.inventory()[0].node
    mine = demo_sums.gpu_usage_sums(start_s=END - DAY, end_s=END, node=node)
    assert {s.node for s in mine} == {node}
    assert len(mine) == 4
    assert demo_sums.gpu_usage_sums(start_s=END + DAY, end_s=END + 2 * DAY) == []
    assert demo_sums.gpu_usage_sums(start_s=END, end_s=END - DAY) == []
    assert demo_sums.gpu_usage_sums(start_s=END - DAY, end_s=END, uuids=[]) == []
    with pytest.raises(StoreError, match="rollups"):
        demo_sums.gpu_usage_sums(start_s=END - DAY, end_s=END, resolution=Resolution.RAW)
    with pytest.raises(StoreError, match="unknown sum"):
        demo_sums.gpu_usage_sums(start_s=END - DAY, end_s=END, by="node")


def test_gpu_rows_of_some_gpus_are_gpu_usage_s_rows(demo: Store) -> None:
    store, demo_sums = demo, _sums(demo)
    uuids = {g.uuid for g in store.inventory()[2:5]}
    for start, end, res in (
        (*WINDOWS[1], Resolution.HOUR),
        (END - 5 * HOUR + 90.0, END - 30.0, Resolution.MINUTE),
    ):
        every = store.gpu_usage(start_s=start, end_s=end, resolution=res)
        got = demo_sums.gpu_usage_of(start_s=start, end_s=end, resolution=res, uuids=uuids)
        assert got
        assert got == [r for r in every if r.uuid in uuids]
    assert demo_sums.gpu_usage_of(start_s=END - DAY, end_s=END, uuids=[]) == []
    assert demo_sums.gpu_usage_of(start_s=END - DAY, end_s=END, uuids=["GPU-none"]) == []


def _workload_reference(
    rows: list[WorkloadUsage], start: float, end: float, uuids: Collection[str]
) -> dict[tuple[str, str, str, str], tuple[object, ...]]:
    hours: dict[tuple[str, str, str, str], set[float]] = defaultdict(set)
    sums: dict[tuple[str, str, str, str], list[float]] = defaultdict(lambda: [0.0] * 4)
    kinds: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    for r in rows:
        f = _frac(r.hour_s, HOUR, start, end)
        if f <= 0 or r.uuid not in uuids:
            continue
        key = (r.namespace, r.user, r.workload, r.uuid)
        hours[key].add(r.hour_s)
        acc = sums[key]
        acc[0] += r.gpu_s * f
        acc[1] += r.busy_gpu_s * f
        acc[2] += max(r.gpu_s - r.busy_gpu_s, 0.0) * f
        acc[3] = max(acc[3], float(r.mem_peak_bytes or 0))
        if r.workload_kind:
            kinds[key].add(r.workload_kind)
    return {
        k: (
            len(h),
            min(h),
            max(h),
            *sums[k],
            min(kinds[k], default=None),
            max(kinds[k], default=None),
        )
        for k, h in hours.items()
    }


def _workload_folded(
    sums: list[WorkloadUsageSums],
) -> dict[tuple[str, str, str, str], tuple[object, ...]]:
    return {
        (s.namespace, s.user, s.workload, s.uuid): (
            s.hours,
            s.first_hour_s,
            s.last_hour_s,
            pytest.approx(s.gpu_s, rel=1e-9, abs=1e-6),
            pytest.approx(s.busy_gpu_s, rel=1e-9, abs=1e-6),
            pytest.approx(s.idle_gpu_s, rel=1e-9, abs=1e-6),
            float(s.mem_peak_bytes or 0),
            s.workload_kind_min,
            s.workload_kind_max,
        )
        for s in sums
    }


def test_workload_sums_equal_the_prorated_rows(demo: Store) -> None:
    store, demo_sums = demo, _sums(demo)
    everywhere = {g.uuid for g in store.inventory()}
    some = set(sorted(everywhere)[:3])
    for start, end in (*WINDOWS, (END - HOUR + 60.0, END - 60.0)):
        rows = store.workload_usage(start_s=start, end_s=end)
        for uuids in (None, some):
            sums = demo_sums.workload_usage_sums(start_s=start, end_s=end, uuids=uuids)
            assert sums
            keys = [(s.namespace, s.user, s.workload, s.uuid) for s in sums]
            assert keys == sorted(keys)
            want = _workload_reference(rows, start, end, uuids or everywhere)
            assert _workload_folded(sums) == want
    # A long list of GPUs (applied to the sums rather than listed in SQL): the same rows.
    many = everywhere | {f"GPU-elsewhere-{i}" for i in range(20)}
    start, end = WINDOWS[1]
    assert demo_sums.workload_usage_sums(
        start_s=start, end_s=end, uuids=many
    ) == demo_sums.workload_usage_sums(start_s=start, end_s=end)
    cluster = store.inventory()[0].cluster
    assert demo_sums.workload_usage_sums(start_s=END - DAY, end_s=END, cluster=cluster)
    assert demo_sums.workload_usage_sums(start_s=END - DAY, end_s=END, cluster="elsewhere") == []
    assert demo_sums.workload_usage_sums(start_s=END - DAY, end_s=END, uuids=[]) == []
    assert demo_sums.workload_usage_sums(start_s=END, end_s=END - DAY) == []


def test_workload_rows_of_some_workloads_are_workload_usage_s_rows(demo: Store) -> None:
    store, demo_sums = demo, _sums(demo)
    start, end = WINDOWS[1]
    every = store.workload_usage(start_s=start, end_s=end)
    ids = sorted({(r.namespace, r.user, r.workload) for r in every})
    chosen = set(ids[::3])
    uuids = {r.uuid for r in every[:5]}
    cases: list[tuple[set[tuple[str, str, str]] | None, set[str] | None]] = [
        (chosen, None),
        (None, uuids),
        (chosen, uuids),
        (None, None),
    ]
    for workloads, on in cases:
        got = demo_sums.workload_usage_of(start_s=start, end_s=end, workloads=workloads, uuids=on)
        want = [
            r
            for r in every
            if (workloads is None or (r.namespace, r.user, r.workload) in workloads)
            and (on is None or r.uuid in on)
        ]
        assert want
        assert got == want
    assert demo_sums.workload_usage_of(start_s=start, end_s=end, workloads=[]) == []
    assert demo_sums.workload_usage_of(start_s=start, end_s=end, uuids=[]) == []
    assert demo_sums.workload_usage_of(start_s=start, end_s=end, workloads=[("x", "y", "z")]) == []
    assert demo_sums.workload_usage_of(start_s=end, end_s=start, workloads=chosen) == []


def test_hours_of_a_gpu_seen_on_two_nodes_are_counted_once(store: Store) -> None:
    # GPU-x moves from n1 to n2 within hour 2: that hour has a row on each node.
    t0 = END - 5 * HOUR
    proc = GpuProcess(
        pid=1,
        used_memory_bytes=GIB,
        attribution=Attribution(namespace="ns", user="u", workload="w", workload_kind="batch"),
    )
    snaps = [
        Snapshot(
            ts_s=t0 + 600.0 * k,
            cluster="c1",
            node="n1" if k < 15 else "n2",
            gpus=(GpuSample(uuid="GPU-x", index=0, util_gpu_pct=50.0, processes=(proc,)),),
            system=None,
            interval_s=600.0,
        )
        for k in range(30)
    ]
    store.write_snapshots(snaps)
    rows = store.workload_usage(start_s=t0, end_s=END)
    assert len(rows) == 6
    (got,) = _sums(store).workload_usage_sums(start_s=t0, end_s=END)
    assert (got.hours, got.first_hour_s, got.last_hour_s) == (5, t0, t0 + 4 * HOUR)
    assert got.gpu_s == pytest.approx(sum(r.gpu_s for r in rows))
