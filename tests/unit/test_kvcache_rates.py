"""Hit rates from counter deltas between scrapes of a real server whose body changes between
scrapes (counters advance, or drop after a restart); TTFT percentiles from bucket deltas."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from tests.unit.kvcache_support import MetricsServer, StepClock, fixture, metrics_server

from gpufleet.kvcache.poller import KvCacheMonitor
from gpufleet.kvcache.rates import counter_delta, histogram_delta, quantile
from gpufleet.kvcache.readings import parse_duration_s
from gpufleet.store.kvcache_records import HistogramReading
from gpufleet.timeparse import TimeParseError


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    with metrics_server() as s:
        yield s


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


def _monitor(server: MetricsServer, clock: StepClock, **urls: list[str]) -> KvCacheMonitor:
    return KvCacheMonitor(
        urls.get("vllm", [server.url("/vllm")]), urls.get("lmcache", []), clock=clock
    )


def _scrape_sequence(
    server: MetricsServer, clock: StepClock, monitor: KvCacheMonitor, bodies: list[str]
) -> None:
    for i, body in enumerate(bodies):
        if i:
            clock.advance(10.0)
        server.set("/vllm", fixture(body))
        monitor.scrape_once()


def test_window_rates_from_counter_deltas(server: MetricsServer, clock: StepClock) -> None:
    monitor = _monitor(server, clock)
    try:
        _scrape_sequence(server, clock, monitor, ["vllm_v1_two_engines_a", "vllm_v1_two_engines_b"])
        s = monitor.summary(60.0)
    finally:
        monitor.stop()
    assert s.basis == "window"
    assert s.scrapes == 2
    # (3000-1000) + (4000-2000) queried, (1400-400) + (1100-600) hit.
    assert s.prefix_queries_tokens == 4000.0
    assert s.prefix_hits_tokens == 1500.0
    assert s.prefix_hit_rate_pct == pytest.approx(37.5)
    assert s.prefix_hit_rate_basis == "counters"
    assert s.external_hit_rate_pct == pytest.approx(40.0)
    assert s.preemptions == 4.0
    assert s.preemptions_per_s == pytest.approx(0.4)
    assert s.kv_usage_pct == pytest.approx(90.0)
    assert s.kv_usage_max_pct == pytest.approx(95.0)
    assert (s.requests_running, s.requests_waiting) == (14.0, 4.0)
    # TTFT: 100 requests between the scrapes, 40 under 0.5 s and all 100 under 1 s.
    assert s.ttft_requests == 100.0
    assert s.ttft_p50_s == pytest.approx(0.5 + 0.5 * 10 / 60)
    assert s.ttft_p90_s == pytest.approx(0.5 + 0.5 * 50 / 60)
    assert s.ttft_p99_s == pytest.approx(0.5 + 0.5 * 59 / 60)
    assert s.resets == 0
    (src,) = s.sources
    assert src.reachable is True
    assert src.engines == 2
    assert src.scrapes == 2


def test_counter_reset_counts_from_zero(server: MetricsServer, clock: StepClock) -> None:
    monitor = _monitor(server, clock)
    try:
        # b then a: the server restarted and counted a's values since.
        _scrape_sequence(server, clock, monitor, ["vllm_v1_two_engines_b", "vllm_v1_two_engines_a"])
        s = monitor.summary(60.0)
    finally:
        monitor.stop()
    assert s.resets == 1
    assert s.prefix_queries_tokens == 3000.0
    assert s.prefix_hits_tokens == 1000.0
    assert s.ttft_requests == 60.0  # the restarted histogram's own observations


def test_reset_in_the_middle_loses_nothing(server: MetricsServer, clock: StepClock) -> None:
    monitor = _monitor(server, clock)
    try:
        _scrape_sequence(
            server,
            clock,
            monitor,
            ["vllm_v1_two_engines_a", "vllm_v1_two_engines_b", "vllm_v1_two_engines_a"],
        )
        s = monitor.summary(60.0)
    finally:
        monitor.stop()
    assert s.prefix_queries_tokens == 4000.0 + 3000.0
    assert s.prefix_hits_tokens == 1500.0 + 1000.0
    assert s.elapsed_s == 20.0


def test_failed_scrape_between_is_skipped(server: MetricsServer, clock: StepClock) -> None:
    monitor = _monitor(server, clock)
    try:
        server.set("/vllm", fixture("vllm_v1_two_engines_a"))
        monitor.scrape_once()
        clock.advance(5.0)
        server.set("/vllm", "restarting\n", status=503)
        (failed,) = monitor.scrape_once()
        assert not failed.ok
        assert monitor.summary(60.0).sources[0].reachable is False
        clock.advance(5.0)
        server.set("/vllm", fixture("vllm_v1_two_engines_b"))
        monitor.scrape_once()
        s = monitor.summary(60.0)
    finally:
        monitor.stop()
    assert s.prefix_hit_rate_pct == pytest.approx(37.5)
    assert s.scrapes == 3
    assert s.sources[0].reachable is True
    assert s.sources[0].error is None


def test_one_scrape_reads_counters_since_start(server: MetricsServer, clock: StepClock) -> None:
    monitor = _monitor(server, clock)
    try:
        _scrape_sequence(server, clock, monitor, ["vllm_v1_two_engines_b"])
        s = monitor.summary(60.0)
    finally:
        monitor.stop()
    assert s.basis == "since_start"
    assert s.prefix_hit_rate_pct == pytest.approx(100 * 2500 / 7000)
    assert s.preemptions == 6.0
    assert s.preemptions_per_s is None  # no interval to divide by
    assert s.ttft_requests == 160.0


def test_v0_hit_rate_comes_from_its_gauge(server: MetricsServer, clock: StepClock) -> None:
    monitor = _monitor(server, clock)
    try:
        _scrape_sequence(server, clock, monitor, ["vllm_v0", "vllm_v0"])
        s = monitor.summary(60.0)
    finally:
        monitor.stop()
    assert s.prefix_hit_rate_pct == pytest.approx(25.0)
    assert s.prefix_hit_rate_basis == "gauge"
    assert s.preemptions == 0.0
    assert s.block_size == 16


def test_vllm_and_lmcache_sources_together(server: MetricsServer, clock: StepClock) -> None:
    monitor = KvCacheMonitor(
        [server.url("/vllm")], [server.url("/lmc"), server.url("/mp")], clock=clock
    )
    try:
        for suffix in ("a", "b"):
            server.set("/vllm", fixture(f"vllm_v1_two_engines_{suffix}"))
            server.set("/lmc", fixture(f"lmcache_{suffix}"))
            server.set("/mp", fixture(f"lmcache_mp_{suffix}"))
            monitor.scrape_once()
            clock.advance(10.0)
        s = monitor.summary(60.0)
    finally:
        monitor.stop()
    assert s.lmcache_hit_rate_pct == pytest.approx(20.0)  # 10000 of 50000
    assert s.lmcache_lookup_hit_rate_pct == pytest.approx(50.0)  # 5000 of 10000
    assert s.lmcache_evictions == 50.0 + 25.0
    assert s.lmcache_cpu_usage_bytes == 5 * 2**30 + 10 * 2**30
    assert s.lmcache_l1_usage_pct == pytest.approx(98.0)
    assert s.lmcache_seen
    assert [(x.kind, x.name_sets) for x in s.sources] == [
        ("vllm", ("vllm-v1", "vllm-kv-connector")),
        ("lmcache", ("lmcache",)),
        ("lmcache", ("lmcache-mp",)),
    ]


def test_counter_and_histogram_deltas() -> None:
    assert counter_delta(10.0, 15.0) == 5.0
    assert counter_delta(10.0, 3.0) == 3.0  # restarted, then counted 3
    before = HistogramReading(((1.0, 2.0), (math.inf, 4.0)), 3.0, 4.0)
    after = HistogramReading(((1.0, 5.0), (math.inf, 9.0)), 8.0, 9.0)
    assert histogram_delta(before, after) == HistogramReading(
        ((1.0, 3.0), (math.inf, 5.0)), 5.0, 5.0
    )
    assert histogram_delta(after, before) == before  # a restart


def test_quantile_edges() -> None:
    assert quantile(HistogramReading((), 0.0, 0.0), 0.5) is None
    assert quantile(HistogramReading(((1.0, 0.0), (math.inf, 0.0)), 0.0, 0.0), 0.5) is None
    # All observations above the last finite bound: "at least 2.5 s".
    tail = HistogramReading(((2.5, 0.0), (math.inf, 10.0)), 50.0, 10.0)
    assert quantile(tail, 0.99) == 2.5
    first = HistogramReading(((0.1, 10.0), (math.inf, 10.0)), 0.5, 10.0)
    assert quantile(first, 0.5) == pytest.approx(0.05)


def test_parse_duration() -> None:
    assert parse_duration_s("15m") == 900.0
    assert parse_duration_s("2h") == 7200.0
    assert parse_duration_s("45") == 45.0
    assert parse_duration_s("1.5d") == 129_600.0
    for bad in ("", "soon", "0s", "-5m", "31d"):
        with pytest.raises(TimeParseError):
            parse_duration_s(bad)
