"""Wire schemas of ``/lmcache/*`` (KV-cache monitoring of vLLM and LMCache), shared with
``gpufleet kvcache --json``. Times are ISO 8601 UTC; readings a server does not report are
null."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gpufleet.kvcache.readings import KvCacheSummary, SourceStatus
from gpufleet.kvcache.recommend import Recommendation
from gpufleet.timeparse import iso


def _iso(ts_s: float | None) -> str | None:
    return None if ts_s is None else iso(ts_s)


class LmcacheSourceOut(BaseModel):
    """One configured vLLM or LMCache ``/metrics`` URL."""

    url: str
    kind: str
    reachable: bool | None = Field(description="newest scrape answered; null: not scraped yet")
    last_scrape: str | None
    last_ok: str | None
    error: str | None
    name_sets: list[str] = Field(description="metric-name generations seen: vllm-v1, lmcache-mp…")
    models: list[str]
    engines: int | None
    scrapes: int

    @classmethod
    def of(cls, s: SourceStatus) -> LmcacheSourceOut:
        return cls(
            url=s.source,
            kind=s.kind,
            reachable=s.reachable,
            last_scrape=_iso(s.last_scrape_s),
            last_ok=_iso(s.last_ok_s),
            error=s.error,
            name_sets=list(s.name_sets),
            models=list(s.models),
            engines=s.engines,
            scrapes=s.scrapes,
        )


class LmcacheStatus(BaseModel):
    """Which sources are configured and how their scraping goes."""

    instance_id: str
    configured: bool
    interval_s: float
    sources: list[LmcacheSourceOut]
    stored: bool = Field(description="scrapes are kept in the store (else the last hour in memory)")
    store_error: str | None
    lmcache_detected: bool
    config_path: str | None
    config_exists: bool
    hint: str | None


class LmcacheMetrics(BaseModel):
    """Hit rates, KV pressure and TTFT percentiles over a window (see docs/KVCACHE.md)."""

    window: str
    start: str
    end: str
    basis: str = Field(description="window | since_start (one scrape per source) | none")
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
    sources: list[LmcacheSourceOut]

    @classmethod
    def of(cls, s: KvCacheSummary, window: str) -> LmcacheMetrics:
        skip = {"start_s", "end_s", "sources", "elapsed_s", "lmcache_cpu_writes"}
        fields = {
            name: getattr(s, name)
            for name in KvCacheSummary.__dataclass_fields__
            if name not in skip
        }
        return cls(
            window=window,
            start=iso(s.start_s),
            end=iso(s.end_s),
            sources=[LmcacheSourceOut.of(src) for src in s.sources],
            **fields,
        )


class LmcacheOptimizeIn(BaseModel):
    """What ``POST /lmcache/optimize`` may be told (all optional)."""

    model_config = ConfigDict(extra="forbid")

    window: str = Field("15m", description="how far back to look: 30s, 15m, 1h, 2d")
    block_size: int | None = Field(None, ge=1, description="vLLM's KV block size (default 16)")
    remote_url: str | None = Field(None, description="a shared remote tier, lm://host:port")
    disk_path: str | None = Field(None, description="where a new disk tier goes")
    mode: Literal["in_process", "mp"] | None = None


class SettingChangeOut(BaseModel):
    key: str
    current: Any
    recommended: Any
    reason: str


class LmcacheRecommendation(BaseModel):
    """Recommended LMCache settings, why, and the GPU memory they are expected to save."""

    verdict: str
    summary: str
    window: str
    settings: dict[str, Any]
    changes: list[SettingChangeOut]
    reasoning: list[str]
    memory_saved_bytes: float | None
    memory_saved_gb: float | None = Field(description="memory_saved_bytes in GiB (LMCache's GB)")
    memory_saved_basis: str
    host_memory_freed_bytes: float | None
    host_memory_added_bytes: float
    kv_transfer_config: dict[str, str]
    vllm_command: str
    config_path: str | None
    observed: dict[str, float | None]

    @classmethod
    def of(
        cls, rec: Recommendation, *, window: str, config_path: str | None, vllm_command: str
    ) -> LmcacheRecommendation:
        return cls(
            verdict=rec.verdict,
            summary=rec.summary,
            window=window,
            settings=rec.settings,
            changes=[
                SettingChangeOut(
                    key=c.key, current=c.current, recommended=c.recommended, reason=c.reason
                )
                for c in rec.changes
            ],
            reasoning=list(rec.reasoning),
            memory_saved_bytes=rec.memory_saved_bytes,
            memory_saved_gb=rec.memory_saved_gb,
            memory_saved_basis=rec.memory_saved_basis,
            host_memory_freed_bytes=rec.host_memory_freed_bytes,
            host_memory_added_bytes=rec.host_memory_added_bytes,
            kv_transfer_config=rec.kv_transfer_config,
            vllm_command=vllm_command,
            config_path=config_path,
            observed=rec.observed,
        )


class LmcacheConfigureIn(BaseModel):
    """``POST /lmcache/configure``: settings to write, or the recommendation applied."""

    model_config = ConfigDict(extra="forbid")

    settings: dict[str, Any] | None = Field(
        None, description="LMCache settings (merged over the file's current ones)"
    )
    apply_recommendation: bool = Field(False, description="write what /lmcache/optimize says")
    window: str = "15m"
    path: str | None = Field(None, description="the YAML to write (default: kvcache.config_path)")
    mode: Literal["in_process", "mp"] | None = None
    block_size: int | None = Field(None, ge=1)
    dry_run: bool = Field(False, description="validate and show, write nothing")


class LmcacheConfigured(BaseModel):
    """What ``configure`` wrote (or would write)."""

    path: str
    written: bool
    backup_path: str | None
    settings: dict[str, Any]
    yaml: str
    kv_transfer_config: dict[str, str]
    env: dict[str, str]
    vllm_command: str
    verdict: str | None = Field(None, description="the recommendation's, when applied")
