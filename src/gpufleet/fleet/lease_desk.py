"""Leases: GPUs handed out by the hub, renewed, released, and taken back.

A lease is GPUs of one node (by uuid) held by one holder until its expiry. The desk:

* **allocates** under one lock (one hub process hands GPUs out), on the nodes that may take
  leases now: healthy, not drained, in a pool the token's groups allow, with the GPUs every
  active lease holds taken out, *and* the GPUs each agent says it is enforcing (a lease the
  hub has no record of, after a restore of an older database, still keeps its GPUs);
* is **idempotent**: a request with a ``request_id`` the token used before gets the first
  lease back; releasing or renewing twice changes nothing the second time;
* **charges groups**: a token in groups allocates only from their pools, and each lease is
  charged to the first of its groups (by name) that allows the node's pool and has room
  under its ``max_gpus``; a token in no group allocates anywhere, uncharged;
* **takes leases back** (:meth:`LeaseDesk.sweep`): past expiry (``expired``), or when the
  node turns unreachable (``reclaimed``). The hub sweeps every second and before each
  allocation, so a lease is never handed out again while its old holder's node is
  merely slow.

Every lease comes with the environment its holder runs under: ``CUDA_VISIBLE_DEVICES`` by
GPU uuid and ``CUDA_DEVICE_ORDER=PCI_BUS_ID``.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gpufleet.fleet.allocator import Holding, LiveNode, NoFitError, plan_lease
from gpufleet.fleet.errors import AuthError, HubRequestError
from gpufleet.fleet.inventory import InventoryError, NodeInventory, inventory_from_wire
from gpufleet.fleet.lease_request import (
    MAX_TTL_S,
    MIN_TTL_S,
    LeaseRequest,
    LeaseRequestError,
    lease_request_from_wire,
)
from gpufleet.fleet.strategies import DEFAULT_STRATEGY, Strategy, make_strategy
from gpufleet.store.hub_records import HubNode, TokenRecord
from gpufleet.store.lease_records import ACTIVE, GroupRecord, LeaseRecord, LeaseRecords

HEALTHY = "healthy"


class NoCapacityError(HubRequestError):
    """Nothing fits the request now (409); waiting may help, changing the request may too."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, status=409)


def lease_env(lease: LeaseRecord) -> dict[str, str]:
    """The environment a lease's holder runs under."""
    env = {
        "CUDA_VISIBLE_DEVICES": ",".join(lease.gpus),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "GPUFLEET_LEASE_ID": lease.id,
    }
    if lease.memory_budget_mib is not None and lease.milli_per_gpu < 1000:
        env["GPUFLEET_GPU_MEMORY_BUDGET_MIB"] = str(lease.memory_budget_mib)
    return env


def lease_wire(lease: LeaseRecord) -> dict[str, Any]:
    return {
        "id": lease.id,
        "holder": lease.holder,
        "request_id": lease.request_id,
        "cluster": lease.cluster,
        "node": lease.node,
        "gpus": list(lease.gpus),
        "gpu_fraction": lease.milli_per_gpu / 1000.0 if lease.gpus else 0.0,
        "memory_budget_mib": lease.memory_budget_mib,
        "cpu_cores": lease.cpu_milli / 1000.0,
        "memory_mib": lease.memory_mib,
        "pool": lease.pool,
        "group": lease.group,
        "priority": lease.priority,
        "created_s": lease.created_s,
        "expires_s": lease.expires_s,
        "state": lease.state,
        "ended_s": lease.ended_s,
        "end_reason": lease.end_reason,
        "renewals": lease.renewals,
        "env": lease_env(lease),
    }


def agent_lease_wire(lease: LeaseRecord) -> dict[str, Any]:
    """What an agent keeps of a lease on its node, and reports back in heartbeats."""
    return {
        "id": lease.id,
        "gpus": list(lease.gpus),
        "milli_per_gpu": lease.milli_per_gpu,
        "memory_budget_mib": lease.memory_budget_mib,
        "cpu_milli": lease.cpu_milli,
        "memory_mib": lease.memory_mib,
        "expires_s": lease.expires_s,
    }


@dataclass(frozen=True, slots=True)
class Sweep:
    expired: tuple[str, ...] = ()
    reclaimed: tuple[str, ...] = ()


class LeaseDesk:
    """Hands out, renews, releases and takes back leases over the hub's store.

    Args:
        store: the hub's store.
        clock: wall clock.
        status_of: a node's health status now (the hub's judgement).
        default_strategy: the strategy of requests that name none.
    """

    def __init__(
        self,
        store: LeaseRecords,
        *,
        clock: Callable[[], float],
        status_of: Callable[[HubNode], str],
        default_strategy: str = DEFAULT_STRATEGY,
    ) -> None:
        make_strategy(default_strategy)  # refuse an unknown name now
        self.store = store
        self.clock = clock
        self.status_of = status_of
        self.default_strategy = default_strategy
        self._strategies: dict[str, Strategy] = {}
        self._lock = threading.Lock()
        self._inventories: dict[tuple[str, str], NodeInventory | None] = {}
        """Each node's inventory as its last heartbeat gave it (None: unreadable)."""
        self.outside_use: Callable[[], Mapping[str, float]] | None = None
        """GPUs groups hold outside leases (the task queue's scale-out engines), counted
        against their ``max_gpus`` too."""

    def group_gpus_in_use(self, active: Sequence[LeaseRecord] | None = None) -> dict[str, float]:
        """GPUs each group holds now: its active leases plus what engines run for it."""
        if active is None:
            active = self.store.leases(state=ACTIVE, limit=1_000_000)
        used: dict[str, float] = dict(self.outside_use() if self.outside_use else {})
        for lease in active:
            if lease.group is not None:
                used[lease.group] = used.get(lease.group, 0.0) + lease.gpu_count
        return used

    def note_inventory(self, cluster: str, node: str, inventory: NodeInventory) -> None:
        """The inventory a heartbeat just brought (the hub calls this for every one)."""
        self._inventories[(cluster, node)] = inventory

    def _inventory(self, n: HubNode) -> NodeInventory | None:
        key = (n.cluster, n.node)
        if key not in self._inventories:
            # Not heard from since this hub started: the stored copy of the last heartbeat.
            row = n if n.inventory else self.store.hub_node(n.cluster, n.node)
            try:
                self._inventories[key] = inventory_from_wire(
                    (row.inventory if row is not None else None) or None
                )
            except InventoryError:
                self._inventories[key] = None
        return self._inventories[key]

    # ---- handing out -------------------------------------------------------------------------

    def allocate(self, body: Mapping[str, Any], token: TokenRecord) -> tuple[LeaseRecord, bool]:
        """A lease for ``body`` (see :mod:`gpufleet.fleet.lease_request`); True when it is
        new, False when the token's ``request_id`` already got it.

        Raises:
            HubRequestError: a bad request (422), nothing fits now (409), or a group's quota
                is used up (409).
            AuthError: the token's groups do not allow the pool asked for (403).
        """
        try:
            request = lease_request_from_wire(body)
        except LeaseRequestError as exc:
            raise HubRequestError(str(exc)) from None
        with self._lock:
            if request.request_id is not None:
                earlier = self.store.lease_by_request(token.id, request.request_id)
                if earlier is not None:
                    return earlier, False
            self.check_possible(request, token)
            return self._allocate(request, token), True

    def check_possible(self, request: LeaseRequest, token: TokenRecord) -> None:
        """Refuse a request no wait can satisfy: a pool that does not exist, a pool the
        token's groups do not allow, more GPUs than any of its groups may ever hold.

        Raises:
            HubRequestError: no such pool (404) or more than every group's max_gpus (422).
            AuthError: the token's groups do not allow the pool (403).
        """
        if request.pool is not None:
            known = self.store.pool_names()
            if request.pool not in known:
                raise HubRequestError(
                    f"no pool {request.pool!r}; pools: {', '.join(sorted(known)) or 'none yet'}",
                    status=404,
                )
        groups = self._groups_of(token)
        if not groups:
            return
        allowed = _pools_allowed(groups)
        _check_pool_allowed(request, token, groups, allowed)
        asked = request.gpus * request.milli_per_gpu / 1000.0
        limits = [g.max_gpus for g in groups]
        if asked and None not in limits and asked > max(x for x in limits if x is not None):
            quotas = ", ".join(f"{g.name} {g.max_gpus:g}" for g in groups)
            raise HubRequestError(
                f"asks for {asked:g} GPU(s), more than the token's groups may ever hold "
                f"(max_gpus: {quotas}): ask for fewer or ask an admin for a larger max_gpus"
            )

    def place(
        self, request: LeaseRequest, token: TokenRecord, *, node_ok: Callable[[HubNode], bool]
    ) -> LeaseRecord:
        """A lease for ``request`` on a node ``node_ok`` accepts (the task queue's way in;
        no sweep: the caller sweeps once per round).

        Raises:
            NoCapacityError: nothing fits now.
            HubRequestError: a group quota is used up (409).
            AuthError: the token's groups do not allow the pool.
        """
        with self._lock:
            return self._allocate(request, token, node_ok, sweep=False)

    def _allocate(
        self,
        request: LeaseRequest,
        token: TokenRecord,
        node_ok: Callable[[HubNode], bool] | None = None,
        *,
        sweep: bool = True,
    ) -> LeaseRecord:
        hub_nodes = self.store.hub_nodes(with_inventory=False)
        if sweep:
            self.sweep(hub_nodes)
        groups = self._groups_of(token)
        active = self.store.leases(state=ACTIVE, limit=1_000_000)
        usable = self._usable_groups(groups, active, request)
        allowed = _pools_allowed(usable) if groups else None
        _check_pool_allowed(request, token, groups, allowed)
        nodes, left_out = self._live_nodes(hub_nodes, request.pool, allowed, node_ok)
        holdings = self._holdings(hub_nodes, active)
        name = request.strategy or self.default_strategy
        strategy = self._strategies.setdefault(name, make_strategy(name))
        try:
            plan = plan_lease(request, nodes, holdings, strategy)
        except NoFitError as exc:
            detail = exc.reason
            if left_out:
                detail += "; nodes that cannot take leases now: " + ", ".join(
                    f"{k} {why}" for why, k in left_out.most_common()
                )
            raise NoCapacityError(detail) from None
        group = _charged(usable, plan.node.pool)
        now = self.clock()
        lease = LeaseRecord(
            id="ls_" + secrets.token_hex(8),
            token_id=token.id,
            request_id=request.request_id,
            holder=request.holder or token.name,
            cluster=plan.node.cluster,
            node=plan.node.node,
            gpus=tuple(g.uuid for g in plan.gpus),
            milli_per_gpu=plan.milli_per_gpu,
            memory_budget_mib=request.gpu_memory_mib if request.shared else None,
            cpu_milli=round(request.cpu_cores * 1000),
            memory_mib=request.memory_mib,
            pool=plan.node.pool,
            group=None if group is None else group.name,
            priority=request.priority,
            request=_request_wire(request),
            created_s=now,
            expires_s=now + request.ttl_s,
        )
        self.store.save_lease(lease)
        return lease

    def _groups_of(self, token: TokenRecord) -> list[GroupRecord]:
        if not token.groups:
            return []
        by_name = {g.name: g for g in self.store.groups()}
        return [by_name[n] for n in sorted(token.groups) if n in by_name]

    def _usable_groups(
        self, groups: list[GroupRecord], active: Sequence[LeaseRecord], request: LeaseRequest
    ) -> list[GroupRecord]:
        """The token's groups with room for ``request`` under their ``max_gpus``.

        Raises:
            HubRequestError: the token is in groups and none has room (409).
        """
        if not groups:
            return []
        used = self.group_gpus_in_use(active)
        asked = request.gpus * request.milli_per_gpu / 1000.0
        usable = [
            g for g in groups if g.max_gpus is None or used.get(g.name, 0.0) + asked <= g.max_gpus
        ]
        if not usable:
            quotas = "; ".join(
                f"{g.name}: {used.get(g.name, 0.0):g} of {g.max_gpus:g}" for g in groups
            )
            raise HubRequestError(
                f"the token's groups have no GPUs left under their quotas ({quotas} in use); "
                f"asked for {asked:g}: release a lease or ask an admin for a larger max_gpus",
                status=409,
            )
        return usable

    def _live_nodes(
        self,
        hub_nodes: Sequence[HubNode],
        pool: str | None,
        allowed: set[str] | None,
        node_ok: Callable[[HubNode], bool] | None = None,
    ) -> tuple[list[LiveNode], Counter[str]]:
        """Nodes that may take leases now, and why the others cannot (counts)."""
        nodes: list[LiveNode] = []
        left_out: Counter[str] = Counter()
        for n in hub_nodes:
            if pool is not None and n.pool != pool:
                continue
            if allowed is not None and (n.pool is None or n.pool not in allowed):
                continue
            if node_ok is not None and not node_ok(n):
                left_out["not running tasks (no --run-tasks)"] += 1
                continue
            status = self.status_of(n)
            if status != HEALTHY:
                left_out[status] += 1
                continue
            inventory = self._inventory(n)
            if inventory is None:
                left_out["without a readable inventory"] += 1
                continue
            nodes.append(
                LiveNode(
                    cluster=n.cluster,
                    node=n.node,
                    inventory=inventory,
                    zone=n.zone,
                    labels=n.labels,
                    pool=n.pool,
                    weight=_weight(n.labels),
                )
            )
        if not nodes and not left_out:
            where = f" in pool {pool}" if pool else ""
            if allowed is not None:
                where += f" in the pools the token's groups allow ({', '.join(sorted(allowed))})"
            raise NoCapacityError(f"no node has joined{where}")
        return nodes, left_out

    def _holdings(
        self, hub_nodes: Sequence[HubNode], active: Sequence[LeaseRecord]
    ) -> list[Holding]:
        """What the hub's active leases hold, plus what agents enforce that the hub has no
        record of."""
        held = [
            Holding(
                cluster=lease.cluster,
                node=lease.node,
                gpus=lease.gpus,
                milli_per_gpu=lease.milli_per_gpu,
                memory_budget_mib=lease.memory_budget_mib,
                cpu_milli=lease.cpu_milli,
                memory_mib=lease.memory_mib,
            )
            for lease in active
        ]
        reported = {
            (n.cluster, n.node, str(x.get("id"))): x
            for n in hub_nodes
            for x in n.agent_leases
            if x.get("id")
        }
        if not reported:
            return held
        known = set(self.store.known_lease_ids(sorted({k[2] for k in reported})))
        for (cluster, node, lease_id), x in sorted(reported.items()):
            if lease_id in known:
                continue
            gpus = x.get("gpus")
            if not isinstance(gpus, list):
                continue
            held.append(
                Holding(
                    cluster=cluster,
                    node=node,
                    gpus=tuple(str(u) for u in gpus),
                    milli_per_gpu=_int(x.get("milli_per_gpu"), 1000),
                    memory_budget_mib=_int(x.get("memory_budget_mib"), 0) or None,
                    cpu_milli=_int(x.get("cpu_milli"), 0),
                    memory_mib=_int(x.get("memory_mib"), 0),
                )
            )
        return held

    # ---- a lease's life ----------------------------------------------------------------------

    def get(self, lease_id: str) -> LeaseRecord:
        lease = self.store.lease(lease_id)
        if lease is None:
            raise HubRequestError(f"no lease {lease_id!r}", status=404)
        return lease

    def _own(self, lease_id: str, token: TokenRecord) -> LeaseRecord:
        lease = self.get(lease_id)
        if lease.token_id != token.id and not token.allows("admin"):
            raise AuthError(403, f"lease {lease_id} was handed to another token")
        return lease

    def renew(self, lease_id: str, token: TokenRecord, ttl_s: object = None) -> LeaseRecord:
        """Push an active lease's expiry to ``ttl_s`` from now (its own TTL when None).

        Raises:
            HubRequestError: no such lease (404), or it has ended (409).
        """
        lease = self._own(lease_id, token)
        if ttl_s is None:
            ttl = float(lease.request.get("ttl_s", lease.expires_s - lease.created_s))
        elif (
            isinstance(ttl_s, bool)
            or not isinstance(ttl_s, int | float)
            or not MIN_TTL_S <= ttl_s <= MAX_TTL_S
        ):
            raise HubRequestError(
                f"ttl_s must be a number of seconds from {MIN_TTL_S:g} to {MAX_TTL_S:g}"
            )
        else:
            ttl = float(ttl_s)
        with self._lock:
            self.sweep()
            if not self.store.renew_lease(lease_id, self.clock() + ttl):
                ended = self.get(lease_id)
                raise HubRequestError(
                    f"lease {lease_id} has ended ({ended.state}: {ended.end_reason}); "
                    "allocate again",
                    status=409,
                )
        return self.get(lease_id)

    def release(
        self, lease_id: str, token: TokenRecord, reason: str = "released by its holder"
    ) -> tuple[LeaseRecord, bool]:
        """End a lease; False when it had ended already (nothing changes)."""
        self._own(lease_id, token)
        ended = self.store.end_lease(lease_id, "released", self.clock(), reason)
        return self.get(lease_id), ended

    def sweep(self, hub_nodes: Sequence[HubNode] | None = None) -> Sweep:
        """Expire leases past their time and reclaim those on unreachable nodes."""
        now = self.clock()
        expired = self.store.expire_leases(now)
        reclaimed = []
        active = self.store.leases(state=ACTIVE, limit=1_000_000)
        if active:
            if hub_nodes is None:
                hub_nodes = self.store.hub_nodes(with_inventory=False)
            status = {(n.cluster, n.node): self.status_of(n) for n in hub_nodes}
            for lease in active:
                if status.get((lease.cluster, lease.node), "unreachable") == "unreachable":
                    why = f"node {lease.cluster}/{lease.node} stopped answering (unreachable)"
                    if self.store.end_lease(lease.id, "reclaimed", now, why):
                        reclaimed.append(lease.id)
        return Sweep(tuple(expired), tuple(reclaimed))

    def of_node(self, cluster: str, node: str) -> list[LeaseRecord]:
        """A node's active leases (what its agent enforces)."""
        return self.store.leases(state=ACTIVE, cluster=cluster, node=node, limit=10_000)


def _check_pool_allowed(
    request: LeaseRequest,
    token: TokenRecord,
    groups: Sequence[GroupRecord],
    allowed: set[str] | None,
) -> None:
    """403 when the request names a pool outside ``allowed`` (the token's groups' pools)."""
    if request.pool is not None and allowed is not None and request.pool not in allowed:
        raise AuthError(
            403,
            f"token {token.name} may not allocate from pool {request.pool}: its groups "
            f"({', '.join(g.name for g in groups)}) allow "
            + (", ".join(sorted(allowed)) or "no pool"),
        )


def _pools_allowed(groups: Sequence[GroupRecord]) -> set[str] | None:
    """Pools the groups allow together; None when one of them allows every pool."""
    pools: set[str] = set()
    for g in groups:
        if not g.pools:
            return None
        pools.update(g.pools)
    return pools


def _charged(groups: Sequence[GroupRecord], pool: str | None) -> GroupRecord | None:
    for g in groups:
        if not g.pools or (pool is not None and pool in g.pools):
            return g
    return None


def _weight(labels: Mapping[str, str]) -> float:
    """A node's weight for the ``weighted`` strategy: its ``weight`` label (default 1)."""
    try:
        value = float(labels.get("weight", "1"))
    except ValueError:
        return 1.0
    return value if value > 0 else 1.0


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _request_wire(request: LeaseRequest) -> dict[str, Any]:
    out = {
        "gpus": request.gpus,
        "gpu_fraction": request.gpu_fraction,
        "gpu_memory_mib": request.gpu_memory_mib,
        "gpu_model": list(request.gpu_model),
        "min_compute_capability": (
            None
            if request.min_compute_capability is None
            else "{}.{}".format(*request.min_compute_capability)
        ),
        "cpu_cores": request.cpu_cores,
        "memory_mib": request.memory_mib,
        "zone": request.zone,
        "strict_zone": request.strict_zone,
        "labels": dict(request.labels),
        "pool": request.pool,
        "priority": request.priority,
        "ttl_s": request.ttl_s,
        "strategy": request.strategy,
        "min_free_memory_mib": request.min_free_memory_mib,
        "max_gpu_utilization": request.max_gpu_utilization,
        "max_memory_utilization": request.max_memory_utilization,
        "include_busy": request.include_busy,
        "serves_model": request.serves_model,
    }
    return {k: v for k, v in out.items() if v not in (None, [], {}, False)}
