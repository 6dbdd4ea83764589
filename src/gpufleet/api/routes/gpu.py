"""``/gpu/*``: live GPU readings from the latest snapshot, and GPU history from the store."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from gpufleet.analysis.history import query_history
from gpufleet.api.deps import Cache, Ctx, GpuSnap, HistoryStore, find_gpu
from gpufleet.api.schemas.gpu import (
    GpuInfo,
    GpuMetrics,
    GpuMetricsCollection,
    mean_of,
    mib,
)
from gpufleet.api.schemas.history import HistoryOut, history_out
from gpufleet.model import GpuSample, Snapshot
from gpufleet.store.base import GPU_METRICS
from gpufleet.timeparse import iso

router = APIRouter(prefix="/gpu", tags=["gpu"])


@router.get("/info", response_model=GpuInfo)
async def gpu_info(ctx: Ctx) -> GpuInfo:
    """Whether GPUs can be read here, and why not."""
    return GpuInfo.from_status(ctx.live.gpu_status)


@router.get("/metrics", response_model=GpuMetricsCollection)
async def gpu_metrics(ctx: Ctx, snap: GpuSnap, cache: Cache) -> Response:
    """Every GPU of this node (seed 002 shape)."""
    return cache.respond(
        snap, "gpu_metrics", lambda: GpuMetricsCollection.from_snapshot(snap, ctx.instance_id)
    )


@router.get("/metrics/history", response_model=HistoryOut)
def gpu_history(
    ctx: Ctx,
    store: HistoryStore,
    start: Annotated[str | None, Query(alias="from", description="ISO 8601 or -24h")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    gpu: Annotated[str | None, Query(description="GPU UUID, or index on `node`")] = None,
    metric: Annotated[str, Query(description=", ".join(GPU_METRICS))] = "util_gpu_pct",
    resolution: Annotated[str, Query(description="raw, 1m, 1h or auto")] = "auto",
    node: str | None = None,
    cluster: str | None = None,
) -> HistoryOut:
    """A GPU metric over time, one series per GPU."""
    result = query_history(
        store,
        metric=metric,
        host=False,
        start=start,
        end=end,
        resolution=resolution,
        gpu=gpu,
        cluster=cluster,
        node=node,
        default_node=ctx.settings.node,
        raw_interval_s=ctx.settings.interval_s,
    )
    return history_out(result)


@router.get("/metrics/{gpu_id}", response_model=GpuMetrics)
async def gpu_metrics_one(snap: GpuSnap, cache: Cache, gpu_id: str) -> Response:
    """One GPU by index or UUID; 404 when unknown."""
    gpu = find_gpu(snap, gpu_id)
    return cache.respond(snap, f"gpu:{gpu.uuid}", lambda: GpuMetrics.from_sample(gpu))


def _recent_stats(ctx: Ctx, uuid: str, field: str) -> dict[str, float | None]:
    values = [
        getattr(g, field)
        for snap in ctx.live.recent()
        for g in snap.gpus
        if g.uuid == uuid and getattr(g, field) is not None
    ]
    if not values:
        return {"mean": None, "min": None, "max": None}
    return {
        "mean": round(sum(values) / len(values), 2),
        "min": min(values),
        "max": max(values),
    }


def _summary(snap: Snapshot, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "timestamp": iso(snap.ts_s),
        "node": snap.node,
        "gpu_count": len(rows),
        "gpus": rows,
        **extra,
    }


def _ident(g: GpuSample) -> dict[str, Any]:
    return {"gpu_id": g.index, "gpu_uuid": g.uuid, "gpu_name": g.name, "lost": g.lost}


@router.get("/utilization")
async def gpu_utilization(ctx: Ctx, snap: GpuSnap, cache: Cache) -> Response:
    """Utilization now, over the minutes kept in memory, and whether each GPU is allocated."""
    return cache.respond(snap, "gpu/utilization", lambda: _utilization(ctx, snap))


def _utilization(ctx: Ctx, snap: Snapshot) -> dict[str, Any]:
    window = ctx.live.recent()
    span = window[-1].ts_s - window[0].ts_s if len(window) > 1 else 0.0
    rows = [
        {
            **_ident(g),
            "gpu_percent": g.util_gpu_pct,
            "memory_percent": g.util_mem_pct,
            "allocated": g.allocated,
            "idle": g.util_gpu_pct is not None and g.util_gpu_pct < ctx.settings.idle_threshold_pct,
            "recent_gpu_percent": _recent_stats(ctx, g.uuid, "util_gpu_pct"),
        }
        for g in snap.gpus
    ]
    live = [g for g in snap.gpus if not g.lost]
    return _summary(
        snap,
        rows,
        average_gpu_percent=mean_of([g.util_gpu_pct for g in live]),
        allocated_gpus=sum(1 for g in live if g.allocated),
        idle_allocated_gpus=sum(
            1
            for g in live
            if g.allocated
            and g.util_gpu_pct is not None
            and g.util_gpu_pct < ctx.settings.idle_threshold_pct
        ),
        idle_threshold_pct=ctx.settings.idle_threshold_pct,
        recent_window_s=round(span, 1),
    )


@router.get("/temperature")
async def gpu_temperature(ctx: Ctx, snap: GpuSnap, cache: Cache) -> Response:
    """Temperatures with their slowdown/shutdown thresholds and the margin left."""
    return cache.respond(snap, "gpu/temperature", lambda: _temperature(ctx, snap))


def _temperature(ctx: Ctx, snap: Snapshot) -> dict[str, Any]:
    rows = [
        {
            **_ident(g),
            "current_celsius": g.temp_c,
            "slowdown_threshold_celsius": g.temp_slowdown_c,
            "shutdown_threshold_celsius": g.temp_shutdown_c,
            "margin_to_slowdown_celsius": None
            if g.temp_c is None or g.temp_slowdown_c is None
            else round(g.temp_slowdown_c - g.temp_c, 1),
            "fan_speed_percent": g.fan_pct,
            "thermal_throttling": None
            if g.throttle_reasons is None
            else any("thermal" in r for r in g.throttle_reasons),
            "recent_celsius": _recent_stats(ctx, g.uuid, "temp_c"),
        }
        for g in snap.gpus
    ]
    live = [g for g in snap.gpus if not g.lost]
    temps = [g.temp_c for g in live if g.temp_c is not None]
    return _summary(
        snap,
        rows,
        average_celsius=mean_of(list(temps)),
        max_celsius=max(temps) if temps else None,
    )


@router.get("/memory")
async def gpu_memory(snap: GpuSnap, cache: Cache) -> Response:
    """GPU memory per GPU and in total, with the processes holding it."""
    return cache.respond(snap, "gpu/memory", lambda: _memory(snap))


def _memory(snap: Snapshot) -> dict[str, Any]:
    rows = [
        {
            **_ident(g),
            "total_mb": mib(g.mem_total_bytes),
            "used_mb": mib(g.mem_used_bytes),
            "free_mb": mib(g.mem_free_bytes),
            "utilization_percent": None if g.mem_used_pct is None else round(g.mem_used_pct, 2),
            "processes": [
                {
                    "pid": p.pid,
                    "process_name": p.name,
                    "used_memory_mb": mib(p.used_memory_bytes),
                    "workload": p.attribution.workload,
                }
                for p in g.processes
            ],
        }
        for g in snap.gpus
    ]
    live = [g for g in snap.gpus if not g.lost]
    used = [g.mem_used_bytes for g in live if g.mem_used_bytes is not None]
    total = [g.mem_total_bytes for g in live if g.mem_total_bytes is not None]
    return _summary(
        snap,
        rows,
        total_used_mb=mib(sum(used)) if used else None,
        total_total_mb=mib(sum(total)) if total else None,
        used_percent=round(100 * sum(used) / sum(total), 2) if used and sum(total) else None,
    )


@router.get("/power")
async def gpu_power(ctx: Ctx, snap: GpuSnap, cache: Cache) -> Response:
    """Power draw against the enforced limit, and whether power caps the clocks."""
    return cache.respond(snap, "gpu/power", lambda: _power(ctx, snap))


def _power(ctx: Ctx, snap: Snapshot) -> dict[str, Any]:
    rows = [
        {
            **_ident(g),
            "power_draw_watts": g.power_w,
            "power_limit_watts": g.power_limit_w,
            "power_usage_percent": None if g.power_pct is None else round(g.power_pct, 2),
            "power_capped": None
            if g.throttle_reasons is None
            else any("power" in r for r in g.throttle_reasons),
            "performance_state": g.pstate,
            "recent_watts": _recent_stats(ctx, g.uuid, "power_w"),
        }
        for g in snap.gpus
    ]
    live = [g for g in snap.gpus if not g.lost]
    draw = [g.power_w for g in live if g.power_w is not None]
    limit = [g.power_limit_w for g in live if g.power_limit_w is not None]
    return _summary(
        snap,
        rows,
        total_power_draw_watts=round(sum(draw), 2) if draw else None,
        total_power_limit_watts=round(sum(limit), 2) if limit else None,
    )
