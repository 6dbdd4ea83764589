"""Exposition text of vLLM (V0, early V1, V1 with two engines) and LMCache (in vLLM, MP
server) fetched from a real local HTTP server and reduced to our names."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import pytest
from tests.unit.kvcache_support import MetricsServer, fixture, metrics_server

from gpufleet.kvcache.exposition import metrics_url, parse_exposition, scrape
from gpufleet.kvcache.names import name_sets


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    with metrics_server() as s:
        yield s


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


def test_vllm_v1_sums_engines_and_ignores_deprecated_duplicates(
    server: MetricsServer, client: httpx.Client
) -> None:
    server.set("/metrics", fixture("vllm_v1_two_engines_b"))
    s = scrape(server.url("/metrics"), "vllm", client)
    assert s.ok, s.error
    v = s.values
    # Both engines summed; the deprecated gpu_* copies the server also shows are not added.
    assert v["prefix_queries"] == 7000.0
    assert v["prefix_hits"] == 2500.0
    assert v["external_queries"] == 3000.0
    assert v["preemptions"] == 6.0
    assert v["requests_running"] == 14.0
    assert v["requests_waiting"] == 4.0
    # Usage fractions are averaged over engines, the fullest kept apart.
    assert v["kv_usage_frac"] == pytest.approx(0.90)
    assert v["kv_usage_max_frac"] == pytest.approx(0.95)
    assert v["block_size"] == 16.0
    assert v["num_gpu_blocks"] == 27000.0
    assert s.engines == 2
    assert s.models == ("meta-llama/Llama-3.1-8B-Instruct",)
    assert "vllm:prefix_cache_queries" in s.names
    assert "vllm:gpu_prefix_cache_queries" not in s.names
    assert name_sets(list(s.names)) == ("vllm-v1", "vllm-kv-connector")
    ttft = s.histograms["ttft_s"]
    assert ttft.buckets == ((0.1, 10.0), (0.5, 70.0), (1.0, 145.0), (2.5, 160.0), (math.inf, 160.0))
    assert ttft.count == 160.0
    assert ttft.sum == pytest.approx(110.0)
    assert s.fetch_s is not None


def test_vllm_v0_names(server: MetricsServer, client: httpx.Client) -> None:
    server.set("/metrics", fixture("vllm_v0"))
    s = scrape(server.url("/metrics"), "vllm", client)
    assert s.ok
    v = s.values
    assert v["kv_usage_frac"] == 0.5
    assert v["cpu_kv_usage_frac"] == pytest.approx(0.1)
    assert v["prefix_hit_rate_gauge_frac"] == 0.25
    assert "prefix_queries" not in v  # V0 has no prefix-cache counters
    assert v["preemptions"] == 3.0  # vllm:num_preemptions_total, a counter named with _total
    assert v["requests_swapped"] == 1.0
    assert s.engines is None
    assert name_sets(list(s.names)) == ("vllm-v0",)
    assert s.histograms["ttft_s"].count == 100.0


def test_vllm_early_v1_gpu_prefixed_counters(server: MetricsServer, client: httpx.Client) -> None:
    server.set("/metrics", fixture("vllm_v1_early"))
    s = scrape(server.url("/metrics"), "vllm", client)
    assert s.values["prefix_queries"] == 20000.0
    assert s.values["prefix_hits"] == 5000.0
    assert s.values["kv_usage_frac"] == pytest.approx(0.3)
    assert name_sets(list(s.names)) == ("vllm-v1-early",)


def test_lmcache_in_vllm_and_mp_server(server: MetricsServer, client: httpx.Client) -> None:
    server.set("/lmcache", fixture("lmcache_a"))
    server.set("/mp", fixture("lmcache_mp_b"))
    server.set("/mp-early", fixture("lmcache_mp_early"))
    lmc = scrape(server.url("/lmcache"), "lmcache", client)
    assert lmc.values["lmc_requested_tokens"] == 100000.0
    assert lmc.values["lmc_hit_tokens"] == 30000.0
    assert lmc.values["lmc_local_cache_usage_bytes"] == 5 * 2**30
    assert lmc.values["lmc_cpu_evictions"] == 10.0
    assert lmc.histograms["lmc_retrieve_speed_tokens_per_s"].count == 100.0
    assert name_sets(list(lmc.names)) == ("lmcache",)
    mp = scrape(server.url("/mp"), "lmcache", client)
    # Two tenants (cache_salt) summed.
    assert mp.values["lmc_lookup_tokens"] == 18000.0
    assert mp.values["lmc_lookup_hit_tokens"] == 7000.0
    assert mp.values["lmc_cpu_evictions"] == 25.0
    assert mp.values["lmc_cpu_writes"] == 200.0
    assert mp.values["lmc_l1_usage_frac"] == pytest.approx(0.98)
    assert mp.values["lmc_local_cache_usage_bytes"] == 10 * 2**30
    assert name_sets(list(mp.names)) == ("lmcache-mp",)
    early = scrape(server.url("/mp-early"), "lmcache", client)
    assert early.values["lmc_cpu_evictions"] == 4.0
    assert early.values["lmc_cpu_writes"] == 30.0
    assert name_sets(list(early.names)) == ("lmcache-mp-early",)


def test_untyped_exposition_with_and_without_total() -> None:
    text = (
        "lmcache:num_hit_tokens 12\n"
        "lmcache:num_requested_tokens_total 48\n"
        'vllm:num_requests_waiting{engine="0"} 2\n'
        'vllm:num_requests_waiting{engine="1"} 3\n'
        "unrelated_metric 7\n"
    )
    parsed = parse_exposition(text)
    assert parsed.values == {
        "requests_waiting": 5.0,
        "lmc_requested_tokens": 48.0,
        "lmc_hit_tokens": 12.0,
    }
    assert parsed.engines == 2


def test_failures_are_scrapes_that_say_why(server: MetricsServer, client: httpx.Client) -> None:
    server.set("/broken", "this is { not prometheus\n")
    server.set("/down", "overloaded\n", status=503)
    broken = scrape(server.url("/broken"), "vllm", client)
    assert not broken.ok
    assert broken.error is not None
    assert "not Prometheus exposition text" in broken.error
    down = scrape(server.url("/down"), "vllm", client)
    assert not down.ok
    assert down.error == f"HTTP 503 from {server.url('/down')}"
    missing = scrape(server.url("/nothing-here"), "vllm", client)
    assert missing.error is not None
    assert "HTTP 404" in missing.error
    port = int(server.base.rsplit(":", 1)[1])
    server.close()
    gone = scrape(f"http://127.0.0.1:{port}/metrics", "vllm", client)
    assert not gone.ok
    assert gone.error is not None
    assert gone.error.startswith("unreachable")


def test_metrics_url() -> None:
    assert metrics_url("http://host:8000") == "http://host:8000/metrics"
    assert metrics_url("http://host:8000/") == "http://host:8000/metrics"
    assert metrics_url("https://h/custom/metrics") == "https://h/custom/metrics"
    with pytest.raises(ValueError, match="not an http"):
        metrics_url("host:8000")
