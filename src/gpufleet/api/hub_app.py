"""The hub's FastAPI app: the fleet routes over an injected :class:`~gpufleet.fleet.hub.Hub`.

While the app runs, a thread sweeps every ``sweep_interval_s``: expired leases end, those on
unreachable nodes are reclaimed (their task parts queued again) and waiting task parts are
placed, even when nobody calls the API.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request

from gpufleet import __version__
from gpufleet.agent.context import AgentContext
from gpufleet.agent.live import LiveState
from gpufleet.analysis.recommend_types import Recommendation
from gpufleet.analysis.scope import Scope
from gpufleet.api.cache import SnapshotResponseCache
from gpufleet.api.errors import install_error_handlers
from gpufleet.api.routes import (
    analysis,
    chat,
    fleet,
    fleet_alloc,
    fleet_tasks,
    fleet_view,
    openai_proxy,
    optimize,
)
from gpufleet.api.routes.fleet import get_hub
from gpufleet.fleet.errors import HubRequestError
from gpufleet.fleet.hub import Hub
from gpufleet.model import GpuSourceStatus
from gpufleet.settings import Settings

logger = logging.getLogger(__name__)


def _sweeper(hub: Hub, stop: threading.Event, interval_s: float) -> None:
    while not stop.wait(interval_s):
        try:
            done = hub.leases.sweep()
            placed = hub.tasks.schedule()
        except Exception:  # a store hiccup must not end the sweeps
            logger.exception("sweeping leases failed; trying again in %.0f s", interval_s)
            continue
        for p in placed:
            logger.info(
                "task %s part %d placed on %s (lease %s)", p.task_id, p.part, p.node, p.lease_id
            )
        for lease_id in done.expired:
            logger.info("lease %s expired", lease_id)
        for lease_id in done.reclaimed:
            logger.warning("lease %s reclaimed: its node is unreachable", lease_id)


def _hub_scope(
    request: Request,
    cluster: str | None = None,
    node: str | None = None,
    gpu: Annotated[str | None, Query(description="GPU UUID, or index with node")] = None,
    namespace: str | None = None,
    user: str | None = None,
    workload: str | None = None,
    gpu_model: Annotated[str | None, Query(description="substring, e.g. h100")] = None,
    workload_kind: str | None = None,
    pool: Annotated[str | None, Query(description="only the nodes of this pool")] = None,
    label: Annotated[str | None, Query(description="only nodes with this key=value")] = None,
) -> Scope:
    """The analysis scope on a hub: the agent's levels plus a pool or a node label."""
    base = analysis.scope_query(
        cluster=cluster,
        node=node,
        gpu=gpu,
        namespace=namespace,
        user=user,
        workload=workload,
        gpu_model=gpu_model,
        workload_kind=workload_kind,
    )
    if pool is None and label is None:
        return base
    return _select_nodes(get_hub(request), base, cluster, pool, label)


def _select_nodes(
    hub: Hub, base: Scope, cluster: str | None, pool: str | None, label: str | None
) -> Scope:
    """``base`` limited to the hub's nodes in ``pool`` / with ``label`` (query string or a
    POST body's scope)."""
    views = fleet_view.selected(
        hub, cluster=cluster, node=None, pool=pool, label=label, status=None
    )
    what = " and ".join(
        x for x in (f"pool {pool}" if pool else "", f"label {label}" if label else "") if x
    )
    if not views:
        raise HubRequestError(f"no node of the hub has {what}")
    nodes = ",".join(sorted(f"{v.node.cluster}/{v.node.node}" for v in views))
    return dataclasses.replace(base, nodes=nodes, nodes_label=what)


def create_hub_app(
    hub: Hub, *, settings: Settings | None = None, sweep_interval_s: float = 1.0
) -> FastAPI:
    """Build the hub's API (its lease sweeper starts with the app).

    Beside the fleet's own routes the hub serves the agents' history routes over its store:
    ``/analysis/*``, ``/optimize/*`` and the analyst (``/api/gpu-analysis/*``), for every
    node that pushes to it, with ``pool`` and ``label`` as extra scope filters; reading needs
    a ``read`` token, executing recommendations an ``admin`` one.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = threading.Thread(
            target=_sweeper,
            args=(hub, stop, sweep_interval_s),
            name="gpufleet-lease-sweep",
            daemon=True,
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)

    app = FastAPI(
        title="gpufleet hub",
        version=__version__,
        description=(
            "A fleet's nodes: join, heartbeats, sample ingest, health, drain, tokens; GPU "
            "leases, swarm groups and pools."
        ),
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.ctx = AgentContext(
        settings=settings or Settings(),
        live=LiveState(
            GpuSourceStatus(
                source="none",
                available=False,
                gpu_count=0,
                library_installed=False,
                reason="a hub reads no GPUs itself: see /fleet/v1/gpus",
            )
        ),
        store=hub.store,  # type: ignore[arg-type]
    )
    app.state.response_cache = SnapshotResponseCache()
    install_error_handlers(app)
    app.include_router(fleet.router)
    app.include_router(fleet_alloc.router)
    app.include_router(fleet_tasks.router)
    app.include_router(fleet_view.router)
    app.include_router(openai_proxy.router)
    read = [Depends(fleet.requires("read"))]
    for module in (analysis, optimize, chat):
        app.include_router(module.router, dependencies=read)
    app.include_router(optimize.execute_router, dependencies=[Depends(fleet.requires("admin"))])
    app.dependency_overrides[analysis.scope_query] = _hub_scope
    app.state.select_nodes = functools.partial(_select_nodes, hub)
    app.state.action_handlers = {"drain_node": ("hub", _drainer(hub))}
    return app


def _drainer(hub: Hub) -> Callable[[Recommendation], tuple[bool, str]]:
    """Carries out a ``drain_node`` recommendation on the hub: the node takes no new leases
    or tasks (what it runs goes on); ``undrain`` puts it back."""

    def drain(rec: Recommendation) -> tuple[bool, str]:
        cluster, node = rec.action.params.get("cluster"), rec.action.params.get("node")
        if not isinstance(cluster, str) or not isinstance(node, str):
            return False, "the recommendation names no cluster and node to drain"
        try:
            view = hub.drain(cluster, node, drained=True, reason=f"recommendation {rec.id}")
        except HubRequestError as exc:
            return False, exc.detail
        return True, f"drained {cluster}/{node} on the hub (status {view.status})"

    return drain
