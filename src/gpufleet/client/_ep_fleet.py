"""Endpoint builders of a hub's ``/fleet/v1/*`` routes and ``/v1/models``.

Every call needs a hub token with the scope named in its docstring (``read``, ``submit``,
``admin``, ``node-join``); without one the hub answers 401, with one lacking the scope 403
(both :class:`~gpufleet.client.errors.AuthError`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gpufleet.client._core import Call, TimeArg, one_of, seg, time_arg
from gpufleet.client._ep_live import GPU_METRICS, RESOLUTIONS, SYSTEM_METRICS
from gpufleet.client._wire import many, obj, strs
from gpufleet.client.errors import InvalidArgument
from gpufleet.client.types_fleet import (
    FleetGpus,
    FleetNode,
    FleetNodeHost,
    Group,
    IngestResult,
    Lease,
    Model,
    Pool,
    Task,
    Token,
    hosts_of,
)
from gpufleet.client.types_host import (
    History,
)

V1 = "/fleet/v1"
NODE_STATUSES: tuple[str, ...] = ("healthy", "degraded", "unreachable", "drained")
LEASE_STATES: tuple[str, ...] = ("active", "released", "expired", "reclaimed")
TASK_STATES: tuple[str, ...] = ("queued", "placed", "running", "succeeded", "failed", "cancelled")
TOKEN_SCOPES: tuple[str, ...] = ("read", "submit", "admin", "node-join")


def _label(label: str | None) -> str | None:
    if label is not None and ("=" not in label or label.startswith("=")):
        raise InvalidArgument(f"label must be key=value, got {label!r}")
    return label


def _given(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _node_path(cluster: str, node: str) -> str:
    return f"{V1}/nodes/{seg(cluster)}/{seg(node)}"


# ---- nodes -----------------------------------------------------------------------------------


def nodes(
    *, status: str | None = None, pool: str | None = None, label: str | None = None
) -> Call[tuple[FleetNode, ...]]:
    """Every node with its health now (``read``); optionally of one status, pool or
    ``key=value`` label."""
    one_of(status, NODE_STATUSES, "node status")
    params = {"status": status, "pool": pool, "label": _label(label)}
    return Call(
        "GET", f"{V1}/nodes", lambda d: many(obj(d).get("nodes"), FleetNode.from_wire), params
    )


def discovered() -> Call[tuple[Mapping[str, Any], ...]]:
    """Agents heard of on the LAN and whether they joined (``read``)."""
    return Call("GET", f"{V1}/discovered", lambda d: many(obj(d).get("agents"), lambda a: a))


def drain(cluster: str, node: str, reason: str | None = None) -> Call[FleetNode]:
    """Take a node out of allocation; what it runs goes on (``admin``)."""
    return Call(
        "POST",
        f"{_node_path(cluster, node)}/drain",
        lambda d: FleetNode.from_wire(obj(d)),
        body=_given(reason=reason),
    )


def undrain(cluster: str, node: str) -> Call[FleetNode]:
    """Put a drained node back into allocation (``admin``)."""
    return Call(
        "POST", f"{_node_path(cluster, node)}/undrain", lambda d: FleetNode.from_wire(obj(d))
    )


def join(
    cluster: str,
    node: str,
    *,
    url: str | None = None,
    labels: Mapping[str, str] | None = None,
    zone: str | None = None,
    pool: str | None = None,
) -> Call[FleetNode]:
    """Register a node (``node-join``; what an agent started with ``--hub`` does)."""
    body = _given(
        cluster=cluster,
        node=node,
        url=url,
        labels=None if labels is None else dict(labels),
        zone=zone,
        pool=pool,
    )
    return Call("POST", f"{V1}/join", lambda d: FleetNode.from_wire(obj(d)), body=body)


def heartbeat(
    cluster: str,
    node: str,
    *,
    inventory: Mapping[str, Any] | None = None,
    leases: Sequence[Mapping[str, Any]] | None = None,
    gpus_lost: int | None = None,
    gpu_errors: int | None = None,
    health_check: Mapping[str, Any] | None = None,
) -> Call[FleetNode]:
    """A joined node is alive, with its GPU inventory and the leases it enforces
    (``node-join``). What else the hub answers (leases to end...) is in ``raw``."""
    body = _given(
        cluster=cluster,
        node=node,
        inventory=None if inventory is None else dict(inventory),
        leases=None if leases is None else [dict(x) for x in leases],
        gpus_lost=gpus_lost,
        gpu_errors=gpu_errors,
        health_check=None if health_check is None else dict(health_check),
    )
    return Call("POST", f"{V1}/heartbeat", lambda d: FleetNode.from_wire(obj(d)), body=body)


def ingest(
    cluster: str, node: str, batch_id: str, snapshots: Sequence[Mapping[str, Any]]
) -> Call[IngestResult]:
    """Push one batch of a joined node's snapshots, in the wire form of
    ``gpufleet.model_wire.snapshot_to_wire`` (``node-join``); re-sending a ``batch_id``
    stores nothing twice."""
    body = {
        "cluster": cluster,
        "node": node,
        "batch_id": batch_id,
        "snapshots": [dict(s) for s in snapshots],
    }
    return Call("POST", f"{V1}/ingest", lambda d: IngestResult.from_wire(obj(d)), body=body)


# ---- fleet views -----------------------------------------------------------------------------


def _view_params(
    cluster: str | None, node: str | None, pool: str | None, label: str | None, status: str | None
) -> dict[str, Any]:
    one_of(status, NODE_STATUSES, "node status")
    return {
        "cluster": cluster,
        "node": node,
        "pool": pool,
        "label": _label(label),
        "status": status,
    }


def gpus(
    *,
    cluster: str | None = None,
    node: str | None = None,
    pool: str | None = None,
    label: str | None = None,
    status: str | None = None,
) -> Call[FleetGpus]:
    """Every selected node's GPUs now, each as an agent's ``/gpu/metrics`` (``read``)."""
    params = _view_params(cluster, node, pool, label, status)
    return Call("GET", f"{V1}/gpus", lambda d: FleetGpus.from_wire(obj(d)), params)


def hosts(
    *,
    cluster: str | None = None,
    node: str | None = None,
    pool: str | None = None,
    label: str | None = None,
    status: str | None = None,
) -> Call[tuple[FleetNodeHost, ...]]:
    """Every selected node's host now, each as an agent's ``/system/all`` (``read``)."""
    params = _view_params(cluster, node, pool, label, status)
    return Call("GET", f"{V1}/system", lambda d: hosts_of(obj(d)), params)


def gpu_history(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    metric: str = "util_gpu_pct",
    resolution: str = "auto",
    cluster: str | None = None,
    node: str | None = None,
    gpu: str | None = None,
) -> Call[History]:
    """A GPU metric of the whole fleet over time from the hub's store (``read``)."""
    one_of(metric, GPU_METRICS, "metric")
    one_of(resolution, RESOLUTIONS, "resolution")
    params = {
        "from": time_arg(start, "start"),
        "to": time_arg(end, "end"),
        "metric": metric,
        "resolution": resolution,
        "cluster": cluster,
        "node": node,
        "gpu": gpu,
    }
    return Call("GET", f"{V1}/gpus/history", lambda d: History.from_wire(obj(d)), params)


def system_history(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    metric: str = "cpu_pct",
    resolution: str = "auto",
    cluster: str | None = None,
    node: str | None = None,
) -> Call[History]:
    """A host metric of the whole fleet over time from the hub's store (``read``)."""
    one_of(metric, SYSTEM_METRICS, "metric")
    one_of(resolution, RESOLUTIONS, "resolution")
    params = {
        "from": time_arg(start, "start"),
        "to": time_arg(end, "end"),
        "metric": metric,
        "resolution": resolution,
        "cluster": cluster,
        "node": node,
    }
    return Call("GET", f"{V1}/system/history", lambda d: History.from_wire(obj(d)), params)


# ---- tokens ----------------------------------------------------------------------------------


def tokens() -> Call[tuple[Token, ...]]:
    """Every token, never its secret, newest first (``admin``)."""
    return Call("GET", f"{V1}/tokens", lambda d: many(obj(d).get("tokens"), Token.from_wire))


def create_token(name: str, scopes: Sequence[str], *, ttl_s: float | None = None) -> Call[Token]:
    """A new token (``admin``); its ``secret`` is shown only in this answer."""
    chosen = [scopes] if isinstance(scopes, str) else list(scopes)
    for scope in chosen:
        one_of(scope, TOKEN_SCOPES, "token scope")
    body = _given(name=name, scopes=chosen, ttl_s=ttl_s)
    return Call("POST", f"{V1}/tokens", lambda d: Token.from_wire(obj(d)), body=body)


def revoke_token(token_id: str) -> Call[str]:
    """Revoke a token; it is refused from now on (``admin``). Returns its id."""
    return Call("DELETE", f"{V1}/tokens/{seg(token_id)}", lambda d: str(obj(d)["revoked"]))


# ---- leases ----------------------------------------------------------------------------------


def allocate(
    gpus: int | None = 1,
    *,
    gpu_fraction: float | None = None,
    gpu_memory_mib: int | None = None,
    gpu_model: str | None = None,
    pool: str | None = None,
    zone: str | None = None,
    labels: Mapping[str, str] | None = None,
    priority: int | None = None,
    ttl_s: float | None = None,
    strategy: str | None = None,
    holder: str | None = None,
    request_id: str | None = None,
    **more: Any,
) -> Call[Lease]:
    """Lease GPUs (``submit``). ``more`` passes the hub's other request fields through
    (``min_compute_capability``, ``cpu_cores``, ``memory_mib``, ``strict_zone``,
    ``min_free_memory_mib``, ``max_gpu_utilization``, ``include_busy``...). A retry with
    the same ``request_id`` returns the first lease.

    Raises:
        ConflictError: nothing fits now; the detail says why.
        RequestRejected: a request no node could ever meet, or over a group's quota.
    """
    body = _given(
        gpus=gpus,
        gpu_fraction=gpu_fraction,
        gpu_memory_mib=gpu_memory_mib,
        gpu_model=gpu_model,
        pool=pool,
        zone=zone,
        labels=None if labels is None else dict(labels),
        priority=priority,
        ttl_s=ttl_s,
        strategy=strategy,
        holder=holder,
        request_id=request_id,
        **more,
    )
    return Call("POST", f"{V1}/leases", lambda d: Lease.from_wire(obj(d)), body=body)


def leases(
    *,
    state: str | None = None,
    cluster: str | None = None,
    node: str | None = None,
    holder: str | None = None,
    limit: int = 500,
) -> Call[tuple[Lease, ...]]:
    """Leases, newest first (``read``, or ``submit`` for one's own)."""
    one_of(state, LEASE_STATES, "lease state")
    params = {"state": state, "cluster": cluster, "node": node, "holder": holder, "limit": limit}
    return Call(
        "GET", f"{V1}/leases", lambda d: many(obj(d).get("leases"), Lease.from_wire), params
    )


def lease(lease_id: str) -> Call[Lease]:
    """One lease (``read`` or ``submit``)."""
    return Call("GET", f"{V1}/leases/{seg(lease_id)}", lambda d: Lease.from_wire(obj(d)))


def renew(lease_id: str, ttl_s: float | None = None) -> Call[Lease]:
    """Push an active lease's expiry ``ttl_s`` from now, its own TTL without one
    (``submit``: the token that got it, or an admin)."""
    return Call(
        "POST",
        f"{V1}/leases/{seg(lease_id)}/renew",
        lambda d: Lease.from_wire(obj(d)),
        body=_given(ttl_s=ttl_s),
    )


def release(lease_id: str) -> Call[Lease]:
    """End a lease (``submit``); ``released_now`` is False when it had ended already."""
    return Call("DELETE", f"{V1}/leases/{seg(lease_id)}", lambda d: Lease.from_wire(obj(d)))


# ---- groups and pools ------------------------------------------------------------------------


def groups() -> Call[tuple[Group, ...]]:
    """Every swarm group with its members, pools, quotas and GPUs in use (``read``)."""
    return Call("GET", f"{V1}/groups", lambda d: many(obj(d).get("groups"), Group.from_wire))


def group(name: str) -> Call[Group]:
    return Call("GET", f"{V1}/groups/{seg(name)}", lambda d: Group.from_wire(obj(d)))


def create_group(
    name: str,
    *,
    max_members: int | None = None,
    pools: Sequence[str] | None = None,
    max_gpus: float | None = None,
    max_queued: int | None = None,
    description: str | None = None,
) -> Call[Group]:
    """A new group (``admin``); no ``pools`` means every pool."""
    body = _given(
        name=name,
        max_members=max_members,
        pools=None if pools is None else list(pools),
        max_gpus=max_gpus,
        max_queued=max_queued,
        description=description,
    )
    return Call("POST", f"{V1}/groups", lambda d: Group.from_wire(obj(d)), body=body)


def update_group(name: str, **changes: Any) -> Call[Group]:
    """Change a group's ``max_members``, ``pools``, ``max_gpus``, ``max_queued`` or
    ``description`` (``admin``)."""
    if not changes:
        raise InvalidArgument("nothing to change: name a field, e.g. max_gpus=8")
    return Call(
        "PATCH", f"{V1}/groups/{seg(name)}", lambda d: Group.from_wire(obj(d)), body=changes
    )


def delete_group(name: str) -> Call[str]:
    """Delete a group (``admin``); returns its name."""
    return Call("DELETE", f"{V1}/groups/{seg(name)}", lambda d: str(obj(d)["deleted"]))


def group_members(name: str) -> Call[tuple[str, ...]]:
    """The token ids in a group (``read``)."""
    return Call("GET", f"{V1}/groups/{seg(name)}/members", lambda d: strs(obj(d).get("members")))


def add_member(name: str, token_id: str) -> Call[Group]:
    """Put a token in a group, within its ``max_members`` (``admin``)."""
    return Call(
        "POST",
        f"{V1}/groups/{seg(name)}/members",
        lambda d: Group.from_wire(obj(d)),
        body={"token_id": token_id},
    )


def remove_member(name: str, token_id: str) -> Call[Group]:
    """Take a token out of a group (``admin``, or the token itself leaving)."""
    return Call(
        "DELETE",
        f"{V1}/groups/{seg(name)}/members/{seg(token_id)}",
        lambda d: Group.from_wire(obj(d)),
    )


def pools() -> Call[tuple[Pool, ...]]:
    """Every pool with its nodes, GPUs and GPUs leased (``read``)."""
    return Call("GET", f"{V1}/pools", lambda d: many(obj(d).get("pools"), Pool.from_wire))


def put_pool(
    name: str, *, description: str | None = None, nodes: Sequence[str] | None = None
) -> Call[Pool]:
    """Create or describe a pool (``admin``); ``nodes`` (``cluster/node``) makes exactly
    those its members."""
    body = _given(description=description, nodes=None if nodes is None else list(nodes))
    return Call("PUT", f"{V1}/pools/{seg(name)}", lambda d: Pool.from_wire(obj(d)), body=body)


def delete_pool(name: str) -> Call[str]:
    """Delete a pool; its nodes are left in none (``admin``). Returns its name."""
    return Call("DELETE", f"{V1}/pools/{seg(name)}", lambda d: str(obj(d)["deleted"]))


# ---- tasks -----------------------------------------------------------------------------------


def submit(
    command: Sequence[str],
    *,
    name: str | None = None,
    parts: int | None = None,
    gpus: int | None = None,
    priority: int | None = None,
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
    **lease_fields: Any,
) -> Call[Task]:
    """Queue a task (``submit``): ``command`` as an argv list, on ``parts`` nodes, each
    placed with ``gpus`` and the other lease fields (``gpu_model``, ``pool``...)."""
    if isinstance(command, str) or not command:
        raise InvalidArgument("command must be a non-empty argv list, e.g. ['python', 'x.py']")
    body = _given(
        command=list(command),
        name=name,
        parts=parts,
        gpus=gpus,
        priority=priority,
        timeout_s=timeout_s,
        env=None if env is None else dict(env),
        **lease_fields,
    )
    return Call("POST", f"{V1}/tasks", lambda d: Task.from_wire(obj(d)), body=body)


def tasks(*, state: str | None = None, limit: int = 200) -> Call[tuple[Task, ...]]:
    """Tasks, newest first, with their parts (``read`` or ``submit``)."""
    one_of(state, TASK_STATES, "task state")
    return Call(
        "GET",
        f"{V1}/tasks",
        lambda d: many(obj(d).get("tasks"), Task.from_wire),
        {"state": state, "limit": limit},
    )


def task(task_id: str) -> Call[Task]:
    return Call("GET", f"{V1}/tasks/{seg(task_id)}", lambda d: Task.from_wire(obj(d)))


def cancel(task_id: str) -> Call[Task]:
    """Cancel the parts not yet ended (``submit``: who submitted it, or an admin)."""
    return Call("POST", f"{V1}/tasks/{seg(task_id)}/cancel", lambda d: Task.from_wire(obj(d)))


def report_part(
    task_id: str,
    part: int,
    *,
    cluster: str,
    node: str,
    state: str,
    exit_code: int | None = None,
    output: str | None = None,
    error: str | None = None,
) -> Call[Mapping[str, Any]]:
    """An agent's report on a part it runs (``node-join``)."""
    body = _given(
        cluster=cluster, node=node, state=state, exit_code=exit_code, output=output, error=error
    )
    return Call("POST", f"{V1}/tasks/{seg(task_id)}/parts/{seg(part)}/report", obj, body=body)


# ---- models ----------------------------------------------------------------------------------


def models() -> Call[tuple[Model, ...]]:
    """The models the fleet's reachable nodes serve (``GET /v1/models``; ``read`` or
    ``submit``). For completions, point an OpenAI client at ``<hub>/v1``."""
    return Call("GET", "/v1/models", lambda d: many(obj(d).get("data"), Model.from_wire))
