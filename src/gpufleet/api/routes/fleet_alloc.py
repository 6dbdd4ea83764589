"""``/fleet/v1/leases``, ``/groups``, ``/pools``: handing GPUs out and who may have them.

Leases need a ``submit`` token (renew and release: the token that got the lease, or an
admin); groups and pools are changed by admins and read with ``read``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response

from gpufleet.api.routes.fleet import (
    AdminToken,
    AuthHeader,
    HubDep,
    JsonBody,
    SubmitToken,
)
from gpufleet.fleet.errors import AuthError, HubRequestError
from gpufleet.fleet.lease_desk import lease_wire
from gpufleet.fleet.pools_groups import group_wire
from gpufleet.store.hub_records import TokenRecord
from gpufleet.store.lease_records import LEASE_STATES

router = APIRouter(prefix="/fleet/v1", tags=["fleet allocation"])


def _reader_or_submitter(hub: HubDep, authorization: AuthHeader = None) -> TokenRecord:
    """A token that may read leases: ``read``, or ``submit`` (it reads the leases it got)."""
    try:
        return hub.authorize(authorization, "read")
    except AuthError as exc:
        if exc.status != 403:
            raise
        return hub.authorize(authorization, "submit")


AnyReader = Annotated[TokenRecord, Depends(_reader_or_submitter)]


# ---- leases ----------------------------------------------------------------------------------


@router.post("/leases", status_code=201)
def allocate(hub: HubDep, body: JsonBody, token: SubmitToken, response: Response) -> dict[str, Any]:
    """Lease GPUs: ``gpus``, ``gpu_fraction``, ``gpu_memory_mib``, ``gpu_model``,
    ``min_compute_capability``, ``cpu_cores``, ``memory_mib``, ``zone``, ``strict_zone``,
    ``labels``, ``pool``, ``priority``, ``ttl_s``, ``strategy``, ``min_free_memory_mib``,
    ``max_gpu_utilization``, ``max_memory_utilization``, ``include_busy``, ``holder``,
    ``request_id`` (a retry with it returns the first lease, 200). 409 when nothing fits now,
    with the reason."""
    lease, created = hub.leases.allocate(body, token)
    if not created:
        response.status_code = 200
    return lease_wire(lease)


@router.get("/leases")
def leases(
    hub: HubDep,
    _token: AnyReader,
    state: Annotated[str | None, Query(description=" | ".join(LEASE_STATES))] = None,
    cluster: str | None = None,
    node: str | None = None,
    holder: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> dict[str, Any]:
    """Leases, newest first, optionally of one state, node or holder."""
    if state is not None and state not in LEASE_STATES:
        raise HubRequestError(f"unknown state {state!r}; use one of: {', '.join(LEASE_STATES)}")
    hub.leases.sweep()
    found = hub.store.leases(state=state, cluster=cluster, node=node, limit=limit)
    if holder is not None:
        found = [x for x in found if x.holder == holder]
    return {"leases": [lease_wire(x) for x in found]}


@router.get("/leases/{lease_id}")
def lease(hub: HubDep, lease_id: str, _token: AnyReader) -> dict[str, Any]:
    hub.leases.sweep()
    return lease_wire(hub.leases.get(lease_id))


@router.post("/leases/{lease_id}/renew")
def renew(
    hub: HubDep,
    lease_id: str,
    token: SubmitToken,
    body: Annotated[dict[str, Any] | None, Body()] = None,
) -> dict[str, Any]:
    """Push an active lease's expiry ``ttl_s`` from now (its own TTL without one)."""
    return lease_wire(hub.leases.renew(lease_id, token, (body or {}).get("ttl_s")))


@router.delete("/leases/{lease_id}")
def release(hub: HubDep, lease_id: str, token: SubmitToken) -> dict[str, Any]:
    """End a lease; releasing an ended lease changes nothing (``released_now`` false)."""
    record, ended_now = hub.leases.release(lease_id, token)
    return {**lease_wire(record), "released_now": ended_now}


# ---- groups ----------------------------------------------------------------------------------


@router.get("/groups")
def groups(hub: HubDep, _token: AnyReader) -> dict[str, Any]:
    """Every swarm group with its members, pools, quotas and GPUs in use."""
    return {"groups": hub.pools_groups.groups()}


def _group(hub: Any, name: str) -> dict[str, Any]:
    record = hub.pools_groups.group(name)
    return group_wire(record, hub.pools_groups.gpus_in_use().get(name, 0.0))


@router.post("/groups", status_code=201)
def create_group(hub: HubDep, body: JsonBody, _token: AdminToken) -> dict[str, Any]:
    """A new group: ``name``, ``max_members`` (default 10), ``pools`` (empty: every pool),
    ``max_gpus``, ``max_queued``, ``description``."""
    record = hub.pools_groups.create_group(body)
    return _group(hub, record.name)


@router.get("/groups/{name}")
def group(hub: HubDep, name: str, _token: AnyReader) -> dict[str, Any]:
    return _group(hub, name)


@router.patch("/groups/{name}")
def update_group(hub: HubDep, name: str, body: JsonBody, _token: AdminToken) -> dict[str, Any]:
    hub.pools_groups.update_group(name, body)
    return _group(hub, name)


@router.delete("/groups/{name}")
def delete_group(hub: HubDep, name: str, _token: AdminToken) -> dict[str, Any]:
    hub.pools_groups.delete_group(name)
    return {"deleted": name}


@router.get("/groups/{name}/members")
def members(hub: HubDep, name: str, _token: AnyReader) -> dict[str, Any]:
    return {"group": name, "members": list(hub.pools_groups.group(name).members)}


@router.post("/groups/{name}/members")
def join_group(hub: HubDep, name: str, body: JsonBody, _token: AdminToken) -> dict[str, Any]:
    """Put a token (``token_id``) in the group, within its ``max_members``."""
    token_id = body.get("token_id")
    if not isinstance(token_id, str) or not token_id:
        raise HubRequestError("token_id must be a token's id (see GET /fleet/v1/tokens)")
    hub.pools_groups.join(name, token_id)
    return _group(hub, name)


@router.delete("/groups/{name}/members/{token_id}")
def leave_group(hub: HubDep, name: str, token_id: str, token: AnyReader) -> dict[str, Any]:
    """Take a token out of the group: an admin, or the token itself leaving."""
    if token.id != token_id and not token.allows("admin"):
        raise AuthError(403, "only an admin token can take another token out of a group")
    hub.pools_groups.leave(name, token_id)
    return _group(hub, name)


# ---- pools -----------------------------------------------------------------------------------


@router.get("/pools")
def pools(hub: HubDep, _token: AnyReader) -> dict[str, Any]:
    """Every pool (created or named by nodes) with its nodes, GPUs and GPUs leased."""
    return {"pools": hub.pools_groups.pools()}


@router.put("/pools/{name}")
def put_pool(hub: HubDep, name: str, body: JsonBody, _token: AdminToken) -> dict[str, Any]:
    """Create or describe a pool; ``nodes`` (``cluster/node``) makes exactly those its
    members."""
    return hub.pools_groups.put_pool(name, body)


@router.delete("/pools/{name}")
def delete_pool(hub: HubDep, name: str, _token: AdminToken) -> dict[str, Any]:
    """Delete a pool; its nodes are left in no pool (their leases go on)."""
    hub.pools_groups.delete_pool(name)
    return {"deleted": name}
