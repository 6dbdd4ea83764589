"""Fleet-scope live and history views on the hub: the GPUs and hosts of every node (or of a
pool, a label, a status), in the agent endpoints' shapes, and the history in the hub's store.

Live views come from each node's newest snapshot received since the hub started; a node
that has sent none since is listed with ``"sample": null``. Every call needs a read token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from gpufleet.analysis.history import query_history
from gpufleet.api.routes.fleet import HubDep, ReadToken
from gpufleet.api.schemas.gpu import GpuMetricsCollection
from gpufleet.api.schemas.history import HistoryOut, history_out
from gpufleet.api.schemas.system import SystemAllOut
from gpufleet.fleet.errors import HubRequestError
from gpufleet.fleet.health import STATUSES
from gpufleet.fleet.hub import Hub, NodeView
from gpufleet.model import Snapshot
from gpufleet.store.base import GPU_METRICS, SYSTEM_METRICS

router = APIRouter(prefix="/fleet/v1", tags=["fleet views"])

Label = Annotated[str | None, Query(description="key=value")]
Status = Annotated[str | None, Query(description=" | ".join(STATUSES))]


def selected(
    hub: Hub,
    *,
    cluster: str | None,
    node: str | None,
    pool: str | None,
    label: str | None,
    status: str | None,
) -> list[NodeView]:
    """The nodes a fleet view's filters select."""
    if status is not None and status not in STATUSES:
        raise HubRequestError(f"unknown status {status!r}; use one of: {', '.join(STATUSES)}")
    pair = None
    if label is not None:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise HubRequestError(f"label must be key=value, got {label!r}")
        pair = (key, value)
    views = hub.nodes(status=status, pool=pool, label=pair)
    if cluster is not None:
        views = [v for v in views if v.node.cluster == cluster]
    if node is not None:
        views = [v for v in views if v.node.node == node]
    return views


def _head(v: NodeView) -> dict[str, Any]:
    n = v.node
    return {
        "cluster": n.cluster,
        "node": n.node,
        "status": v.status,
        "pool": n.pool,
        "labels": n.labels,
        "zone": n.zone,
    }


def _latest(
    hub: HubDep,
    cluster: str | None = None,
    node: str | None = None,
    pool: str | None = None,
    label: Label = None,
    status: Status = None,
) -> list[tuple[NodeView, Snapshot | None]]:
    """The nodes the query's filters select, each with its newest snapshot (if any)."""
    views = selected(hub, cluster=cluster, node=node, pool=pool, label=label, status=status)
    return [(v, hub.latest.get((v.node.cluster, v.node.node))) for v in views]


Latest = Annotated[list[tuple[NodeView, Snapshot | None]], Depends(_latest)]


@router.get("/gpus")
def fleet_gpus(latest: Latest, _token: ReadToken) -> dict[str, Any]:
    """Every selected node's GPUs now (each as ``GET /gpu/metrics`` on its agent)."""
    nodes = [
        {
            **_head(v),
            "sample": None
            if snap is None
            else GpuMetricsCollection.from_snapshot(
                snap, f"{v.node.cluster}/{v.node.node}"
            ).model_dump(mode="json"),
        }
        for v, snap in latest
    ]
    total = sum(len(snap.gpus) for _, snap in latest if snap is not None)
    return {"gpu_count": total, "nodes": nodes}


@router.get("/system")
def fleet_system(latest: Latest, _token: ReadToken) -> dict[str, Any]:
    """Every selected node's host now (each as ``GET /system/all`` on its agent)."""
    return {
        "nodes": [
            {
                **_head(v),
                "sample": None
                if snap is None or snap.system is None
                else SystemAllOut.from_snapshot(snap, snap.system).model_dump(mode="json"),
            }
            for v, snap in latest
        ]
    }


@router.get("/gpus/history", response_model=HistoryOut)
def fleet_gpu_history(
    hub: HubDep,
    _token: ReadToken,
    start: Annotated[str | None, Query(alias="from", description="ISO 8601 or -24h")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    metric: Annotated[str, Query(description=", ".join(GPU_METRICS))] = "util_gpu_pct",
    resolution: Annotated[str, Query(description="raw, 1m, 1h or auto")] = "auto",
    cluster: str | None = None,
    node: str | None = None,
    gpu: Annotated[str | None, Query(description="GPU UUID, or index with node")] = None,
) -> HistoryOut:
    """A GPU metric over time from the hub's store, one series per GPU of the fleet."""
    return history_out(
        query_history(
            hub.store,  # type: ignore[arg-type]
            metric=metric,
            host=False,
            start=start,
            end=end,
            resolution=resolution,
            gpu=gpu,
            cluster=cluster,
            node=node,
        )
    )


@router.get("/system/history", response_model=HistoryOut)
def fleet_system_history(
    hub: HubDep,
    _token: ReadToken,
    start: Annotated[str | None, Query(alias="from", description="ISO 8601 or -24h")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    metric: Annotated[str, Query(description=", ".join(SYSTEM_METRICS))] = "cpu_pct",
    resolution: Annotated[str, Query(description="raw, 1m, 1h or auto")] = "auto",
    cluster: str | None = None,
    node: str | None = None,
) -> HistoryOut:
    """A host metric over time from the hub's store, one series per node."""
    return history_out(
        query_history(
            hub.store,  # type: ignore[arg-type]
            metric=metric,
            host=True,
            start=start,
            end=end,
            resolution=resolution,
            cluster=cluster,
            node=node,
        )
    )
