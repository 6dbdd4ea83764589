"""``/fleet/v1/*``: the hub's API: agents join, beat and push samples; operators list and
drain nodes and manage tokens. Every call needs a token with the scope named on it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request

from gpufleet.fleet.errors import HubRequestError
from gpufleet.fleet.health import STATUSES
from gpufleet.fleet.hub import Hub
from gpufleet.store.hub_records import TokenRecord

router = APIRouter(prefix="/fleet/v1", tags=["fleet"])

JsonBody = Annotated[dict[str, Any], Body()]


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]
AuthHeader = Annotated[str | None, Header(alias="Authorization")]


def requires(scope: str) -> Any:
    """A dependency that refuses calls without a token of ``scope`` (401/403)."""

    def check(hub: HubDep, authorization: AuthHeader = None) -> TokenRecord:
        return hub.authorize(authorization, scope)

    return check


NodeToken = Annotated[TokenRecord, Depends(requires("node-join"))]
SubmitToken = Annotated[TokenRecord, Depends(requires("submit"))]
ReadToken = Annotated[TokenRecord, Depends(requires("read"))]
AdminToken = Annotated[TokenRecord, Depends(requires("admin"))]


def _token_wire(t: TokenRecord) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "scopes": list(t.scopes),
        "created_s": t.created_s,
        "expires_s": t.expires_s,
        "revoked_s": t.revoked_s,
        "groups": list(t.groups),
    }


@router.post("/join")
def join(hub: HubDep, body: JsonBody, token: NodeToken) -> dict[str, Any]:
    """Register a node (``cluster``, ``node``, optional ``url``, ``labels``, ``zone``, ``pool``)."""
    return hub.join(body, token).wire()


@router.post("/heartbeat")
def heartbeat(hub: HubDep, body: JsonBody, _token: NodeToken) -> dict[str, Any]:
    """A joined node is alive; ``gpus_lost``, ``gpu_errors`` and its ``health_check``."""
    return hub.heartbeat(body)


@router.post("/ingest")
def ingest(hub: HubDep, body: JsonBody, _token: NodeToken) -> dict[str, Any]:
    """One batch of a joined node's samples (``batch_id`` makes a re-send harmless)."""
    return hub.ingest(body)


@router.get("/nodes")
def nodes(
    hub: HubDep,
    _token: ReadToken,
    status: Annotated[str | None, Query(description=" | ".join(STATUSES))] = None,
    pool: str | None = None,
    label: Annotated[str | None, Query(description="key=value")] = None,
) -> dict[str, Any]:
    """Every node with its health now, optionally of one status, pool or label."""
    if status is not None and status not in STATUSES:
        raise HubRequestError(f"unknown status {status!r}; use one of: {', '.join(STATUSES)}")
    pair = None
    if label is not None:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise HubRequestError(f"label must be key=value, got {label!r}")
        pair = (key, value)
    views = hub.nodes(status=status, pool=pool, label=pair)
    return {"nodes": [v.wire() for v in views]}


@router.get("/discovered")
def discovered(hub: HubDep, _token: ReadToken) -> dict[str, Any]:
    """Agents heard of on the LAN (mDNS, UDP, static peers) and whether they have joined."""
    return {"agents": hub.discovered()}


@router.post("/nodes/{cluster}/{node}/drain")
def drain(
    hub: HubDep,
    cluster: str,
    node: str,
    _token: AdminToken,
    body: Annotated[dict[str, Any] | None, Body()] = None,
) -> dict[str, Any]:
    """Take a node out of allocation (``{"reason": ...}``)."""
    reason = (body or {}).get("reason")
    if reason is not None and not isinstance(reason, str):
        raise HubRequestError("reason must be a string")
    return hub.drain(cluster, node, drained=True, reason=reason).wire()


@router.post("/nodes/{cluster}/{node}/undrain")
def undrain(hub: HubDep, cluster: str, node: str, _token: AdminToken) -> dict[str, Any]:
    """Put a drained node back into allocation."""
    return hub.drain(cluster, node, drained=False, reason=None).wire()


@router.get("/tokens")
def tokens(hub: HubDep, _token: AdminToken) -> dict[str, Any]:
    """Every token (never its secret), newest first."""
    return {"tokens": [_token_wire(t) for t in hub.store.tokens()]}


@router.post("/tokens", status_code=201)
def create_token(hub: HubDep, body: JsonBody, _token: AdminToken) -> dict[str, Any]:
    """A new token (``name``, ``scopes``, optional ``ttl_s``); ``token`` is shown only here."""
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise HubRequestError("scopes must be a list of scope names")
    ttl = body.get("ttl_s")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float)):
        raise HubRequestError("ttl_s must be a number of seconds")
    text, record = hub.create_token(str(body.get("name") or ""), scopes, ttl_s=ttl)
    return {"token": text, **_token_wire(record)}


@router.delete("/tokens/{token_id}")
def revoke_token(hub: HubDep, token_id: str, _token: AdminToken) -> dict[str, Any]:
    """Revoke a token: it is refused from now on."""
    hub.revoke_token(token_id)
    return {"revoked": token_id}
