"""The one table of metric names: vLLM's and LMCache's names, across versions, to ours.

vLLM renamed its KV-cache metrics between its V0 and V1 engines (``vllm:gpu_cache_usage_perc``
became ``vllm:kv_cache_usage_perc``, ``vllm:gpu_prefix_cache_queries`` became
``vllm:prefix_cache_queries``) and for a while exposed both; LMCache names its metrics
``lmcache:*`` inside vLLM and ``lmcache_mp_*`` in its multi-process server. Each of our names
lists the server names it may come from, newest first: the first one a scrape contains is
used, so a server that exposes an old and a new name is not counted twice.

Counters appear in exposition text with a ``_total`` suffix that the lookup ignores.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Agg(enum.StrEnum):
    """How the series of one metric (one per engine, model, tenant...) combine."""

    SUM = "sum"
    MEAN = "mean"
    MAX = "max"


@dataclass(frozen=True, slots=True)
class Alias:
    """One of our names and the server names it is read from (preferred first)."""

    name: str
    raw: tuple[str, ...]
    counter: bool
    agg: Agg = Agg.SUM


_KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")

VALUE_ALIASES: tuple[Alias, ...] = (
    # vLLM: KV-cache pressure (gauges, 1 = 100 %) and the scheduler's queues.
    Alias("kv_usage_frac", _KV_USAGE, False, Agg.MEAN),
    Alias("kv_usage_max_frac", _KV_USAGE, False, Agg.MAX),
    Alias("cpu_kv_usage_frac", ("vllm:cpu_cache_usage_perc",), False, Agg.MEAN),
    Alias("requests_running", ("vllm:num_requests_running",), False),
    Alias("requests_waiting", ("vllm:num_requests_waiting",), False),
    Alias("requests_swapped", ("vllm:num_requests_swapped",), False),
    # vLLM: prefix cache (tokens queried / hit), its own GPU one and the connector's (LMCache).
    Alias("prefix_queries", ("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries"), True),
    Alias("prefix_hits", ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits"), True),
    Alias("external_queries", ("vllm:external_prefix_cache_queries",), True),
    Alias("external_hits", ("vllm:external_prefix_cache_hits",), True),
    Alias("prefix_hit_rate_gauge_frac", ("vllm:gpu_prefix_cache_hit_rate",), False, Agg.MEAN),
    Alias("preemptions", ("vllm:num_preemptions",), True),
    Alias("prompt_tokens", ("vllm:prompt_tokens",), True),
    Alias("prompt_tokens_cached", ("vllm:prompt_tokens_cached",), True),
    Alias("generation_tokens", ("vllm:generation_tokens",), True),
    # LMCache inside vLLM (lmcache:*) and its multi-process server (lmcache_mp_*).
    Alias("lmc_retrieve_requests", ("lmcache:num_retrieve_requests",), True),
    Alias("lmc_store_requests", ("lmcache:num_store_requests",), True),
    Alias("lmc_requested_tokens", ("lmcache:num_requested_tokens",), True),
    Alias("lmc_hit_tokens", ("lmcache:num_hit_tokens",), True),
    Alias(
        "lmc_lookup_tokens",
        ("lmcache:num_lookup_tokens", "lmcache_mp_lookup_requested_tokens"),
        True,
    ),
    Alias(
        "lmc_lookup_hit_tokens", ("lmcache:num_lookup_hits", "lmcache_mp_lookup_hit_tokens"), True
    ),
    Alias(
        "lmc_local_cache_usage_bytes",
        ("lmcache:local_cache_usage", "lmcache_mp_l1_memory_usage_bytes"),
        False,
    ),
    Alias("lmc_local_storage_usage_bytes", ("lmcache:local_storage_usage",), False),
    Alias("lmc_remote_cache_usage_bytes", ("lmcache:remote_cache_usage",), False),
    Alias("lmc_l1_usage_frac", ("lmcache_mp_l1_usage_ratio",), False, Agg.MEAN),
    Alias(
        "lmc_cpu_evictions",
        (
            "lmcache:local_cpu_evict_count",
            "lmcache_mp_l1_evicted_chunks",
            "lmcache_mp_l1_evicted_keys",
        ),
        True,
    ),
    Alias("lmc_cpu_writes", ("lmcache_mp_l1_write_chunks", "lmcache_mp_l1_write_keys"), True),
    Alias("lmc_cpu_reads", ("lmcache_mp_l1_read_chunks", "lmcache_mp_l1_read_keys"), True),
    Alias("lmc_l2_prefetch_hits", ("lmcache_mp_l2_prefetch_hit_chunks",), True),
    Alias("lmc_remote_read_bytes", ("lmcache:num_remote_read_bytes",), True),
)
"""Counters and gauges, in the order they are reported."""

HISTOGRAM_ALIASES: tuple[Alias, ...] = (
    Alias("ttft_s", ("vllm:time_to_first_token_seconds",), True),
    Alias("lmc_time_to_retrieve_s", ("lmcache:time_to_retrieve",), True),
    Alias("lmc_retrieve_speed_tokens_per_s", ("lmcache:retrieve_speed",), True),
)
"""Histograms (bucket counts are counters: rates come from their deltas)."""

CACHE_CONFIG_INFO = "vllm:cache_config_info"
"""vLLM's info gauge whose labels carry ``block_size`` and ``num_gpu_blocks``."""

COUNTERS: frozenset[str] = frozenset(a.name for a in VALUE_ALIASES if a.counter)
"""Our names that are counters: rates come from deltas between scrapes."""

KNOWN_RAW: frozenset[str] = frozenset(
    raw for alias in (*VALUE_ALIASES, *HISTOGRAM_ALIASES) for raw in alias.raw
)

_NAME_SETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vllm-v1", ("vllm:kv_cache_usage_perc", "vllm:prefix_cache_queries")),
    (
        "vllm-v0",
        (
            "vllm:gpu_prefix_cache_hit_rate",
            "vllm:num_requests_swapped",
            "vllm:cpu_cache_usage_perc",
        ),
    ),
    ("vllm-v1-early", ("vllm:gpu_prefix_cache_queries",)),
    ("vllm-kv-connector", ("vllm:external_prefix_cache_queries",)),
    ("lmcache", ("lmcache:num_retrieve_requests", "lmcache:num_hit_tokens")),
    ("lmcache-mp", ("lmcache_mp_lookup_requested_tokens", "lmcache_mp_l1_read_chunks")),
    ("lmcache-mp-early", ("lmcache_mp_l1_read_keys", "lmcache_mp_l1_evicted_keys")),
)


def name_sets(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Which generations of names a scrape uses (``vllm-v1``, ``vllm-v0``, ``lmcache-mp``...).

    ``vllm-v1-early`` is a V1 engine before the prefix-cache counters lost their ``gpu_``
    prefix; ``vllm-kv-connector`` says a KV connector (LMCache) reports to vLLM.
    """
    seen = set(names)
    return tuple(label for label, markers in _NAME_SETS if seen.intersection(markers))


def base_name(sample_name: str, family_type: str) -> str:
    """A sample's metric name without the ``_total`` counters carry in exposition text."""
    if family_type in ("counter", "unknown") and sample_name.endswith("_total"):
        return sample_name.removesuffix("_total")
    return sample_name
