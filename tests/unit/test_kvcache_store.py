"""The KV-cache scrape table on SQLite and PostgreSQL, and the poller writing into it."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.kvcache_support import MetricsServer, StepClock, fixture, metrics_server

from gpufleet.kvcache.poller import KvCacheMonitor
from gpufleet.store import open_store
from gpufleet.store.base import Store
from gpufleet.store.kvcache_records import HistogramReading, KvCacheRecords, KvCacheScrape
from gpufleet.store.schema import LATEST_VERSION

T0 = 1_765_000_000.0


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    with metrics_server() as s:
        yield s


def _records(store: Store) -> KvCacheRecords:
    assert isinstance(store, KvCacheRecords)
    return store


def test_round_trip_window_and_latest(store: Store) -> None:
    kv = _records(store)
    hist = HistogramReading(((0.1, 1.0), (0.5, 3.0), (math.inf, 4.0)), 1.25, 4.0)
    a1 = KvCacheScrape(
        T0,
        "http://a/metrics",
        "vllm",
        True,
        values={"prefix_queries": 10.0, "kv_usage_frac": 0.5},
        histograms={"ttft_s": hist},
        names=("vllm:kv_cache_usage_perc",),
        models=("m",),
        engines=2,
        fetch_s=0.01,
    )
    b1 = KvCacheScrape(T0 + 1, "http://b/metrics", "lmcache", False, error="HTTP 503")
    a2 = KvCacheScrape(T0 + 10, "http://a/metrics", "vllm", True, values={"prefix_queries": 20.0})
    kv.save_kvcache_scrapes([a1, b1])
    kv.save_kvcache_scrapes([a2])
    kv.save_kvcache_scrapes([])
    assert kv.kvcache_scrapes(start_s=T0, end_s=T0 + 11) == [a1, b1, a2]
    # Half-open: a scrape at end_s is not in the window.
    assert kv.kvcache_scrapes(start_s=T0, end_s=T0 + 10) == [a1, b1]
    assert kv.kvcache_scrapes(start_s=T0, end_s=T0 + 11, source="http://a/metrics") == [a1, a2]
    assert kv.kvcache_scrapes(start_s=T0, end_s=T0 + 11, limit=2) == [b1, a2]  # the newest
    assert sorted(kv.latest_kvcache_scrapes(), key=lambda s: s.source) == [a2, b1]
    assert kv.delete_kvcache_scrapes_before(T0 + 5) == 2
    assert kv.kvcache_scrapes(start_s=0, end_s=T0 + 100) == [a2]
    assert store.schema_version() == LATEST_VERSION  # type: ignore[attr-defined]


def test_poller_writes_scrapes_to_the_store(
    store: Store, server: MetricsServer, tmp_path: Path
) -> None:
    clock = StepClock(T0)
    monitor = KvCacheMonitor(
        [server.url("/metrics")], store=store, clock=clock, retention_s=7 * 86_400.0
    )
    try:
        server.set("/metrics", fixture("vllm_v1_two_engines_a"))
        monitor.scrape_once()
        clock.advance(10)
        server.set("/metrics", fixture("vllm_v1_two_engines_b"))
        monitor.scrape_once()
        assert monitor.store_error is None
        stored = _records(store).kvcache_scrapes(start_s=T0 - 1, end_s=T0 + 60)
        assert [s.ts_s for s in stored] == [T0, T0 + 10]
        assert stored[1].values["prefix_queries"] == 7000.0
        assert stored[1].histograms["ttft_s"].count == 160.0
        summary = monitor.summary(60.0)
        assert summary.prefix_hit_rate_pct == pytest.approx(37.5)
        # Another process reading the same store sees the same window.
        again = KvCacheMonitor([server.url("/metrics")], store=store, clock=clock)
        try:
            assert again.summary(60.0).prefix_hit_rate_pct == pytest.approx(37.5)
        finally:
            again.stop()
    finally:
        monitor.stop()


def test_retention_deletes_old_scrapes(sqlite_path: Path, server: MetricsServer) -> None:
    clock = StepClock(T0)
    with open_store(sqlite_path) as store:
        old = KvCacheScrape(T0 - 8 * 86_400.0, server.url("/metrics"), "vllm", True)
        _records(store).save_kvcache_scrapes([old])
        monitor = KvCacheMonitor(
            [server.url("/metrics")], store=store, clock=clock, retention_s=7 * 86_400.0
        )
        try:
            server.set("/metrics", fixture("vllm_v0"))
            monitor.scrape_once()
        finally:
            monitor.stop()
        left = _records(store).kvcache_scrapes(start_s=0, end_s=T0 + 1)
        assert [s.ts_s for s in left] == [T0]


def test_thread_scrapes_on_its_interval(sqlite_path: Path, server: MetricsServer) -> None:
    server.set("/metrics", fixture("vllm_v1_early"))
    with open_store(sqlite_path) as store:
        monitor = KvCacheMonitor([server.url("/metrics")], store=store, interval_s=0.05)
        monitor.start()
        deadline = time.monotonic() + 10
        try:
            while server.hits.get("/metrics", 0) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            monitor.stop()
        assert server.hits["/metrics"] >= 3
        now = time.time()
        stored = _records(store).kvcache_scrapes(start_s=now - 60, end_s=now + 1)
        assert len(stored) >= 3
        assert all(s.ok for s in stored)


def test_the_agent_builds_and_stops_its_monitor(tmp_path: Path, server: MetricsServer) -> None:
    from gpufleet.agent.runner import build_agent
    from gpufleet.settings import KvCacheSettings, Settings

    settings = Settings(
        source="sim",
        sim_gpus=1,
        db=str(tmp_path / "agent.db"),
        kvcache=KvCacheSettings(vllm_urls=[server.base], interval_s=0.05),
    )
    ctx = build_agent(settings)
    try:
        assert ctx.kvcache is not None
        assert ctx.kvcache.sources == ((server.url("/metrics"), "vllm"),)
        assert ctx.kvcache.store is ctx.store
        server.set("/metrics", fixture("vllm_v0"))
        ctx.kvcache.start()
        deadline = time.monotonic() + 10
        while server.hits.get("/metrics", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        ctx.shutdown()
    assert server.hits["/metrics"] >= 1
    without = build_agent(Settings(source="sim", sim_gpus=1, db=str(tmp_path / "b.db")))
    try:
        assert without.kvcache is None
    finally:
        without.shutdown()
