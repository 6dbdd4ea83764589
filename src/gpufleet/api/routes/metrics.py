"""``/metrics``: Prometheus exposition built from the latest snapshot at scrape time."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from gpufleet.exporters.prometheus import render

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """dcgm-exporter-compatible GPU series and gpufleet's host and workload series."""
    body, content_type = render(request.app.state.registry)
    return Response(content=body, media_type=content_type)
