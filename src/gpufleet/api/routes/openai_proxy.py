"""``/v1/*`` on the hub: one OpenAI-compatible endpoint for every model the fleet serves
(see :mod:`gpufleet.fleet.model_router`). Point any OpenAI client at the hub with a hub
token as its API key: ``OpenAI(base_url="http://hub:8100/v1", api_key="gf_...")``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from gpufleet.api.routes.fleet import HubDep, SubmitToken
from gpufleet.api.routes.fleet_alloc import AnyReader
from gpufleet.fleet.errors import HubRequestError

router = APIRouter(prefix="/v1", tags=["model routing (OpenAI-compatible)"])

MAX_BODY_BYTES = 16 * 1024 * 1024


@router.get("/models")
def models(hub: HubDep, _token: AnyReader) -> dict[str, Any]:
    """The models the fleet's reachable nodes serve, each with its nodes."""
    return hub.router.models_wire()


async def _forward(hub: HubDep, request: Request, path: str) -> StreamingResponse:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HubRequestError(f"a request body may be at most {MAX_BODY_BYTES} bytes", 413)
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        raise HubRequestError("the body must be JSON (an OpenAI-style request)") from None
    model = parsed.get("model") if isinstance(parsed, dict) else None
    if not isinstance(model, str) or not model:
        raise HubRequestError('the request must name a model ("model": "..."); see GET /v1/models')
    upstream = await hub.router.forward(path, body, model)
    return StreamingResponse(
        upstream.chunks,
        status_code=upstream.status,
        headers={
            **upstream.headers,
            "x-gpufleet-node": upstream.backend.key,
            "x-gpufleet-tries": str(upstream.tries),
        },
    )


@router.post("/chat/completions")
async def chat_completions(hub: HubDep, request: Request, _token: SubmitToken) -> StreamingResponse:
    """Forwarded to a node serving the request's model (streaming relayed as it comes)."""
    return await _forward(hub, request, "/v1/chat/completions")


@router.post("/completions")
async def completions(hub: HubDep, request: Request, _token: SubmitToken) -> StreamingResponse:
    return await _forward(hub, request, "/v1/completions")


@router.post("/embeddings")
async def embeddings(hub: HubDep, request: Request, _token: SubmitToken) -> StreamingResponse:
    return await _forward(hub, request, "/v1/embeddings")
