"""``/gpu/*``: live GPU readings from the latest snapshot, and GPU history from the store."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response

from gpufleet.api.deps import Cache, Ctx, GpuSnap, HistoryStore, find_gpu
from gpufleet.api.query import check_metric, resolve_window
from gpufleet.api.schemas.gpu import MIB, GpuInfo, GpuMetrics, GpuMetricsCollection
from gpufleet.api.schemas.history import HistoryOut, SeriesOut
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
    gpu: Annotated[str | None, Query(description="GPU UUID or index on this node")] = None,
    metric: Annotated[str, Query(description=", ".join(GPU_METRICS))] = "util_gpu_pct",
    resolution: Annotated[str, Query(description="raw, 1m, 1h or auto")] = "auto",
    node: str | None = None,
    cluster: str | None = None,
) -> HistoryOut:
    """A GPU metric over time, one series per GPU."""
    check_metric(metric, GPU_METRICS)
    start_s, end_s, res = resolve_window(start, end, resolution, store)
    uuid = _resolve_gpu_filter(ctx, store, gpu, node)
    series = store.gpu_series(
        metric=metric,
        start_s=start_s,
        end_s=end_s,
        resolution=res,
        cluster=cluster,
        node=node,
        uuid=uuid,
    )
    index = {inv.uuid: inv.index for inv in store.inventory()}
    return HistoryOut(
        metric=metric,
        resolution=res.value,
        start=iso(start_s),
        end=iso(end_s),
        series=[SeriesOut.from_series(s, index.get(s.subject)) for s in series],
    )


def _resolve_gpu_filter(
    ctx: Ctx, store: HistoryStore, gpu: str | None, node: str | None
) -> str | None:
    if gpu is None:
        return None
    inventory = store.inventory()
    if any(inv.uuid == gpu for inv in inventory):
        return gpu
    if gpu.isdigit():
        want_node = node or ctx.settings.node
        for inv in inventory:
            if inv.node == want_node and inv.index == int(gpu):
                return inv.uuid

    known = ", ".join(f"{i.node}:{i.index}" for i in inventory[:20]) or "none recorded yet"
    raise HTTPException(404, detail=f"GPU {gpu!r} has no history; known GPUs: {known}")


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


def _avg(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 2) if present else None


@router.get("/utilization")
async def gpu_utilization(ctx: Ctx, snap: GpuSnap, cache: Cache) -> Response:
    """Utilization now, over the minutes kept in memory, and whether each GPU is allocated."""
    return cache.respond(snap, "utilization", lambda: _utilization(ctx, snap))


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
        average_gpu_percent=_avg([g.util_gpu_pct for g in live]),
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
    return cache.respond(snap, "temperature", lambda: _temperature(ctx, snap))


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
        average_celsius=_avg(list(temps)),
        max_celsius=max(temps) if temps else None,
    )


@router.get("/memory")
async def gpu_memory(snap: GpuSnap, cache: Cache) -> Response:
    """GPU memory per GPU and in total, with the processes holding it."""
    return cache.respond(snap, "memory", lambda: _memory(snap))


def _memory(snap: Snapshot) -> dict[str, Any]:
    rows = []
    for g in snap.gpus:
        rows.append(
            {
                **_ident(g),
                "total_mb": None
                if g.mem_total_bytes is None
                else round(g.mem_total_bytes / MIB, 1),
                "used_mb": None if g.mem_used_bytes is None else round(g.mem_used_bytes / MIB, 1),
                "free_mb": None if g.mem_free_bytes is None else round(g.mem_free_bytes / MIB, 1),
                "utilization_percent": None if g.mem_used_pct is None else round(g.mem_used_pct, 2),
                "processes": [
                    {
                        "pid": p.pid,
                        "process_name": p.name,
                        "used_memory_mb": None
                        if p.used_memory_bytes is None
                        else round(p.used_memory_bytes / MIB, 1),
                        "workload": p.attribution.workload,
                    }
                    for p in g.processes
                ],
            }
        )
    live = [g for g in snap.gpus if not g.lost]
    used = [g.mem_used_bytes for g in live if g.mem_used_bytes is not None]
    total = [g.mem_total_bytes for g in live if g.mem_total_bytes is not None]
    return _summary(
        snap,
        rows,
        total_used_mb=round(sum(used) / MIB, 1) if used else None,
        total_total_mb=round(sum(total) / MIB, 1) if total else None,
        used_percent=round(100 * sum(used) / sum(total), 2)
        if used and total and sum(total)
        else None,
    )


@router.get("/power")
async def gpu_power(ctx: Ctx, snap: GpuSnap, cache: Cache) -> Response:
    """Power draw against the enforced limit, and whether power caps the clocks."""
    return cache.respond(snap, "power", lambda: _power(ctx, snap))


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
