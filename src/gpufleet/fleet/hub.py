"""The hub: one view of a fleet's nodes, fed by agents (issue 5, seed 003).

Agents join with a ``node-join`` token, then send heartbeats and batches of samples; the hub
keeps everything in its store (PostgreSQL for a real fleet, SQLite on one machine), so a hub
restart recovers its nodes, their drain state and its tokens. A node's health is judged
when asked (:mod:`gpufleet.fleet.health`) from the last heartbeat and samples.

Access: every call carries a token (``Authorization: Bearer gf_...``) with the scope it
needs (:mod:`gpufleet.fleet.tokens`); a missing or bad token is refused before anything
changes. Discovery (mDNS, UDP, static peers) only tells a hub where agents are: it never
grants access.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from gpufleet.fleet.discovery import DiscoveryRegistry
from gpufleet.fleet.errors import AuthError, HubRequestError
from gpufleet.fleet.health import UNREACHABLE_AFTER_S, Heard, node_health
from gpufleet.fleet.inventory import InventoryError, inventory_from_wire, inventory_wire
from gpufleet.fleet.lease_desk import LeaseDesk, agent_lease_wire
from gpufleet.fleet.model_router import ModelRouter
from gpufleet.fleet.names import check_name
from gpufleet.fleet.pools_groups import PoolsAndGroups
from gpufleet.fleet.scaleout import Engine
from gpufleet.fleet.task_queue import TaskQueue
from gpufleet.fleet.tokens import TokenError, new_token, token_id, verify
from gpufleet.model import Snapshot
from gpufleet.model_wire import WireError, snapshot_from_wire
from gpufleet.store.hub_records import HubNode, TokenRecord
from gpufleet.store.task_records import TaskRecords

MAX_BATCH_SNAPSHOTS = 5_000
"""Most snapshots one ingest call may carry (an agent sends a few hundred at a time)."""


@dataclass(frozen=True, slots=True)
class NodeView:
    """A node as the hub reports it: its record and its health now."""

    node: HubNode
    status: str
    reasons: tuple[str, ...]

    def wire(self) -> dict[str, Any]:
        n = self.node
        return {
            "cluster": n.cluster,
            "node": n.node,
            "status": self.status,
            "reasons": list(self.reasons),
            "url": n.url,
            "labels": n.labels,
            "zone": n.zone,
            "pool": n.pool,
            "joined": _iso(n.joined_s),
            "last_heartbeat": _iso(n.last_heartbeat_s),
            "last_sample": _iso(n.last_sample_s),
            "gpus_lost": n.gpus_lost,
            "gpu_errors": n.gpu_errors,
            "drained": n.drained,
            "drain_reason": n.drain_reason,
            "health_check": n.health_check,
            "gpus": n.inventory.get("gpus") or [],
            "cpu_cores": n.inventory.get("cpu_cores"),
            "mem_total_mib": n.inventory.get("mem_total_mib"),
        }


def _agent_leases(raw: object) -> list[dict[str, Any]]:
    """The ``leases`` of a heartbeat: each an object with an ``id`` and its ``gpus``."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise HubRequestError("leases must be a list")
    out = []
    for i, x in enumerate(raw):
        if (
            not isinstance(x, Mapping)
            or not isinstance(x.get("id"), str)
            or not isinstance(x.get("gpus"), list)
            or not all(isinstance(u, str) for u in x["gpus"])
        ):
            raise HubRequestError(f"leases[{i}] must be an object with an id and a list of gpus")
        out.append(dict(x))
    return out


def _iso(ts_s: float | None) -> str | None:
    if ts_s is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts_s))


class Hub:
    """The hub's behaviour over its store; the API and CLI are thin layers over it.

    Args:
        store: the hub's store.
        clock: wall clock (injected for tests).
        unreachable_after_s: heartbeat silence after which a node is unreachable.
        started_s: when the serving hub started (nodes are not blamed for silence before
            it); default now. A command reading the store offline passes what
            :meth:`note_serving` recorded, so it judges nodes as the serving hub does.
    """

    def __init__(
        self,
        store: TaskRecords,
        *,
        clock: Callable[[], float] = time.time,
        unreachable_after_s: float = UNREACHABLE_AFTER_S,
        discovery: DiscoveryRegistry | None = None,
        route_strategy: str = "least_loaded",
        model_client: Callable[[], httpx.AsyncClient] | None = None,
        engines: Mapping[str, Engine] | None = None,
        started_s: float | None = None,
    ) -> None:
        if unreachable_after_s <= 0:
            raise ValueError(f"unreachable_after_s must be positive, got {unreachable_after_s}")
        self.store = store
        self.clock = clock
        self.unreachable_after_s = unreachable_after_s
        self.discovery = discovery or DiscoveryRegistry(clock=clock)
        self.started_s = clock() if started_s is None else started_s
        self.latest: dict[tuple[str, str], Snapshot] = {}
        """Each node's newest snapshot received since the hub started (fleet-scope live
        views); history is in the store."""
        self.leases = LeaseDesk(store, clock=clock, status_of=lambda n: self.view(n).status)
        self.pools_groups = PoolsAndGroups(store, clock, self.leases.group_gpus_in_use)
        self.tasks = TaskQueue(store, self.leases, clock, engines=engines)
        self.router = ModelRouter(
            lambda: [(n, self.view(n).status) for n in self.store.hub_nodes()],
            strategy=route_strategy,
            client_factory=model_client,
        )

    # ---- access ------------------------------------------------------------------------------

    def authorize(self, authorization: str | None, scope: str) -> TokenRecord:
        """The token of an ``Authorization: Bearer ...`` header, if it allows ``scope``.

        Raises:
            AuthError: 401 without a valid token, 403 when it lacks the scope.
        """
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthError(401, "this call needs a token: send 'Authorization: Bearer gf_...'")
        text = authorization[7:].strip()
        try:
            record = self.store.token(token_id(text))
            return verify(text, record, scope, self.clock())
        except TokenError as exc:
            raise AuthError(403 if "lacks the" in str(exc) else 401, str(exc)) from None

    def create_token(
        self, name: str, scopes: Sequence[str], *, ttl_s: float | None = None
    ) -> tuple[str, TokenRecord]:
        """A new token; its text is returned once and never stored."""
        check_name("a token's name", name)
        try:
            text, record = new_token(name, list(scopes), now_s=self.clock(), ttl_s=ttl_s)
        except TokenError as exc:
            raise HubRequestError(str(exc)) from None
        self.store.save_token(record)
        return text, record

    def revoke_token(self, token: str) -> None:
        if not self.store.revoke_token(token, self.clock()):
            raise HubRequestError(f"no token {token!r}", status=404)

    # ---- nodes -------------------------------------------------------------------------------

    def join(self, body: Mapping[str, Any], joined_by: TokenRecord) -> NodeView:
        """Register the node ``body`` describes (``cluster``, ``node``, optional ``url``,
        ``labels``, ``zone``, ``pool``)."""
        cluster = check_name("cluster", body.get("cluster"))
        node = check_name("node", body.get("node"))
        labels = body.get("labels") or {}
        if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise HubRequestError("labels must be an object of string keys and string values")
        url = body.get("url")
        if url is not None and (
            not isinstance(url, str) or not url.startswith(("http://", "https://"))
        ):
            raise HubRequestError(f"url must be an http:// or https:// URL (got {url!r})")
        zone = body.get("zone")
        pool = body.get("pool")
        for what, value in (("zone", zone), ("pool", pool)):
            if value is not None:
                check_name(what, value)
        joined = self.store.join_node(
            cluster=cluster,
            node=node,
            now_s=self.clock(),
            url=url,
            labels=dict(labels),
            zone=zone,
            pool=pool,
            token_id=joined_by.id,
        )
        return self.view(joined)

    def heartbeat(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Note that ``body``'s node is alive, with its health check, its ``inventory`` and
        the ``leases`` its agent enforces and the task parts it runs; the answer is the
        node's view, its active leases (what the agent is to enforce from now on), the task
        parts to start and those to stop."""
        cluster = check_name("cluster", body.get("cluster"))
        node = check_name("node", body.get("node"))
        lost, errors = body.get("gpus_lost", 0), body.get("gpu_errors", 0)
        for what, value in (("gpus_lost", lost), ("gpu_errors", errors)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise HubRequestError(f"{what} must be a count (0 or more), got {value!r}")
        check = body.get("health_check") or {}
        if not isinstance(check, Mapping):
            raise HubRequestError("health_check must be an object")
        try:
            parsed = inventory_from_wire(body.get("inventory"))
        except InventoryError as exc:
            raise HubRequestError(str(exc)) from None
        inventory = inventory_wire(parsed)
        enforced = _agent_leases(body.get("leases"))
        running = body.get("running_tasks") or []
        if not isinstance(running, list) or not all(isinstance(x, str) for x in running):
            raise HubRequestError("running_tasks must be a list of task:part names")
        if not self.store.record_heartbeat(
            cluster,
            node,
            now_s=self.clock(),
            gpus_lost=lost,
            gpu_errors=errors,
            health_check=check,
            inventory=inventory,
            agent_leases=enforced,
        ):
            raise HubRequestError(f"node {cluster}/{node} has not joined: join first", 404)
        self.leases.note_inventory(cluster, node, parsed)
        found = self.store.hub_node(cluster, node)
        assert found is not None
        active = self.leases.of_node(cluster, node)
        reported = sorted({str(x["id"]) for x in enforced})
        known = self.store.known_lease_ids(reported)
        work = self.tasks.for_node(found, running)
        return {
            **self.view(found).wire(),
            "leases": [agent_lease_wire(x) for x in self.leases.of_node(cluster, node)],
            "ended_leases": sorted(known - {x.id for x in active}),
            **work,
        }

    def ingest(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store one batch of a joined node's samples, once per ``batch_id``."""
        cluster = check_name("cluster", body.get("cluster"))
        node = check_name("node", body.get("node"))
        batch_id = check_name("batch_id", body.get("batch_id"))
        raw = body.get("snapshots")
        if not isinstance(raw, list):
            raise HubRequestError("snapshots must be a list")
        if len(raw) > MAX_BATCH_SNAPSHOTS:
            raise HubRequestError(
                f"a batch holds at most {MAX_BATCH_SNAPSHOTS} snapshots, got {len(raw)}; "
                "send smaller batches",
                status=413,
            )
        snapshots = []
        for i, item in enumerate(raw):
            try:
                snap = snapshot_from_wire(item)
            except WireError as exc:
                raise HubRequestError(f"snapshots[{i}].{exc}") from None
            if (snap.cluster, snap.node) != (cluster, node):
                raise HubRequestError(
                    f"snapshots[{i}] is of {snap.cluster}/{snap.node}, not of {cluster}/{node}: "
                    "a node sends only its own samples"
                )
            snapshots.append(snap)
        if self.store.hub_node(cluster, node) is None:
            raise HubRequestError(f"node {cluster}/{node} has not joined: join first", 404)
        stored = self.store.ingest_batch(cluster, node, batch_id, snapshots, self.clock())
        if snapshots:
            newest = max(snapshots, key=lambda x: x.ts_s)
            known = self.latest.get((cluster, node))
            if known is None or newest.ts_s >= known.ts_s:
                self.latest[(cluster, node)] = newest
        return {"batch_id": batch_id, "snapshots": len(snapshots), "duplicate": not stored}

    def note_serving(self) -> None:
        """Record in the store that this hub serves from now on, with its timeout."""
        now = self.clock()
        self.store.save_hub_setting("unreachable_after_s", repr(self.unreachable_after_s), now)
        self.store.save_hub_setting("started_s", repr(self.started_s), now)

    def view(self, node: HubNode) -> NodeView:
        # Silence while the hub itself was down is not the node's: after a restart a node
        # has the whole timeout to be heard again before it counts as unreachable (and its
        # leases are reclaimed).
        heard = node.last_heartbeat_s
        if heard is not None:
            heard = max(heard, self.started_s)
        health = node_health(
            Heard(
                last_heartbeat_s=heard,
                last_sample_s=node.last_sample_s,
                gpus_lost=node.gpus_lost,
                gpu_errors=node.gpu_errors,
                drained=node.drained,
                drain_reason=node.drain_reason,
            ),
            self.clock(),
            unreachable_after_s=self.unreachable_after_s,
        )
        return NodeView(node, health.status, health.reasons)

    def nodes(
        self,
        *,
        status: str | None = None,
        pool: str | None = None,
        label: tuple[str, str] | None = None,
    ) -> list[NodeView]:
        """Every node with its health, filtered by status, pool or one ``key=value`` label."""
        out = [self.view(n) for n in self.store.hub_nodes()]
        if status is not None:
            out = [v for v in out if v.status == status]
        if pool is not None:
            out = [v for v in out if v.node.pool == pool]
        if label is not None:
            out = [v for v in out if v.node.labels.get(label[0]) == label[1]]
        return out

    def discovered(self) -> list[dict[str, Any]]:
        """Agents heard of on the LAN (mDNS, UDP, static peers), each marked ``joined`` when
        it is a node of the hub: the ones not joined have no token yet."""
        joined = {(n.cluster, n.node) for n in self.store.hub_nodes()}
        return [
            {
                "cluster": d.cluster,
                "node": d.node,
                "url": d.url,
                "source": d.source,
                "seen": _iso(d.seen_s),
                "joined": (d.cluster, d.node) in joined,
            }
            for d in self.discovery.all()
        ]

    def drain(self, cluster: str, node: str, *, drained: bool, reason: str | None) -> NodeView:
        if not self.store.set_drained(cluster, node, drained, reason):
            raise HubRequestError(f"no node {cluster}/{node}", status=404)
        found = self.store.hub_node(cluster, node)
        assert found is not None
        return self.view(found)
