"""``/system/*``: the host's CPU, memory, disks and network, live and over time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from gpufleet.analysis.history import query_history
from gpufleet.api.deps import Cache, Ctx, HistoryStore, Latest
from gpufleet.api.schemas.history import HistoryOut, history_out
from gpufleet.api.schemas.system import CpuOut, DiskOut, MemoryOut, NetworkOut, SystemAllOut
from gpufleet.model import Snapshot, SystemSample
from gpufleet.store.base import SYSTEM_METRICS
from gpufleet.timeparse import iso

router = APIRouter(prefix="/system", tags=["system"])


def _system(snap: Snapshot) -> SystemSample:
    if snap.system is None:
        raise HTTPException(503, detail="host metrics are not collected by this agent")
    return snap.system


@router.get("/cpu", response_model=CpuOut)
async def cpu(snap: Latest, cache: Cache) -> Response:
    """CPU utilization in total and per core, and load average."""
    system = _system(snap)
    return cache.respond(snap, "system/cpu", lambda: CpuOut.build(iso(snap.ts_s), system))


@router.get("/memory", response_model=MemoryOut)
async def memory(snap: Latest, cache: Cache) -> Response:
    """Memory and swap."""
    system = _system(snap)
    return cache.respond(snap, "system/memory", lambda: MemoryOut.build(iso(snap.ts_s), system))


@router.get("/disk", response_model=DiskOut)
async def disk(snap: Latest, cache: Cache) -> Response:
    """Usage per mounted filesystem and I/O rates."""
    system = _system(snap)
    return cache.respond(snap, "system/disk", lambda: DiskOut.build(iso(snap.ts_s), system))


@router.get("/network", response_model=NetworkOut)
async def network(snap: Latest, cache: Cache) -> Response:
    """Traffic per interface."""
    system = _system(snap)
    return cache.respond(snap, "system/network", lambda: NetworkOut.build(iso(snap.ts_s), system))


@router.get("/all", response_model=SystemAllOut)
async def system_all(snap: Latest, cache: Cache) -> Response:
    """Everything above in one response."""
    system = _system(snap)
    return cache.respond(snap, "system/all", lambda: SystemAllOut.from_snapshot(snap, system))


@router.get("/history", response_model=HistoryOut)
def system_history(
    ctx: Ctx,
    store: HistoryStore,
    start: Annotated[str | None, Query(alias="from", description="ISO 8601 or -24h")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    metric: Annotated[str, Query(description=", ".join(SYSTEM_METRICS))] = "cpu_pct",
    resolution: Annotated[str, Query(description="raw, 1m, 1h or auto")] = "auto",
    node: str | None = None,
    cluster: str | None = None,
) -> HistoryOut:
    """A host metric over time, one series per node."""
    result = query_history(
        store,
        metric=metric,
        host=True,
        start=start,
        end=end,
        resolution=resolution,
        cluster=cluster,
        node=node,
        raw_interval_s=ctx.settings.interval_s,
    )
    return history_out(result)
