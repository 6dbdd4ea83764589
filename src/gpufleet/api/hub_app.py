"""The hub's FastAPI app: the fleet routes over an injected :class:`~gpufleet.fleet.hub.Hub`."""

from __future__ import annotations

from fastapi import FastAPI

from gpufleet import __version__
from gpufleet.api.errors import install_error_handlers
from gpufleet.api.routes import fleet
from gpufleet.fleet.hub import Hub


def create_hub_app(hub: Hub) -> FastAPI:
    """Build the hub's API (nothing is started here)."""
    app = FastAPI(
        title="gpufleet hub",
        version=__version__,
        description="A fleet's nodes: join, heartbeats, sample ingest, health, drain, tokens.",
    )
    app.state.hub = hub
    install_error_handlers(app)
    app.include_router(fleet.router)
    return app
