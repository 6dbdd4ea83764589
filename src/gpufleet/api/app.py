"""The FastAPI app factory: routers only, no business logic, nothing built at import time."""

from __future__ import annotations

from fastapi import FastAPI

from gpufleet import __version__
from gpufleet.agent.context import AgentContext
from gpufleet.api.cache import SnapshotResponseCache
from gpufleet.api.errors import install_error_handlers
from gpufleet.api.routes import (
    alerts,
    analysis,
    chat,
    gpu,
    health,
    lmcache,
    metrics,
    optimize,
    root,
    system,
)
from gpufleet.exporters.prometheus import build_registry


def create_app(ctx: AgentContext) -> FastAPI:
    """Build the agent's API over an injected context (settings, live state, store)."""
    app = FastAPI(
        title="gpufleet agent",
        version=__version__,
        description="GPU and host monitoring of one node: live readings, history, alerts, "
        "Prometheus metrics, usage analysis, recommendations.",
    )
    app.state.ctx = ctx
    app.state.response_cache = SnapshotResponseCache()
    app.state.registry = build_registry(ctx.live, hostname=ctx.settings.node)
    install_error_handlers(app)
    for module in (root, health, gpu, system, alerts, analysis, optimize, chat, metrics, lmcache):
        app.include_router(module.router)
    app.include_router(optimize.execute_router)
    return app
