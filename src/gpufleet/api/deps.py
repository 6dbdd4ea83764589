"""Dependencies of the routers: the agent context and the errors users can cause."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from gpufleet.agent.context import AgentContext
from gpufleet.api.cache import SnapshotResponseCache
from gpufleet.model import GpuSample, Snapshot
from gpufleet.store.base import Store

NO_GPU_DETAIL = "GPU metrics collection not available (no NVIDIA GPUs or pynvml not installed)"


async def get_context(request: Request) -> AgentContext:
    """The context the app factory stored on the app."""
    ctx: AgentContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AgentContext, Depends(get_context)]


async def get_cache(request: Request) -> SnapshotResponseCache:
    """Per-app cache of serialized live responses."""
    cache: SnapshotResponseCache = request.app.state.response_cache
    return cache


Cache = Annotated[SnapshotResponseCache, Depends(get_cache)]


async def latest_snapshot(ctx: Ctx) -> Snapshot:
    """Newest snapshot, or 503 before the first sample."""
    snap = ctx.live.latest
    if snap is None:
        raise HTTPException(
            503,
            detail=f"no sample yet: the agent samples every {ctx.settings.interval_s:g} s; "
            "retry in a moment",
        )
    return snap


Latest = Annotated[Snapshot, Depends(latest_snapshot)]


async def gpu_snapshot(ctx: Ctx) -> Snapshot:
    """Newest snapshot when GPUs can be read; 503 with seed 002's detail otherwise."""
    if not ctx.live.gpu_status.available:
        raise HTTPException(503, detail=NO_GPU_DETAIL)
    return await latest_snapshot(ctx)


GpuSnap = Annotated[Snapshot, Depends(gpu_snapshot)]


def history_store(ctx: Ctx) -> Store:
    """The store, or 503 saying why history cannot be answered.

    A plain ``def`` on purpose: ``health()`` may touch the database, so it runs in the
    thread pool instead of blocking the event loop.
    """
    if ctx.store is None:
        raise HTTPException(503, detail="history is off: the agent was started with --no-store")
    health = ctx.store.health()
    if not health.readable:
        raise HTTPException(503, detail=f"history unavailable: {health.error}")
    return ctx.store


HistoryStore = Annotated[Store, Depends(history_store)]


def idle_threshold(ctx: AgentContext, given: float | None) -> float:
    """The idle threshold a request asked for, else the agent's ``idle_threshold_pct``.

    The settings (TOML, ``GPUFLEET_IDLE_THRESHOLD_PCT``, ``agent --idle-threshold``) set the
    default; a value in the query or body wins.
    """
    return ctx.settings.idle_threshold_pct if given is None else given


def find_gpu(snap: Snapshot, gpu_id: str) -> GpuSample:
    """A GPU of the snapshot by index or UUID; 404 listing what exists."""
    for gpu in snap.gpus:
        if gpu_id == gpu.uuid or (gpu_id.isdigit() and int(gpu_id) == gpu.index):
            return gpu
    known = ", ".join(f"{g.index} ({g.uuid})" for g in snap.gpus) or "none"
    raise HTTPException(404, detail=f"GPU {gpu_id!r} not found on {snap.node}; GPUs: {known}")
