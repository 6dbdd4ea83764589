"""Typed results of an agent's KV-cache endpoints (``/lmcache/*``): the vLLM / LMCache
sources it scrapes, a window's hit rates and KV pressure, LMCache recommendations and the
config file written.

Frozen dataclasses with the server's field names, which carry their units (``_pct``,
``_tokens``, ``_bytes``, ``_gb``, ``_s``); the wire's ISO 8601 times are epoch seconds here
(``last_scrape_s``, ``start_s``). Readings a server does not report are ``None``, never 0.
The JSON a result was built from stays available as ``.raw``, and the four results
(:class:`KvCacheStatus`, :class:`KvCacheMetrics`, :class:`KvCacheRecommendation`,
:class:`KvCacheConfigured`) can also be read by its keys: ``result["memory_saved_gb"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpufleet.client._wire import (
    Json,
    JsonKeys,
    integer,
    many,
    num,
    obj,
    opt_float,
    opt_int,
    opt_str,
    opt_ts,
    strs,
    ts,
)


def _str_map(value: Any) -> Mapping[str, str]:
    return {str(k): str(v) for k, v in obj(value).items()}


@dataclass(frozen=True, slots=True)
class KvCacheSource:
    """One configured vLLM or LMCache ``/metrics`` URL and how its scraping goes.

    Attributes:
        kind: ``vllm`` or ``lmcache``.
        reachable: the newest scrape answered; None: not scraped yet.
        name_sets: metric-name generations seen (``vllm-v1``, ``vllm-kv-connector``,
            ``lmcache``, ``lmcache-mp``...; docs/KVCACHE.md).
        engines: engines the newest answer showed (vLLM data parallel), if any.
    """

    url: str
    kind: str
    reachable: bool | None
    last_scrape_s: float | None
    last_ok_s: float | None
    error: str | None
    name_sets: tuple[str, ...]
    models: tuple[str, ...]
    engines: int | None
    scrapes: int

    @classmethod
    def from_wire(cls, d: Json) -> KvCacheSource:
        reachable = d.get("reachable")
        return cls(
            url=str(d["url"]),
            kind=str(d["kind"]),
            reachable=None if reachable is None else bool(reachable),
            last_scrape_s=opt_ts(d.get("last_scrape")),
            last_ok_s=opt_ts(d.get("last_ok")),
            error=opt_str(d.get("error")),
            name_sets=strs(d.get("name_sets")),
            models=strs(d.get("models")),
            engines=opt_int(d.get("engines")),
            scrapes=integer(d.get("scrapes", 0)),
        )


@dataclass(frozen=True, slots=True)
class KvCacheStatus(JsonKeys):
    """``GET /lmcache/status``: which sources are configured and how scraping goes.

    An agent without sources answers ``configured=False`` with a ``hint`` saying what to set
    (the other ``/lmcache/*`` endpoints then raise :class:`~gpufleet.client.ConflictError`).

    Attributes:
        stored: scrapes are kept in the agent's store (else the last hour in memory).
        lmcache_detected: some source shows LMCache metrics.
        config_path: the LMCache YAML ``configure`` writes (``kvcache.config_path``).
        config_exists: that file exists.
        hint: what to check (sources not answering, not scraped yet), else None.
    """

    instance_id: str
    configured: bool
    interval_s: float
    sources: tuple[KvCacheSource, ...]
    stored: bool
    store_error: str | None
    lmcache_detected: bool
    config_path: str | None
    config_exists: bool
    hint: str | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> KvCacheStatus:
        return cls(
            instance_id=str(d["instance_id"]),
            configured=bool(d["configured"]),
            interval_s=num(d["interval_s"]),
            sources=many(d.get("sources"), KvCacheSource.from_wire),
            stored=bool(d.get("stored", False)),
            store_error=opt_str(d.get("store_error")),
            lmcache_detected=bool(d.get("lmcache_detected", False)),
            config_path=opt_str(d.get("config_path")),
            config_exists=bool(d.get("config_exists", False)),
            hint=opt_str(d.get("hint")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class KvCacheMetrics(JsonKeys):
    """``GET /lmcache/metrics``: hit rates from counter deltas, KV pressure, queues and
    TTFT percentiles over a window, summed over the sources (docs/KVCACHE.md, Formulas).

    Attributes:
        window: the window asked for (``15m``).
        basis: ``window`` (deltas between scrapes in it), ``since_start`` (one scrape per
            source: counters as they stand) or ``none`` (no source answered).
        prefix_hit_rate_pct: vLLM's prefix cache: hits / queries (tokens).
        prefix_hit_rate_basis: how it was computed (``gauge`` for a V0 server).
        external_hit_rate_pct: LMCache as vLLM's KV connector sees it.
        lmcache_hit_rate_pct: LMCache retrieve hits / requested tokens.
        lmcache_lookup_hit_rate_pct: the LMCache MP server's lookups.
        kv_usage_pct: the newest GPU KV usage, averaged over engines and servers.
        kv_usage_max_pct: the fullest engine's.
        preemptions_per_s: preemptions per second, added up over the sources.
        resets: scrape pairs in which a counter restarted.
    """

    window: str
    start_s: float
    end_s: float
    basis: str
    scrapes: int
    prefix_hit_rate_pct: float | None
    prefix_hit_rate_basis: str | None
    prefix_queries_tokens: float | None
    prefix_hits_tokens: float | None
    external_hit_rate_pct: float | None
    external_queries_tokens: float | None
    external_hits_tokens: float | None
    lmcache_hit_rate_pct: float | None
    lmcache_requested_tokens: float | None
    lmcache_hit_tokens: float | None
    lmcache_lookup_hit_rate_pct: float | None
    lmcache_lookup_tokens: float | None
    lmcache_lookup_hit_tokens: float | None
    kv_usage_pct: float | None
    kv_usage_max_pct: float | None
    requests_running: float | None
    requests_waiting: float | None
    preemptions: float | None
    preemptions_per_s: float | None
    ttft_p50_s: float | None
    ttft_p90_s: float | None
    ttft_p99_s: float | None
    ttft_requests: float | None
    lmcache_cpu_usage_bytes: float | None
    lmcache_disk_usage_bytes: float | None
    lmcache_remote_usage_bytes: float | None
    lmcache_l1_usage_pct: float | None
    lmcache_evictions: float | None
    lmcache_evictions_per_s: float | None
    prompt_tokens: float | None
    block_size: int | None
    num_gpu_blocks: int | None
    resets: int
    sources: tuple[KvCacheSource, ...]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> KvCacheMetrics:
        return cls(
            window=str(d["window"]),
            start_s=ts(d["start"]),
            end_s=ts(d["end"]),
            basis=str(d["basis"]),
            scrapes=integer(d.get("scrapes", 0)),
            prefix_hit_rate_pct=opt_float(d.get("prefix_hit_rate_pct")),
            prefix_hit_rate_basis=opt_str(d.get("prefix_hit_rate_basis")),
            prefix_queries_tokens=opt_float(d.get("prefix_queries_tokens")),
            prefix_hits_tokens=opt_float(d.get("prefix_hits_tokens")),
            external_hit_rate_pct=opt_float(d.get("external_hit_rate_pct")),
            external_queries_tokens=opt_float(d.get("external_queries_tokens")),
            external_hits_tokens=opt_float(d.get("external_hits_tokens")),
            lmcache_hit_rate_pct=opt_float(d.get("lmcache_hit_rate_pct")),
            lmcache_requested_tokens=opt_float(d.get("lmcache_requested_tokens")),
            lmcache_hit_tokens=opt_float(d.get("lmcache_hit_tokens")),
            lmcache_lookup_hit_rate_pct=opt_float(d.get("lmcache_lookup_hit_rate_pct")),
            lmcache_lookup_tokens=opt_float(d.get("lmcache_lookup_tokens")),
            lmcache_lookup_hit_tokens=opt_float(d.get("lmcache_lookup_hit_tokens")),
            kv_usage_pct=opt_float(d.get("kv_usage_pct")),
            kv_usage_max_pct=opt_float(d.get("kv_usage_max_pct")),
            requests_running=opt_float(d.get("requests_running")),
            requests_waiting=opt_float(d.get("requests_waiting")),
            preemptions=opt_float(d.get("preemptions")),
            preemptions_per_s=opt_float(d.get("preemptions_per_s")),
            ttft_p50_s=opt_float(d.get("ttft_p50_s")),
            ttft_p90_s=opt_float(d.get("ttft_p90_s")),
            ttft_p99_s=opt_float(d.get("ttft_p99_s")),
            ttft_requests=opt_float(d.get("ttft_requests")),
            lmcache_cpu_usage_bytes=opt_float(d.get("lmcache_cpu_usage_bytes")),
            lmcache_disk_usage_bytes=opt_float(d.get("lmcache_disk_usage_bytes")),
            lmcache_remote_usage_bytes=opt_float(d.get("lmcache_remote_usage_bytes")),
            lmcache_l1_usage_pct=opt_float(d.get("lmcache_l1_usage_pct")),
            lmcache_evictions=opt_float(d.get("lmcache_evictions")),
            lmcache_evictions_per_s=opt_float(d.get("lmcache_evictions_per_s")),
            prompt_tokens=opt_float(d.get("prompt_tokens")),
            block_size=opt_int(d.get("block_size")),
            num_gpu_blocks=opt_int(d.get("num_gpu_blocks")),
            resets=integer(d.get("resets", 0)),
            sources=many(d.get("sources"), KvCacheSource.from_wire),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class KvCacheSettingChange:
    """One LMCache setting the recommendation changes: from ``current`` (None: unset) to
    ``recommended``, and why. Values are LMCache's (sizes in GiB, ``local_disk`` a URL)."""

    key: str
    current: Any
    recommended: Any
    reason: str

    @classmethod
    def from_wire(cls, d: Json) -> KvCacheSettingChange:
        return cls(
            key=str(d["key"]),
            current=d.get("current"),
            recommended=d.get("recommended"),
            reason=str(d.get("reason", "")),
        )


@dataclass(frozen=True, slots=True)
class KvCacheRecommendation(JsonKeys):
    """``POST /lmcache/optimize``: LMCache settings for the observed traffic, the reasoning,
    and the GPU memory they are expected to save.

    Attributes:
        verdict: ``keep``, ``insufficient_data``, ``caching_wont_help``, ``grow_cpu_tier``,
            ``add_disk_tier``, ``grow_cpu_and_add_disk_tier``, ``tier_full_no_room`` or
            ``enable_offload`` (docs/KVCACHE.md).
        settings: the whole LMCache config recommended (the file's, with ``changes``).
        memory_saved_bytes: GPU memory saved: the KV cache LMCache's tiers hold off the
            GPU now plus what the proposed growth is expected to fill, as
            ``memory_saved_basis`` says; ``memory_saved_gb`` the same in GiB (LMCache's GB).
        host_memory_freed_bytes: host memory a shrunk CPU tier gives back, if any.
        host_memory_added_bytes: host memory the proposed tiers add.
        kv_transfer_config: vLLM's ``--kv-transfer-config`` for LMCache.
        vllm_command: how to start vLLM with the config.
        observed: the window's readings the rules used.
    """

    verdict: str
    summary: str
    window: str
    settings: Mapping[str, Any]
    changes: tuple[KvCacheSettingChange, ...]
    reasoning: tuple[str, ...]
    memory_saved_bytes: float | None
    memory_saved_gb: float | None
    memory_saved_basis: str
    host_memory_freed_bytes: float | None
    host_memory_added_bytes: float
    kv_transfer_config: Mapping[str, str]
    vllm_command: str
    config_path: str | None
    observed: Mapping[str, float | None]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> KvCacheRecommendation:
        return cls(
            verdict=str(d["verdict"]),
            summary=str(d.get("summary", "")),
            window=str(d["window"]),
            settings=obj(d.get("settings")),
            changes=many(d.get("changes"), KvCacheSettingChange.from_wire),
            reasoning=strs(d.get("reasoning")),
            memory_saved_bytes=opt_float(d.get("memory_saved_bytes")),
            memory_saved_gb=opt_float(d.get("memory_saved_gb")),
            memory_saved_basis=str(d.get("memory_saved_basis", "")),
            host_memory_freed_bytes=opt_float(d.get("host_memory_freed_bytes")),
            host_memory_added_bytes=num(d.get("host_memory_added_bytes", 0.0)),
            kv_transfer_config=_str_map(d.get("kv_transfer_config")),
            vllm_command=str(d.get("vllm_command", "")),
            config_path=opt_str(d.get("config_path")),
            observed={str(k): opt_float(v) for k, v in obj(d.get("observed")).items()},
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class KvCacheConfigured(JsonKeys):
    """``POST /lmcache/configure``: the LMCache YAML written (or, in a dry run, that would
    be) and how to start vLLM with it.

    Attributes:
        path: the file, on the agent's machine.
        written: False in a dry run.
        backup_path: where the previous file was kept (``<name>.<UTC time>.bak``); None when
            there was none, or nothing was written.
        settings: the whole config written.
        yaml: the file's text.
        env: the environment vLLM needs (``LMCACHE_CONFIG_FILE``).
        verdict: the recommendation's, when ``apply_recommendation`` was asked.
    """

    path: str
    written: bool
    backup_path: str | None
    settings: Mapping[str, Any]
    yaml: str
    kv_transfer_config: Mapping[str, str]
    env: Mapping[str, str]
    vllm_command: str
    verdict: str | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> KvCacheConfigured:
        return cls(
            path=str(d["path"]),
            written=bool(d["written"]),
            backup_path=opt_str(d.get("backup_path")),
            settings=obj(d.get("settings")),
            yaml=str(d.get("yaml", "")),
            kv_transfer_config=_str_map(d.get("kv_transfer_config")),
            env=_str_map(d.get("env")),
            vllm_command=str(d.get("vllm_command", "")),
            verdict=opt_str(d.get("verdict")),
            raw=d,
        )
