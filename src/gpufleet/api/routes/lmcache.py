"""``/lmcache/*``: KV-cache monitoring of vLLM and LMCache (seed 000, section 4.5).

``status`` lists the configured sources and how scraping goes; ``metrics`` the window's hit
rates, KV pressure and TTFT percentiles; ``optimize`` recommends LMCache settings;
``configure`` writes LMCache's YAML (keeping the previous file) and says how to start vLLM
with it. The agent's scraping thread (``[kvcache]`` settings) supplies the readings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from gpufleet.agent.context import AgentContext
from gpufleet.api.deps import Ctx
from gpufleet.api.schemas.lmcache import (
    LmcacheConfigured,
    LmcacheConfigureIn,
    LmcacheMetrics,
    LmcacheOptimizeIn,
    LmcacheRecommendation,
    LmcacheSourceOut,
    LmcacheStatus,
)
from gpufleet.kvcache.actions import (
    NOT_CONFIGURED,
    NoConfigPathError,
    configure,
    detected_mode,
    optimize,
)
from gpufleet.kvcache.config_file import (
    ConfigPathError,
    LmcacheConfigError,
    kv_transfer_config,
    vllm_command,
)
from gpufleet.kvcache.poller import KvCacheMonitor
from gpufleet.kvcache.readings import KvCacheSummary, parse_duration_s
from gpufleet.kvcache.recommend import HostResources, NoKvCacheDataError, Recommendation
from gpufleet.store.kvcache_records import KIND_VLLM

router = APIRouter(prefix="/lmcache", tags=["lmcache"])

Window = Annotated[str, Query(description="how far back: 30s, 15m, 1h, 2d (default 15m)")]


def _monitor(ctx: AgentContext) -> KvCacheMonitor:
    if ctx.kvcache is None or not ctx.kvcache.configured:
        raise HTTPException(409, detail=NOT_CONFIGURED)
    return ctx.kvcache


def _summary(monitor: KvCacheMonitor, window: str) -> KvCacheSummary:
    summary = monitor.summary(parse_duration_s(window))
    if summary.scrapes == 0:
        # Nothing in the window yet (the agent just started): read the sources now.
        monitor.scrape_once()
        summary = monitor.summary(parse_duration_s(window))
    return summary


def _model(summary: KvCacheSummary) -> str:
    models = {m for s in summary.sources if s.kind == KIND_VLLM for m in s.models}
    return next(iter(sorted(models)), "<model>")


@router.get("/status", response_model=LmcacheStatus)
def status(ctx: Ctx) -> LmcacheStatus:
    """Configured sources: reachable or not, last scrape, metric-name generations, models."""
    kv = ctx.settings.kvcache
    path = kv.config_path
    monitor = ctx.kvcache
    if monitor is None or not monitor.configured:
        return LmcacheStatus(
            instance_id=ctx.instance_id,
            configured=False,
            interval_s=kv.interval_s,
            sources=[],
            stored=False,
            store_error=None,
            lmcache_detected=False,
            config_path=path,
            config_exists=bool(path) and Path(path or "").expanduser().is_file(),
            hint=NOT_CONFIGURED,
        )
    summary = monitor.summary(kv.interval_s * 4)
    sources = [LmcacheSourceOut.of(s) for s in summary.sources]
    unreachable = [s.url for s in sources if s.reachable is False]
    hint = None
    if unreachable:
        hint = f"not answering: {', '.join(unreachable)} (is the server up, is the URL right?)"
    elif all(s.reachable is None for s in sources):
        hint = f"not scraped yet: the first scrape comes within {monitor.interval_s:g} s"
    return LmcacheStatus(
        instance_id=ctx.instance_id,
        configured=True,
        interval_s=monitor.interval_s,
        sources=sources,
        stored=monitor.store is not None,
        store_error=monitor.store_error,
        lmcache_detected=summary.lmcache_seen,
        config_path=path,
        config_exists=bool(path) and Path(path or "").expanduser().is_file(),
        hint=hint,
    )


@router.get("/metrics", response_model=LmcacheMetrics)
def metrics(ctx: Ctx, window: Window = "15m") -> LmcacheMetrics:
    """Hit rates from counter deltas, KV usage, preemption rate, queues, TTFT p50/p90/p99."""
    summary = _summary(_monitor(ctx), window)
    return LmcacheMetrics.of(summary, window)


def _recommendation(ctx: AgentContext, req: LmcacheOptimizeIn) -> Recommendation:
    kv = ctx.settings.kvcache
    summary = _summary(_monitor(ctx), req.window)
    snap = ctx.live.latest
    disk_path = req.disk_path or kv.disk_path
    host = HostResources.from_system(None if snap is None else snap.system, disk_path)
    try:
        return optimize(
            summary,
            host,
            config_path=kv.config_path,
            block_size=req.block_size or kv.block_size,
            disk_path=disk_path,
            remote_url=req.remote_url,
            mode=req.mode or kv.mode,
        )
    except NoKvCacheDataError as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    except LmcacheConfigError as exc:
        raise HTTPException(422, detail=str(exc)) from exc


@router.post("/optimize", response_model=LmcacheRecommendation)
def optimize_cache(ctx: Ctx, req: LmcacheOptimizeIn | None = None) -> LmcacheRecommendation:
    """LMCache settings for the observed traffic, the reasoning and the memory saved."""
    req = req or LmcacheOptimizeIn()
    rec = _recommendation(ctx, req)
    kv = ctx.settings.kvcache
    path = kv.config_path or "lmcache.yaml"
    return LmcacheRecommendation.of(
        rec,
        window=req.window,
        config_path=kv.config_path,
        vllm_command=vllm_command(path, rec.mode),
    )


@router.post("/configure", response_model=LmcacheConfigured)
def configure_cache(ctx: Ctx, req: LmcacheConfigureIn) -> LmcacheConfigured:
    """Write LMCache's YAML (previous file kept as ``.bak``) and the vLLM flags to use it."""
    kv = ctx.settings.kvcache
    if req.settings is None and not req.apply_recommendation:
        raise HTTPException(
            422, detail='give "settings" (LMCache keys) or "apply_recommendation": true'
        )
    rec = None
    if req.apply_recommendation:
        rec = _recommendation(
            ctx, LmcacheOptimizeIn(window=req.window, block_size=req.block_size, mode=req.mode)
        )
    if rec is not None:
        mode = rec.mode
    else:
        seen = ctx.kvcache.summary(kv.interval_s * 4) if ctx.kvcache is not None else None
        mode = req.mode or kv.mode or detected_mode(seen)
    try:
        written = configure(
            req.path or kv.config_path,
            settings=req.settings,
            recommendation=rec,
            block_size=req.block_size or kv.block_size,
            dry_run=req.dry_run,
        )
    except (NoConfigPathError, ConfigPathError) as exc:
        raise HTTPException(400, detail=str(exc)) from exc
    except LmcacheConfigError as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    model = "<model>"
    if ctx.kvcache is not None and ctx.kvcache.configured:
        model = _model(ctx.kvcache.summary(kv.interval_s * 4))
    return LmcacheConfigured(
        path=written.path,
        written=written.written,
        backup_path=written.backup_path,
        settings=written.settings,
        yaml=written.yaml_text,
        kv_transfer_config=kv_transfer_config(mode),
        env={"LMCACHE_CONFIG_FILE": written.path},
        vllm_command=vllm_command(written.path, mode, model),
        verdict=None if rec is None else rec.verdict,
    )
