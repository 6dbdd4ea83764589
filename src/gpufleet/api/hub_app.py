"""The hub's FastAPI app: the fleet routes over an injected :class:`~gpufleet.fleet.hub.Hub`.

While the app runs, a thread sweeps every ``sweep_interval_s``: expired leases end, those on
unreachable nodes are reclaimed (their task parts queued again) and waiting task parts are
placed, even when nobody calls the API.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gpufleet import __version__
from gpufleet.api.errors import install_error_handlers
from gpufleet.api.routes import fleet, fleet_alloc, fleet_tasks
from gpufleet.fleet.hub import Hub

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


def create_hub_app(hub: Hub, *, sweep_interval_s: float = 1.0) -> FastAPI:
    """Build the hub's API (its lease sweeper starts with the app)."""

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
    install_error_handlers(app)
    app.include_router(fleet.router)
    app.include_router(fleet_alloc.router)
    app.include_router(fleet_tasks.router)
    return app
