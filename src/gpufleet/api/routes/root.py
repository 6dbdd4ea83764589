"""``/``: what this service is and where to go next."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from gpufleet import __version__
from gpufleet.api.deps import Ctx

router = APIRouter(tags=["root"])


@router.get("/")
def root(ctx: Ctx, request: Request) -> dict[str, Any]:
    """Service name, version, identity and the list of endpoints."""
    paths = sorted(request.app.openapi()["paths"])
    return {
        "service": "gpufleet-agent",
        "version": __version__,
        "instance_id": ctx.instance_id,
        "cluster": ctx.settings.cluster,
        "node": ctx.settings.node,
        "gpu_source": ctx.live.gpu_status.source,
        "docs": "/docs",
        "endpoints": paths,
    }
