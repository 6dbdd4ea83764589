"""``Store.gpu_usage_totals``: the sums of ``gpu_usage``'s rows, in SQL, on both backends."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest

from gpufleet.agent.demo import write_demo
from gpufleet.store import Resolution, Store, StoreError
from gpufleet.store.base import GpuUsage, WorkloadUsage

HOUR = 3600.0
DAY = 86_400.0
END = 1_760_000_000.0 - 1_760_000_000.0 % DAY  # a UTC midnight
MONDAY = 4 * DAY  # 1970-01-05 was a Monday


@pytest.fixture
def demo(store: Store) -> Store:
    # Written once per test: each test below checks several cases on it (a write is ~1 s).
    # Three days of a 2-node x 4-GPU cluster, a sample every 15 minutes.
    write_demo(store, days=3, nodes=2, gpus=4, seed=1, end_s=END, interval_s=900.0)
    return store


def _fold(rows: list[GpuUsage], key: object) -> dict[object, tuple[float, ...]]:
    """Per-key sums of the additive fields, maxima of the rest (as the store folds them)."""
    out: dict[object, list[float]] = defaultdict(lambda: [0.0] * 27 + [-math.inf] * 2)
    for r in rows:
        k = key(r)  # type: ignore[operator]
        acc = out[k]
        add = (r.seconds, r.allocated_s, r.idle_s, r.idle_allocated_s, r.util_sum, r.throttled_s)
        for i, v in enumerate((*add, float(r.samples), *r.util_hist_s)):
            acc[i] += v
        acc[27] = max(acc[27], r.util_max_pct or -math.inf)
        acc[28] = max(acc[28], float(r.mem_used_max_bytes or 0))
    return {k: tuple(v) for k, v in out.items()}


def _close(a: dict[object, tuple[float, ...]], b: dict[object, tuple[float, ...]]) -> None:
    assert a.keys() == b.keys()
    for k, value in a.items():
        assert value == pytest.approx(b[k], rel=1e-9, abs=1e-6), k


def _gpu(r: GpuUsage) -> object:
    return r.uuid


def test_window_totals_equal_the_bucket_sums(demo: Store) -> None:
    for cut in (0.0, 1234.0):
        _check_window(demo, cut)
    _check_periods(demo)


def _check_window(demo: Store, cut: float) -> None:
    # cut = 0: the window lies on hour edges; else both edges cut an hour.
    start, end = END - 2 * DAY + cut, END - cut
    rows = demo.gpu_usage(start_s=start, end_s=end)
    totals = demo.gpu_usage_totals(start_s=start, end_s=end)
    _close(_fold(totals, _gpu), _fold(rows, _gpu))
    inner = [t for t in totals if t.bucket_s >= start]
    assert len({t.uuid for t in totals}) == 8
    # One summed row per GPU, plus the two cut hours of each GPU when the edges cut hours.
    assert len(totals) == (8 if cut == 0 else 24)
    assert all(t.bucket_s == math.ceil(start / HOUR) * HOUR for t in inner if t.seconds > HOUR)
    # Per GPU, rows come in time order.
    for uuid in {t.uuid for t in totals}:
        mine = [t.bucket_s for t in totals if t.uuid == uuid]
        assert mine == sorted(mine)


def _check_periods(demo: Store) -> None:
    start, end = END - 3 * DAY, END
    rows = demo.gpu_usage(start_s=start, end_s=end)
    for per, offset in ((HOUR, 0.0), (DAY, 0.0), (7 * DAY, MONDAY)):

        def period(r: GpuUsage, per: float = per, offset: float = offset) -> object:
            return (r.uuid, math.floor((r.bucket_s - offset) / per))

        totals = demo.gpu_usage_totals(start_s=start, end_s=end, per_s=per, offset_s=offset)
        _close(_fold(totals, period), _fold(rows, period))
        assert len(totals) == len(_fold(rows, period))

        def cluster_period(r: GpuUsage, per: float = per, offset: float = offset) -> object:
            return math.floor((r.bucket_s - offset) / per)

        # Summed over the GPUs too: one row per period, keyed by empty names.
        pooled = demo.gpu_usage_totals(
            start_s=start, end_s=end, per_s=per, offset_s=offset, per_gpu=False
        )
        assert {(r.cluster, r.node, r.uuid) for r in pooled} == {("", "", "")}
        _close(_fold(pooled, cluster_period), _fold(rows, cluster_period))
        assert len(pooled) == len(_fold(rows, cluster_period))


def test_minute_rollups_edges_filters_and_bad_arguments(demo: Store) -> None:
    _check_minutes(demo)
    _check_one_bucket(demo)
    _check_filters(demo)
    _check_refusals(demo)


def _check_minutes(demo: Store) -> None:
    start, end = END - 6 * HOUR + 90.0, END - 30.0
    rows = demo.gpu_usage(start_s=start, end_s=end, resolution=Resolution.MINUTE)
    totals = demo.gpu_usage_totals(start_s=start, end_s=end, resolution=Resolution.MINUTE)
    assert rows
    assert len(totals) < len(rows)
    _close(_fold(totals, _gpu), _fold(rows, _gpu))


def _check_one_bucket(demo: Store) -> None:
    start, end = END - HOUR + 60.0, END - 60.0
    assert demo.gpu_usage_totals(start_s=start, end_s=end) == demo.gpu_usage(
        start_s=start, end_s=end
    )


def _check_filters(demo: Store) -> None:
    start, end = END - DAY, END
    node = demo.inventory()[0].node
    totals = demo.gpu_usage_totals(start_s=start, end_s=end, node=node)
    assert {t.node for t in totals} == {node}
    assert len(totals) == 4
    assert demo.gpu_usage_totals(start_s=END + DAY, end_s=END + 2 * DAY) == []
    assert demo.gpu_usage_totals(start_s=end, end_s=start) == []


def _check_refusals(demo: Store) -> None:
    with pytest.raises(StoreError, match="rollups"):
        demo.gpu_usage_totals(start_s=END - DAY, end_s=END, resolution=Resolution.RAW)
    with pytest.raises(StoreError, match="multiple of 3600"):
        demo.gpu_usage_totals(start_s=END - DAY, end_s=END, per_s=1800.0)


def test_workload_totals_equal_the_hour_sums(demo: Store) -> None:
    def key(r: WorkloadUsage) -> object:
        return (r.namespace, r.user, r.workload, r.uuid)

    def fold(rows: list[WorkloadUsage]) -> dict[object, tuple[float, ...]]:
        out: dict[object, list[float]] = defaultdict(lambda: [0.0] * 7)
        for r in rows:
            acc = out[key(r)]
            for i, v in enumerate((r.gpu_s, r.busy_gpu_s, r.util_sum, r.mem_bytes_s, r.samples)):
                acc[i] += v
            acc[5] = max(acc[5], float(r.mem_peak_bytes or 0))
            acc[6] = max(acc[6], r.util_peak_pct or 0.0)
        return {k: tuple(v) for k, v in out.items()}

    for start, end in ((END - 2 * DAY, END), (END - 2 * DAY + 1234.0, END - 1234.0)):
        rows = demo.workload_usage(start_s=start, end_s=end)
        totals = demo.workload_usage_totals(start_s=start, end_s=end)
        assert len(totals) < len(rows)
        _close(fold(totals), fold(rows))
    namespace = rows[0].namespace
    only = demo.workload_usage_totals(start_s=END - DAY, end_s=END, namespace=namespace)
    assert only
    assert {r.namespace for r in only} == {namespace}
    assert demo.workload_usage_totals(start_s=END, end_s=END - DAY) == []


def test_memory_use_equals_the_series_computation(demo: Store) -> None:
    inventory = {g.uuid: g for g in demo.inventory()}
    for start, end, res in (
        (END - 2 * DAY + 1234.0, END - 1234.0, Resolution.HOUR),
        (END - 5 * HOUR + 90.0, END - 30.0, Resolution.MINUTE),
    ):
        uuids = sorted(inventory)[:3]
        pairs: list[tuple[float, float]] = []
        for s in demo.gpu_series(metric="mem_used_bytes", start_s=start, end_s=end, resolution=res):
            total = inventory[s.subject].mem_total_bytes
            if s.subject not in uuids or not total:
                continue
            for p in s.points:
                width = res.bucket_s
                weight = p.count * max(0.0, min(end, p.ts_s + width) - max(start, p.ts_s)) / width
                if p.mean is not None and weight > 0:
                    pairs.append((100.0 * p.mean / total, weight))
        pairs.sort()
        total_w = sum(w for _, w in pairs)
        mean = sum(v * w for v, w in pairs) / total_w
        cum, p95 = 0.0, None
        for v, w in pairs:
            cum += w
            if cum >= 0.95 * total_w:
                p95 = v
                break
        got = demo.gpu_memory_use(start_s=start, end_s=end, resolution=res, uuids=uuids)
        assert got == (pytest.approx(mean, rel=1e-9), pytest.approx(p95, rel=1e-12))
    assert demo.gpu_memory_use(
        start_s=END - DAY, end_s=END, resolution=Resolution.HOUR, uuids=[]
    ) == (None, None)
    assert demo.gpu_memory_use(
        start_s=END + DAY, end_s=END + 2 * DAY, resolution=Resolution.HOUR, uuids=["GPU-x"]
    ) == (None, None)
