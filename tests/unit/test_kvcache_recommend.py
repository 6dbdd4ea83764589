"""LMCache recommendations for scripted situations: a full CPU tier (grow it, or add disk when
memory is short), prompts that share nothing (caching won't help), GPU KV pressure with
preemptions and no LMCache (offload), and the quiet cases."""

from __future__ import annotations

import pytest

from gpufleet.kvcache.readings import KvCacheSummary, summarize
from gpufleet.kvcache.recommend import (
    GIB,
    HostResources,
    NoKvCacheDataError,
    recommend,
)
from gpufleet.model import DiskUsage, SystemSample
from gpufleet.store.kvcache_records import KvCacheScrape

T0 = 1_765_000_000.0
BIG_HOST = HostResources(mem_available_bytes=64 * GIB, disk_free_bytes=500 * GIB)
# A full CPU tier: 25 of 100 writes evicted (with 10 GiB held, the working set is 13.33 GiB).
FULL_TIER = {
    "lmc_lookup_tokens": 100_000,
    "lmc_lookup_hit_tokens": 40_000,
    "lmc_cpu_evictions": 25,
    "lmc_cpu_writes": 100,
}


def _window(
    vllm: dict[str, float] | None = None,
    lmcache: dict[str, float] | None = None,
    gauges: dict[str, float] | None = None,
    lmcache_gauges: dict[str, float] | None = None,
    vllm_sources: int = 1,
) -> KvCacheSummary:
    """Two scrapes 60 s apart per source: counters from 0 to the given values."""
    scrapes = []
    for i in range(vllm_sources):
        if vllm is not None:
            url = f"http://vllm-{i}:8000/metrics"
            scrapes.append(KvCacheScrape(T0, url, "vllm", True, values=dict.fromkeys(vllm, 0.0)))
            scrapes.append(
                KvCacheScrape(T0 + 60, url, "vllm", True, values={**vllm, **(gauges or {})})
            )
    if lmcache is not None:
        url = "http://lmcache:8080/metrics"
        scrapes.append(KvCacheScrape(T0, url, "lmcache", True, values=dict.fromkeys(lmcache, 0.0)))
        scrapes.append(
            KvCacheScrape(
                T0 + 60, url, "lmcache", True, values={**lmcache, **(lmcache_gauges or {})}
            )
        )
    return summarize(scrapes, start_s=T0 - 1, end_s=T0 + 61)


def test_evicting_cpu_tier_grows_into_free_memory() -> None:
    s = _window(
        vllm={"prefix_queries": 100_000, "prefix_hits": 30_000},
        lmcache=FULL_TIER,
        lmcache_gauges={"lmc_local_cache_usage_bytes": 10 * GIB},
    )
    rec = recommend(s, BIG_HOST, {"chunk_size": 256, "max_local_cpu_size": 10.0})
    assert rec.verdict == "grow_cpu_tier"
    # 25 of 100 writes evicted: the working set is 10 GiB x 100 / 75.
    assert rec.settings["max_local_cpu_size"] == pytest.approx(13.4)
    assert [c.key for c in rec.changes] == ["max_local_cpu_size"]
    assert rec.memory_saved_bytes == pytest.approx(10 * GIB * 100 / 75)
    assert rec.memory_saved_gb == pytest.approx(13.33)
    assert rec.host_memory_added_bytes == pytest.approx(3.4 * GIB)
    assert "local_disk" not in rec.settings
    assert any("evicted" in line for line in rec.reasoning)


def test_evicting_with_little_memory_adds_a_disk_tier() -> None:
    s = _window(
        vllm={"prefix_queries": 100_000, "prefix_hits": 30_000},
        lmcache=FULL_TIER,
        lmcache_gauges={"lmc_local_cache_usage_bytes": 10 * GIB},
    )
    host = HostResources(mem_available_bytes=1 * GIB, disk_free_bytes=500 * GIB)
    rec = recommend(s, host, {"max_local_cpu_size": 10.0}, disk_path="/data/lmcache/")
    assert rec.verdict == "add_disk_tier"
    assert rec.settings["local_disk"] == "file:///data/lmcache/"
    need = 10 * GIB * 100 / 75 - 10 * GIB
    assert rec.settings["max_local_disk_size"] == pytest.approx(5.0)  # 1.5 x need, in GiB
    assert rec.settings["max_local_cpu_size"] == 10.0
    assert rec.memory_saved_bytes == pytest.approx(10 * GIB + need)


def test_evicting_with_no_room_says_so() -> None:
    s = _window(
        vllm={"prefix_queries": 100_000, "prefix_hits": 30_000},
        lmcache={"lmc_requested_tokens": 100_000, "lmc_hit_tokens": 40_000, "lmc_cpu_evictions": 9},
        lmcache_gauges={"lmc_local_cache_usage_bytes": 10 * GIB},
    )
    host = HostResources(mem_available_bytes=1 * GIB, disk_free_bytes=1 * GIB)
    rec = recommend(s, host, {"max_local_cpu_size": 10.0})
    assert rec.verdict == "tier_full_no_room"
    assert rec.changes == ()
    assert any("remote" in line for line in rec.reasoning)


def test_low_hit_rate_means_caching_wont_help() -> None:
    s = _window(
        vllm={"prefix_queries": 100_000, "prefix_hits": 1_000},
        lmcache={"lmc_lookup_tokens": 100_000, "lmc_lookup_hit_tokens": 500},
        lmcache_gauges={"lmc_local_cache_usage_bytes": 2 * GIB},
    )
    rec = recommend(s, BIG_HOST, {"max_local_cpu_size": 20.0})
    assert rec.verdict == "caching_wont_help"
    assert "won't help" in rec.summary
    assert rec.memory_saved_bytes == 0.0
    # The idle tier shrinks to twice its use and the rest of the host memory is freed.
    assert rec.settings["max_local_cpu_size"] == 4.0
    assert rec.host_memory_freed_bytes == pytest.approx(16 * GIB)


def test_gpu_pressure_and_preemptions_without_lmcache_offload() -> None:
    s = _window(
        vllm={"prefix_queries": 200_000, "prefix_hits": 80_000, "preemptions": 12},
        gauges={"kv_usage_frac": 0.97, "kv_usage_max_frac": 0.97, "requests_waiting": 6},
    )
    rec = recommend(s, BIG_HOST, None)
    assert rec.verdict == "enable_offload"
    assert rec.settings["local_cpu"] is True
    assert rec.settings["max_local_cpu_size"] == 16.0  # a quarter of 64 GiB available
    assert rec.settings["chunk_size"] == 256
    assert rec.kv_transfer_config == {"kv_connector": "LMCacheConnectorV1", "kv_role": "kv_both"}
    assert rec.memory_saved_bytes == 16 * GIB
    assert "upper bound" in rec.memory_saved_basis
    mp = recommend(s, BIG_HOST, None, mode="mp")
    assert mp.kv_transfer_config["kv_connector"] == "LMCacheMPConnector"


def test_pressure_with_lmcache_room_keeps_and_explains() -> None:
    s = _window(
        vllm={"prefix_queries": 200_000, "prefix_hits": 80_000, "preemptions": 3},
        lmcache={"lmc_requested_tokens": 200_000, "lmc_hit_tokens": 60_000},
        gauges={"kv_usage_frac": 0.95, "kv_usage_max_frac": 0.96},
        lmcache_gauges={"lmc_local_cache_usage_bytes": 1 * GIB},
    )
    rec = recommend(s, BIG_HOST, {"max_local_cpu_size": 5.0})
    assert rec.verdict == "keep"
    assert rec.memory_saved_bytes == 1 * GIB
    assert any("--max-num-seqs" in line for line in rec.reasoning)


def test_short_shared_prefixes_get_a_smaller_chunk() -> None:
    s = _window(
        vllm={"prefix_queries": 100_000, "prefix_hits": 60_000},
        lmcache={"lmc_lookup_tokens": 100_000, "lmc_lookup_hit_tokens": 10_000},
        lmcache_gauges={"lmc_local_cache_usage_bytes": 1 * GIB},
    )
    rec = recommend(s, BIG_HOST, {"chunk_size": 256})
    assert rec.verdict == "keep"
    assert rec.settings["chunk_size"] == 128
    assert "shorter than 256-token chunks" in rec.changes[0].reason


def test_invalid_chunk_size_is_fixed_to_a_block_multiple() -> None:
    s = _window(vllm={"prefix_queries": 50_000, "prefix_hits": 20_000})
    rec = recommend(s, BIG_HOST, {"chunk_size": 250}, block_size=16)
    assert rec.settings["chunk_size"] == 256


def test_little_traffic_is_insufficient_data() -> None:
    s = _window(vllm={"prefix_queries": 500, "prefix_hits": 0})
    rec = recommend(s, BIG_HOST, None)
    assert rec.verdict == "insufficient_data"
    assert rec.changes == ()


def test_several_instances_share_a_remote_tier() -> None:
    s = _window(vllm={"prefix_queries": 50_000, "prefix_hits": 20_000}, vllm_sources=2)
    rec = recommend(s, BIG_HOST, {}, remote_url="lm://cache:65432")
    assert rec.settings["remote_url"] == "lm://cache:65432"
    assert rec.settings["remote_serde"] == "naive"
    without = recommend(s, BIG_HOST, {})
    assert "remote_url" not in without.settings
    assert any("shared remote tier" in line for line in without.reasoning)


def test_nothing_answered_is_an_error() -> None:
    s = summarize(
        [KvCacheScrape(T0, "http://x/metrics", "vllm", False, error="unreachable")],
        start_s=T0 - 1,
        end_s=T0 + 1,
    )
    with pytest.raises(NoKvCacheDataError, match="no vLLM or LMCache source answered"):
        recommend(s, BIG_HOST, None)


def test_host_resources_from_the_agent_sample() -> None:
    system = SystemSample(
        cpu_pct=1.0,
        cpu_per_core_pct=(),
        cpu_count=1,
        load_1=None,
        load_5=None,
        load_15=None,
        mem_total_bytes=128 * GIB,
        mem_used_bytes=28 * GIB,
        mem_available_bytes=100 * GIB,
        mem_pct=22.0,
        swap_total_bytes=0,
        swap_used_bytes=0,
        swap_pct=0.0,
        disks=(
            DiskUsage("/", "/dev/sda1", "ext4", 100 * GIB, 90 * GIB, 10 * GIB, 90.0),
            DiskUsage("/var/cache", "/dev/nvme0n1", "xfs", 2000 * GIB, 0, 2000 * GIB, 0.0),
        ),
    )
    host = HostResources.from_system(system, "/var/cache/lmcache/")
    assert host.mem_available_bytes == 100 * GIB
    assert host.disk_mount == "/var/cache"
    assert host.disk_free_bytes == 2000 * GIB
    assert HostResources.from_system(system, "/srv/x").disk_mount == "/"
    assert HostResources.from_system(None) == HostResources()


def test_unknown_host_memory_still_proposes_growth() -> None:
    s = _window(
        vllm={"prefix_queries": 100_000, "prefix_hits": 30_000},
        lmcache=FULL_TIER,
        lmcache_gauges={"lmc_local_cache_usage_bytes": 10 * GIB},
    )
    rec = recommend(s, HostResources(), {"max_local_cpu_size": 10.0})
    assert rec.verdict == "grow_cpu_tier"
    assert rec.settings["max_local_cpu_size"] == pytest.approx(13.4)
    assert any("free memory is unknown" in line for line in rec.reasoning)


def _full_tier_window() -> KvCacheSummary:
    return _window(
        lmcache=FULL_TIER,
        lmcache_gauges={"lmc_local_cache_usage_bytes": 10 * GIB},
    )


def test_the_tier_is_sized_from_what_it_holds_not_a_smaller_config() -> None:
    # No config file (LMCache's default 5 GiB) but 10 GiB in use: the target is the
    # reusable KV, 13.4 GiB, not 5 + the 3.3 GiB missing.
    rec = recommend(_full_tier_window(), BIG_HOST, None)
    assert rec.settings["max_local_cpu_size"] == pytest.approx(13.4)


def test_a_config_already_big_enough_is_not_grown_and_says_to_restart() -> None:
    rec = recommend(_full_tier_window(), BIG_HOST, {"max_local_cpu_size": 20.0})
    assert "max_local_cpu_size" not in {c.key for c in rec.changes}
    assert any("restart it to apply the config" in line for line in rec.reasoning)


def test_growth_is_capped_by_half_the_available_memory_as_a_whole_tier() -> None:
    small = HostResources(mem_available_bytes=4 * GIB, disk_free_bytes=500 * GIB)
    rec = recommend(_full_tier_window(), small, {"max_local_cpu_size": 10.0})
    # 10 GiB held + half of 4 GiB available = 12 GiB; the remaining 1.33 GiB go to disk.
    assert rec.settings["max_local_cpu_size"] == pytest.approx(12.0)
    assert rec.settings["max_local_disk_size"] == pytest.approx(2.0)
    assert rec.verdict == "grow_cpu_and_add_disk_tier"
