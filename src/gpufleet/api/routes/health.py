"""``/health*``: liveness, readiness and a detailed view of every component."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException

from gpufleet import __version__
from gpufleet.api.deps import Ctx
from gpufleet.timeparse import iso

router = APIRouter(prefix="/health", tags=["health"])

STALE_FACTOR = 3.0
"""A snapshot older than this many sampling intervals means the sampler is stuck."""


def _sample_age_s(ctx: Ctx) -> float | None:
    snap = ctx.live.latest
    return None if snap is None else max(time.time() - snap.ts_s, 0.0)


def _problems(ctx: Ctx) -> list[str]:
    problems = []
    age = _sample_age_s(ctx)
    if age is None:
        problems.append("no sample taken yet")
    elif age > STALE_FACTOR * ctx.settings.interval_s + 5:
        problems.append(f"last sample is {age:.0f} s old (interval {ctx.settings.interval_s:g} s)")
    if ctx.store is not None:
        health = ctx.store.health()
        if not health.writable:
            problems.append(f"store not writable: {health.error}")
        elif ctx.sampler is not None and ctx.sampler.store_error:
            problems.append(f"history not being written: {ctx.sampler.store_error}")
    snap = ctx.live.latest
    if snap is not None:
        lost = [g.uuid for g in snap.gpus if g.lost]
        if lost:
            problems.append(f"GPU lost: {', '.join(lost)}")
    return problems


@router.get("")
def health(ctx: Ctx) -> dict[str, Any]:
    """``healthy`` or ``degraded`` with the reasons."""
    problems = _problems(ctx)
    return {
        "status": "degraded" if problems else "healthy",
        "service": "gpufleet-agent",
        "version": __version__,
        "instance_id": ctx.instance_id,
        "timestamp": iso(time.time()),
        "problems": problems,
    }


@router.get("/detailed")
def health_detailed(ctx: Ctx) -> dict[str, Any]:
    """Each component's state: sampler, GPU source, store, alerts."""
    problems = _problems(ctx)
    sampler: dict[str, Any] = {
        "interval_s": ctx.settings.interval_s,
        "last_sample_age_s": None if (age := _sample_age_s(ctx)) is None else round(age, 2),
        "samples_taken": ctx.live.samples_taken,
        "last_sample_duration_s": ctx.live.last_sample_duration_s,
    }
    if ctx.sampler is not None:
        sampler |= {
            "buffered": ctx.sampler.buffered,
            "dropped_samples": ctx.sampler.dropped_samples,
            "last_flush": None
            if ctx.sampler.last_flush_s is None
            else iso(ctx.sampler.last_flush_s),
            "store_error": ctx.sampler.store_error,
        }
    status = ctx.live.gpu_status
    store: dict[str, Any] = {"enabled": ctx.store is not None}
    if ctx.store is not None:
        h = ctx.store.health()
        store |= {
            "backend": h.backend,
            "location": h.location,
            "writable": h.writable,
            "readable": h.readable,
            "error": h.error,
        }
    return {
        "status": "degraded" if problems else "healthy",
        "problems": problems,
        "version": __version__,
        "instance_id": ctx.instance_id,
        "timestamp": iso(time.time()),
        "uptime_s": round(time.time() - ctx.started_s, 1),
        "components": {
            "sampler": sampler,
            "gpu_source": {
                "source": status.source,
                "available": status.available,
                "gpu_count": status.gpu_count,
                "driver_version": status.driver_version,
                "reason": status.reason,
            },
            "store": store,
            "alerts": {
                "enabled": ctx.alerts is not None,
                "active": 0 if ctx.alerts is None else len(ctx.alerts.active()),
            },
        },
    }


@router.get("/ready")
async def ready(ctx: Ctx) -> dict[str, Any]:
    """200 once the first sample is in; 503 before."""
    if ctx.live.latest is None:
        raise HTTPException(503, detail="not ready: no sample taken yet")
    return {"ready": True, "timestamp": iso(time.time())}


@router.get("/live")
async def live(_ctx: Ctx) -> dict[str, Any]:
    """200 while the process serves requests."""
    return {"alive": True, "timestamp": iso(time.time())}
